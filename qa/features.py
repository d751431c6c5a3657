"""Evidence features of a (question, passage) pair and of each sentence in the passage.

The answer stage ranks passages and picks the highlight with linear models over these features;
the weights are fitted on SQuAD by benchmarks/fit_ranker.py (cross-fitted by article) and kept
below as plain constants so the ranking stays explainable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .attribution import speaker_matches, speaker_question
from .index import Index
from .retrieve import Candidate
from .textutil import terms

_NUMBER = re.compile(r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                     r"dozens?|hundreds?|thousands?|millions?|billions?|half|percent)\b", re.I)
_DATE = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\b(?:January|February|March|April|May|June|July|"
                   r"August|September|October|November|December|Monday|Tuesday|Wednesday|Thursday|"
                   r"Friday|Saturday|Sunday)\b|\b(?:century|decade|years? ago)\b")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z'’\-]+(?:\s+[A-Z][a-z'’\-]+)*")

_WH = (
    ("number", re.compile(r"\bhow (?:many|much|long|old|far|large|big|often|high|tall|fast)\b|\bwhat (?:percentage|number|amount|proportion)\b", re.I)),
    ("date", re.compile(r"\bwhen\b|\bwhat (?:year|century|decade|date|day|month|time)\b|\bin which year\b", re.I)),
    ("person", re.compile(r"\bwho(?:m|se)?\b|\bwhich (?:person|man|woman|leader|official)\b", re.I)),
    ("place", re.compile(r"\bwhere\b|\bwhat (?:country|city|state|place|region)\b|\bwhich (?:country|city|state)\b", re.I)),
)

PASSAGE_FEATURES = ("dense", "bm25", "sentence", "coverage", "sent_coverage", "type_match",
                    "speaker", "inv_dense_rank", "inv_bm25_rank")
SENTENCE_FEATURES = ("cos", "coverage", "type_match", "speaker", "rel_cos", "neighbour_coverage")

# Fitted weights (see module docstring). Passage score = PASSAGE_WEIGHTS . features.
PASSAGE_WEIGHTS = np.array([0.45, 0.30, 0.25, 0.0, 0.0, 0.0, 0.12, 0.0, 0.0])
SENTENCE_WEIGHTS = np.array([1.0, 0.35, 0.0, 0.12, 0.0, 0.0])


@dataclass(frozen=True)
class Query:
    """What the features need to know about a question."""

    terms: dict[str, float]       # stemmed term -> idf over the indexed passages
    topic: dict[str, float]       # the same for what the person is asked about (all terms if none)
    answer_type: str              # number, date, person, place or other
    person: str | None            # who the question asks about as a speaker
    words: frozenset[str]         # lower-cased words of the question (names already given)


def analyse(question: str, query: str, history: list[str], index: Index) -> Query:
    """Parse a question once: term weights, expected answer type, asked speaker."""
    person, topic = speaker_question(question)
    if person is None and history and query != question:
        person = speaker_question(history[-1])[0]  # a follow-up keeps the person asked about
    kind = next((name for name, rx in _WH if rx.search(question)), "other")
    idf = _idf(index, query)
    topic_idf = _idf(index, topic) if person and topic.strip() else idf
    return Query(idf, topic_idf, kind, person, frozenset(w.lower() for w in re.findall(r"[\w'’\-]+", query)))


def _idf(index: Index, query: str) -> dict[str, float]:
    n = max(len(index.chunks), 1)
    indptr = index.bm25.scores["indptr"]
    vocab = index.bm25.vocab_dict
    out = {}
    for t in set(terms(query)):
        tid = vocab.get(t)
        df = int(indptr[tid + 1] - indptr[tid]) if tid is not None else 0
        out[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return out


def coverage(weights: dict[str, float], present: set[str]) -> float:
    """Idf-weighted share of the question's terms that are present."""
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in present) / total if total else 0.0


def _type_match(kind: str, sentence: str, asked: frozenset[str]) -> float:
    if kind == "number":
        return float(bool(_NUMBER.search(sentence)))
    if kind == "date":
        return float(bool(_DATE.search(sentence)))
    if kind in ("person", "place"):
        return float(any(m.group(0).lower() not in asked and m.group(0).split()[0].lower() not in asked
                         for m in _NAME.finditer(sentence)))
    return 0.0


@dataclass(frozen=True)
class PassageEvidence:
    features: np.ndarray          # PASSAGE_FEATURES
    sentences: np.ndarray         # one row of SENTENCE_FEATURES per sentence
    coverage: float               # share of the question's terms in the passage
    topic_coverage: float         # share of the asked topic's terms (= coverage without a speaker)


def passage_evidence(q: Query, cand: Candidate, index: Index) -> PassageEvidence:
    """Features of one candidate passage and of its sentences."""
    chunk = index.chunks[cand.chunk_id]
    sents = [chunk.text[s - chunk.start:e - chunk.start] for s, e in chunk.sentences]
    sterms = [set(terms(s)) for s in sents]
    cov = np.array([coverage(q.terms, t) for t in sterms]) if sents else np.zeros(1)
    cos = np.array(cand.sentence_scores) if cand.sentence_scores else np.zeros(len(sents))
    types = np.array([_type_match(q.answer_type, s, q.words) for s in sents])
    spoken = np.array([float(bool(q.person) and j < len(chunk.speakers) and speaker_matches(chunk.speakers[j], q.person))
                       for j in range(len(sents))])
    neighbour = np.array([max(cov[j - 1] if j > 0 else 0.0, cov[j + 1] if j + 1 < len(cov) else 0.0)
                          for j in range(len(sents))])
    rel = cos - cos.max() if len(cos) else cos
    sent_feats = np.stack([cos, cov, types, spoken, rel, neighbour], axis=1) if sents else np.zeros((0, 6))
    present = set().union(*sterms) if sterms else set()
    passage_cov = coverage(q.terms, present)
    feats = np.array([
        cand.dense, cand.bm25, cand.sentence, passage_cov, float(cov.max()) if len(cov) else 0.0,
        float(types.max()) if len(types) else 0.0, float(spoken.max()) if len(spoken) else 0.0,
        1.0 / cand.dense_rank if cand.dense_rank else 0.0, 1.0 / cand.bm25_rank if cand.bm25_rank else 0.0,
    ])
    return PassageEvidence(feats, sent_feats, passage_cov, coverage(q.topic, present))
