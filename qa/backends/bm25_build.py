"""The BM25 score matrix of a new version, built in one pass over the passages into compact arrays.

bm25s (`BM25().index(corpus)`) needs every passage's tokens at once as Python lists (with its
conversion to Python lists of ids, ~40 bytes a token: on BBC the largest part of what indexing held
at commit). This builder reads the passages once, keeps only each passage's distinct terms and
their counts in typed arrays (~8 bytes a distinct term of a passage) and the vocabulary, and gives
bm25s the finished matrix to save: the saved files are the very ones `BM25().index(...)` then
`save(...)` write (a test compares them). bm25s is still used where it fits: its idf and term
frequency formulas, its parameters, and its `save`.

What must match bm25s exactly, and how:
  - term ids: bm25s numbers its vocabulary in the iteration order of a `set` filled passage by
    passage (set.update of each token list). A set's order depends only on the sequence of distinct
    keys added (and the process's string hashing), so adding the distinct terms one at a time in
    order of first occurrence rebuilds the same set, hence the same ids.
  - scores: the same float32 / float64 steps as bm25s's per-passage loop, done per block.
  - layout: CSC, entries sorted by (term, passage); passage rows int32, indptr int64.
"""

from __future__ import annotations

from array import array
from typing import Iterable

import numpy as np

# bm25s cannot index a passage without tokens: the caller's placeholder for one.
EMPTY = "\u2400"


class StreamingBM25:
    """Feed each passage's analysed terms in storage order (`add`), then `finish` once."""

    def __init__(self):
        self._first: dict[str, int] = {}   # term -> number in order of first occurrence
        self._term = array("i")            # per (passage, distinct term): the term's number,
        self._tf = array("i")              # its count in the passage,
        self._nnz = array("q", [0])        # and passage i owns entries _nnz[i]:_nnz[i+1]
        self._length = array("q")          # tokens of each passage (bm25s' document length)

    def add(self, tokens: Iterable[str]) -> None:
        counts: dict[str, int] = {}  # in order of first occurrence, as bm25s' Counter
        n = 0
        for t in tokens:
            counts[t] = counts.get(t, 0) + 1
            n += 1
        first = self._first
        for t, c in counts.items():
            self._term.append(first.setdefault(t, len(first)))
            self._tf.append(c)
        self._nnz.append(len(self._term))
        self._length.append(n)

    def finish(self, k1: float = 1.5, b: float = 0.75):
        """A bm25s.BM25 holding the score matrix and vocabulary (ready to `save`). The typed
        arrays are let go as soon as they are used: at most ~20 bytes an entry are held at once."""
        import bm25s
        from bm25s.scoring import _build_idf_array, _score_idf_lucene

        bm25 = bm25s.BM25(k1=k1, b=b)
        vocab, remap = _bm25s_vocabulary(self._first)
        self._first = {}
        n_docs, n_vocab = len(self._length), len(remap)
        cols = remap[np.frombuffer(self._term, np.int32)]
        self._term = array("i")
        df = np.bincount(cols, minlength=n_vocab)
        idf = _build_idf_array(dict(enumerate(df.tolist())), n_docs, _score_idf_lucene, bm25.dtype)
        scores = self._scores(idf[cols], k1, b, bm25.dtype)
        order = np.argsort(cols, kind="stable")  # passages ascend within a term: (term, passage) order
        del cols
        data = scores[order]
        del scores
        nnz = np.frombuffer(self._nnz, np.int64)
        indices = np.repeat(np.arange(n_docs, dtype=np.int32), np.diff(nnz))[order].astype(bm25.int_dtype)
        del order
        indptr = np.zeros(n_vocab + 1, np.int64)
        np.cumsum(df, out=indptr[1:])
        bm25.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}
        bm25.nonoccurrence_array = None  # lucene scoring has none (bm25s sets it while indexing)
        if "" not in vocab:  # bm25s' create_empty_token
            vocab[""] = max(vocab.values()) + 1
        bm25.vocab_dict = vocab
        return bm25

    def _scores(self, idf: np.ndarray, k1: float, b: float, dtype) -> np.ndarray:
        """Each entry's score, in entry order (`idf`: each entry's term's idf), with bm25s' own
        term frequency formula; lets the counts go."""
        from bm25s.scoring import _score_tfc_lucene

        nnz = np.frombuffer(self._nnz, np.int64)
        lengths = np.frombuffer(self._length, np.int64)
        avg = lengths.mean()  # as bm25s: np.array(lengths).mean(), a float64 scalar
        tf = np.frombuffer(self._tf, np.int32)
        out = np.empty(len(tf), dtype)
        for lo in range(0, len(tf), _BLOCK):
            hi = min(len(tf), lo + _BLOCK)
            passage = np.searchsorted(nnz, np.arange(lo, hi), side="right") - 1
            tfc = _score_tfc_lucene(tf_array=tf[lo:hi].astype(dtype), l_d=lengths[passage], l_avg=avg, k1=k1, b=b)
            out[lo:hi] = idf[lo:hi] * tfc
        del tf
        self._tf = array("i")
        return out


_BLOCK = 1 << 16  # score entries computed at a time (float64 temporaries of this size)


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
