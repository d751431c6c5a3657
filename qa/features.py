"""Evidence features of candidate passages and of each of their sentences.

The answer stage ranks passages and picks the highlight with linear models over these features;
the weights are fitted by benchmarks/fit_ranker.py (cross-fitted by article) and kept by name in
weights.json, so the ranking stays explainable. All candidates of a question are
scored at once with array operations over the index's sentence term ids (lexicon.py): per-passage
Python code cost more than embedding the question.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .attribution import lexical_query, speaker_matches, speaker_question
from .backends.base import Fetched
from .lexicon import DATE, NUMBER, QUOTE, segment_reduce, segments
from .retrieve import Candidate
from .signals import (asked_figure, asks_amount, asks_for_words, figure_kinds, focus_near, mentions,
                      names_credit, names_share, question_focus, question_names)
from .textutil import terms
from .weights import MODELS

_WH = (
    ("number", re.compile(r"\bhow (?:many|much|long|old|far|large|big|often|high|tall|fast)\b|\bwhat (?:percentage|number|amount|proportion)\b", re.I)),
    ("date", re.compile(r"\bwhen\b|\bwhat (?:year|century|decade|date|day|month|time)\b|\bin which year\b", re.I)),
    ("person", re.compile(r"\bwho(?:m|se)?\b|\bwhich (?:person|man|woman|leader|official)\b", re.I)),
    ("place", re.compile(r"\bwhere\b|\bwhat (?:country|city|state|place|region)\b|\bwhich (?:country|city|state)\b", re.I)),
    ("other", re.compile(r"\b(?:what|which|how|why)\b", re.I)),
)


def answer_kind(question: str) -> str:
    """What the question's own wh-word asks for: the first one in the question decides, so that a
    later "when" or "who" opening a clause ("How ill was he when ...", "customers who stay ...")
    does not; at one position the more specific pattern ("how many" over "how") wins."""
    hits = [(m.start(), rank, name) for rank, (name, rx) in enumerate(_WH) for m in [rx.search(question)] if m]
    return min(hits)[2] if hits else "other"

PASSAGE_FEATURES = ("dense", "bm25", "sentence", "coverage", "sent_coverage", "type_match",
                    "speaker", "dense_rank", "bm25_rank", "bigrams", "title", "window_cos", "pool_coverage",
                    "names", "doc_names", "doc_coverage", "lead", "figure", "quoted", "focus", "beyond_lead")
SENTENCE_FEATURES = ("cos", "coverage", "type_match", "speaker", "rel_cos", "neighbour_coverage",
                     "bigrams", "rel_coverage", "novelty", "length", "local_coverage", "window_coverage",
                     "figure", "names", "quoted", "focus", "new_names")

# The fitted weights, by feature name (weights.json says how each was fitted).
PASSAGE_WEIGHTS = MODELS["passage"].vector(PASSAGE_FEATURES)
SENTENCE_WEIGHTS = MODELS["sentence"].vector(SENTENCE_FEATURES)


# A statement by the person asked about counts as being on the question's topic when it is at
# least this close in meaning (or shares the topic's words).
STATEMENT_MIN_COS = 0.3


@dataclass(frozen=True, eq=False)
class Query:
    """What the features need to know about a question, resolved against the index's vocabulary."""

    vector: np.ndarray            # the question's unit vector
    terms: dict[str, float]       # stemmed term -> idf over the indexed passages
    bigrams: frozenset[tuple[str, str]]  # adjacent stemmed content terms of the question
    topic: dict[str, float]       # the same for what the person is asked about (all terms if none)
    answer_type: str              # number, date, person, place, quote (asks for words) or other
    person: str | None            # who the question asks about as a speaker
    words: frozenset[str]         # lower-cased words of the question (names already given)
    names: tuple[str, ...]        # the names the question mentions, each matched as a unit
    figure: int                   # number questions: the kinds of figure that answer (signals bits)
    focus: tuple[str, ...]        # what the question asks about ("how many *jobs*"), see signals
    cols: np.ndarray              # sorted term ids of the indexed terms of `terms` and `topic`
    in_terms: np.ndarray          # per col: is it one of `terms`
    w_terms: np.ndarray           # per col: idf of `terms` (0 if a topic term only)
    w_topic: np.ndarray           # per col: idf of `topic`
    bigram_codes: np.ndarray      # sorted codes a * vocab_size + b of the indexed question bigrams


def analyse(question: str, query: str, history: list[str], index: Fetched, vector: np.ndarray) -> Query:
    """Parse a question once: term weights, expected answer type, asked speaker."""
    person, topic = speaker_question(question)
    if person is None and history and query != question:
        person = speaker_question(history[-1])[0]  # a follow-up keeps the person asked about
    kind = answer_kind(question)
    if kind == "other" and asks_amount(question):
        kind = "number"
    if kind == "other" and (person or asks_for_words(question)):
        kind = "quote"  # the answer is someone's words: a quoted sentence
    idf = _idf(index, lexical_query(query))
    topic_idf = _idf(index, topic, keep_unseen=True) if person and topic.strip() else idf
    seq = terms(lexical_query(question))
    bigrams = frozenset(zip(seq, seq[1:]))
    ids = {t: index.term_id(t) for t in set(idf) | set(topic_idf)}
    cols = np.array(sorted({i for i in ids.values() if i is not None}), np.int64)
    at = {i: j for j, i in enumerate(cols.tolist())}
    in_terms, w_terms, w_topic = np.zeros(len(cols), bool), np.zeros(len(cols)), np.zeros(len(cols))
    for t, w in idf.items():  # every term in `idf` is indexed (unseen ones are left out)
        in_terms[at[ids[t]]], w_terms[at[ids[t]]] = True, w
    for t, w in topic_idf.items():
        if ids[t] is not None:
            w_topic[at[ids[t]]] = w
    # The totals keep unseen topic terms: a topic no passage mentions is not covered.
    w_terms, w_topic = w_terms / (sum(idf.values()) or 1.0), w_topic / (sum(topic_idf.values()) or 1.0)
    codes = {index.term_id(a) * index.vocab_size + index.term_id(b) for a, b in bigrams
             if index.term_id(a) is not None and index.term_id(b) is not None}
    return Query(np.asarray(vector, np.float32), idf, bigrams, topic_idf, kind, person,
                 frozenset(w.lower() for w in re.findall(r"[\w'’\-]+", query)),
                 question_names(query), asked_figure(question) if kind == "number" else 0, question_focus(question),
                 cols, in_terms, w_terms, w_topic, np.array(sorted(codes), np.int64))


def _idf(index: Fetched, query: str, keep_unseen: bool = False) -> dict[str, float]:
    """Idf of the query's terms. Terms found nowhere in the collection are left out unless
    `keep_unseen`: in a question they are mostly wording no article uses ("happened"), while in
    the topic of "what did X say about Y" they mean no article speaks of Y."""
    n = max(index.passages, 1)
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


def _new_names(index: Fetched, rows: np.ndarray, asked: frozenset[str]) -> np.ndarray:
    """Per sentence row: does it name someone or something the question does not?

    A name counts as given when its first word is one of the question's words (a name of several
    words can only be given that way, the question's words being single words)."""
    lex = index.lexicon
    word_ids = index.memo("name ids", lambda: {w: i for i, w in enumerate(lex.name_words)})
    given = np.sort(np.array(list({word_ids[w] for w in asked if w in word_ids}), np.int64))
    pos, row, _ = segments(lex.name_start[rows], lex.name_start[rows + 1])
    new = ~_holds(given, lex.names[pos].astype(np.int64))  # np.isin would import numpy.ma on a cold start
    return (np.bincount(row[new], minlength=len(rows)) > 0).astype(float)


@dataclass(frozen=True, eq=False)
class Evidence:
    """Features of n candidate passages; candidate i owns sentence rows offsets[i]:offsets[i+1]."""

    passages: np.ndarray          # (n, PASSAGE_FEATURES)
    sentences: np.ndarray         # (sentences, SENTENCE_FEATURES)
    offsets: np.ndarray           # (n + 1,)
    coverage: np.ndarray          # share of the question's terms in each passage
    topic_coverage: np.ndarray    # share of the asked topic's terms (= coverage without a speaker)
    statement: np.ndarray         # bool: the asked person says something here related to the question


@dataclass(frozen=True, eq=False)
class _Terms:
    """The term ids of some sentence rows, matched against a question's columns."""

    ids: np.ndarray       # term ids, row after row, in text order
    row: np.ndarray       # which row (0..rows-1) each term belongs to
    col: np.ndarray       # the question column of each term (valid where `hit`)
    hit: np.ndarray       # is the term one of the question's columns
    present: np.ndarray   # (rows, cols) bool


def _match(q: Query, index: Fetched, rows: np.ndarray) -> _Terms:
    lex = index.lexicon
    pos, row, _ = segments(lex.start[rows], lex.start[rows + 1])
    ids = lex.ids[pos].astype(np.int64)
    present = np.zeros((len(rows), len(q.cols)), bool)
    if len(q.cols):
        col = np.minimum(np.searchsorted(q.cols, ids), len(q.cols) - 1)
        hit = q.cols[col] == ids
        present[row[hit], col[hit]] = True
    else:
        col, hit = np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    return _Terms(ids, row, col, hit, present)


def _distinct_count(keys: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """How many distinct keys each group holds (keys and groups aligned, groups in 0..n-1)."""
    if not len(keys):
        return np.zeros(n, np.int64)
    base = int(keys.max()) + 1
    key = np.sort(groups.astype(np.int64) * base + keys)  # a plain sort beats np.unique on small arrays
    first = np.empty(len(key), bool)
    first[0], first[1:] = True, key[1:] != key[:-1]
    return np.bincount(key[first] // base, minlength=n)


@dataclass(frozen=True, eq=False)
class _Rows:
    """The candidates' sentence rows and what both feature tables are computed from."""

    ids: np.ndarray      # the candidates' chunk ids
    rows: np.ndarray     # their sentence rows in the lexicon, in order
    owner: np.ndarray    # per sentence row: its candidate
    off: np.ndarray      # candidate i owns rows off[i]:off[i+1]
    t: _Terms            # the question's terms in the rows
    flags: np.ndarray    # per row: the lexicon's answer-type flags
    cos: np.ndarray      # per row: cosine with the question
    cov: np.ndarray      # per row: idf-weighted share of the question's terms
    spoken: np.ndarray   # per row: the asked person's words (1 quote, 0.5 reported), else 0
    types: np.ndarray    # per row: holds what the question asks for (number, date, new name)
    local: np.ndarray    # (candidates, cols): each question term's weight within its passage
    window: np.ndarray   # per row: the question's terms in it and the row before, locally weighted
    figure: np.ndarray   # per row: holds the kind of figure a number question asks for
    quoted: np.ndarray   # per row: a quotation, for a question asking for someone's words
    focus: np.ndarray    # per row: what the question asks for beside its focus word (signals.focus_near)
    name_credit: list    # per candidate: (sentences, names) credit of the question's names (signals.names_credit)
    sbig: np.ndarray     # per row: distinct question bigrams
    pbig: np.ndarray     # per candidate: distinct question bigrams


def evidence(q: Query, cands: list[Candidate], index: Fetched) -> Evidence:
    """Features of every candidate passage and of its sentences, computed together."""
    r = _rows(q, cands, index)
    sentences = _table(SENTENCE_FEATURES, _sentence_columns(q, r, index))
    passage_cov, topic_cov, columns = _passage_columns(q, cands, r, index)
    passages = _table(PASSAGE_FEATURES, columns) if cands else np.zeros((0, len(PASSAGE_FEATURES)))
    related = (r.cos >= STATEMENT_MIN_COS) | (topic_cov[r.owner] >= 0.3)
    statement = segment_reduce(np.logical_or, (r.spoken > 0) & related, r.off)
    return Evidence(passages, sentences, r.off, passage_cov, topic_cov, statement)


def _table(names: tuple[str, ...], columns: dict[str, object]) -> np.ndarray:
    """Columns by feature name, stacked in the one order `names` defines."""
    if set(columns) != set(names):
        raise ValueError(f"feature columns differ from {names}: {sorted(set(columns) ^ set(names))}")
    return np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in names])


def _rows(q: Query, cands: list[Candidate], index: Fetched) -> _Rows:
    n = len(cands)
    ids = np.fromiter((c.chunk_id for c in cands), np.int64, n)
    rows, owner, off = segments(index.sent_start[ids], index.sent_start[ids + 1])
    m = len(rows)
    t = _match(q, index, rows)
    cos = np.concatenate([c.sentence_cos for c in cands]).astype(np.float64) if n else np.zeros(0)
    cov = t.present @ q.w_terms
    flags = index.lexicon.flags[rows]
    if q.answer_type in ("number", "date"):
        types = ((flags & (NUMBER if q.answer_type == "number" else DATE)) > 0).astype(float)
    elif q.answer_type in ("person", "place"):
        types = _new_names(index, rows, q.words)
    else:
        types = np.zeros(m)
    spoken = np.zeros(m)
    if q.person:
        # The person's own words (a direct quote) count fully, reported speech ("X dismissed...") less.
        speakers = [c.speakers[j] if j < len(c.speakers) else None
                    for c in (index.chunks[i] for i in ids) for j in range(len(c.sentences))]
        quote = (flags & QUOTE) > 0
        spoken = np.array([(1.0 if quote[r] else 0.5) if speaker_matches(s, q.person) else 0.0
                           for r, s in enumerate(speakers)])
    # The answer often comes right after the sentence that sets the scene ("X was appointed in
    # May. He replaced Y."): the question's terms in this sentence and the one before it, each term
    # weighted as in `_local_weights`.
    local = _local_weights(q, t, off)
    with_previous = t.present.copy()
    with_previous[1:] |= t.present[:-1]
    with_previous[off[:-1]] = t.present[off[:-1]]  # a passage's first sentence has none before it
    window = (with_previous * local[owner]).sum(1)
    # A question asking for someone's words: a quoted sentence (its own column, so that SQuAD's
    # few such questions do not set its weight alone).
    quoted = ((flags & QUOTE) > 0).astype(float) if q.answer_type == "quote" else np.zeros(m)
    figure = np.zeros(m)
    if q.figure:
        kinds = np.concatenate([_figures(index, i) for i in ids.tolist()]) if n else np.zeros(0, np.int64)
        figure = ((kinds & q.figure) > 0).astype(float)
    focus = np.zeros(m)
    if q.focus and n:
        # One search of each passage first: most hold no focus word at all.
        focus = np.concatenate([
            [focus_near(q.focus, text, q.answer_type == "number", q.words) for text in _sentence_texts(index, i)]
            if mentions(q.focus, index.chunks[i].text) else np.zeros(len(index.chunks[i].sentences))
            for i in ids.tolist()])
    credit = [np.array(names_credit(q.names, index.chunks[i].text, _sentence_starts(index, i)), float)
              .reshape(-1, len(q.names)) for i in ids.tolist()] if q.names else [np.zeros((0, 0))] * n
    sbig, pbig = _bigrams(q, index.vocab_size, t.ids, t.row, owner[t.row], m, n)
    return _Rows(ids, rows, owner, off, t, flags, cos, cov, spoken, types, local, window, figure, quoted, focus,
                 credit, sbig, pbig)


def _local_weights(q: Query, t: _Terms, off: np.ndarray) -> np.ndarray:
    """(candidates, cols): within a passage, a question term found in many of its sentences (the
    story's subject) tells them apart less than one found in a single sentence: each term weighs
    idf / (number of the passage's sentences holding it), normalised per passage."""
    holding = segment_reduce(np.add, t.present.astype(np.int32), off)
    local = q.w_terms / np.maximum(holding, 1)
    local /= np.where(local.sum(1) > 0, local.sum(1), 1.0)[:, None]
    return local


def _sentence_columns(q: Query, r: _Rows, index: Fetched) -> dict[str, np.ndarray]:
    m, off, owner, t, cov = len(r.cos), r.off, r.owner, r.t, r.cov
    before, after = np.zeros(m), np.zeros(m)
    before[1:], after[:-1] = cov[:-1], cov[1:]
    before[off[:-1]], after[off[1:] - 1] = 0.0, 0.0  # neighbours within the passage only
    # An answer adds something the question lacks: the share of a sentence's terms that are new.
    distinct = index.lexicon.distinct[r.rows]
    asked = t.hit & q.in_terms[t.col] if len(q.cols) else t.hit
    known = _distinct_count(t.col[asked], t.row[asked], m)
    local_cov = (t.present * r.local[owner]).sum(1)
    # The question's names as units in the sentence (or, for a pronoun, the one before it).
    sent_names = (np.concatenate([c.mean(1) for c in r.name_credit]) if q.names and len(r.ids) else np.ones(m))
    prev_names = np.zeros(m)
    prev_names[1:] = sent_names[:-1]
    prev_names[off[:-1]] = 0.0
    return {
        "cos": r.cos, "coverage": cov, "type_match": r.types, "speaker": r.spoken,
        "rel_cos": r.cos - segment_reduce(np.maximum, r.cos, off)[owner],
        "neighbour_coverage": np.maximum(before, after),
        "bigrams": r.sbig / max(len(q.bigrams), 1),
        "rel_coverage": cov - segment_reduce(np.maximum, cov, off)[owner],
        "novelty": np.where(distinct > 0, (distinct - known) / np.maximum(distinct, 1), 0.0),
        "length": np.log1p(index.sent_chars[r.rows]) / 6,
        "local_coverage": local_cov, "window_coverage": r.window, "figure": r.figure,
        "names": np.maximum(sent_names, 0.5 * prev_names), "quoted": r.quoted, "focus": r.focus,
        # "Which two photographers ...", "What is the name of ...": often a name the question lacks
        # (who/where questions have it in type_match already).
        "new_names": _new_names(index, r.rows, q.words) if q.answer_type == "other" and m else np.zeros(m),
    }


def _passage_columns(q: Query, cands: list[Candidate], r: _Rows, index: Fetched):
    """(passage coverage, topic coverage, feature columns by name) of the candidates."""
    ids, off = r.ids, r.off
    own = segment_reduce(np.logical_or, r.t.present, off)
    # Across the candidates, as within a passage: a question term most candidates hold (the
    # collection's subject, e.g. the university a question names) tells them apart less than a
    # term only a few hold. Weight each term by idf / (number of candidates holding it).
    pool = q.w_terms / np.maximum(own.sum(0), 1)
    present = own
    max_spoken = segment_reduce(np.maximum, r.spoken, off)
    if (max_spoken == 1.0).any():
        # News sets the scene of a quote in the paragraph before it ("Speaking to NBC News, X said
        # ..." then the quote): for the asked person's quotes, that paragraph's words count too.
        present = own | _previous_present(q, index, ids, max_spoken == 1.0)
    passage_cov, topic_cov = present @ q.w_terms, present @ q.w_topic
    docs = [index.chunks[i].doc_id for i in ids.tolist()]
    titles = {d: coverage(q.terms, index.memo(("title", d), lambda d=d: set(terms(index.docs[d].title))))
              for d in set(docs)}
    # The article as a whole is evidence for each of its passages: the lead restates the story,
    # the quote or figure comes later, in a paragraph that may not repeat the story's names.
    doc_cov = {d: float(_holds(index.doc_terms[d], q.cols) @ q.w_terms) for d in set(docs)}
    doc_names = {d: names_share(q.names, index.doc_text[d]) for d in set(docs)}
    columns = {
        "dense": [c.dense for c in cands], "bm25": [c.bm25 for c in cands],
        "sentence": [c.sentence for c in cands], "coverage": passage_cov,
        "sent_coverage": segment_reduce(np.maximum, r.cov, off),
        "type_match": segment_reduce(np.maximum, r.types, off), "speaker": max_spoken,
        "dense_rank": [_rank_feature(c.dense_rank) for c in cands],
        "bm25_rank": [_rank_feature(c.bm25_rank) for c in cands],
        "bigrams": r.pbig / max(len(q.bigrams), 1),
        "title": [titles[d] for d in docs],
        # one place both close in meaning and holding the terms
        "window_cos": segment_reduce(np.maximum, r.window * r.cos, off),
        "pool_coverage": own @ (pool / (pool.sum() or 1.0)),
        # A passage holds a name where one of its sentences does.
        "names": [float(c.max(0).mean()) if q.names else 1.0 for c in r.name_credit],
        "doc_names": [doc_names[d] for d in docs], "doc_coverage": [doc_cov[d] for d in docs],
        "lead": index.is_lead[ids].astype(float),
        "figure": segment_reduce(np.maximum, r.figure, off),
        "quoted": segment_reduce(np.maximum, r.quoted, off),
        "focus": segment_reduce(np.maximum, r.focus, off),
        "beyond_lead": _beyond_lead(q, own, docs, index.is_lead[ids]),
    }
    return passage_cov, topic_cov, columns


def _beyond_lead(q: Query, own: np.ndarray, docs: list[str], is_lead: np.ndarray) -> np.ndarray:
    """Per candidate: the idf-weighted share of the question's terms missing from its article's
    lead (when the lead is a candidate too) that this passage holds. A news lead restates the
    story in the question's general words; the paragraph with the quote or the figure holds the
    question's other words."""
    lead_of = {d: k for k, (d, lead) in enumerate(zip(docs, is_lead.tolist())) if lead}
    out = np.zeros(len(docs))
    for k, d in enumerate(docs):
        lead = lead_of.get(d)
        if lead is None or lead == k:
            continue
        missing = ~own[lead]
        total = q.w_terms[missing].sum()
        if total > 0:
            out[k] = q.w_terms[missing & own[k]].sum() / total
    return out


def _holds(sorted_ids: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Per col: is it in sorted_ids (sorted, distinct)? A binary search beats np.isin's sort."""
    if not len(sorted_ids):
        return np.zeros(len(cols), bool)
    j = np.minimum(np.searchsorted(sorted_ids, cols), len(sorted_ids) - 1)
    return sorted_ids[j] == cols


def _bigrams(q: Query, vocab_size: int, ids: np.ndarray, row: np.ndarray, cand: np.ndarray, m: int, n: int):
    """Distinct question bigrams in each sentence and in each passage (across its sentences)."""
    codes = q.bigram_codes
    if not len(codes) or len(ids) < 2:
        return np.zeros(m), np.zeros(n)
    pairs = ids[:-1] * vocab_size + ids[1:]
    j = np.minimum(np.searchsorted(codes, pairs), len(codes) - 1)
    found = codes[j] == pairs
    in_sentence = found & (row[:-1] == row[1:])
    in_passage = found & (cand[:-1] == cand[1:])
    return (_distinct_count(j[in_sentence], row[:-1][in_sentence], m).astype(float),
            _distinct_count(j[in_passage], cand[:-1][in_passage], n).astype(float))


def _previous_present(q: Query, index: Fetched, ids: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Question terms present in the passage before each chosen candidate (same document only)."""
    out = np.zeros((len(ids), len(q.cols)), bool)
    prev = [(k, int(index.previous[i])) for k, i in enumerate(ids.tolist())
            if which[k] and index.previous[i] >= 0]
    if prev:
        ks, pids = (np.array(x, np.int64) for x in zip(*prev))
        rows, _, off = segments(index.sent_start[pids], index.sent_start[pids + 1])
        out[ks] = segment_reduce(np.logical_or, _match(q, index, rows).present, off)
    return out


def _sentence_texts(index: Fetched, chunk_id: int) -> list[str]:
    def compute():
        c = index.chunks[chunk_id]
        return [c.text[s - c.start:e - c.start] for s, e in c.sentences]
    # Keyed by the backend's id: the cache outlives this question's numbering.
    return index.memo(("sentences", int(index.ids[chunk_id])), compute)


def _sentence_starts(index: Fetched, chunk_id: int) -> list[int]:
    c = index.chunks[chunk_id]
    return [s - c.start for s, _ in c.sentences]


def _figures(index: Fetched, chunk_id: int) -> np.ndarray:
    """Kinds of figure in each sentence of a passage (signals bits); question-independent, kept."""
    return index.memo(("figures", int(index.ids[chunk_id])),
                      lambda: np.array([figure_kinds(x) for x in _sentence_texts(index, chunk_id)], np.int64))


def _rank_feature(rank: int | None) -> float:
    return 1.0 / math.log2(1 + rank) if rank else 0.0


