"""Indexing pipeline: ingested documents -> chunk -> attribute speakers -> embed -> backend upsert.

Only documents that are new or changed are cut and embedded, each read back from the folder read's
spool (folder.DocumentSpool) when its embedding batch is made, so no more than a batch of documents
is in memory at once; a stored document whose content hash and passage settings are unchanged keeps
its passages and vectors in the backend. With a writer that saves each batch as it goes
(base.Resumable), a run killed before its commit is resumed by the next one: documents whose
embedded batch was saved are not embedded again.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Callable

import numpy as np

from .backends.base import Backend, DocSummary, PassageBatch, Resumable, summaries
from .metadata import effective
from .types import Chunk, DocInfo, Document, IndexUpdate, Publication, Settings

if TYPE_CHECKING:
    from .folder import DocumentSpool

# Passages embedded together: large enough to batch the model well, small enough that memory stays
# flat on a large archive.
EMBED_BATCH = 256


def embed_batch() -> int:
    """EMBED_BATCH, or QA_EMBED_BATCH when set: tests make batches small, to kill a run between two."""
    value = os.environ.get("QA_EMBED_BATCH", "")
    return int(value) if value.isdigit() and int(value) > 0 else EMBED_BATCH


def plan(folder_hashes: dict[str, str], backend: Backend, settings: Settings,
         brief: dict[str, DocSummary] | None = None) -> IndexUpdate:
    """What an update must do, from the folder's content hashes and what the backend stores
    (`brief`: its documents' summaries, when the caller has them already)."""
    if backend.settings is None:
        return IndexUpdate(added=tuple(sorted(folder_hashes)), rebuilt=True,
                           reason=backend.problem or "no index yet")
    if backend.settings != settings:
        return IndexUpdate(added=tuple(sorted(folder_hashes)), rebuilt=True, reason="model or settings changed")
    if brief is None:
        brief = {s.doc_id: s for s in summaries(backend.documents())}
    old = {d: s.content_hash for d, s in brief.items()}
    return IndexUpdate(
        added=tuple(sorted(set(folder_hashes) - set(old))),
        changed=tuple(sorted(d for d in folder_hashes if d in old and old[d] != folder_hashes[d])),
        removed=tuple(sorted(set(old) - set(folder_hashes))),
        unchanged=tuple(sorted(d for d in folder_hashes if old.get(d) == folder_hashes[d])),
    )


def same_passages(a: Settings | None, b: Settings) -> bool:
    """Would both settings cut and embed passages identically (lexical data is always rebuilt)?"""
    fields = ("model", "int8", "max_passage_chars", "min_passage_chars", "joined_max_chars", "title_in_embedding",
              "sentence_vectors")
    return a is not None and all(getattr(a, f) == getattr(b, f) for f in fields)


def apply(update: IndexUpdate, documents: DocumentSpool, backend: Backend, settings: Settings,
          embedder_for: Callable[[], object], progress: bool = False,
          facts: dict[str, tuple[int, int]] | None = None, relabel: dict[str, DocInfo] | None = None,
          manifest: dict[str, Publication] | None = None) -> Backend:
    """Carry out a planned update; returns the backend serving the new version.

    Args:
        update: from `plan`.
        documents: the documents read from the folder (Folder.documents); only added and changed
            ones are read back, one embedding batch at a time, and embedded.
        backend: the backend to write to.
        settings: index settings.
        embedder_for: gives the passage embedder; called only if something must be embedded.
        progress: show a progress bar while embedding.
        facts: (size, mtime_ns) of each file when read, kept to make the next opening cheap.
        relabel: new records for stored documents whose text is unchanged (moved or touched
            files, new publication facts): their stored passages and vectors are kept.
        manifest: the folder manifest's publication facts by doc_id.
    """
    facts, manifest = facts or {}, manifest or {}
    keep_old = not update.rebuilt or same_passages(backend.settings, settings)
    stored = backend.documents() if keep_old else {}
    todo = [d for d in documents.ids if d not in stored or stored[d].content_hash != documents.content_hash(d)]
    writer = backend.writer(settings, fresh=not keep_old)
    for doc_id in update.removed:
        writer.delete(doc_id)
    try:
        pending = set(todo)
        for doc_id, info in (relabel or {}).items():
            if doc_id in stored and doc_id not in pending:
                writer.upsert(dataclasses.replace(backend.passages_of(doc_id), doc=info))
        if todo and isinstance(writer, Resumable):  # a killed run's embedded batches are not embedded again
            adopted = writer.resume(_Records(pending, documents, facts, manifest))
            todo = [d for d in todo if d not in adopted]
        if todo:
            _embed_all(todo, documents, writer, settings, embedder_for(), progress, facts, manifest)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def _embed_all(todo: list[str], documents: DocumentSpool, writer, settings: Settings, embedder, progress: bool,
               facts: dict[str, tuple[int, int]], manifest: dict[str, Publication]) -> None:
    """Embed the to-do documents into the writer, a batch at a time (a function of its own: the
    last batch is not kept alive through the commit)."""
    for group in _batches(todo, documents, settings, embedder, progress, facts, manifest):
        for batch in group:
            writer.upsert(batch)
        if isinstance(writer, Resumable):
            writer.checkpoint()


class _Records(Mapping):
    """The record (doc_info) of each to-do document, made only when asked for: a writer resuming
    a killed run asks for those it saved, not for every document at once."""

    def __init__(self, ids: set[str], documents: DocumentSpool, facts: dict[str, tuple[int, int]],
                 manifest: dict[str, Publication]):
        self._ids, self._documents, self._facts, self._manifest = ids, documents, facts, manifest

    def __getitem__(self, doc_id: str) -> DocInfo:
        if doc_id not in self._ids:
            raise KeyError(doc_id)
        return doc_info(self._documents.get(doc_id), self._facts.get(doc_id, (0, 0)), self._manifest.get(doc_id))

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._ids))

    def __len__(self) -> int:
        return len(self._ids)


def passages(doc: Document, settings: Settings) -> tuple[Chunk, ...]:
    """A document's passages with each sentence's speaker."""
    from .attribution import attribute
    from .chunk import chunk_document

    chunks = chunk_document(doc, settings.max_passage_chars, settings.min_passage_chars, settings.joined_max_chars)
    sentences = [doc.text[s:e] for c in chunks for s, e in c.sentences]
    starts = [b.start for b in doc.blocks]
    paragraph_ids = [bisect.bisect_right(starts, s) - 1 for c in chunks for s, _ in c.sentences]
    speakers = attribute(sentences, paragraph_ids)
    out, pos = [], 0
    for c in chunks:
        n = len(c.sentences)
        out.append(dataclasses.replace(c, speakers=tuple(speakers[pos:pos + n])))
        pos += n
    return tuple(out)


def doc_info(doc: Document, facts: tuple[int, int] = (0, 0), manifest: Publication | None = None) -> DocInfo:
    """What the backend keeps about a document besides its passages (`manifest`: the folder
    manifest's publication facts for it, which win over the document's own)."""
    info = DocInfo(doc.doc_id, doc.path, doc.title, doc.byline, doc.outlet, doc.content_hash, len(doc.text),
                   encoding=doc.encoding, pages=doc.pages, language=doc.language, file_sha256=doc.file_sha256,
                   size=facts[0], mtime_ns=facts[1], guess=doc.guess)
    return effective(info, manifest)


def _batches(todo: list[str], documents: DocumentSpool, settings: Settings, embedder, progress: bool,
             facts: dict[str, tuple[int, int]], manifest: dict[str, Publication]):
    """Lists of the PassageBatch of each to-do document, one list per embedding of about
    EMBED_BATCH passages; each document is read back from the spool when its turn comes and
    dropped once cut (its passages keep their own text)."""
    from .attribution import clear_caches

    group: list[tuple[DocInfo, tuple[Chunk, ...]]] = []
    size, limit = 0, embed_batch()
    bar = _Progress(sum(documents.chars(d) for d in todo), len(todo)) if progress else None
    for doc_id in todo:
        doc = documents.get(doc_id)
        chunks = passages(doc, settings)
        group.append((doc_info(doc, facts.get(doc_id, (0, 0)), manifest.get(doc_id)), chunks))
        del doc
        size += len(chunks)
        if size >= limit:
            yield list(_embed(group, settings, embedder))
            if bar is not None:
                bar.done(group)
            group, size = [], 0
            clear_caches()  # names repeat mostly within an article: kept, they grow with the collection
    if group:
        yield list(_embed(group, settings, embedder))
        if bar is not None:
            bar.done(group)
    if bar is not None:
        bar.close()


def _embed(group, settings: Settings, embedder):
    from .embed import embed_chunks

    chunks = [c for _, cs in group for c in cs]
    texts = [settings.indexed_text(c.text, info.title) for info, cs in group for c in cs]
    # Each sentence's span in its passage's embedded text (the text ends it, after any title).
    spans = [[(s - c.start + len(t) - len(c.text), e - c.start + len(t) - len(c.text)) for s, e in c.sentences]
             for c, t in zip(chunks, texts)]
    pvecs, svecs = embed_chunks(embedder, texts, spans, False, in_context=settings.sentence_vectors == "in-passage")
    pvecs, svecs = np.asarray(pvecs, np.float32), np.asarray(svecs, np.float32)
    p = s = 0
    for info, chunks in group:
        n_sent = sum(len(c.sentences) for c in chunks)
        yield PassageBatch(info, chunks, pvecs[p:p + len(chunks)], svecs[s:s + n_sent])
        p, s = p + len(chunks), s + n_sent


class _Progress:
    """A progress bar over the text to index (characters predict the work better than documents),
    with the passages indexed and their rate; tqdm adds the time spent and the time left."""

    def __init__(self, total_chars: int, total_docs: int):
        import time

        from tqdm import tqdm

        self._clock = time.monotonic
        self._start = self._clock()
        self._docs = self._passages = 0
        self._total_docs = total_docs
        self._bar = tqdm(total=total_chars, unit="char", unit_scale=True, desc="indexing", leave=False)

    def done(self, group) -> None:
        self._docs += len(group)
        self._passages += sum(len(chunks) for _, chunks in group)
        rate = self._passages / max(self._clock() - self._start, 1e-6)
        self._bar.set_postfix_str(f"{self._docs:,}/{self._total_docs:,} documents, {self._passages:,} passages, "
                                  f"{rate:.0f} passages/s", refresh=False)
        self._bar.update(sum(info.chars for info, _ in group))

    def close(self) -> None:
        self._bar.close()
