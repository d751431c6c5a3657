"""Decoded passages kept between questions in a few contiguous arrays, as the local backend keeps
its memory-mapped columns: a question gathers its passages with one fancy index per kind of data
instead of joining ~100 small per-passage arrays (the joins and the scattered objects they read were
most of a warm question's own work in the Milvus backend)."""

from __future__ import annotations

import threading
from typing import NamedTuple, Sequence

import numpy as np

from ...lexicon import segments
from ...types import Chunk
from .schema import StoredPassage

# Rows of Columns.at: where each passage's sentences, term ids, names and partners start.
_SENT, _TERM, _NAME, _SAME = range(4)


class Columns:
    """Passages appended one after another (slot 0, 1, ...) into growing arrays.

    A slot's data is written before its pid is published in `slot`, and never changed after, so
    readers need no lock: growing copies the arrays before swapping them in, and an array a reader
    took before a swap still holds every slot that existed then. Appends hold a lock.
    """

    def __init__(self, dim: int, room: int = 64):
        self.dim = dim
        self.slot: dict[int, int] = {}   # backend pid -> its slot
        self.chunks: list[Chunk] = []
        self._lock = threading.Lock()
        self.n = 0
        # Room for `room` passages of a few sentences to start with; every array doubles when full.
        self.at = np.zeros((4, room + 1), np.int64)  # (4, slots + 1): first sentence/term/name/partner
        self.added = np.zeros(room, np.int64)        # the version that added each passage
        self.vec = np.zeros((room, dim), np.float32)       # passage vectors (float32: converting
        self.svec = np.zeros((4 * room, dim), np.float32)  # float16 at every question costs more)
        self.per = np.zeros((5, 4 * room), np.int32)  # StoredPassage.per_sentence, sentence after sentence
        self.terms = np.zeros(64 * room, np.int32)
        self.names = np.zeros(16 * room, np.int32)
        self.same = np.zeros(room, np.int64)

    def __len__(self) -> int:
        return self.n

    def add(self, pid: int, p: StoredPassage) -> None:
        """Append a decoded passage (unless another thread did meanwhile)."""
        with self._lock:
            if pid in self.slot:
                return
            i, at = self.n, self.at
            sizes = (p.sent_vectors.shape[0], len(p.terms), len(p.names), len(p.same))
            if i + 2 > at.shape[1]:
                self._grow_slots()
            s, t, m, q = (int(x) for x in self.at[:, i])
            self.svec = _room(self.svec, s, s + sizes[0])
            self.per = _room(self.per, s, s + sizes[0], axis=1)
            self.terms = _room(self.terms, t, t + sizes[1])
            self.names = _room(self.names, m, m + sizes[2])
            self.same = _room(self.same, q, q + sizes[3])
            self.vec[i] = p.vector[0]
            self.added[i] = p.added
            self.svec[s:s + sizes[0]] = p.sent_vectors
            self.per[:, s:s + sizes[0]] = p.per_sentence
            self.terms[t:t + sizes[1]] = p.terms
            self.names[m:m + sizes[2]] = p.names
            self.same[q:q + sizes[3]] = p.same
            self.at[:, i + 1] = self.at[:, i] + sizes
            self.chunks.append(p.chunk)
            self.n = i + 1
            self.slot[pid] = i  # last: the slot is complete when readers can find it

    def _grow_slots(self) -> None:
        cap = max(2 * (self.at.shape[1] - 1), 1)
        at = np.zeros((4, cap + 1), np.int64)
        at[:, :self.n + 1] = self.at[:, :self.n + 1]
        self.at = at
        self.added = _room(self.added, self.n, cap)
        self.vec = _room(self.vec, self.n, cap)

    def gather(self, pids: Sequence[int]) -> "Gathered":
        """The passages' data joined in the order asked (every pid must have a slot)."""
        n = len(pids)
        slots = np.fromiter(map(self.slot.__getitem__, pids), np.int64, n)
        at = self.at
        # The four kinds' ranges located in one pass (a handful of numpy calls, not four times as
        # many: at this size each call's overhead is most of its cost).
        pos, _, offsets = segments(at[:, slots].ravel(), at[:, slots + 1].ravel())
        cut = offsets[::n].tolist() if n else [0] * 5
        sent_start, same_start = offsets[:n + 1] - cut[_SENT], offsets[_SAME * n:] - cut[_SAME]
        rows = pos[cut[_SENT]:cut[_SENT + 1]]
        chunks = self.chunks
        return Gathered(
            chunks=tuple(map(chunks.__getitem__, slots.tolist())), vectors=self.vec[slots],
            sent_vectors=self.svec[rows], sent_start=sent_start, per_sentence=self.per[:, rows],
            terms=self.terms[pos[cut[_TERM]:cut[_TERM + 1]]], names=self.names[pos[cut[_NAME]:cut[_NAME + 1]]],
            same=self.same[pos[cut[_SAME]:cut[_SAME + 1]]], same_start=same_start, added=self.added[slots])


class Gathered(NamedTuple):
    """Some passages' data from Columns.gather, in the order asked: fresh arrays (copies), the
    question's own."""

    chunks: tuple[Chunk, ...]
    vectors: np.ndarray        # (n, dim) float32
    sent_vectors: np.ndarray   # (sentences, dim) float32
    sent_start: np.ndarray     # (n + 1,) passage i owns sentences sent_start[i]:sent_start[i+1]
    per_sentence: np.ndarray   # (5, sentences) int32 (StoredPassage.per_sentence)
    terms: np.ndarray          # int32 term ids, sentence after sentence
    names: np.ndarray          # int32 (NameNumbers)
    same: np.ndarray           # int64 partner ids: passage i's are same[same_start[i]:same_start[i+1]]
    same_start: np.ndarray
    added: np.ndarray          # (n,) int64


class Arena:
    """The Columns a backend keeps, replaced by empty ones when over `limit` passages (a question
    holds on to the Columns it started with, so it never sees them cleared under it)."""

    def __init__(self, dim: int, limit: int, room: int = 64):
        self.dim, self.limit, self.room = dim, limit, room
        self.columns = Columns(dim, room)

    def __len__(self) -> int:
        return len(self.columns)

    def clear(self) -> None:
        self.columns = Columns(self.dim, self.room)

    def current(self) -> Columns:
        """The Columns a question uses throughout (new ones when the kept ones are over the limit)."""
        if len(self.columns) > self.limit:
            self.clear()
        return self.columns


def _room(arr: np.ndarray, used: int, size: int, axis: int = 0) -> np.ndarray:
    """`arr`, or a copy of its first `used` rows in an array at least twice as long along `axis`
    when it has fewer than `size` rows. (np.zeros of a large array maps its pages lazily: the room
    not yet used costs address space only.)"""
    if arr.shape[axis] >= size:
        return arr
    shape = list(arr.shape)
    shape[axis] = max(size, 2 * shape[axis])
    out = np.zeros(shape, arr.dtype)
    if axis == 0:
        out[:used] = arr[:used]
    else:
        out[:, :used] = arr[:, :used]
    return out
