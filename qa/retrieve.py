"""Retrieve stage: dense and BM25 candidates, fused into one ranking with per-method ranks kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .attribution import lexical_query
from .backends.base import EVERYTHING, Backend, Fetched, Filter
from .lexicon import segment_reduce
from .textutil import is_stopword, terms

# Candidates taken from each method before fusion; deep enough that the fused top 10 rarely
# needs a passage neither method ranked this high.
POOL = 50


@dataclass(frozen=True)
class Weights:
    """Linear blend of evidence; every feature lies in [0, 1] (cosines are clipped at 0)."""

    dense: float = 0.45
    bm25: float = 0.30
    sentence: float = 0.25


class Candidate(NamedTuple):
    """A passage in the fused ranking (a NamedTuple: cheap to make by the hundred per question)."""

    chunk_id: int         # the passage's number in the Fetched set of its question
    score: float
    dense: float          # cosine of question and passage
    bm25: float           # BM25 divided by the best BM25 score for this question
    sentence: float       # best cosine of question and one of the passage's sentences
    dense_rank: int | None
    bm25_rank: int | None
    sentence_cos: np.ndarray  # cosine of the question and each of the passage's sentences


def rrf(rankings: list[list[int]], k: int = 60) -> dict[int, float]:
    """Reciprocal-rank fusion: score(d) = sum over rankings of 1 / (k + rank(d)).

    k=60 (Cormack et al., 2009) damps the gap between the first few ranks so that one method's
    top hit cannot outvote consistent agreement further down; it is the usual default.
    Used here as the benchmark baseline; `blend` is the engine's own fusion.
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return scores


def blend(dense: np.ndarray, bm25: np.ndarray, sentence: np.ndarray, w: Weights) -> np.ndarray:
    """Fused score of each candidate from its normalised features."""
    return (w.dense * np.clip(dense, 0, 1) + w.bm25 * np.clip(bm25, 0, 1)
            + w.sentence * np.clip(sentence, 0, 1))


class Retrieved(NamedTuple):
    """The fused candidates of a question and the stored data they refer to."""

    candidates: list[Candidate]   # best first; chunk_id numbers a passage of `fetched`
    fetched: Fetched


def retrieve(backend: Backend, qvec: np.ndarray, query: str, weights: Weights = Weights(),
             pool: int = POOL, where: Filter = EVERYTHING) -> Retrieved:
    """Candidates for a question, best first.

    Args:
        backend: where the passages are stored.
        qvec: the question's unit vector.
        query: the question text (for BM25).
        weights: fusion weights.
        pool: how many candidates each method contributes.
        where: which passages may be returned (applied inside both searches).
    """
    dense_hits, lexical_hits = backend.search_both(qvec, terms(lexical_query(query)), pool, where)
    dense_rank = {h.passage: r for r, h in enumerate(dense_hits, start=1)}
    bm25_rank = {h.passage: r for r, h in enumerate(lexical_hits, start=1)}
    bm25_score = {h.passage: h.score for h in lexical_hits}
    top_bm25 = lexical_hits[0].score if lexical_hits else 0.0
    # The passage after a strong match joins the pool: news often names the occasion in one
    # paragraph and gives the quote in the next. (It is of the same document, so a document filter
    # lets it through; an exact phrase need not be in it, so then it stays out.)
    strong = list(dict.fromkeys([h.passage for h in dense_hits[:10]] + [h.passage for h in lexical_hits[:10]]))
    follow = set()
    if strong and not where.phrases:
        follow = {int(i) for i in backend.neighbours(strong)[1].tolist() if i >= 0}
    ids = np.array(sorted(set(dense_rank) | set(bm25_rank) | follow), dtype=np.int64)
    fetched = backend.fetch(ids)
    if len(ids) == 0:
        return Retrieved([], fetched)
    n = len(ids)
    dense = np.asarray(fetched.vectors[:n] @ qvec, dtype=np.float32)
    bm25 = (np.array([bm25_score.get(i, 0.0) for i in ids.tolist()], np.float32) / top_bm25
            if top_bm25 > 0 else np.zeros(n, np.float32))
    offsets = fetched.sent_start[:n + 1]
    cos = np.asarray(fetched.sent_vectors[:int(offsets[-1])] @ qvec, np.float32)
    best = segment_reduce(np.maximum, cos, offsets)
    fused = blend(dense, bm25, best, weights)
    order = np.argsort(-fused, kind="stable")
    bounds = offsets.tolist()
    gids = ids.tolist()
    return Retrieved([Candidate(j, float(fused[j]), float(dense[j]), float(bm25[j]), float(best[j]),
                                dense_rank.get(gids[j]), bm25_rank.get(gids[j]), cos[bounds[j]:bounds[j + 1]])
                      for j in order.tolist()], fetched)


_CONNECTIVES = ("and ", "but ", "what about", "how about", "also", "then ", "so ", "and?")
_REFERRING = {"he", "she", "they", "it", "his", "her", "their", "its", "them", "him", "this",
              "that", "those", "these", "there", "whose"}


def formulate(question: str, history: list[str] | tuple[str, ...] = ()) -> str:
    """The text to search with: the question, plus the previous question when it is a follow-up.

    A follow-up is elliptical ("And about European troops?", "Whose troops would be unacceptable?"):
    it opens with a connective, refers back with a pronoun, or is very short. Its search text is the
    previous question followed by this one, so the topic carries over; a self-contained question
    is searched on its own.
    """
    history = [h for h in history if h and h.strip()]
    if not history:
        return question
    q = question.strip().lower()
    words = [w.strip("?,.!;:'\"") for w in question.split()]
    lowered = {w.lower() for w in words}
    content = [w for w in words if w and not is_stopword(w)]
    names = [w for w in words[1:] if w[:1].isupper()]
    follow_up = q.startswith(_CONNECTIVES) or (
        not names and (bool(_REFERRING & lowered) or len(content) <= 3))
    return f"{history[-1].strip()} {question.strip()}" if follow_up else question
