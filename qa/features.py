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

from .attribution import is_quote, lexical_query, speaker_matches, speaker_question
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
                    "speaker", "dense_rank", "bm25_rank", "bigrams", "proximity", "title")
SENTENCE_FEATURES = ("cos", "coverage", "type_match", "speaker", "rel_cos", "neighbour_coverage",
                     "bigrams", "rel_coverage", "novelty", "length")

# Weights fitted by benchmarks/fit_ranker.py (listwise logistic regression on 2,500 SQuAD dev-half
# questions; out-of-sample by article: hit@1 0.880 / 0.932, highlight 0.730 / 0.831 on the two
# folds). SQuAD has no "what did X say" questions, so the two speaker weights cannot be fitted
# there; they are set by hand: in a passage, a statement by the person asked about outweighs a
# non-statement somewhat closer in meaning (0.3 on the cosine scale); for the highlight, their
# direct quote (credit 1.0, reported speech 0.5) is preferred to the reporter's paraphrase.
PASSAGE_WEIGHTS = np.array([0.575, 0.152, 1.0, 0.492, 0.659, 0.055, 0.3, 0.199, 0.075, 0.682, 0.035, 0.002])
SENTENCE_WEIGHTS = np.array([0.341, 0.44, 0.284, 0.8, 0.416, 0.08, 0.395, 0.301, -0.237, 1.0])


# A statement by the person asked about counts as being on the question's topic when it is at
# least this close in meaning (or shares the topic's words).
STATEMENT_MIN_COS = 0.3


@dataclass(frozen=True)
class Query:
    """What the features need to know about a question."""

    terms: dict[str, float]       # stemmed term -> idf over the indexed passages
    bigrams: frozenset[tuple[str, str]]  # adjacent stemmed content terms of the question
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
    idf = _idf(index, lexical_query(query))
    topic_idf = _idf(index, topic, keep_unseen=True) if person and topic.strip() else idf
    seq = terms(lexical_query(question))
    return Query(idf, frozenset(zip(seq, seq[1:])), topic_idf, kind, person,
                 frozenset(w.lower() for w in re.findall(r"[\w'’\-]+", query)))


def _idf(index: Index, query: str, keep_unseen: bool = False) -> dict[str, float]:
    """Idf of the query's terms. Terms found nowhere in the collection are left out unless
    `keep_unseen`: in a question they are mostly wording no article uses ("happened"), while in
    the topic of "what did X say about Y" they mean no article speaks of Y."""
    n = max(len(index.chunks), 1)
    out = {}
    for t in set(terms(query)):
        df = index.doc_freq(t)
        if df is None and not keep_unseen:
            continue
        out[t] = math.log(1 + (n - (df or 0) + 0.5) / ((df or 0) + 0.5))
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
    statement: bool               # the asked person says something here related to the question


def passage_evidence(q: Query, cand: Candidate, index: Index) -> PassageEvidence:
    """Features of one candidate passage and of its sentences."""
    chunk = index.chunks[cand.chunk_id]
    sents = [chunk.text[s - chunk.start:e - chunk.start] for s, e in chunk.sentences]
    seqs = index.sentence_terms(cand.chunk_id)
    sterms = [set(t) for t in seqs]
    n = len(sents)
    cov = np.array([coverage(q.terms, t) for t in sterms]) if n else np.zeros(1)
    cos = np.array(cand.sentence_scores) if cand.sentence_scores else np.zeros(n)
    types = np.array([_type_match(q.answer_type, s, q.words) for s in sents])
    # The person's own words (a direct quote) count fully, reported speech ("X dismissed...") less.
    spoken = np.array([(1.0 if is_quote(sents[j]) else 0.5) if q.person and j < len(chunk.speakers)
                       and speaker_matches(chunk.speakers[j], q.person) else 0.0 for j in range(n)])
    neighbour = np.array([max(cov[j - 1] if j > 0 else 0.0, cov[j + 1] if j + 1 < n else 0.0) for j in range(n)])
    nbig = max(len(q.bigrams), 1)
    sbig = np.array([len(q.bigrams & set(zip(t, t[1:]))) / nbig for t in seqs])
    # An answer adds something the question lacks: the share of a sentence's terms that are new.
    novelty = np.array([len(t - q.terms.keys()) / len(t) if t else 0.0 for t in sterms])
    length = np.array([math.log1p(len(x)) / 6 for x in sents])
    sent_feats = (np.stack([cos, cov, types, spoken, cos - cos.max(), neighbour, sbig, cov - cov.max(),
                            novelty, length], axis=1)
                  if n else np.zeros((0, len(SENTENCE_FEATURES))))
    present = set().union(*sterms) if sterms else set()
    if spoken.max(initial=0.0) == 1.0:
        # News sets the scene of a quote in the paragraph before it ("Speaking to NBC News, X said
        # ..." then the quote): for the asked person's quotes, that paragraph's words count too.
        present = present | _previous_terms(index, cand.chunk_id)
    passage_cov = coverage(q.terms, present)
    whole = [t for seq in seqs for t in seq]
    title = index.docs[chunk.doc_id].title
    feats = np.array([
        cand.dense, cand.bm25, cand.sentence, passage_cov, float(cov.max()) if n else 0.0,
        float(types.max()) if n else 0.0, float(spoken.max()) if n else 0.0,
        _rank_feature(cand.dense_rank), _rank_feature(cand.bm25_rank),
        len(q.bigrams & set(zip(whole, whole[1:]))) / nbig, _proximity(whole, q.terms),
        coverage(q.terms, index.memo(("title", chunk.doc_id), lambda: set(terms(title)))),
    ])
    topic_cov = coverage(q.topic, present)
    related = (cos >= STATEMENT_MIN_COS) | (topic_cov >= 0.3)
    return PassageEvidence(feats, sent_feats, passage_cov, topic_cov, bool(n and np.any((spoken > 0) & related)))


def _previous_terms(index: Index, chunk_id: int) -> set[str]:
    if chunk_id == 0 or index.chunks[chunk_id - 1].doc_id != index.chunks[chunk_id].doc_id:
        return set()
    return {t for seq in index.sentence_terms(chunk_id - 1) for t in seq}


def _rank_feature(rank: int | None) -> float:
    return 1.0 / math.log2(1 + rank) if rank else 0.0


def _proximity(seq: list[str], weights: dict[str, float]) -> float:
    """How tightly the question's terms cluster: matched distinct terms / shortest window holding them."""
    wanted = {t for t in weights if t in set(seq)}
    if len(wanted) < 2:
        return float(len(wanted))
    best, count, have, left = len(seq), {}, 0, 0
    for right, t in enumerate(seq):
        if t in wanted:
            count[t] = count.get(t, 0) + 1
            have += count[t] == 1
        while have == len(wanted):
            best = min(best, right - left + 1)
            u = seq[left]
            if u in wanted:
                count[u] -= 1
                have -= count[u] == 0
            left += 1
    return len(wanted) / best
