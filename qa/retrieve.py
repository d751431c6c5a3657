"""Retrieve stage: dense and BM25 candidates, fused into one ranking with per-method ranks kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .attribution import lexical_query
from .index import Index
from .lexicon import segment_reduce, segments
from .textutil import is_stopword

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

    chunk_id: int
    score: float
    dense: float          # cosine of question and passage
    bm25: float           # BM25 divided by the best BM25 score for this question
    sentence: float       # best cosine of question and one of the passage's sentences
    dense_rank: int | None
    bm25_rank: int | None
    sentence_cos: np.ndarray  # cosine of the question and each of the passage's sentences


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first (partial sort: O(n) on a million passages)."""
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")


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


def retrieve(index: Index, qvec: np.ndarray, query: str, weights: Weights = Weights(),
             pool: int = POOL, allowed: np.ndarray | None = None) -> list[Candidate]:
    """Candidates for a question, best first.

    Args:
        index: the loaded index.
        qvec: the question's unit vector.
        query: the question text (for BM25).
        weights: fusion weights.
        pool: how many candidates each method contributes.
        allowed: if given, a boolean mask over passages; only those may be returned.
    """
    bm25_all = index.bm25_scores(lexical_query(query))
    if allowed is None:
        dense_ids, _ = index.search_dense(qvec, pool)
    else:
        # Restricted to some sources: score just those exactly, so none is crowded out.
        subset = np.flatnonzero(allowed)
        dense_ids = subset[_top(index.vectors[subset] @ qvec, pool)]
        bm25_all = np.where(allowed, bm25_all, 0.0).astype(np.float32)
    top_bm25 = float(bm25_all.max()) if len(bm25_all) else 0.0
    bm25_ids = _top(bm25_all, pool)
    bm25_ids = bm25_ids[bm25_all[bm25_ids] > 0]
    dense_rank = {c: r for r, c in enumerate(dense_ids.tolist(), start=1)}
    bm25_rank = {c: r for r, c in enumerate(bm25_ids.tolist(), start=1)}
    # The passage after a strong match joins the pool: news often names the occasion in one
    # paragraph and gives the quote in the next.
    follow = {i + 1 for i in dense_ids[:10].tolist() + bm25_ids[:10].tolist()
              if i + 1 < len(index.chunks) and index.chunks[i + 1].doc_id == index.chunks[i].doc_id
              and (allowed is None or allowed[i + 1])}
    ids = np.array(sorted(set(dense_rank) | set(bm25_rank) | follow), dtype=np.int64)
    if len(ids) == 0:
        return []
    dense = np.asarray(index.vectors[ids] @ qvec, dtype=np.float32)
    bm25 = bm25_all[ids] / top_bm25 if top_bm25 > 0 else np.zeros(len(ids), np.float32)
    rows, _, offsets = segments(index.sent_start[ids], index.sent_start[ids + 1])
    cos = np.asarray(index.sent_vectors[rows] @ qvec, np.float32)
    best = segment_reduce(np.maximum, cos, offsets)
    fused = blend(dense, bm25, best, weights)
    order = np.argsort(-fused, kind="stable")
    bounds = offsets.tolist()
    columns = zip(order.tolist(), ids[order].tolist(), fused[order].tolist(), dense[order].tolist(),
                  bm25[order].tolist(), best[order].tolist())
    return [Candidate(i, f, d, b, s, dense_rank.get(i), bm25_rank.get(i), cos[bounds[j]:bounds[j + 1]])
            for j, i, f, d, b, s in columns]


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
