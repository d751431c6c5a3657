"""The BM25 score matrix of a new version, built in one pass over the passages and written to its
files through scratch files.

bm25s (`BM25().index(corpus)`) needs every passage's tokens at once as Python lists (with its
conversion to Python lists of ids, ~40 bytes a token: on BBC the largest part of what indexing held
at commit). This builder reads the passages once, writes each passage's distinct terms and their
counts to a scratch file (8 bytes a distinct term of a passage, on disk), keeps the vocabulary and
a few numbers per passage, and writes the matrix in term-major order a bucket at a time: memory no
longer grows with the entries. The saved files are the very ones `BM25().index(...)` then
`save(...)` write (a test compares them). bm25s is still used where it fits: its idf and term
frequency formulas, its parameters, and its `save` (for the JSON files).

What must match bm25s exactly, and how:
  - term ids: bm25s numbers its vocabulary in the iteration order of a `set` filled passage by
    passage (set.update of each token list). A set's order depends only on the sequence of distinct
    keys added (and the process's string hashing), so adding the distinct terms one at a time in
    order of first occurrence rebuilds the same set, hence the same ids.
  - scores: the same float32 / float64 steps as bm25s's per-passage loop, done per block.
  - order: an entry's place is its term's start plus the entries of that term in earlier
    passages (a counting sort), so no sort of the whole collection.
  - layout: CSC, entries sorted by (term, passage); passage rows int32, indptr int64.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from pathlib import Path
from typing import Iterable

import numpy as np

from . import npyfile

# bm25s cannot index a passage without tokens: the caller's placeholder for one.
EMPTY = "\u2400"


class StreamingBM25:
    """Feed each passage's analysed terms in storage order (`add`), then `save` once.

    Each passage's (term, count) entries go to a file in `scratch` as they come; `save` reads them
    back a block at a time, twice (the terms' passage counts, then each entry's score and place in
    the term-major matrix), routes the scored entries by place into bucket files and writes the
    matrix a bucket at a time. Held in memory: the vocabulary, a few numbers per passage, and
    blocks, not the ~20 bytes an entry the in-memory build held at its peak."""

    def __init__(self, scratch: str | os.PathLike | None = None):
        self._tmp = None if scratch is not None else tempfile.TemporaryDirectory(prefix="bm25-")
        self._scratch = Path(scratch if scratch is not None else self._tmp.name)
        self._file = open(self._scratch / "entries", "wb")
        self._pending = array("i")          # (term number, count) pairs not yet written
        self._first: dict[str, int] = {}   # term -> number in order of first occurrence
        self._nnz = array("q", [0])        # passage i owns entries _nnz[i]:_nnz[i+1]
        self._length = array("q")          # tokens of each passage (bm25s' document length)

    def add(self, tokens: Iterable[str]) -> None:
        counts: dict[str, int] = {}  # in order of first occurrence, as bm25s' Counter
        n = 0
        for t in tokens:
            counts[t] = counts.get(t, 0) + 1
            n += 1
        first, pending = self._first, self._pending
        for t, c in counts.items():
            pending.append(first.setdefault(t, len(first)))
            pending.append(c)
        self._nnz.append(self._nnz[-1] + len(counts))
        self._length.append(n)
        if len(pending) >= 2 * _BLOCK:
            self._flush()

    def _flush(self) -> None:
        self._file.write(self._pending.tobytes())
        self._pending = array("i")

    def _entries(self) -> Iterable[tuple[int, np.ndarray, np.ndarray]]:
        """(first entry, term numbers, counts) of the saved entries, a block at a time."""
        total = self._nnz[-1]
        for lo in range(0, total, _BLOCK):
            hi = min(total, lo + _BLOCK)
            pairs = np.fromfile(self._scratch / "entries", np.int32, count=2 * (hi - lo), offset=8 * lo)
            yield lo, pairs[0::2], pairs[1::2]

    def save(self, directory: str | os.PathLike, k1: float = 1.5, b: float = 0.75) -> dict[str, int]:
        """Write bm25s' files of the index into `directory` (the very bytes `BM25().index(...)` then
        `save(...)` write) and return its vocabulary; the scratch files are removed."""
        import bm25s
        from bm25s.scoring import _build_idf_array, _score_idf_lucene, _score_tfc_lucene

        self._flush()
        self._file.close()
        directory = Path(directory)
        bm25 = bm25s.BM25(k1=k1, b=b)
        vocab, remap = _bm25s_vocabulary(self._first)
        self._first = {}
        n_docs, n_vocab, total = len(self._length), len(remap), self._nnz[-1]
        nnz = np.frombuffer(self._nnz, np.int64)
        lengths = np.frombuffer(self._length, np.int64)
        avg = lengths.mean()  # as bm25s: np.array(lengths).mean(), a float64 scalar
        df = np.zeros(n_vocab, np.int64)
        for _, term, _ in self._entries():
            df += np.bincount(remap[term], minlength=n_vocab)
        idf = _build_idf_array(dict(enumerate(df.tolist())), n_docs, _score_idf_lucene, bm25.dtype)
        indptr = np.zeros(n_vocab + 1, np.int64)
        np.cumsum(df, out=indptr[1:])
        del df
        # The matrix is CSC sorted by (term, passage): an entry's place is its term's start plus the
        # entries of that term seen before it, passages coming in order.
        buckets = _Buckets(self._scratch, total)
        cursor = indptr[:-1].copy()
        for lo, term, tf in self._entries():
            cols = remap[term]
            passage = np.searchsorted(nnz, np.arange(lo, lo + len(cols)), side="right") - 1
            tfc = _score_tfc_lucene(tf_array=tf.astype(bm25.dtype), l_d=lengths[passage], l_avg=avg, k1=k1, b=b)
            scores = (idf[cols] * tfc).astype(bm25.dtype)
            order = np.argsort(cols, kind="stable")
            sorted_cols = cols[order]
            first = np.r_[True, sorted_cols[1:] != sorted_cols[:-1]]
            group = np.flatnonzero(first)
            rank = np.arange(len(cols)) - np.repeat(group, np.diff(np.r_[group, len(cols)]))
            place = np.empty(len(cols), np.int64)
            place[order] = cursor[sorted_cols] + rank
            cursor[sorted_cols[first]] += np.diff(np.r_[group, len(cols)])
            buckets.add(place, scores, passage.astype(np.int32))
        (self._scratch / "entries").unlink()
        # bm25s writes its JSON files (and placeholder arrays, replaced right after).
        bm25.scores = {"data": np.zeros(0, bm25.dtype), "indices": np.zeros(0, bm25.int_dtype),
                       "indptr": indptr, "num_docs": n_docs}
        bm25.nonoccurrence_array = None  # lucene scoring has none (bm25s sets it while indexing)
        if "" not in vocab:  # bm25s' create_empty_token
            vocab[""] = max(vocab.values()) + 1
        bm25.vocab_dict = vocab
        bm25.save(str(directory), show_progress=False)
        npyfile.write(directory / "data.csc.index.npy", bm25.dtype, (total,), buckets.read("score"))
        npyfile.write(directory / "indices.csc.index.npy", bm25.int_dtype, (total,), buckets.read("passage"))
        buckets.remove()
        if self._tmp is not None:
            self._tmp.cleanup()
        return vocab


_BLOCK = 1 << 16  # entries read and scored at a time (float64 temporaries of this size)


class _Buckets:
    """Scored entries routed by their place in the matrix into files of _BLOCK places each, read
    back in place order one bucket at a time."""

    RECORD = np.dtype([("place", "<i8"), ("score", "<f4"), ("passage", "<i4")])

    def __init__(self, scratch: Path, total: int):
        self.files = [scratch / f"scores-{k}" for k in range(-(-total // _BLOCK))]
        self.total = total

    def add(self, place: np.ndarray, score: np.ndarray, passage: np.ndarray) -> None:
        bucket = place // _BLOCK
        order = np.argsort(bucket, kind="stable")
        records = np.empty(len(order), self.RECORD)
        records["place"], records["score"], records["passage"] = place[order], score[order], passage[order]
        ends = np.searchsorted(bucket[order], np.arange(1, len(self.files) + 1))
        for k, (a, b) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
            if b > a:
                with open(self.files[k], "ab") as f:
                    f.write(records[a:b].data)

    def read(self, field: str) -> Iterable[np.ndarray]:
        for k, path in enumerate(self.files):
            records = np.fromfile(path, self.RECORD)
            out = np.empty(min(_BLOCK, self.total - k * _BLOCK), self.RECORD[field])
            out[records["place"] - k * _BLOCK] = records[field]
            yield out

    def remove(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)


def _bm25s_vocabulary(first: dict[str, int]) -> tuple[dict[str, int], np.ndarray]:
    """bm25s' term ids, and for each term's first-occurrence number its bm25s id."""
    unique: set[str] = set()
    for term in first:  # one add at a time: set(first) presizes the table, giving another order
        unique.add(term)
    vocab = {term: i for i, term in enumerate(unique)}
    remap = np.empty(len(first), np.int32)
    for term, k in first.items():
        remap[k] = vocab[term]
    return vocab, remap
