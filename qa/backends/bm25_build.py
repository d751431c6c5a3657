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
        """A bm25s.BM25 holding the score matrix and vocabulary (ready to `save`)."""
        import bm25s
        from bm25s.scoring import _build_idf_array, _score_idf_lucene, _score_tfc_lucene

        bm25 = bm25s.BM25(k1=k1, b=b)
        vocab, remap = _bm25s_vocabulary(self._first)
        self._first = {}
        n_docs, n_vocab = len(self._length), len(remap)
        cols = remap[np.frombuffer(self._term, np.int32)]
        self._term = array("i")
        rows = np.repeat(np.arange(n_docs, dtype=np.int32), np.diff(np.frombuffer(self._nnz, np.int64)))
        df = np.bincount(cols, minlength=n_vocab)
        idf = _build_idf_array(dict(enumerate(df.tolist())), n_docs, _score_idf_lucene, bm25.dtype)
        # bm25s: np.array(lengths).mean(), a float64 scalar; each passage's length a Python int.
        lengths = np.frombuffer(self._length, np.int64)
        avg = lengths.mean()
        order = np.argsort(cols, kind="stable")  # rows ascend within a term: (term, passage) order
        data = np.empty(len(cols), bm25.dtype)
        tf = np.frombuffer(self._tf, np.int32)
        for lo in range(0, len(order), _BLOCK):
            at = order[lo:lo + _BLOCK]
            tfc = _score_tfc_lucene(tf_array=tf[at].astype(bm25.dtype), l_d=lengths[rows[at]], l_avg=avg, k1=k1, b=b)
            data[lo:lo + len(at)] = idf[cols[at]] * tfc
        indptr = np.zeros(n_vocab + 1, np.int64)
        np.cumsum(df, out=indptr[1:])
        bm25.scores = {"data": data, "indices": rows[order].astype(bm25.int_dtype), "indptr": indptr,
                       "num_docs": n_docs}
        bm25.nonoccurrence_array = None  # lucene scoring has none (bm25s sets it while indexing)
        if "" not in vocab:  # bm25s' create_empty_token
            vocab[""] = max(vocab.values()) + 1
        bm25.vocab_dict = vocab
        return bm25


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
