"""Lexical data made when the index is built: each sentence's term ids, answer-type flags and
names, and which passages carry the same words as which others.

Answering compares a question with a few hundred candidate sentences. Analysing their text at
question time (tokenising, stemming, regexes) cost more than embedding the question, so it is done
once here and kept as flat numpy arrays: the terms of sentence i are ids[start[i]:start[i+1]], in
text order, numbered by the BM25 vocabulary.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Protocol

import numpy as np

from .attribution import is_quote
from .textutil import terms
from .types import Chunk

NUMBER, DATE, QUOTE = 1, 2, 4  # bits of `flags`

_NUMBER = re.compile(r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                     r"dozens?|hundreds?|thousands?|millions?|billions?|half|percent)\b", re.I)
_DATE = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\b(?:January|February|March|April|May|June|July|"
                   r"August|September|October|November|December|Monday|Tuesday|Wednesday|Thursday|"
                   r"Friday|Saturday|Sunday)\b|\b(?:century|decade|years? ago)\b")

# Capitalised words not opening a sentence: names of people, places, bodies.
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z'’\-]+(?:\s+[A-Z][a-z'’\-]+)*")

@dataclass(frozen=True, eq=False)
class Lexicon:
    ids: np.ndarray     # int32 term ids of all sentences, concatenated in index order
    start: np.ndarray   # int64, one more than there are sentences
    flags: np.ndarray   # uint8 per sentence: NUMBER | DATE | QUOTE
    distinct: np.ndarray  # int32 per sentence: how many different terms it has
    names: np.ndarray   # int32: each name's first word (lower-cased), as an index into name_words
    name_start: np.ndarray  # int64: sentence i's names are names[name_start[i]:name_start[i+1]]
    name_words: tuple[str, ...]
    same: np.ndarray        # int64: passages carrying the same words as passage i are
    same_start: np.ndarray  # same[same_start[i]:same_start[i+1]] (see same_words)


# The per-sentence columns `fill` makes, as typed arrays' type codes (numpy reads the same codes):
# 4 bytes a term occurrence instead of a list slot and an int.
TYPECODES = {"ids": "i", "start": "q", "flags": "B", "distinct": "i", "names": "i", "name_start": "q"}


class Column(Protocol):
    """Where `fill` puts one column: a typed array `array(TYPECODES[name])` in memory, or anything
    taking values the same way (the local backend writes them straight to their files)."""

    def append(self, value: int, /) -> None: ...

    def extend(self, values: Iterable[int], /) -> None: ...

    def __len__(self) -> int: ...


def build(chunks: Iterable[Chunk], vocab: dict[str, int], scratch: Path | None = None) -> Lexicon:
    """Term ids and flags of every sentence of `chunks`, numbered by the BM25 vocabulary, in memory.
    `scratch`: an empty folder for same_words' temporary files (see there)."""
    columns = {name: array(code) for name, code in TYPECODES.items()}
    name_words, bounds = fill(chunks, vocab, columns)
    term_ids = np.frombuffer(columns["ids"], np.int32)  # the typed array's own buffer: not a second copy
    same, same_start = same_words(term_ids, np.frombuffer(bounds, np.int64), scratch)
    return Lexicon(term_ids, *(np.array(columns[name], np.dtype(TYPECODES[name]))
                               for name in ("start", "flags", "distinct", "names", "name_start")),
                   name_words, same, same_start)


def fill(chunks: Iterable[Chunk], vocab: dict[str, int], columns: Mapping[str, Column]
         ) -> tuple[tuple[str, ...], array]:
    """Append the per-sentence columns of `chunks` (TYPECODES' names, each given empty) in index
    order. Returns the name words (`names` indexes them) and the passages' bounds in `ids`
    (passage i's terms are ids[bounds[i]:bounds[i+1]]), which same_words takes."""
    ids, start, flags, distinct = columns["ids"], columns["start"], columns["flags"], columns["distinct"]
    names, name_start = columns["names"], columns["name_start"]
    start.append(0)
    name_start.append(0)
    words: dict[str, int] = {}
    bounds = array("q", [0])  # 8 bytes a passage
    for c in chunks:
        for s, e in c.sentences:
            text = c.text[s - c.start:e - c.start]
            # Every indexed word is in the vocabulary (BM25 was built from the same text).
            sentence_ids = [vocab[t] for t in terms(text) if t in vocab]
            ids.extend(sentence_ids)
            start.append(len(ids))
            distinct.append(len(set(sentence_ids)))
            names.extend(words.setdefault(m.group(0).split()[0].lower(), len(words)) for m in _NAME.finditer(text))
            name_start.append(len(names))
            flags.append((NUMBER if _NUMBER.search(text) else 0) | (DATE if _DATE.search(text) else 0)
                         | (QUOTE if is_quote(text) else 0))
        bounds.append(len(ids))
    return tuple(words), bounds


# Passages sharing this much of their word 4-grams carry "the same words" (shown once, "also reported by").
SAME_WORDS = 0.5
# A 4-gram in more passages than this is a stock phrase, not a sign of copied text; skipping such
# grams keeps the pair count near linear. Syndicated text has many rarer grams to go on.
STOCK_PHRASE = 1000


# Grams grouped at a time when same_words is given a scratch folder (~50 bytes each while sorted:
# about 3 MB), and the record they are written as: 12 bytes a gram on disk, none in memory.
BUCKET_GRAMS = 1 << 16
_GRAM = np.dtype([("code", "<u8"), ("owner", "<i4")])


def same_words(ids: np.ndarray, bounds: np.ndarray, scratch: Path | None = None,
               bucket_grams: int = BUCKET_GRAMS) -> tuple[np.ndarray, np.ndarray]:
    """Which passages carry the same words: the share of the smaller one's distinct 4-grams of
    content terms (term ids; stopwords are not terms) found in the other is at least SAME_WORDS.

    Args:
        ids: term ids of all passages, concatenated: an array, or anything giving `len` and
            slices `ids[lo:hi]` as arrays (npyfile.NpyRows: read from the saved file a block of
            passages at a time, never whole).
        bounds: passage i's terms are ids[bounds[i]:bounds[i+1]].
        scratch: an empty folder for temporary files. Given, the 4-grams are written there split
            by their hash into buckets of about `bucket_grams` and grouped one bucket at a time:
            what is sorted in memory no longer grows with the collection. Without it, all in
            memory at once (a few passages, as the Milvus reader compares).

    Returns:
        (same, same_start): passage i's partners are same[same_start[i]:same_start[i+1]], ascending.
    """
    n = len(bounds) - 1
    # A passage has at most one gram more than terms: the bucket count is known before any is made.
    parts = max(1, -(-(len(ids) + n) // bucket_grams)) if scratch is not None else 1
    sizes = np.zeros(n, np.int64)  # each passage's distinct grams
    keys, shared = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    # A gram falls in one bucket only, so counts per gram and per (gram, passage) are whole in it.
    for owner, code in (_buckets(ids, bounds, scratch, parts) if parts > 1 else [_grams(ids, bounds)]):
        owner, code = _distinct(owner, code)
        sizes += np.bincount(owner, minlength=n)
        k, c = _pair_counts(owner, code, max(n, 1))
        keys.append(k)
        shared.append(c)
    pairs, where = np.unique(np.concatenate(keys), return_inverse=True)
    counts = np.bincount(where.ravel(), weights=np.concatenate(shared), minlength=len(pairs)) if len(pairs) else \
        np.zeros(0)
    lo, hi = pairs // max(n, 1), pairs % max(n, 1)
    keep = counts >= SAME_WORDS * np.minimum(sizes[lo], sizes[hi])
    src, dst = np.r_[lo[keep], hi[keep]], np.r_[hi[keep], lo[keep]]
    order = np.lexsort((dst, src))
    same_start = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=same_start[1:])
    return dst[order].astype(np.int64), same_start


def _distinct(owner: np.ndarray, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (passage, gram) pairs ordered by gram, then passage. The grams come in passage
    order, so a stable sort by gram is np.lexsort((owner, code)) without its temporaries. One
    array is reordered at a time."""
    order = np.argsort(code, kind="stable")
    code = code[order]
    owner = owner[order]
    del order
    distinct = np.ones(len(code), bool)
    distinct[1:] = (code[1:] != code[:-1]) | (owner[1:] != owner[:-1])
    return owner[distinct], code[distinct]


def _pair_counts(owner: np.ndarray, code: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(lo * n + hi, grams they share) of every passage pair lo < hi sharing a gram of these
    (distinct, ordered as _distinct gives them), stock phrases left out."""
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if len(code) else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, len(code)])
    lo_parts, hi_parts = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for c in np.unique(counts[(counts >= 2) & (counts <= STOCK_PHRASE)]).tolist():
        members = owner[starts[counts == c][:, None] + np.arange(c)].astype(np.int64)  # each row: one gram's passages
        i, j = np.triu_indices(c, 1)
        lo_parts.append(members[:, i].ravel())
        hi_parts.append(members[:, j].ravel())
    lo, hi = np.concatenate(lo_parts), np.concatenate(hi_parts)  # lo < hi: owners ascend within a gram
    return np.unique(lo * n + hi, return_counts=True)


def _buckets(ids: np.ndarray, bounds: np.ndarray, scratch: Path, parts: int):
    """Yield (owner, code) of each of `parts` buckets of _grams(ids, bounds), a gram's bucket
    chosen by its hash's high bits, each bucket in passage order. The grams are made a block of
    passages at a time and appended to one file per bucket, then read back a bucket at a time."""
    files = [Path(scratch) / f"grams-{p}" for p in range(parts)]
    for lo in range(0, len(bounds) - 1, GRAM_BLOCK):
        hi = min(len(bounds) - 1, lo + GRAM_BLOCK)
        owner, code = _block_grams(ids[bounds[lo]:bounds[hi]], bounds[lo:hi + 1] - bounds[lo])
        bucket = (code >> np.uint64(32)) % np.uint64(parts)
        order = np.argsort(bucket, kind="stable")  # passage order kept within a bucket
        records = np.empty(len(order), _GRAM)
        records["code"], records["owner"] = code[order], owner[order] + lo
        ends = np.searchsorted(bucket[order], np.arange(1, parts + 1, dtype=np.uint64))
        del owner, code, bucket, order
        for p, (a, b) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
            if b > a:
                with open(files[p], "ab") as f:
                    f.write(records[a:b].data)
    for path in files:
        records = np.fromfile(path, _GRAM) if path.exists() else np.zeros(0, _GRAM)
        path.unlink(missing_ok=True)
        yield records["owner"].copy(), records["code"].copy()
        del records


# Passages whose 4-grams are made at a time: the temporaries are ~60 bytes a term of one block
# (~2 MB for 512 BBC passages), so the block stays small for the commit's peak not to grow.
GRAM_BLOCK = 512


def _grams(ids: np.ndarray, bounds: np.ndarray, block: int = GRAM_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(passage (int32), code) of every 4-gram of each passage's terms; a passage of 1-3 terms is
    one (zero-padded) gram. Codes are a 64-bit polynomial hash of the four ids: collisions
    negligible. Made `block` passages at a time: only the results are collection-sized."""
    owners, codes = [np.zeros(0, np.int32)], [np.zeros(0, np.uint64)]
    for lo in range(0, len(bounds) - 1, block):
        hi = min(len(bounds) - 1, lo + block)
        owner, code = _block_grams(ids[bounds[lo]:bounds[hi]], bounds[lo:hi + 1] - bounds[lo])
        owners.append((owner + lo).astype(np.int32))
        codes.append(code)
    return np.concatenate(owners), np.concatenate(codes)


def _block_grams(ids: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_grams of some passages, numbered from 0 (bounds[0] == 0)."""
    lengths = np.diff(bounds)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    end, first = bounds[1:][owner], bounds[:-1][owner]
    terms_ = np.concatenate([ids.astype(np.uint64) + np.uint64(1), np.zeros(3, np.uint64)])
    at = np.arange(len(owner))
    starts = (at + 3 < end) | ((at == first) & (end - at < 4))
    code = np.zeros(len(owner), np.uint64)
    for k in range(4):
        code = code * np.uint64(0x9E3779B97F4A7C15) + np.where(at + k < end, terms_[at + k], np.uint64(0))
    return owner[starts], code[starts]


def segments(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate ranges [starts[i], ends[i]) of positions.

    Returns (positions, owner: which range each position came from, offsets: range i fills
    positions[offsets[i]:offsets[i+1]]).
    """
    lengths = np.asarray(ends, np.int64) - np.asarray(starts, np.int64)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    owner = np.repeat(np.arange(len(lengths)), lengths)
    positions = np.arange(offsets[-1], dtype=np.int64) + (np.asarray(starts, np.int64) - offsets[:-1])[owner]
    return positions, owner, offsets


def segment_reduce(ufunc: np.ufunc, values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """ufunc.reduce over each segment values[offsets[i]:offsets[i+1]]; segments must not be empty
    (they are passages' sentences, and the index holds no passage without one)."""
    return ufunc.reduceat(values, offsets[:-1], axis=0)
