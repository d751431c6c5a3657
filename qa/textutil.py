"""Small text helpers shared by several stages: sentence spans, search terms, normalisation."""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"(?u)\b\w\w+\b")
_RE_CACHE = 4096
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "«": '"', "»": '"'})


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd  # imported lazily: only index building needs sentence segmentation

    # pysbd formats a regex per abbreviation on every call, several hundred patterns: more than
    # the re module keeps compiled (512), so each call compiled most of them again, over half of
    # segmentation time. A larger cache (a private knob: skipped where absent) changes no result.
    if isinstance(getattr(re, "_MAXCACHE", None), int) and re._MAXCACHE < _RE_CACHE:
        re._MAXCACHE = _RE_CACHE
    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def _segments(text: str) -> list[tuple[str, int, int]]:
    """What pysbd's `segment(text)` gives with char_span: each sentence with its trailing whitespace,
    as (text, start, end). pysbd locates each sentence by compiling a regex of it (escaped, then
    `\\s*`), over 40% of segmentation time; this finds the same places with str.find: the first
    occurrence, scanning without overlap as re.finditer does, that ends after the previous one.
    A sentence pysbd altered so that it is not in the text is left out, as pysbd leaves it out."""
    if not text:
        return []
    found, prior_end = [], 0
    for sent in _segmenter().processor(text).process():
        pos = 0
        while (i := text.find(sent, pos)) >= 0:
            j = i + len(sent)
            while j < len(text) and text[j].isspace():  # re's \s on str is str.isspace
                j += 1
            if j > prior_end:
                found.append((text[i:j], i, j))
                prior_end = j
                break
            pos = j if j > i else i + 1
    return found


def sentence_spans(text: str, start: int = 0) -> list[tuple[int, int]]:
    """Sentence boundaries in `text` as (start, end) offsets, shifted by `start`, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for sent, seg_start, _ in _segments(text):
        idx = text.find(sent, pos)
        if idx < 0:  # cannot happen (sent is a slice of text at or after pos); kept as a guard
            idx = max(seg_start, pos)
        s, e = idx, idx + len(sent)
        pos = e
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((start + s, start + e))
    if not spans and text.strip():
        s = len(text) - len(text.lstrip())
        spans.append((start + s, start + len(text.rstrip())))
    return _cover(text, spans, start)


def _cover(text: str, spans: list[tuple[int, int]], start: int) -> list[tuple[int, int]]:
    """Spans widened so that no visible character falls between them: pysbd can drop some
    ("Mr.?!" loses its "?!"), and a passage must keep every character of its paragraph."""
    if not spans:
        return spans
    out = []
    lead = len(text) - len(text.lstrip())
    first = (min(spans[0][0], start + lead), spans[0][1])
    spans = [first] + spans[1:]
    for i, (s, e) in enumerate(spans):
        nxt = spans[i + 1][0] - start if i + 1 < len(spans) else len(text)
        gap = text[e - start:nxt]
        if gap.strip():  # visible text nobody holds: it belongs to this sentence
            e = start + nxt - (len(gap) - len(gap.rstrip()))
        out.append((s, e))
    return out


# A phrase in double quotes (straight, curly or guillemets) inside a question.
_QUOTED = re.compile(r'["“”„«»]([^"“”„«»]+)["“”„«»]')


def quoted_phrases(question: str) -> tuple[str, ...]:
    """The phrases a question puts in double quotes: each must appear verbatim (normalised) in an
    answering passage. Single quotes are left alone: they are also apostrophes."""
    return tuple(dict.fromkeys(p for p in (normalise(m.group(1)) for m in _QUOTED.finditer(question)) if p))


def normalise(text: str) -> str:
    """Casefold, straighten quotes and collapse whitespace, for comparing texts."""
    return " ".join(text.translate(_QUOTES).casefold().split())


# bm25s' STOPWORDS_EN_PLUS, copied so that answering a question need not import bm25s (and
# scipy with it); plus the question words it lacks. Function words carry no topic.
_STOPWORDS = frozenset((
    "a about above after again against ain all am an and any are aren aren't as at be because "
    "been before being below between both but by can couldn couldn't d did didn didn't do does "
    "doesn doesn't doing don don't down during each few for from further had hadn hadn't has "
    "hasn hasn't have haven haven't having he her here hers herself him himself his how i if in "
    "into is isn isn't it it's its itself just ll m ma me mightn mightn't more most mustn "
    "mustn't my myself needn needn't no nor not now o of off on once only or other our ours "
    "ourselves out over own re s same shan shan't she she's should should've shouldn shouldn't "
    "so some such t than that that'll the their theirs them themselves then there these they "
    "this those through to too under until up ve very was wasn wasn't we were weren weren't what "
    "when where which while who whom why will with won won't wouldn wouldn't y you you'd you'll "
    "you're you've your yours yourself yourselves"
).split()) | {"what", "which", "who", "whom", "whose", "when", "where", "why", "how"}


def _stopwords() -> frozenset[str]:
    return _STOPWORDS


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed content words (stopwords removed): the BM25 vocabulary."""
    stop = _stopwords()
    words = [w for w in _WORD.findall(text.translate(_QUOTES).lower()) if w not in stop]
    return _stemmer().stemWords(words) if words else []


def is_stopword(word: str) -> bool:
    return word.lower() in _stopwords()
