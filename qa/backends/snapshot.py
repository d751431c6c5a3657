"""The local backend's saved version (format 4): a directory of plain files, memory-mapped at open.

Opening reads the manifest, the small JSON files, the doc_ids and the arrays' headers; every array
is mapped (np.load(mmap_mode="r"), FAISS with its mmap flags), so the operating system pages in
only what questions touch and the open cost does not grow with the passages, nor with the
documents beyond their ids. No pickle anywhere.

    manifest.json    format, model, settings, counts, and every file's size and sha256
    doc_ids.json, documents.jsonl, doc_*.npy, doc_facts.json
                     the documents' records, one per line, decoded on demand, with the facts
                     read of every document as columns (doc_records.py). Format 3 kept them in
                     one documents.json parsed whole at open: 2.5 s at 250,000 documents
    text.bin         every passage's text, UTF-8, concatenated in storage order
    p_text.npy       int64 (passages + 1): passage i is text.bin[p_text[i]:p_text[i+1]]
    p_doc.npy        int32 (passages): the passage's document (row of doc_ids.json); a document's
                     passages are stored together, in document order
    p_span.npy       int64 (passages, 2): the passage's start and end characters in its document
    p_sent.npy       int64 (passages + 1): passage i owns sentence rows p_sent[i]:p_sent[i+1]
    p_flags.npy      uint8 (passages): SPEAKERS_KNOWN when speakers were recorded for its sentences
    s_span.npy       int64 (sentences, 2): each sentence's start and end characters in its document
    s_speaker.npy    int32 (sentences): row of speakers.json, -1 for none
    speakers.json    the distinct speaker names (few: one entry per person quoted)
    vectors.npy      float16 (passages, dim) unit passage vectors
    sentences.npy    float16 (sentences, dim) unit sentence vectors
    dense.faiss      FAISS over the same float16 vectors: exact (IndexScalarQuantizer fp16, read with
                     IO_FLAG_MMAP_IFC) up to Settings.ann_threshold passages, IVF with fp16 codes
                     (read with IO_FLAG_MMAP) above
    bm25/            bm25s' own files (numpy arrays, memory-mapped, and JSON)
    sent_*.npy, same_words*.npy, name_words.json   the lexicon (lexicon_files.py)

Checks (damage must never give a wrong answer):
    always at open   the manifest; every file present with its recorded size; sha256 of the JSON
                     files (they are parsed anyway); array headers (dtype, shape) against the
                     counts; offsets' end points; FAISS and BM25 sizes; document ranges
    when decoded     a document record: its crc32, doc_id, characters and facts (doc_records.py)
    deep             sha256 of every file and every value-level check (every document record,
                     offsets ascending, spans inside their documents, UTF-8 text of the right
                     length, vectors finite, term ids in the vocabulary...). Done at open when
                     the version's files total at most DEEP_AT_OPEN_BYTES (the seeds, the BBC
                     corpus: tens of ms, the checksums in a thread meanwhile); for larger
                     collections by `qa check` (`check` below), which reads everything once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import os
import shutil
import struct
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import lexicon
from . import bm25_build, doc_records, lexicon_files, npyfile
from ..errors import IndexCorruptError, IndexFormatError
from ..textutil import terms
from ..types import Chunk, DocInfo, Settings

# 2: sentence term arrays (lexicon); 3: memory-mapped columns, float16 vectors; 4: document records
# decoded on demand (doc_records.py)
FORMAT_VERSION = 4
SPEAKERS_KNOWN = 1  # bit of p_flags

# Versions up to this size (all files) are fully verified at open: hashing runs at ~1.9 GB/s here,
# so 64 MB costs ~35 ms. Larger ones get the cheap checks at open and the rest from `qa check`.
DEEP_AT_OPEN_BYTES = 64 << 20

CHUNK_CACHE = 50_000  # passages kept decoded (~1 KB each)

COLUMNS = {  # name -> (file, dtype, shape in terms of the counts)
    "p_text": ("p_text.npy", np.int64, ("passages+1",)),
    "p_doc": ("p_doc.npy", np.int32, ("passages",)),
    "p_span": ("p_span.npy", np.int64, ("passages", 2)),
    "p_sent": ("p_sent.npy", np.int64, ("passages+1",)),
    "p_flags": ("p_flags.npy", np.uint8, ("passages",)),
    "s_span": ("s_span.npy", np.int64, ("sentences", 2)),
    "s_speaker": ("s_speaker.npy", np.int32, ("sentences",)),
    "vectors": ("vectors.npy", np.float16, ("passages", "dim")),
    "sent_vectors": ("sentences.npy", np.float16, ("sentences", "dim")),
    **doc_records.COLUMNS,
}
TEXT, SPEAKERS, DENSE, BM25_DIR, MANIFEST = ("text.bin", "speakers.json", "dense.faiss", "bm25", "manifest.json")
BM25_FILES = ("params.index.json", "vocab.index.json", "data.csc.index.npy", "indices.csc.index.npy",
              "indptr.csc.index.npy")
REQUIRED = ({f for f, _, _ in COLUMNS.values()} | {TEXT, SPEAKERS, DENSE} | doc_records.FILES
            | {f"{BM25_DIR}/{f}" for f in BM25_FILES} | set(lexicon_files.FILES.values()) | {lexicon_files.NAME_WORDS})


class Passages(Sequence):
    """The stored passages as `Chunk`s, made from the columns on demand (never all held at once)."""

    def __init__(self, snap: "Snapshot"):
        self._snap = snap

    def __len__(self) -> int:
        return self._snap.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._snap.chunk(j) for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self._snap.chunk(i % len(self))


class Snapshot:
    """One saved version, opened memory-mapped and immutable. Build one with `write`."""

    def __init__(self, directory: Path, manifest: dict, docs: doc_records.Documents, cols: dict[str, np.ndarray],
                 text: np.ndarray, speakers: tuple[str, ...], dense, bm25: "SavedBM25", lex: lexicon.Lexicon):
        self.directory = directory
        self.manifest = manifest
        self.settings = Settings(**manifest["settings"])
        self.docs = docs
        self.doc_ids = docs.ids
        self.doc_row = docs.row
        self.cols = cols
        self.text = text
        self.speakers = speakers
        self.dense = dense
        self.bm25 = bm25
        self.lexicon = lex
        self.n = len(cols["p_doc"])
        self.vectors = cols["vectors"]
        self.sent_vectors = cols["sent_vectors"]
        self.sent_start = cols["p_sent"]
        # Term ids run below this bound (bm25s numbers its vocabulary from 0).
        self.vocab_size = max(bm25.vocab_dict.values(), default=-1) + 1
        # doc_start[k]:doc_start[k+1] are document k's passages (p_doc ascends); O(documents) to find.
        self.doc_start = np.searchsorted(cols["p_doc"], np.arange(len(docs) + 1), side="left").astype(np.int64)
        self.chunks = Passages(self)
        self._chunk_cache: dict[int, Chunk] = {}

    def __len__(self) -> int:
        return self.n

    # -- passages ---------------------------------------------------------------------------------
    def chunk(self, i: int) -> Chunk:
        """Passage i as a Chunk (its text decoded from text.bin). The passages questions touch are
        kept (up to CHUNK_CACHE of them): candidates recur across questions."""
        try:
            return self._chunk_cache[i]
        except KeyError:
            pass
        if len(self._chunk_cache) >= CHUNK_CACHE:
            self._chunk_cache.clear()
        chunk = self._chunk_cache[i] = self._make_chunk(i)
        return chunk

    def _make_chunk(self, i: int) -> Chunk:
        c = self.cols
        lo, hi = int(c["p_text"][i]), int(c["p_text"][i + 1])
        rows = slice(int(c["p_sent"][i]), int(c["p_sent"][i + 1]))
        sentences = tuple(tuple(s) for s in c["s_span"][rows].tolist())
        speakers = (tuple(self.speakers[k] if k >= 0 else None for k in c["s_speaker"][rows].tolist())
                    if int(c["p_flags"][i]) & SPEAKERS_KNOWN else ())
        start, end = c["p_span"][i].tolist()
        return Chunk(self.doc_ids[int(c["p_doc"][i])], start, end, self.text[lo:hi].tobytes().decode("utf-8"),
                     sentences, speakers)

    def iter_chunks(self, lo: int, hi: int):
        """Passages lo..hi-1 made afresh, without filling the cache (for writing a new version)."""
        for i in range(lo, hi):
            yield self._make_chunk(i)

    def passage_range(self, doc_id: str) -> tuple[int, int]:
        k = self.doc_row[doc_id]
        return int(self.doc_start[k]), int(self.doc_start[k + 1])

    def sentence_chars(self, rows: np.ndarray) -> np.ndarray:
        """Characters of each of these sentence rows."""
        spans = self.cols["s_span"][rows]
        return (spans[:, 1] - spans[:, 0]).astype(np.int64)

    def sentence_rows(self, chunk_id: int) -> slice:
        return slice(int(self.sent_start[chunk_id]), int(self.sent_start[chunk_id + 1]))

    @property
    def sent_chars(self) -> np.ndarray:
        """Characters of every sentence (reads a whole column: for tests and benchmarks)."""
        return self.sentence_chars(np.arange(len(self.cols["s_span"])))

    # -- search -------------------------------------------------------------------------------
    def search_dense(self, qvec: np.ndarray, k: int, allowed: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k passage ids and cosine scores for a unit query vector.

        `allowed` (sorted passage ids) restricts the search inside FAISS, so no allowed passage is
        crowded out of the top k by others.
        """
        k = min(k, self.n if allowed is None else len(allowed))
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        import faiss

        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, np.int64))
            params = (faiss.SearchParametersIVF(sel=selector, nprobe=self.settings.ann_nprobe)
                      if _is_approximate(self.n, self.settings) else faiss.SearchParameters(sel=selector))
        # One question: FAISS's threads would split one scan and wait on each other; on this busy
        # 2-core machine that made a 1,000-passage search take 2 ms instead of 0.03 ms. The
        # setting is the calling thread's own (OpenMP), so it is restored after.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self.dense.search(qvec.reshape(1, -1).astype(np.float32), k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]

    def bm25_scores_of_terms(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every passage for analysed query terms (zeros if none is indexed)."""
        ids = self.bm25.get_tokens_ids(tokens) if tokens else []
        if not ids:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self.bm25.get_scores_from_ids(ids), dtype=np.float32)

    def bm25_holders(self, tokens: list[str], most: int) -> np.ndarray | None:
        """Sorted ids of the passages holding any of these analysed terms (the only ones a BM25
        score can rank), or None if the terms' postings number more than `most` (then a pass over
        all scores is cheaper than sorting them)."""
        ids = self.bm25.get_tokens_ids(tokens) if tokens else []
        return self.bm25.holders(ids, most)

    def term_id(self, term: str) -> int | None:
        """The vocabulary number of an (analysed) term; None if no passage contains it."""
        return self.bm25.vocab_dict.get(term)

    def doc_freq(self, term: str) -> int | None:
        """How many passages contain an (analysed) term; None if no passage does."""
        tid = self.bm25.vocab_dict.get(term)
        if tid is None:
            return None
        indptr = self.bm25.scores["indptr"]
        return int(indptr[tid + 1] - indptr[tid])

    def postings(self, term: str) -> np.ndarray | None:
        """Sorted ids of the passages holding an (analysed) term; None if none does."""
        tid = self.bm25.vocab_dict.get(term)
        if tid is None:
            return None
        indptr, indices = self.bm25.scores["indptr"], self.bm25.scores["indices"]
        return np.sort(np.asarray(indices[int(indptr[tid]):int(indptr[tid + 1])], np.int64))

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> None:
        """Copy this version's files into `directory` (created)."""
        shutil.copytree(self.directory, directory, dirs_exist_ok=True,
                        ignore=lambda _, names: [n for n in names if n == "model"])

    @classmethod
    def load(cls, directory: str | os.PathLike, deep_at_open: int = DEEP_AT_OPEN_BYTES) -> "Snapshot":
        """Open a saved version; raises IndexCorruptError on damage the checks find.

        The cheap checks always run; the deep ones (see the module doc) too when the version's
        files total at most `deep_at_open` bytes.
        """
        d = Path(directory)
        manifest = read_manifest(d)
        try:
            deep = sum(manifest["sizes"].values()) <= deep_at_open
            rest = _check_present(d, manifest)
            # The other files' checksums are computed meanwhile in a thread (hashlib releases the
            # GIL): ~35 ms of opening the BBC corpus, hidden behind the rest where a core is free.
            hashing = _InThread(_mismatch, d, manifest, rest) if deep else None
            try:
                snap = _open(d, manifest)
                _check_structure(snap)
                if deep:
                    _check_contents(snap)
            finally:
                mismatch = hashing.result() if hashing is not None else None
            if mismatch:
                raise IndexCorruptError(mismatch)
            return snap
        except IndexCorruptError:
            raise
        except Exception as exc:  # whatever a damaged file makes a loader raise, it is damage
            raise IndexCorruptError(f"cannot load index from {d}: {type(exc).__name__}: {exc}") from exc

    def verify(self) -> None:
        """The deep checks: every file's sha256 and every value. Reads the whole version once."""
        try:
            _check_files(self.directory, self.manifest, hash_all=True)
            _check_contents(self)
        except IndexCorruptError:
            raise
        except Exception as exc:
            raise IndexCorruptError(f"index in {self.directory} is damaged: {type(exc).__name__}: {exc}") from exc


def check(directory: str | os.PathLike) -> None:
    """Verify a saved version completely (what `qa check` runs); raises IndexCorruptError."""
    Snapshot.load(directory, deep_at_open=0).verify()


# -- opening --------------------------------------------------------------------------------------

def _open(d: Path, manifest: dict) -> Snapshot:
    speakers = json.loads((d / SPEAKERS).read_text("utf-8"))
    if not isinstance(speakers, list) or not all(isinstance(s, str) for s in speakers):
        raise IndexCorruptError("speakers.json is not a list of names")
    cols = {name: np.load(d / file, allow_pickle=False, mmap_mode="r") for name, (file, _, _) in COLUMNS.items()}
    # Plain ndarray views of the maps: indexing a np.memmap costs more per call.
    cols = {name: np.asarray(a) for name, a in cols.items()}
    counts = manifest["counts"]
    for name, (file, dtype, shape) in COLUMNS.items():
        want = tuple(s if isinstance(s, int) else counts[s[:-2]] + 1 if s.endswith("+1") else counts[s]
                     for s in shape)
        if cols[name].dtype != dtype or cols[name].shape != want:
            raise IndexCorruptError(f"{file} holds {cols[name].dtype}{list(cols[name].shape)}, expected {np.dtype(dtype)}{list(want)}")
    docs = doc_records.load(d, cols)
    size = (d / TEXT).stat().st_size
    text = np.memmap(d / TEXT, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
    bm25 = SavedBM25(d / BM25_DIR)
    vocab_size = max(bm25.vocab_dict.values(), default=-1) + 1
    lex = lexicon_files.load(d, counts["sentences"], vocab_size, counts["passages"])
    return Snapshot(d, manifest, docs, cols, np.asarray(text), tuple(speakers), _read_dense(d, counts, manifest),
                    bm25, lex)


def _read_dense(d: Path, counts: dict, manifest: dict):
    import faiss

    settings = Settings(**manifest["settings"])
    approximate = _is_approximate(counts["passages"], settings)
    # The exact index's codes are mapped (IndexFlatCodes); the IVF's inverted lists likewise.
    flags = (faiss.IO_FLAG_MMAP if approximate else faiss.IO_FLAG_MMAP_IFC) | faiss.IO_FLAG_READ_ONLY
    index = faiss.read_index(str(d / DENSE), flags)
    if approximate:
        index.nprobe = settings.ann_nprobe
    if index.ntotal != counts["passages"] or index.d != counts["dim"]:
        raise IndexCorruptError("the FAISS index disagrees with the passages")
    return index


# -- checks ---------------------------------------------------------------------------------------

def _check_files(d: Path, manifest: dict, hash_all: bool) -> None:
    """Every file present with its recorded size; sha256 of the JSON files, or of all."""
    rest = _check_present(d, manifest)
    mismatch = _mismatch(d, manifest, rest) if hash_all else None
    if mismatch:
        raise IndexCorruptError(mismatch)


def _check_present(d: Path, manifest: dict) -> list[str]:
    """Every file present with its recorded size, and the JSON files' sha256 (they are parsed at
    open); returns the other files' names."""
    files, sizes = manifest["files"], manifest["sizes"]
    if set(files) != set(sizes) or not REQUIRED <= set(files):
        raise IndexCorruptError(f"index manifest lacks files: {sorted(REQUIRED - set(files))[:3]}")
    rest = []
    for name, digest in files.items():
        path = d / name
        try:
            size = path.stat().st_size
        except OSError:
            raise IndexCorruptError(f"index file {name} is missing") from None
        if size != sizes[name]:
            raise IndexCorruptError(f"index file {name} has {size} bytes, its manifest says {sizes[name]}")
        if not name.endswith(".json"):
            rest.append(name)
        elif _file_hash(path) != digest:
            raise IndexCorruptError(f"index file {name} does not match its manifest hash")
    return rest


def _mismatch(d: Path, manifest: dict, names: list[str]) -> str | None:
    """Why the first of these files whose sha256 is not the manifest's is damaged; None if none is."""
    for name in names:
        try:
            if _mapped_hash(d / name) != manifest["files"][name]:
                return f"index file {name} does not match its manifest hash"
        except (OSError, ValueError) as exc:
            return f"index file {name} cannot be read: {exc}"
    return None


class _InThread:
    """fn(*args) computed in a thread of its own; result() waits for it."""

    def __init__(self, fn, *args):
        self._value, self._error = None, None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name="qa-index-checksums", daemon=True)
        self._thread.start()

    def _run(self, fn, args) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # handed to the waiting thread
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _check_structure(snap: Snapshot) -> None:
    """What costs O(1) or O(documents): end points of the offsets, ranges, BM25 sizes."""
    c, counts = snap.cols, snap.manifest["counts"]
    n, s = counts["passages"], counts["sentences"]
    snap.docs.check_structure(counts["documents"])
    ok = (int(c["p_text"][0]) == 0
          and int(c["p_text"][-1]) == len(snap.text) and int(c["p_sent"][0]) == 0 and int(c["p_sent"][-1]) == s
          and int(snap.doc_start[0]) == 0 and int(snap.doc_start[-1]) == n
          and bool(np.all(np.diff(snap.doc_start) > 0)))
    if not ok:
        raise IndexCorruptError("passage offsets or document ranges disagree with the counts")
    scores = snap.bm25.scores
    data, indices, indptr = scores["data"], scores["indices"], scores["indptr"]
    ok = (int(scores["num_docs"]) == n and len(data) == len(indices) and len(indptr) > 0
          and int(indptr[0]) == 0 and int(indptr[-1]) == len(data) and snap.vocab_size <= len(indptr)
          and min(snap.bm25.vocab_dict.values(), default=0) >= 0)
    if not ok:
        raise IndexCorruptError("the BM25 index disagrees with the passages")


def _check_contents(snap: Snapshot) -> None:
    """Every value: O(collection). Damage that passes the file hashes (or a manifest rewritten with
    them) is found here rather than as a crash or a wrong citation at question time."""
    c = snap.cols
    n = snap.n
    p_doc, p_span, p_sent, p_text = c["p_doc"], c["p_span"], c["p_sent"], c["p_text"]
    snap.docs.check_contents()
    chars = snap.docs.chars
    if n and (np.any(np.diff(p_doc) < 0) or int(p_doc[0]) < 0 or int(p_doc[-1]) >= len(chars)):
        raise IndexCorruptError("passages are not stored by document")
    if np.any(np.diff(p_text) < 0) or np.any(np.diff(p_sent) < 1):  # every passage has a sentence
        raise IndexCorruptError("passage offsets do not ascend, or a passage has no sentences")
    start, end = p_span[:, 0], p_span[:, 1]
    if np.any(start < 0) or np.any(end <= start) or np.any(end > chars[p_doc]):
        raise IndexCorruptError("a passage lies outside its document")
    str(memoryview(snap.text), "utf-8")  # raises on invalid bytes
    # Characters per passage: its bytes less those that continue a character (few in news text:
    # their positions, not a running count over every byte, which cost 10x more).
    continuing = np.flatnonzero((snap.text & 0xC0) == 0x80)
    chars_of = np.diff(p_text) - np.diff(np.searchsorted(continuing, p_text))
    if not np.array_equal(chars_of, end - start):
        raise IndexCorruptError("a passage's text does not fit its character offsets")
    owner = np.repeat(np.arange(n), np.diff(p_sent))
    s_span = c["s_span"]
    if np.any(s_span[:, 0] < start[owner]) or np.any(s_span[:, 1] > end[owner]) or np.any(s_span[:, 1] <= s_span[:, 0]):
        raise IndexCorruptError("a sentence lies outside its passage")
    sp = c["s_speaker"]
    if len(sp) and (int(sp.min()) < -1 or int(sp.max()) >= len(snap.speakers)):
        raise IndexCorruptError("a sentence names a speaker that is not stored")
    for name in ("vectors", "sent_vectors"):
        if not _all_finite(c[name]):
            raise IndexCorruptError(f"{name} contain NaN or infinite values")
    scores = snap.bm25.scores
    indices, indptr = scores["indices"], scores["indptr"]
    if np.any(np.diff(indptr) < 0) or (len(indices) and not 0 <= int(indices.min()) <= int(indices.max()) < n):
        raise IndexCorruptError("the BM25 index disagrees with the passages")
    lexicon_files.check_contents(snap.lexicon, snap.vocab_size, n)


def _all_finite(a: np.ndarray) -> bool:
    """No NaN or infinity in `a`, read in slices (memory-mapped, possibly large). float16 is read
    from its bits, ~10x faster than np.isfinite: a value is NaN or infinite when its exponent bits
    are all ones."""
    for lo in range(0, len(a), 1 << 16):
        part = a[lo:lo + (1 << 16)]
        if not part.size:
            continue
        if part.dtype == np.float16:
            if int((np.ascontiguousarray(part).view(np.uint16) & 0x7FFF).max()) >= 0x7C00:
                return False
        elif not np.isfinite(part).all():
            return False
    return True


class SavedBM25:
    """Query-time reader of a BM25 index saved by bm25s (its own file format, plain numpy/JSON).

    bm25s builds and saves the index; answering only needs its precomputed score matrix, read here
    memory-mapped (bm25s.BM25.load(mmap=True) does the same, but importing bm25s and scipy costs
    the cold command line ~0.3 s). Supports bm25s' default "lucene" scoring, whose matrix holds
    complete per-term scores.
    """

    def __init__(self, directory: Path):
        params = json.loads((directory / "params.index.json").read_text("utf-8"))
        if params.get("method") != "lucene":
            raise IndexCorruptError(f"unsupported BM25 method {params.get('method')!r}")
        self.vocab_dict: dict[str, int] = json.loads((directory / "vocab.index.json").read_text("utf-8"))
        # Types read in C (map), not in a generator: the vocabulary has tens of thousands of terms.
        if not isinstance(self.vocab_dict, dict) or not set(map(type, self.vocab_dict.values())) <= {int, bool}:
            raise IndexCorruptError("the BM25 vocabulary is not a map of terms to ids")
        self.scores = {name: np.asarray(np.load(directory / f"{name}.csc.index.npy", allow_pickle=False, mmap_mode="r"))
                       for name in ("data", "indices", "indptr")}
        self.scores["num_docs"] = int(params["num_docs"])

    def get_tokens_ids(self, tokens: list[str]) -> list[int]:
        return [self.vocab_dict[t] for t in tokens if t in self.vocab_dict]

    def get_scores_from_ids(self, ids: list[int]) -> np.ndarray:
        data, indices, indptr = self.scores["data"], self.scores["indices"], self.scores["indptr"]
        out = np.zeros(self.scores["num_docs"], dtype=np.float32)
        for t in ids:  # a term's postings name each passage once, so plain fancy-index adds are exact
            lo, hi = int(indptr[t]), int(indptr[t + 1])
            out[indices[lo:hi]] += data[lo:hi]
        return out

    def holders(self, ids: list[int], most: int) -> np.ndarray | None:
        """Sorted distinct passages in these terms' postings; None if the postings exceed `most`."""
        indices, indptr = self.scores["indices"], self.scores["indptr"]
        spans = [(int(indptr[t]), int(indptr[t + 1])) for t in ids]
        if sum(hi - lo for lo, hi in spans) > most:
            return None
        found = np.sort(np.concatenate([indices[lo:hi] for lo, hi in spans] + [np.zeros(0, indices.dtype)]))
        if len(found):
            found = found[np.concatenate(([True], found[1:] != found[:-1]))]
        return found.astype(np.int64)


def manifest_format(directory: Path) -> int | None:
    """The format number a saved version declares (None if unreadable)."""
    try:
        m = json.loads((Path(directory) / MANIFEST).read_text("utf-8"))
        return m.get("format") if isinstance(m, dict) and isinstance(m.get("format"), int) else None
    except (OSError, ValueError):
        return None


def read_manifest(directory: Path) -> dict:
    """The manifest of a saved index; raises IndexCorruptError if missing or malformed."""
    try:
        manifest = json.loads((Path(directory) / MANIFEST).read_text("utf-8"))
        if not isinstance(manifest, dict):
            raise IndexCorruptError("index manifest is not a JSON object")
        if isinstance(manifest.get("format"), int) and manifest["format"] != FORMAT_VERSION:
            raise IndexFormatError(f"index was written in format {manifest['format']} by another version "
                                   f"of qa; this one reads format {FORMAT_VERSION}")
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexCorruptError(f"index format is not version {FORMAT_VERSION}")
        for key in ("model", "settings", "counts", "files", "sizes"):
            if not isinstance(manifest.get(key), str if key == "model" else dict):
                raise IndexCorruptError(f"index manifest lacks {key!r} or it has the wrong type")
        if not set(map(type, manifest["files"])) | set(map(type, manifest["files"].values())) <= {str}:
            raise IndexCorruptError("index manifest 'files' must map names to hashes")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in manifest["sizes"].values()):
            raise IndexCorruptError("index manifest 'sizes' must map names to byte counts")
        if not all(isinstance(manifest["counts"].get(k), int) and manifest["counts"][k] >= 0
                   for k in ("passages", "sentences", "dim", "documents")):
            raise IndexCorruptError("index manifest counts are missing or not counts")
        for name in manifest["files"]:  # the hashed files must all lie inside the version folder
            if name.startswith("/") or "\\" in name or ".." in name.split("/"):
                raise IndexCorruptError(f"index manifest names a file outside the index: {name!r}")
        return manifest
    except (OSError, ValueError, TypeError) as exc:
        raise IndexCorruptError(f"cannot read index manifest in {directory}: {exc}") from exc


# -- writing --------------------------------------------------------------------------------------

# Temporary files of the BM25 build and of same_words' 4-gram buckets (bm25_build.py, lexicon.py),
# removed before the manifest is written.
SCRATCH = ".scratch"


def write(directory: str | os.PathLike, settings: Settings, docs: Sequence[DocInfo], chunks: Sequence[Chunk],
          vectors: np.ndarray, sent_vectors: np.ndarray, lexical_from: Path | None = None) -> None:
    """Write a complete version into `directory` (new or empty).

    Args:
        docs: the documents in storage order; `chunks` hold each document's passages together, in
            that order.
        vectors, sent_vectors: unit rows (stored as float16).
        lexical_from: a saved version (of any format) holding bm25/ and the lexicon files of these
            very passages, copied instead of rebuilt (migration).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
    sentences = _write_passages(d, docs, chunks)
    if len(vectors) != len(chunks) or len(sent_vectors) != sentences or sent_vectors.shape[1:] != (dim,):
        raise IndexCorruptError(f"index counts disagree: {len(chunks)} passages, {len(vectors)} vectors, "
                                f"{sentences} sentences, {len(sent_vectors)} sentence vectors")
    _save_float16(d / COLUMNS["vectors"][0], vectors)
    _save_float16(d / COLUMNS["sent_vectors"][0], sent_vectors)
    vec16 = npyfile.NpyRows(d / COLUMNS["vectors"][0])  # read in slices, not mapped: see npyfile.py
    _write_dense(d / DENSE, vec16, settings)
    del vec16
    if lexical_from is not None:
        shutil.copytree(Path(lexical_from) / BM25_DIR, d / BM25_DIR)
        for name in [*lexicon_files.FILES.values(), lexicon_files.NAME_WORDS]:
            shutil.copyfile(Path(lexical_from) / name, d / name)
    else:
        scratch = d / SCRATCH  # inside the version being written: gone with it if this fails
        scratch.mkdir()
        vocab = _save_bm25(d / BM25_DIR, chunks, docs, settings, scratch)
        lexicon_files.write(chunks, vocab, d, scratch)
        shutil.rmtree(scratch)  # before the manifest lists the version's files
    write_manifest(d, settings, {"passages": len(chunks), "sentences": sentences, "dim": dim, "documents": len(docs)})


def write_manifest(d: Path, settings: Settings, counts: dict, known: dict[str, str] | None = None) -> None:
    """The manifest of the version whose other files are all in `d`. `known`: sha256 of some of
    them, already checked (migration copies files it verified)."""
    files = sorted(p for p in d.rglob("*") if p.is_file() and p.name != MANIFEST)
    known = known or {}
    names = [p.relative_to(d).as_posix() for p in files]
    manifest = {
        "format": FORMAT_VERSION,
        "model": settings.model,
        "settings": asdict(settings),
        "counts": counts,
        "files": {name: known.get(name) or _file_hash(p) for name, p in zip(names, files)},
        "sizes": {name: p.stat().st_size for name, p in zip(names, files)},
    }
    _write_json(d / MANIFEST, manifest)


def _write_passages(d: Path, docs: Sequence[DocInfo], chunks: Sequence[Chunk]) -> int:
    """The document files, text.bin and the passage and sentence columns; returns the sentence count."""
    n = len(chunks)
    p_text = np.zeros(n + 1, np.int64)
    p_doc = np.zeros(n, np.int32)
    p_span = np.zeros((n, 2), np.int64)
    p_sent = np.zeros(n + 1, np.int64)
    p_flags = np.zeros(n, np.uint8)
    # Typed arrays, not lists of Python ints: 8 bytes a value instead of ~36.
    s_span, s_speaker = array("q"), array("i")
    names: dict[str, int] = {}
    with open(d / TEXT, "wb") as f:
        for i, (k, _, c) in enumerate(_with_documents(chunks, docs)):
            if not c.sentences:  # every later step relies on a passage having a sentence
                raise IndexCorruptError("a passage has no sentences")
            if c.speakers and len(c.speakers) != len(c.sentences):
                raise IndexCorruptError("a passage's speakers do not match its sentences")
            data = c.text.encode("utf-8")
            f.write(data)
            p_text[i + 1] = p_text[i] + len(data)
            p_doc[i] = k
            p_span[i] = (c.start, c.end)
            for span in c.sentences:
                s_span.extend(span)
            p_sent[i + 1] = len(s_speaker) + len(c.sentences)
            if c.speakers:
                p_flags[i] |= SPEAKERS_KNOWN
                s_speaker.extend(-1 if s is None else names.setdefault(s, len(names)) for s in c.speakers)
            else:
                s_speaker.extend([-1] * len(c.sentences))
    columns = {"p_text": p_text, "p_doc": p_doc, "p_span": p_span, "p_sent": p_sent, "p_flags": p_flags,
               "s_span": np.frombuffer(s_span, np.int64).reshape(-1, 2),
               "s_speaker": np.frombuffer(s_speaker, np.int32)}
    for name, arr in columns.items():
        np.save(d / COLUMNS[name][0], arr, allow_pickle=False)
    doc_records.write(d, docs)
    _write_json(d / SPEAKERS, list(names))
    return len(s_speaker)


def _with_documents(chunks: Iterable[Chunk], docs: Iterable[DocInfo]) -> Iterator[tuple[int, DocInfo, Chunk]]:
    """Each passage with its document's row and record, both walked in storage order (a document's
    passages are stored together, in document order): no doc_id -> row table, and `docs` may make
    its records as they are read (local.py's _Docs). Raises IndexCorruptError for a passage whose
    document is not the current one or a later one."""
    rows = enumerate(docs)
    k, doc = -1, None
    for c in chunks:
        while doc is None or doc.doc_id != c.doc_id:
            k, doc = next(rows, (-1, None))
            if doc is None:
                raise IndexCorruptError("a document's passages are not stored together, or it is not given")
        yield k, doc, c


def _save_float16(path: Path, a) -> None:
    """Save rows as float16 .npy, slice by slice: the input may be large (an array, memory-mapped
    or not, or npyfile.NpyRows), and neither it nor its float16 copy is ever held whole."""
    rows = npyfile.SLICE_ROWS
    parts = a.slices() if isinstance(a, npyfile.NpyRows) else (a[lo:lo + rows] for lo in range(0, len(a), rows))
    npyfile.write(path, np.float16, a.shape, parts)


def _is_approximate(n: int, settings: Settings) -> bool:
    return n > settings.ann_threshold


def _write_dense(path: Path, vectors, settings: Settings) -> None:
    """dense.faiss of float16 rows. The exact index is written here, slice by slice: built by FAISS
    it held every code at once (768 bytes a passage, in a buffer grown by doubling: ~18 MB above
    the commit's start at 8,474 passages, ~2.3 KB a passage, measured as RSS)."""
    import faiss

    if _is_approximate(len(vectors), settings):
        faiss.write_index(_dense_index(vectors, settings), str(path))
        return
    dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 384
    head = _flat_header(dim, len(vectors))
    if head is None:  # a FAISS whose file differs from the layout below: let it write its own
        faiss.write_index(_dense_index(vectors, settings), str(path))
        return
    with open(path, "wb") as f:
        f.write(head)
        for part in npyfile.slices(vectors, 0, len(vectors)):
            f.write(np.ascontiguousarray(part, dtype="<f2").data)


def _flat_header(dim: int, n: int) -> bytes | None:
    """What faiss.write_index writes before the codes of an exact index (IndexScalarQuantizer,
    fp16) of n vectors, whose codes are the float16 rows themselves: the header of an empty one
    ('IxSQ', d, ntotal at bytes 8-16, ..., codes size in the last 8 bytes) with the counts set.
    None unless that layout gives, for one vector, the very bytes FAISS writes."""
    import faiss

    def flat(rows: np.ndarray) -> bytes:
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        if len(rows):
            index.add(rows.astype(np.float32))
        return faiss.serialize_index(index).tobytes()

    def header(empty: bytes, count: int) -> bytes:
        return (empty[:8] + struct.pack("<q", count) + empty[16:-8]
                + struct.pack("<Q", count * dim * 2))

    empty = flat(np.zeros((0, dim), np.float16))
    probe = np.linspace(-1, 1, dim).astype(np.float16).reshape(1, dim)
    if empty[:4] != b"IxSQ" or flat(probe) != header(empty, 1) + probe.astype("<f2").tobytes():
        return None
    return header(empty, n)


# Vectors given to FAISS at a time, as float32: each vector is encoded on its own (the same codes in
# any blocks), and 100,000 at a time held a float32 copy of every vector of a collection that size.
ADD_ROWS = 4096


def _dense_index(vectors, settings: Settings):
    """FAISS over float16 vectors, storing them as float16 codes (exact: they decode to the very
    values saved in vectors.npy)."""
    import faiss

    dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 384
    fp16 = faiss.ScalarQuantizer.QT_fp16
    if not _is_approximate(len(vectors), settings):
        index = faiss.IndexScalarQuantizer(dim, fp16, faiss.METRIC_INNER_PRODUCT)
        for start in range(0, len(vectors), ADD_ROWS):
            index.add(np.ascontiguousarray(vectors[start:start + ADD_ROWS], dtype=np.float32))
        return index
    # Inverted lists: builds in a minute for a million passages on two cores (HNSW takes far
    # longer), keeps memory at the raw vectors' size, and nprobe trades speed for recall.
    nlist = int(4 * np.sqrt(len(vectors)))
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, fp16, faiss.METRIC_INNER_PRODUCT,
                                          False)  # codes of the vectors themselves, not residuals
    rng = np.random.default_rng(0)
    sample = rng.choice(len(vectors), size=min(len(vectors), 40 * nlist), replace=False)
    index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
    for start in range(0, len(vectors), ADD_ROWS):
        index.add(np.ascontiguousarray(vectors[start:start + ADD_ROWS], dtype=np.float32))
    index.nprobe = settings.ann_nprobe
    return index


def _save_bm25(directory: Path, chunks: Sequence[Chunk], docs: Sequence[DocInfo], settings: Settings,
               scratch: Path) -> dict[str, int]:
    """Save bm25s' index of the passages (each passage's terms, title first when configured),
    built in one streaming pass through files in `scratch` (bm25_build.py: the same saved files as
    bm25s' own `index`); returns its vocabulary."""
    import bm25s

    if not len(chunks):  # nothing to index (bm25s cannot index an empty corpus)
        bm25s.BM25().save(str(directory), show_progress=False)
        return {}
    builder = bm25_build.StreamingBM25(scratch)
    for _, doc, c in _with_documents(chunks, docs):
        builder.add(terms(settings.indexed_text(c.text, doc.title)) or [bm25_build.EMPTY])
    return builder.save(directory)


def _file_hash(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _mapped_hash(path: Path) -> str:
    """_file_hash in one call over the mapped file: hashlib then releases the GIL for the whole
    file, not for each of file_digest's 256 KB reads (a thread waits up to 5 ms for the GIL)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:  # an empty file cannot be mapped
            return hashlib.sha256().hexdigest()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return hashlib.sha256(data).hexdigest()


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1, default=_json_default), encoding="utf-8")


def _json_default(obj):
    if dataclasses.is_dataclass(obj):
        return asdict(obj)
    raise TypeError(type(obj))
