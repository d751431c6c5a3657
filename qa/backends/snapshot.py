"""The local backend's saved version: dense vectors in FAISS plus BM25, as a directory of plain files.

A `Snapshot` is one immutable, loaded version. Layout of a saved version (no pickle anywhere):
    manifest.json    format version, model, settings, per-document content hashes, file hashes
    documents.json   one DocInfo per document
    chunks.jsonl     one passage per line: doc_id, offsets, text, sentence spans, speakers
    vectors.npy      passage vectors (float32, unit rows)
    sentences.npy    sentence vectors, in chunk order
    sent_*.npy       each sentence's term ids and answer-type flags (see lexicon.py)
    dense.faiss      the FAISS structure, only when approximate (IVF); exact search is rebuilt
    bm25/            bm25s' own files (numpy arrays and JSON)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import lexicon
from . import lexicon_files
from ..errors import IndexCorruptError, IndexFormatError
from ..textutil import terms
from ..types import Chunk, DocInfo, Settings

FORMAT_VERSION = 2  # 2: sentence term arrays (lexicon)


class Snapshot:
    """An immutable, searchable set of passages with their vectors (one saved version)."""

    def __init__(self, settings: Settings, docs: dict[str, DocInfo], chunks: list[Chunk],
                 vectors: np.ndarray, sent_vectors: np.ndarray, dense=None, bm25=None,
                 lex: lexicon.Lexicon | None = None):
        self.settings = settings
        self.docs = docs
        self.chunks = chunks
        # Plain ndarray views (of the memory map when loaded): indexing a np.memmap costs more per call.
        self.vectors = np.asarray(vectors)
        self.sent_vectors = np.asarray(sent_vectors)
        # First sentence row of each chunk; chunk i owns rows sent_start[i]:sent_start[i+1].
        lengths = np.array([len(c.sentences) for c in chunks], dtype=np.int64)
        if np.any(lengths == 0):  # every later step relies on a passage having a sentence
            raise IndexCorruptError("a passage has no sentences")
        self.sent_start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if len(vectors) != len(chunks) or len(sent_vectors) != int(self.sent_start[-1]):
            raise IndexCorruptError(
                f"index counts disagree: {len(chunks)} passages, {len(vectors)} vectors, "
                f"{int(self.sent_start[-1])} sentences, {len(sent_vectors)} sentence vectors")
        self.dense = dense if dense is not None else _dense_index(vectors, settings)
        self.bm25 = bm25 if bm25 is not None else _bm25_index(chunks, docs, settings)
        # Term ids run below this bound (bm25s numbers its vocabulary from 0).
        vocab = getattr(self.bm25, "vocab_dict", None) or {}  # bm25s sets none on an empty corpus
        self.vocab_size = max(vocab.values(), default=-1) + 1
        self.lexicon = lex if lex is not None else lexicon.build(chunks, vocab)
        self.sent_chars = np.fromiter((e - s for c in chunks for s, e in c.sentences), np.int64,
                                      int(self.sent_start[-1]))

    def __len__(self) -> int:
        return len(self.chunks)

    # -- search -------------------------------------------------------------------------------
    def search_dense(self, qvec: np.ndarray, k: int, allowed: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k passage ids and cosine scores for a unit query vector.

        `allowed` (sorted passage ids) restricts the search inside FAISS, so no allowed passage is
        crowded out of the top k by others.
        """
        k = min(k, len(self.chunks) if allowed is None else len(allowed))
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        params = None
        if allowed is not None:
            import faiss

            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, np.int64))
            params = (faiss.SearchParametersIVF(sel=selector, nprobe=self.settings.ann_nprobe)
                      if _is_approximate(len(self.chunks), self.settings) else faiss.SearchParameters(sel=selector))
        scores, ids = self.dense.search(qvec.reshape(1, -1).astype(np.float32), k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]

    def bm25_scores_of_terms(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every passage for analysed query terms (zeros if none is indexed)."""
        ids = self.bm25.get_tokens_ids(tokens) if tokens else []
        if not ids:
            return np.zeros(len(self.chunks), dtype=np.float32)
        return np.asarray(self.bm25.get_scores_from_ids(ids), dtype=np.float32)

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

    def sentence_rows(self, chunk_id: int) -> slice:
        return slice(int(self.sent_start[chunk_id]), int(self.sent_start[chunk_id + 1]))

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> None:
        """Write the index as plain files into `directory` (created; should be new or empty)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        _write_json(d / "documents.json", [asdict(x) for x in self.docs.values()])
        with open(d / "chunks.jsonl", "w", encoding="utf-8") as f:
            for c in self.chunks:
                f.write(json.dumps({"doc_id": c.doc_id, "start": c.start, "end": c.end, "text": c.text,
                                    "sentences": c.sentences, "speakers": c.speakers},
                                   ensure_ascii=False) + "\n")
        np.save(d / "vectors.npy", self.vectors, allow_pickle=False)
        np.save(d / "sentences.npy", self.sent_vectors, allow_pickle=False)
        if _is_approximate(len(self.chunks), self.settings):
            import faiss

            faiss.write_index(self.dense, str(d / "dense.faiss"))
        self.bm25.save(str(d / "bm25"), show_progress=False)
        lexicon_files.save(self.lexicon, d)
        files = {p.relative_to(d).as_posix(): _file_hash(p)
                 for p in sorted(d.rglob("*")) if p.is_file() and p.name != "manifest.json"
                 and not p.relative_to(d).as_posix().startswith("model/")}
        manifest = {
            "format": FORMAT_VERSION,
            "model": self.settings.model,
            "settings": asdict(self.settings),
            "documents": {x.doc_id: x.content_hash for x in self.docs.values()},
            "counts": {"passages": len(self.chunks), "sentences": int(self.sent_start[-1]),
                       "dim": int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0},
            "files": files,
        }
        _write_json(d / "manifest.json", manifest)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Snapshot":
        """Load and verify a saved index; raises IndexCorruptError on any mismatch or damage."""
        d = Path(directory)
        manifest = read_manifest(d)
        try:
            for name, digest in manifest["files"].items():
                if _file_hash(d / name) != digest:
                    raise IndexCorruptError(f"index file {name} does not match its manifest hash")
            settings = Settings(**manifest["settings"])
            docs = {x["doc_id"]: DocInfo(**x) for x in json.loads((d / "documents.json").read_text("utf-8"))}
            chunks = []
            with open(d / "chunks.jsonl", encoding="utf-8") as f:
                for line in f:
                    r = json.loads(line)
                    chunks.append(Chunk(r["doc_id"], r["start"], r["end"], r["text"],
                                        tuple(tuple(s) for s in r["sentences"]), tuple(r["speakers"])))
            # Memory-mapped: only the rows a question touches are read (a million passages' vectors
            # would otherwise be loaded twice, once here and once inside FAISS).
            vectors = np.load(d / "vectors.npy", allow_pickle=False, mmap_mode="r")
            sent_vectors = np.load(d / "sentences.npy", allow_pickle=False, mmap_mode="r")
            if set(docs) != set(manifest["documents"]) or len(chunks) != manifest["counts"]["passages"]:
                raise IndexCorruptError("index documents or passage count disagree with the manifest")
            dense = None
            if _is_approximate(len(chunks), settings):
                import faiss

                dense = faiss.read_index(str(d / "dense.faiss"))
                dense.nprobe = settings.ann_nprobe
                if dense.ntotal != len(chunks):
                    raise IndexCorruptError("FAISS index size disagrees with the passages")
            bm25 = SavedBM25(d / "bm25")
            _check_consistency(manifest, docs, chunks, vectors, sent_vectors, bm25)
            lex = lexicon_files.load(d, len(sent_vectors), max(bm25.vocab_dict.values(), default=-1) + 1,
                                       len(chunks))
            return cls(settings, docs, chunks, vectors, sent_vectors, dense=dense, bm25=bm25, lex=lex)
        except IndexCorruptError:
            raise
        except Exception as exc:  # whatever a damaged file makes a loader raise, it is damage
            raise IndexCorruptError(f"cannot load index from {d}: {type(exc).__name__}: {exc}") from exc


def _check_consistency(manifest: dict, docs: dict[str, DocInfo], chunks: list[Chunk], vectors: np.ndarray,
                       sent_vectors: np.ndarray, bm25) -> None:
    """Cross-check the loaded parts, so damage that passes the file hashes (or a manifest rewritten
    with them) is found here rather than as a crash or a wrong citation at question time."""
    counts = manifest["counts"]
    dim = counts.get("dim")
    for name, arr in (("vectors", vectors), ("sentence vectors", sent_vectors)):
        if arr.ndim != 2 or arr.shape[1] != dim or not np.issubdtype(arr.dtype, np.floating):
            raise IndexCorruptError(f"{name} have shape {arr.shape} ({arr.dtype}); expected rows of {dim} floats")
        for start in range(0, len(arr), 1 << 16):  # in slices: the arrays may be memory-mapped and large
            if not np.isfinite(arr[start:start + (1 << 16)]).all():
                raise IndexCorruptError(f"{name} contain NaN or infinite values")
    if len(sent_vectors) != counts.get("sentences"):
        raise IndexCorruptError("sentence count disagrees with the manifest")
    for c in chunks:
        info = docs.get(c.doc_id)
        if (info is None or not 0 <= c.start < c.end <= info.chars or len(c.text) != c.end - c.start
                or not c.sentences or any(not c.start <= s < e <= c.end for s, e in c.sentences)
                or (c.speakers and len(c.speakers) != len(c.sentences))):
            raise IndexCorruptError(f"passage {c.doc_id}:{c.start}-{c.end} is inconsistent with its document")
    scores = bm25.scores
    data, indices, indptr = scores["data"], scores["indices"], scores["indptr"]
    vocab_ids = list(bm25.vocab_dict.values()) if bm25.vocab_dict else []
    ok = (int(scores["num_docs"]) == len(chunks) and len(data) == len(indices) and len(indptr) > 0
          and int(indptr[-1]) == len(data) and not np.any(np.diff(indptr) < 0)
          and (not len(indices) or 0 <= int(indices.min()) <= int(indices.max()) < len(chunks))
          and (not vocab_ids or 0 <= min(vocab_ids) <= max(vocab_ids) < len(indptr)))
    if not ok:
        raise IndexCorruptError("the BM25 index disagrees with the passages")


class SavedBM25:
    """Query-time reader of a BM25 index saved by bm25s (its own file format, plain numpy/JSON).

    bm25s builds and saves the index; answering only needs its precomputed score matrix, and
    reading that with numpy spares the cold command line importing bm25s and scipy (~0.3 s).
    Supports bm25s' default "lucene" scoring, whose matrix holds complete per-term scores.
    """

    def __init__(self, directory: Path):
        params = json.loads((directory / "params.index.json").read_text("utf-8"))
        if params.get("method") != "lucene":
            raise IndexCorruptError(f"unsupported BM25 method {params.get('method')!r}")
        self.vocab_dict: dict[str, int] = json.loads((directory / "vocab.index.json").read_text("utf-8"))
        self.scores = {name: np.load(directory / f"{name}.csc.index.npy", allow_pickle=False)
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


def read_manifest(directory: Path) -> dict:
    """The manifest of a saved index; raises IndexCorruptError if missing or malformed."""
    try:
        manifest = json.loads((Path(directory) / "manifest.json").read_text("utf-8"))
        if not isinstance(manifest, dict):
            raise IndexCorruptError("index manifest is not a JSON object")
        if isinstance(manifest.get("format"), int) and manifest["format"] != FORMAT_VERSION:
            raise IndexFormatError(f"index was written in format {manifest['format']} by another version "
                                   f"of qa; this one reads format {FORMAT_VERSION}")
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexCorruptError(f"index format is not version {FORMAT_VERSION}")
        for key in ("model", "settings", "documents", "counts", "files"):
            if not isinstance(manifest.get(key), str if key == "model" else dict):
                raise IndexCorruptError(f"index manifest lacks {key!r} or it has the wrong type")
        for key in ("documents", "files"):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in manifest[key].items()):
                raise IndexCorruptError(f"index manifest {key!r} must map names to hashes")
        for name in manifest["files"]:  # the hashed files must all lie inside the version folder
            if name.startswith("/") or "\\" in name or ".." in name.split("/"):
                raise IndexCorruptError(f"index manifest names a file outside the index: {name!r}")
        return manifest
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"cannot read index manifest in {directory}: {exc}") from exc


def _is_approximate(n: int, settings: Settings) -> bool:
    return n > settings.ann_threshold


def _dense_index(vectors: np.ndarray, settings: Settings):
    import faiss

    dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 384
    if not _is_approximate(len(vectors), settings):
        index = faiss.IndexFlatIP(dim)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return index
    # Inverted lists: builds in a minute for a million passages on two cores (HNSW takes far
    # longer), keeps memory at the raw vectors' size, and nprobe trades speed for recall.
    nlist = int(4 * np.sqrt(len(vectors)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    sample = rng.choice(len(vectors), size=min(len(vectors), 40 * nlist), replace=False)
    index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
    for start in range(0, len(vectors), 100_000):
        index.add(np.ascontiguousarray(vectors[start:start + 100_000], dtype=np.float32))
    index.nprobe = settings.ann_nprobe
    return index


def _bm25_index(chunks: list[Chunk], docs: dict[str, DocInfo], settings: Settings):
    import bm25s

    corpus = [terms(settings.indexed_text(c.text, docs[c.doc_id].title)) for c in chunks]
    # bm25s cannot index an empty token list; a placeholder keeps row numbers aligned.
    corpus = [toks or ["\u2400"] for toks in corpus]
    bm25 = bm25s.BM25()
    if corpus:
        bm25.index(corpus, show_progress=False)
    return bm25


def _file_hash(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1, default=_json_default), encoding="utf-8")


def _json_default(obj):
    if dataclasses.is_dataclass(obj):
        return asdict(obj)
    raise TypeError(type(obj))
