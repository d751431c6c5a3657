"""Keeps the saved index in step with the documents folder, crash-safely.

The index folder holds complete versions in `v-*` subfolders and a one-line `CURRENT` file naming
the live one. A new version is written to a temporary folder, renamed into place, and only then
does `CURRENT` change (by an atomic rename), so a crash at any moment leaves the old index usable.
"""

from __future__ import annotations

import bisect
import dataclasses
import fcntl
import logging
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import DocumentsError, IndexCorruptError, IndexFormatError, QAError
from .index import Index, embedding_input, read_manifest
from .types import Chunk, DocInfo, IndexUpdate, Settings

log = logging.getLogger("qa")


class IndexStore:
    """The versions of an index kept under one folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def current(self) -> Path | None:
        """The live version's folder, or None if there is none."""
        try:
            name = (self.root / "CURRENT").read_text("utf-8").strip()
        except OSError:
            return None
        if not name or "/" in name or name.startswith("."):
            return None
        path = self.root / name
        return path if path.is_dir() else None

    @contextmanager
    def lock(self):
        """Serialise writers (processes and threads) of this index folder."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            f = open(self.root / ".lock", "w")
        except OSError as exc:  # e.g. the path is a file, or not writable: a clear error, not a traceback
            raise QAError(f"cannot use index folder {str(self.root)!r}: {exc.strerror or exc}") from None
        with f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def new_version(self) -> Path:
        """A fresh temporary folder to write a version into."""
        path = self.root / f".tmp-{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        return path

    def commit(self, tmp: Path) -> Path:
        """Make a fully written temporary folder the live version, then drop older ones."""
        final = self.root / f"v-{uuid.uuid4().hex[:12]}"
        _fsync_tree(tmp)
        os.rename(tmp, final)
        pointer = self.root / f".CURRENT-{uuid.uuid4().hex}"
        with open(pointer, "w", encoding="utf-8") as f:
            f.write(final.name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer, self.root / "CURRENT")
        _fsync_dir(self.root)
        self.collect_garbage(keep=final)
        return final

    def collect_garbage(self, keep: Path) -> None:
        """Remove versions and half-written folders other than `keep` (called under the lock)."""
        for child in self.root.iterdir():
            if child != keep and (child.name.startswith("v-") or child.name.startswith(".tmp-")
                                  or child.name.startswith(".CURRENT-")):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def _fsync_tree(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_current(store: IndexStore) -> tuple[Index, Path] | None:
    """The live index, or None when there is none or it is damaged (with a warning)."""
    version = store.current()
    if version is None:
        if (store.root / "CURRENT").exists():  # a pointer to nothing usable is damage, not a first run
            log.warning("index at %s is damaged, rebuilding: CURRENT does not name a saved version", store.root)
        return None
    try:
        return Index.load(version), version
    except IndexFormatError as exc:
        log.warning("index at %s is rebuilt: %s", version, exc)
        return None
    except IndexCorruptError as exc:
        log.warning("index at %s is damaged, rebuilding: %s", version, exc)
        return None


def unusable_reason(store: IndexStore) -> str:
    """Why the saved index could not be used (after load_current gave None with CURRENT present)."""
    version = store.current()
    if version is not None:
        try:
            read_manifest(version)
        except IndexFormatError as exc:
            return str(exc)
        except IndexCorruptError:
            pass
    return "the saved index was damaged"


def plan(folder_hashes: dict[str, str], version: Path | None, settings: Settings) -> IndexUpdate:
    """What an update must do, from the folder's content hashes and the live manifest."""
    if version is None:
        return IndexUpdate(added=tuple(sorted(folder_hashes)), rebuilt=True, reason="no index yet")
    try:
        manifest = read_manifest(version)
    except IndexCorruptError as exc:
        return IndexUpdate(added=tuple(sorted(folder_hashes)), rebuilt=True, reason=str(exc))
    if manifest["settings"] != dataclasses.asdict(settings):
        return IndexUpdate(added=tuple(sorted(folder_hashes)), rebuilt=True,
                           reason="model or settings changed")
    old = manifest["documents"]
    return IndexUpdate(
        added=tuple(sorted(set(folder_hashes) - set(old))),
        changed=tuple(sorted(d for d in folder_hashes if d in old and old[d] != folder_hashes[d])),
        removed=tuple(sorted(set(old) - set(folder_hashes))),
        unchanged=tuple(sorted(d for d in folder_hashes if old.get(d) == folder_hashes[d])),
    )


def _same_vectors(a: Settings, b: Settings) -> bool:
    """Would both settings cut and embed passages identically (BM25 is always rebuilt)?"""
    fields = ("model", "int8", "max_passage_chars", "min_passage_chars", "joined_max_chars", "title_in_embedding",
              "sentence_vectors")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def build(documents, previous: Index | None, settings: Settings, embedder, progress: bool) -> Index:
    """A new index over `documents`, reusing `previous`'s passages and vectors for unchanged ones.

    Args:
        documents: every Document to index (read and cleaned by ingest).
        previous: the live index, or None; its vectors are reused for documents whose content
            hash and settings are unchanged, so those are never embedded again.
        settings: index settings (model, passage size...).
        embedder: an Embedder, or an object with embed_passages(texts, progress) -> unit float32 rows
            (see embed.embed_chunks).
        progress: show a progress bar while embedding.
    """
    from .attribution import attribute
    from .chunk import chunk_document
    from .embed import embed_chunks

    reuse = {}
    if previous is not None and _same_vectors(previous.settings, settings):
        by_doc: dict[str, list[int]] = {}
        for i, c in enumerate(previous.chunks):
            by_doc.setdefault(c.doc_id, []).append(i)
        for doc in documents:
            old = previous.docs.get(doc.doc_id)
            if old is not None and old.content_hash == doc.content_hash:
                reuse[doc.doc_id] = by_doc.get(doc.doc_id, [])

    docs: dict[str, DocInfo] = {}
    chunks: list[Chunk] = []
    vec_parts: list[tuple[str, object]] = []  # ("old", chunk ids) or ("new", start..end in chunks)
    new_chunks: list[Chunk] = []
    for doc in documents:
        docs[doc.doc_id] = DocInfo(doc.doc_id, doc.path, doc.title, doc.byline, doc.outlet,
                                   doc.content_hash, len(doc.text))
        if doc.doc_id in reuse:
            ids = reuse[doc.doc_id]
            chunks.extend(previous.chunks[i] for i in ids)
            vec_parts.append(("old", ids))
            continue
        doc_chunks = chunk_document(doc, settings.max_passage_chars, settings.min_passage_chars,
                                    settings.joined_max_chars)
        sentences = [doc.text[s:e] for c in doc_chunks for s, e in c.sentences]
        starts = [b.start for b in doc.blocks]
        paragraph_ids = [bisect.bisect_right(starts, s) - 1 for c in doc_chunks for s, _ in c.sentences]
        speakers = attribute(sentences, paragraph_ids)
        pos = 0
        for c in doc_chunks:
            n = len(c.sentences)
            new_chunks.append(dataclasses.replace(c, speakers=tuple(speakers[pos:pos + n])))
            pos += n
        vec_parts.append(("new", (len(new_chunks) - len(doc_chunks), len(new_chunks))))
        chunks.extend(new_chunks[-len(doc_chunks):] if doc_chunks else [])

    if not chunks:
        raise DocumentsError("no passages to index: the documents have no article text")

    texts = [embedding_input(c.text, docs[c.doc_id].title, settings) for c in new_chunks]
    # Each sentence's span in its passage's embedded text (the text ends it, after any title).
    spans = [[(s - c.start + len(t) - len(c.text), e - c.start + len(t) - len(c.text)) for s, e in c.sentences]
             for c, t in zip(new_chunks, texts)]
    new_pvecs, new_svecs = embed_chunks(embedder, texts, spans, progress,
                                        in_context=settings.sentence_vectors == "in-passage")
    new_sent_start = np.concatenate([[0], np.cumsum([len(c.sentences) for c in new_chunks])]).astype(int)

    pvecs, svecs = [], []
    for kind, ref in vec_parts:
        if kind == "old":
            ids = ref
            pvecs.append(previous.vectors[ids])
            svecs.extend(previous.sent_vectors[previous.sentence_rows(i)] for i in ids)
        else:
            a, b = ref
            pvecs.append(new_pvecs[a:b])
            svecs.append(new_svecs[new_sent_start[a]:new_sent_start[b]])
    dim = new_pvecs.shape[1] if len(new_pvecs) else previous.vectors.shape[1]
    vectors = np.concatenate(pvecs) if pvecs else np.zeros((0, dim), np.float32)
    sent_vectors = np.concatenate(svecs) if svecs else np.zeros((0, dim), np.float32)
    return Index(settings, docs, chunks, np.ascontiguousarray(vectors, np.float32),
                 np.ascontiguousarray(sent_vectors, np.float32))
