"""Answer stage: pick the answering sentence, prefer the asked person's statements, merge
passages carried by several sources, and decide whether the documents answer at all."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .attribution import asked_speaker, speaker_matches
from .index import Index
from .retrieve import Candidate
from .textutil import normalise, terms
from .types import Answer, Citation, Passage, Ranks

# How much a sentence spoken by the person asked about counts, in cosine units.
SPEAKER_BONUS = 0.12
# Weight of the share of the question's (idf-weighted) terms that a sentence contains.
TERM_WEIGHT = 0.35
# Passages sharing this much of their word 4-grams carry "the same words".
SAME_WORDS = 0.5


@dataclass(frozen=True)
class Evidence:
    """Whether the best passage answers: absolute signals, comparable across questions."""

    sentence: float   # best sentence cosine
    dense: float      # passage cosine
    coverage: float   # idf-weighted share of question terms found in the passage


def answers(e: Evidence) -> bool:
    """Abstain unless the best passage is close in meaning or covers the question's rare terms.

    Thresholds are set from SQuAD questions asked against their own articles (answerable) and
    against the other articles only (unanswerable); see benchmarks/ for the calibration.
    """
    return e.sentence >= 0.55 or (e.sentence >= 0.30 and e.coverage >= 0.6) or (
        e.dense >= 0.45 and e.coverage >= 0.45)


@dataclass(frozen=True)
class Scored:
    """A candidate after answer-level reranking."""

    score: float
    cand: Candidate
    best: int          # index of the highlight sentence within the passage
    coverage: float    # idf-weighted share of question terms found in the passage


def rerank(question: str, query: str, history: list[str], candidates: list[Candidate],
           index: Index, depth: int = 20) -> list[Scored]:
    """Rescore the top candidates with sentence evidence and the asked person's statements."""
    person = asked_speaker(question) or (asked_speaker(history[-1]) if history and query != question else None)
    weights = _idf_weights(index, query)
    scored = []
    for cand in candidates[:depth]:
        chunk = index.chunks[cand.chunk_id]
        sent_terms = [set(terms(chunk.text[s - chunk.start:e - chunk.start])) for s, e in chunk.sentences]
        best_j, best_h, spoken = 0, -math.inf, False
        for j, cos in enumerate(cand.sentence_scores):
            h = cos + TERM_WEIGHT * _coverage(weights, sent_terms[j])
            said = bool(person) and j < len(chunk.speakers) and speaker_matches(chunk.speakers[j], person)
            if said:
                h += SPEAKER_BONUS
            if h > best_h:
                best_j, best_h, spoken = j, h, said
        score = cand.score + (SPEAKER_BONUS if spoken else 0.0)
        scored.append(Scored(score, cand, best_j, _coverage(weights, set().union(*sent_terms))))
    scored.sort(key=lambda x: -x.score)
    return scored


def evidence(scored: list[Scored]) -> Evidence:
    """The abstention signals of a ranking."""
    top = scored[0]
    return Evidence(max(s.cand.sentence for s in scored[:3]), top.cand.dense, top.coverage)


def compose(question: str, query: str, history: list[str], candidates: list[Candidate],
            index: Index, k: int) -> Answer:
    """Turn fused candidates into the final Answer (at most k passages, best first)."""
    if not candidates:
        return Answer(question, False, (), query, "nothing in the documents matches the question")
    scored = rerank(question, query, history, candidates, index, depth=max(3 * k, 20))
    ev = evidence(scored)
    if not answers(ev):
        return Answer(question, False, (), query,
                      "the documents do not answer this question (best match too weak: "
                      f"sentence similarity {ev.sentence:.2f}, term coverage {ev.coverage:.2f})")
    kept: list[dict] = []
    for sc in scored:
        chunk = index.chunks[sc.cand.chunk_id]
        grams = _shingles(chunk.text)
        dup = next((p for p in kept if _overlap(grams, p["grams"]) >= SAME_WORDS), None)
        if dup is not None:
            if chunk.doc_id != dup["chunk"].doc_id and all(c.doc_id != chunk.doc_id for c in dup["also"]):
                dup["also"].append(_citation(index, chunk.doc_id, chunk.start, chunk.end))
            continue
        if len(kept) < k:
            kept.append({"score": sc.score, "cand": sc.cand, "chunk": chunk, "best": sc.best,
                         "grams": grams, "also": []})
    return Answer(question, True, tuple(_passage(index, p) for p in kept), query, "")


def _passage(index: Index, p: dict) -> Passage:
    chunk, cand = p["chunk"], p["cand"]
    s, e = _highlight_span(chunk, p["best"])
    speaker = chunk.speakers[p["best"]] if p["best"] < len(chunk.speakers) else None
    return Passage(
        text=chunk.text, highlight=chunk.text[s - chunk.start:e - chunk.start], score=round(p["score"], 4),
        citation=_citation(index, chunk.doc_id, chunk.start, chunk.end), also_in=tuple(p["also"]),
        ranks=Ranks(cand.dense_rank, cand.bm25_rank), highlight_start=s, highlight_end=e, speaker=speaker)


_OPEN = re.compile(r"[“\"]")


def _highlight_span(chunk, j: int) -> tuple[int, int]:
    """The best sentence, extended over following sentences while a quote it opens is still open."""
    s, e = chunk.sentences[j]
    text = chunk.text[s - chunk.start:e - chunk.start]
    while _quote_open(text) and j + 1 < len(chunk.sentences):
        j += 1
        e = chunk.sentences[j][1]
        text = chunk.text[s - chunk.start:e - chunk.start]
    return s, e


def _quote_open(text: str) -> bool:
    curly = text.count("“") > text.count("”")
    return curly or ("“" not in text and text.count('"') % 2 == 1 and text.lstrip().startswith('"'))


def _citation(index: Index, doc_id: str, start: int, end: int) -> Citation:
    d = index.docs[doc_id]
    return Citation(doc_id, d.title, d.path, start, end, d.outlet, d.byline)


def _idf_weights(index: Index, query: str) -> dict[str, float]:
    """Inverse document frequency of each query term over the indexed passages."""
    n = max(len(index.chunks), 1)
    indptr = index.bm25.scores["indptr"]
    vocab = index.bm25.vocab_dict
    out = {}
    for t in set(terms(query)):
        tid = vocab.get(t)
        df = int(indptr[tid + 1] - indptr[tid]) if tid is not None else 0
        out[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return out


def _coverage(weights: dict[str, float], present: set[str]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in present) / total if total else 0.0


def _shingles(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i:i + n]) for i in range(max(len(words) - n + 1, 1))}


def _overlap(a: set, b: set) -> float:
    """Share of the smaller passage's word n-grams found in the other (containment)."""
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0
