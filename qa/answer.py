"""Answer stage: pick the answering sentence, prefer the asked person's statements, merge
passages carried by several sources, and decide whether the documents answer at all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .features import PASSAGE_FEATURES, PASSAGE_WEIGHTS, SENTENCE_WEIGHTS, analyse, evidence
from .weights import MODELS
from .backends.base import Fetched
from .lexicon import segments
from .retrieve import Candidate, Retrieved
from .types import Answer, Citation, Passage, Ranks, page_of

# A following quotation of at least this many words is the speaker's own account, see `_with_own_quote`.
MIN_QUOTE_WORDS = 4

# Share of the asked topic's (idf-weighted) terms a passage must contain, see `answers`.
TOPIC_COVERAGE = 0.3


# The abstention signals, by name: the order of Support.vector() and of the fitted weights.
SUPPORT_FEATURES = ("sentence", "coverage", "dense", "sent_coverage", "window", "bigrams", "names", "doc_names")


@dataclass(frozen=True)
class Support:
    """Whether the best passages answer: absolute signals, comparable across questions and collections."""

    sentence: float       # best sentence cosine among the first passages
    dense: float          # cosine of the first passage
    coverage: float       # best idf-weighted share of question terms found in one of the first passages
    sent_coverage: float  # the same within one sentence
    window: float         # best (sentence with the one before it) term coverage x sentence cosine
    bigrams: float        # best share of the question's word pairs found in one of the first passages
    names: float = 1.0    # best share of the question's names found as units in one of the first passages
    doc_names: float = 1.0  # the same in their whole articles
    topic: float | None = None  # for "what did X say about Y": share of Y's terms found

    def vector(self) -> np.ndarray:
        """The signals in SUPPORT_FEATURES order."""
        return np.array([getattr(self, name) for name in SUPPORT_FEATURES])


# Logistic model of "the first passages answer the question" over Support (weights.json says how
# it was fitted). Only collection-independent signals (cosines, shares of the question's terms) are
# used, so the model carries over from SQuAD's 900 paragraphs to a folder of a few articles.
ABSTAIN = MODELS["abstain"]
ABSTAIN_WEIGHTS = ABSTAIN.vector(SUPPORT_FEATURES)
ABSTAIN_BIAS = ABSTAIN.bias
ABSTAIN_THRESHOLD = ABSTAIN.threshold


def answer_logit(e: Support) -> float:
    """The model's log-odds that the first passages answer the question."""
    return float(e.vector() @ ABSTAIN_WEIGHTS + ABSTAIN_BIAS)


def answers(e: Support) -> bool:
    """Abstain unless the first passages are close enough in meaning and words to the question.

    When a question asks what someone said about a topic, the person's name alone is no evidence:
    the passage must also speak of the topic (its words, or a sentence very close in meaning).
    """
    base = answer_logit(e) >= ABSTAIN_THRESHOLD
    return base and (e.topic is None or e.topic >= TOPIC_COVERAGE or e.sentence >= 0.6)


class Scored(NamedTuple):
    """A candidate after answer-level reranking (a NamedTuple: made by the dozen per question)."""

    score: float
    cand: Candidate
    best: int          # index of the highlight sentence within the passage
    coverage: float    # idf-weighted share of question terms found in the passage
    topic: float | None  # idf-weighted share of the asked topic's terms (speaker questions only)
    statement: bool = False  # the person asked about makes a related statement in the passage
    features: np.ndarray | None = None  # the passage's row of features.PASSAGE_FEATURES
    last: int = -1     # the highlight runs through this sentence too (-1: the best one alone)


def rerank(question: str, query: str, history: list[str], candidates: list[Candidate],
           index: Fetched, qvec: np.ndarray, depth: int = 20) -> list[Scored]:
    """Rescore the top candidates with the fitted passage model; pick each one's best sentence."""
    q = analyse(question, query, history, index, qvec)
    top = candidates[:depth]
    chosen = {c.chunk_id for c in top}
    # Keep the passage right after a chosen one (see retrieve: scene in one, quote in the next).
    top += [c for c in candidates[depth:] if int(index.previous[c.chunk_id]) in chosen]
    ev = evidence(q, top, index)
    scores = ev.passages @ PASSAGE_WEIGHTS
    best = _segment_argmax(ev.sentences @ SENTENCE_WEIGHTS, ev.offsets)
    topic = ev.topic_coverage.tolist() if q.person else [None] * len(top)
    last = _with_own_quote(best, top, index) if q.answer_type == "quote" else np.full(len(top), -1)
    scored = [Scored(*row) for row in zip(scores.tolist(), top, best.tolist(), ev.coverage.tolist(), topic,
                                          ev.statement.tolist(), ev.passages, last.tolist())]
    # "What did X say about Y": passages where X states something related to Y come first.
    scored.sort(key=lambda x: (not x.statement, -x.score))
    return scored


# A quotation in a sentence: straight or curly marks, possibly left open (it runs on).
_QUOTED = re.compile(r"“[^”]*”?|\"[^\"]*\"?")


def _quoted_words(text: str) -> int:
    """Words in the sentence's longest quotation (0 if none)."""
    return max((len(m.group(0).split()) for m in _QUOTED.finditer(text)), default=0)


def _with_own_quote(best: np.ndarray, top: list[Candidate], index: Fetched) -> np.ndarray:
    """For a question asking for someone's words: where the best sentence reports what a speaker
    said ("X said he felt "great" about ...") and the next one is that speaker's own longer quote,
    the highlight takes in the quote too (the words asked for). Returns each candidate's last
    highlighted sentence (-1: the best one alone)."""
    out = np.full(len(top), -1)
    for i, (j, c) in enumerate(zip(best.tolist(), top)):
        chunk = index.chunks[c.chunk_id]
        if j + 1 >= min(len(chunk.speakers), len(chunk.sentences)) or chunk.speakers[j] is None:
            continue
        if chunk.speakers[j + 1] != chunk.speakers[j]:
            continue
        here, after = (chunk.text[s - chunk.start:e - chunk.start] for s, e in chunk.sentences[j:j + 2])
        if _quoted_words(after) >= MIN_QUOTE_WORDS and _quoted_words(after) > _quoted_words(here):
            out[i] = j + 1
    return out


def _segment_argmax(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Index within each (non-empty) segment values[offsets[i]:offsets[i+1]] of its first maximum."""
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    order = np.lexsort((np.arange(len(values)), -values, owner))  # by segment, best first, ties: first
    return order[offsets[:-1]] - offsets[:-1]


def support(scored: list[Scored]) -> Support:
    """The abstention signals of a ranking."""
    top, first = scored[0], scored[:3]
    topic = None if top.topic is None else max(s.topic for s in first)
    col = {name: i for i, name in enumerate(PASSAGE_FEATURES)}
    best = lambda name: max(float(s.features[col[name]]) for s in first)  # noqa: E731
    # The best of the first few: the answer need not be the top passage for the question to be answerable.
    return Support(max(s.cand.sentence for s in first), top.cand.dense, max(s.coverage for s in first),
                    best("sent_coverage"), best("window_cos"), best("bigrams"), best("names"), best("doc_names"), topic)


def compose(question: str, query: str, history: list[str], found: Retrieved, qvec: np.ndarray,
            k: int) -> Answer:
    """Turn fused candidates into the final Answer (at most k passages, best first)."""
    candidates, index = found
    if not candidates:
        return Answer(question, False, (), query, "nothing in the documents matches the question")
    scored = rerank(question, query, history, candidates, index, qvec, depth=max(3 * k, 20))
    sup = support(scored)
    if not answers(sup):
        return Answer(question, False, (), query,
                      "best match too weak ("
                      f"sentence similarity {sup.sentence:.2f}, term coverage {sup.coverage:.2f})")
    kept: list[dict] = []
    same = _same_words(index, [sc.cand.chunk_id for sc in scored])
    for i, sc in enumerate(scored):
        chunk = index.chunks[sc.cand.chunk_id]
        dup = next((p for p in kept if same[i][p["i"]]), None)
        if dup is not None:
            if chunk.doc_id != dup["chunk"].doc_id and all(c.doc_id != chunk.doc_id for c in dup["also"]):
                dup["also"].append(_citation(index, chunk.doc_id, chunk.start, chunk.end))
            continue
        if len(kept) < k:
            kept.append({"score": sc.score, "cand": sc.cand, "chunk": chunk, "best": sc.best, "last": sc.last,
                         "i": i, "also": [], "statement": sc.statement})
    return Answer(question, True, tuple(_passage(index, p) for p in kept), query, "")


def _passage(index: Fetched, p: dict) -> Passage:
    chunk, cand = p["chunk"], p["cand"]
    s, e = _highlight_span(chunk, p["best"], p["last"])
    speaker = chunk.speakers[p["best"]] if p["best"] < len(chunk.speakers) else None
    return Passage(
        text=chunk.text, highlight=chunk.text[s - chunk.start:e - chunk.start], score=round(p["score"], 4),
        citation=_citation(index, chunk.doc_id, chunk.start, chunk.end), also_in=tuple(p["also"]),
        ranks=Ranks(cand.dense_rank, cand.bm25_rank), highlight_start=s, highlight_end=e, speaker=speaker,
        statement=p["statement"])


_OPEN = re.compile(r"[“\"]")


def _highlight_span(chunk, j: int, last: int = -1) -> tuple[int, int]:
    """The best sentence (through sentence `last` if that is later), extended over following
    sentences while a quote it opens is still open."""
    s, _ = chunk.sentences[j]
    j = max(j, last)
    e = chunk.sentences[j][1]
    text = chunk.text[s - chunk.start:e - chunk.start]
    while _quote_open(text) and j + 1 < len(chunk.sentences):
        j += 1
        e = chunk.sentences[j][1]
        text = chunk.text[s - chunk.start:e - chunk.start]
    return s, e


def _quote_open(text: str) -> bool:
    curly = text.count("“") > text.count("”")
    return curly or ("“" not in text and text.count('"') % 2 == 1 and text.lstrip().startswith('"'))


def _citation(index: Fetched, doc_id: str, start: int, end: int) -> Citation:
    d = index.docs[doc_id]
    return Citation(doc_id, d.title, d.path, start, end, d.outlet, d.byline, page_of(d.pages, start), d.date, d.url,
                    d.file_sha256, d.encoding)


def _same_words(index: Fetched, chunk_ids: list[int]) -> list[list[bool]]:
    """Which pairs of these passages carry the same words (found when the index was built)."""
    lex = index.lexicon
    ids = np.asarray(chunk_ids, np.int64)
    pos, owner, _ = segments(lex.same_start[ids], lex.same_start[ids + 1])
    where = {int(index.ids[c]): i for i, c in enumerate(chunk_ids)}  # partners are backend ids
    same = [[False] * len(chunk_ids) for _ in chunk_ids]
    for i, partner in zip(owner.tolist(), lex.same[pos].tolist()):
        j = where.get(partner)
        if j is not None:
            same[i][j] = True
    return same
