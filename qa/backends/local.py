"""The default backend: a folder of plain files on this machine (see snapshot.py for the layout).

The folder holds crash-safe versions (store.py). A LocalBackend serves one version for its whole
life, so a question never mixes two. A writer stages each batch it is given on disk (staging.py)
and, at commit, writes a complete new version from the staged batches and the stored passages and
vectors of every document it did not touch, switches the folder to it atomically, and returns a
backend serving it; a run killed before its commit is resumed from its staged batches. A version
saved in a previous format (2 or 3) is migrated when opened: its vectors are kept, nothing is
embedded again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import DocumentsError, IndexCorruptError, IndexFormatError, QAError
from ..lexicon import Lexicon, segments
from .store import IndexStore
from ..types import DocInfo, Settings
from ..textutil import terms
from .base import EVERYTHING, Fetched, Filter, Hit, PassageBatch, Searches, contains_phrases
from . import migrate, npyfile, snapshot, staging
from .snapshot import Snapshot

log = logging.getLogger("qa")


class LocalBackend:
    """Passages in a versioned folder, searched with FAISS and BM25 in this process.

    Args:
        root: the index folder (created when first written).
        load: read the live version now (False: start empty, e.g. for a rebuild).
    """

    def __init__(self, root: str | os.PathLike, load: bool = True):
        self.root = Path(root)
        self.store = IndexStore(root)
        self.problem = ""  # why the saved version could not be used (empty: it could, or there was none)
        self._snap: Snapshot | None = None
        self.version: Path | None = None
        self._cache: dict = {}
        if load:
            self._open_current()

    # -- state ------------------------------------------------------------------------------------
    def _open_current(self) -> None:
        version = self.store.current()
        if version is None:
            if (self.store.root / "CURRENT").exists():  # a pointer to nothing usable is damage
                self.problem = "the saved index was damaged"
                log.warning("index at %s is damaged, rebuilding: CURRENT does not name a saved version",
                            self.store.root)
            return
        try:
            if snapshot.manifest_format(version) in migrate.FROM_FORMATS:
                self._private = None
                version = self._migrate(version)
                if self._private is not None:  # opened, not committed: serves no live version
                    self._use(self._private, None)
                    return
            self._use(Snapshot.load(version), version)
        except IndexFormatError as exc:
            self.problem = str(exc)
            log.warning("index at %s is rebuilt: %s", version, exc)
        except IndexCorruptError as exc:
            self.problem = "the saved index was damaged"
            log.warning("index at %s is damaged, rebuilding: %s", version, exc)
        except (OSError, QAError) as exc:  # e.g. a read-only folder that needed migrating
            self.problem = f"the saved index could not be migrated: {exc}"
            log.warning("index at %s could not be migrated: %s", version, exc)

    def _migrate(self, version: Path) -> Path:
        """Write the old-format version `version` as a new version in this format (vectors and
        lexical data kept) and make it the live one; returns the folder to open.

        If a writer holds the folder (possibly this process, reopening under its lock), the
        migrated copy is only opened, from a private folder removed at once (the open maps keep
        its files), and the writer's next commit is in the new format.
        """
        with self.store.lock(wait=False) as locked:
            live = self.store.current()
            if live != version:  # another process migrated (or rebuilt) meanwhile
                if live is None:
                    raise IndexCorruptError("the index changed while it was being migrated")
                return live
            tmp = self.store.new_version() if locked else Path(tempfile.mkdtemp(prefix=".migrating-", dir=self.root))
            try:
                migrate.migrate(version, tmp)
                if not locked:
                    self._private = Snapshot.load(tmp, deep_at_open=0)
                    return tmp
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            finally:
                if not locked:
                    shutil.rmtree(tmp, ignore_errors=True)
            final = self.store.commit(tmp)
        log.info("index at %s migrated to format %d", self.root, snapshot.FORMAT_VERSION)
        return final

    def _use(self, snap: Snapshot, version: Path | None) -> None:
        self._snap, self.version, self._cache = snap, version, {}

    def is_current(self, ask: bool = True) -> bool:
        """Is the version this backend serves still the live one on disk? (One small file read,
        so `ask` makes no difference here.)"""
        return self.store.current() == self.version

    def reopen(self) -> "LocalBackend":
        return LocalBackend(self.root)

    def lock(self):
        """Serialise writers of this folder (processes and threads)."""
        return self.store.lock()

    @classmethod
    def _bound(cls, root: Path, snap: Snapshot, version: Path) -> "LocalBackend":
        backend = cls(root, load=False)
        backend._use(snap, version)
        return backend

    @property
    def snapshot(self) -> Snapshot | None:
        """The loaded version's files, for tests and benchmarks of this backend."""
        return self._snap

    @property
    def settings(self) -> Settings | None:
        return self._snap.settings if self._snap else None

    def documents(self) -> Mapping[str, DocInfo]:
        """Every stored document, read-only, in storage order: records decoded when asked for
        (doc_records.Documents), so asking costs nothing per document; `facts()` gives every
        document's filter facts without decoding records."""
        return self._snap.docs if self._snap else MappingProxyType({})

    def __len__(self) -> int:
        return len(self._snap) if self._snap else 0

    # -- statistics ---------------------------------------------------------------------------------
    def stats(self) -> "LocalBackend":
        return self

    @property
    def passages(self) -> int:
        return len(self)

    @property
    def vocab_size(self) -> int:
        return self._snap.vocab_size if self._snap else 0

    def term_id(self, term: str) -> int | None:
        return self._snap.term_id(term) if self._snap else None

    def doc_freq(self, term: str) -> int | None:
        return self._snap.doc_freq(term) if self._snap else None

    # -- search ---------------------------------------------------------------------------------------
    def _allowed(self, where: Filter) -> np.ndarray | None:
        """Sorted passage ids the filter lets through (None: all)."""
        if where.is_empty:
            return None
        snap = self._snap
        # The columns' facts (what Filter.allows reads), not the records: no record decoded.
        spans = [(int(snap.doc_start[k]), int(snap.doc_start[k + 1]))
                 for k, f in enumerate(snap.docs.facts()) if where.allows(f)]
        ids = (np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in spans]) if spans
               else np.zeros(0, np.int64))
        if where.phrases:
            ids = self._with_phrases(ids, where.phrases)
        return ids

    def _with_phrases(self, ids: np.ndarray, phrases: tuple[str, ...]) -> np.ndarray:
        """Those of `ids` whose text holds every phrase. The lexical postings of the phrases' terms
        narrow the passages to read; the text itself decides."""
        snap = self._snap
        for phrase in phrases:
            words = terms(phrase)
            for w in words:
                postings = snap.postings(w)
                ids = np.intersect1d(ids, postings, assume_unique=True) if postings is not None else ids[:0]
        return np.array([i for i in ids.tolist() if contains_phrases(snap.chunk(i).text, phrases)], np.int64)

    def search_dense(self, vector: np.ndarray, k: int, where: Filter = EVERYTHING) -> list[Hit]:
        if self._snap is None:
            return []
        ids, scores = self._snap.search_dense(vector, k, self._allowed(where))
        return [Hit(i, s) for i, s in zip(ids.tolist(), scores.tolist())]

    def search_lexical(self, terms: Sequence[str], k: int, where: Filter = EVERYTHING) -> list[Hit]:
        if self._snap is None:
            return []
        snap = self._snap
        scores = snap.bm25_scores_of_terms(list(terms))
        allowed = self._allowed(where)
        # Rank only the passages that hold a query term: sorting their postings is cheaper than a
        # partial sort of all scores (a million passages: ~5 ms) unless they hold half the collection.
        holders = snap.bm25_holders(list(terms), snap.n // 2)
        if holders is None:
            if allowed is not None:
                kept = np.zeros_like(scores)
                kept[allowed] = scores[allowed]
                scores = kept
            top = _top(scores, k)
        else:
            if allowed is not None:
                holders = holders[_members(holders, allowed)]
            top = holders[_top(scores[holders], k)]
        return [Hit(i, s) for i, s in zip(top.tolist(), scores[top].tolist()) if s > 0]

    def search_both(self, vector: np.ndarray, terms: Sequence[str], k: int, where: Filter = EVERYTHING) -> Searches:
        # In turn: both are in-memory work of about a millisecond, and handing the dense one to a
        # thread measured no faster (BENCHMARKS.md, session 13).
        return Searches(self.search_dense(vector, k, where), self.search_lexical(terms, k, where))

    def neighbours(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(list(ids), np.int64)
        snap = self._snap
        doc = snap.cols["p_doc"][ids]
        lo, hi = snap.doc_start[doc], snap.doc_start[doc.astype(np.int64) + 1]
        prev = np.where(ids - 1 >= lo, ids - 1, -1).astype(np.int64)
        nxt = np.where(ids + 1 < hi, ids + 1, -1).astype(np.int64)
        return prev, nxt

    def fetch(self, ids: Iterable[int]) -> Fetched:
        snap = self._snap
        asked = np.asarray(list(ids), np.int64)
        prev, _ = self.neighbours(asked)
        # The passage before each asked one comes along (features read the scene-setting paragraph).
        asked_set = set(asked.tolist())
        extra = [p for p in dict.fromkeys(prev.tolist()) if p >= 0 and p not in asked_set]
        all_ids = np.concatenate([asked, np.array(extra, np.int64)])
        local = {g: i for i, g in enumerate(all_ids.tolist())}
        previous = np.array([local.get(p, -1) if p >= 0 else -1 for p in prev.tolist()]
                            + [-1] * len(extra), np.int64)
        rows, _, offsets = segments(snap.sent_start[all_ids], snap.sent_start[all_ids + 1])
        chunks = tuple(snap.chunk(i) for i in all_ids.tolist())
        doc_ids = {c.doc_id for c in chunks}
        is_lead = snap.doc_start[snap.cols["p_doc"][all_ids]] == all_ids
        return Fetched(
            ids=all_ids, chunks=chunks, docs=snap.docs.many(doc_ids),
            # Stored as float16; the engine computes in float32.
            vectors=snap.vectors[all_ids].astype(np.float32), sent_vectors=snap.sent_vectors[rows].astype(np.float32),
            sent_start=offsets, sent_chars=snap.sentence_chars(rows), lexicon=_slice(snap.lexicon, rows, all_ids),
            stats=self, previous=previous, is_lead=is_lead,
            doc_terms={d: self._doc_terms(d) for d in doc_ids}, doc_text={d: self._doc_text(d) for d in doc_ids},
            cache=self._cache)

    def _doc_terms(self, doc_id: str) -> np.ndarray:
        """Sorted distinct term ids of a document's passages (kept: the version is immutable)."""
        key = ("doc terms", doc_id)
        if key not in self._cache:
            snap = self._snap
            lo, hi = snap.passage_range(doc_id)
            lex = snap.lexicon
            pos = np.arange(int(lex.start[snap.sent_start[lo]]), int(lex.start[snap.sent_start[hi]]))
            self._cache[key] = _distinct(lex.ids[pos])
        return self._cache[key]

    def _doc_text(self, doc_id: str) -> str:
        key = ("doc text", doc_id)
        if key not in self._cache:
            snap = self._snap
            lo, hi = snap.passage_range(doc_id)
            # Cut from the passages' stored bytes, without making their Chunks (~4 us each).
            bounds = snap.cols["p_text"][lo:hi + 1].astype(np.int64)
            raw = snap.text[int(bounds[0]):int(bounds[-1])].tobytes()
            cuts = (bounds - bounds[0]).tolist()
            text = b"\n".join([raw[a:b] for a, b in zip(cuts, cuts[1:])]).decode("utf-8")
            self._cache[key] = snap.docs[doc_id].title + "\n" + text if hi > lo else snap.docs[doc_id].title
        return self._cache[key]

    def passages_of(self, doc_id: str) -> PassageBatch:
        if self._snap is None or doc_id not in self._snap.docs:
            raise DocumentsError(f"no document {doc_id!r} in the index")
        snap = self._snap
        lo, hi = snap.passage_range(doc_id)
        return PassageBatch(snap.docs[doc_id], tuple(snap.chunks[lo:hi]), snap.vectors[lo:hi].astype(np.float32),
                            snap.sent_vectors[int(snap.sent_start[lo]):int(snap.sent_start[hi])].astype(np.float32))

    # -- writing ----------------------------------------------------------------------------------------
    def writer(self, settings: Settings, fresh: bool = False) -> "LocalWriter":
        return LocalWriter(self, settings, fresh)

    def _commit(self, write) -> "LocalBackend":
        """Write a new version with write(folder) and make it the live one."""
        tmp = self.store.new_version()
        try:
            write(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        final = self.store.commit(tmp)
        # Just written from checked data: the cheap checks suffice.
        return LocalBackend._bound(self.root, Snapshot.load(final, deep_at_open=0), final)

    def close(self) -> None:
        self._snap, self._cache = None, {}


class LocalWriter:
    """Changes to a LocalBackend, written as one new version at commit.

    Each batch given is staged on disk (staging.py) rather than held: the writer keeps at most
    about one embedding batch in memory, commit streams the staged segments and the kept stored
    documents into the new version, and a run killed before commit leaves its segments for the next
    writer with these settings to adopt (`resume`). The live version is untouched until commit.
    """

    # Batches given without a checkpoint (e.g. many relabelled documents) are staged at this size.
    SEGMENT_PASSAGES = 1024

    def __init__(self, backend: LocalBackend, settings: Settings, fresh: bool):
        self.backend, self.settings = backend, settings
        self._kept: dict[str, None] = dict.fromkeys(backend.documents() if not fresh else ())
        self._staged: dict[str, staging.Staged] = {}   # staged documents of this writer
        self._buffer: dict[str, PassageBatch] = {}     # given since the last checkpoint
        self._buffered = 0                             # passages in the buffer
        self._staging = staging.Staging(backend.root, settings)
        self._staging.drop_others()
        self._left = {p.doc.doc_id: p for p in self._staging.found()}  # earlier runs' segments
        self._segments = {p.segment for p in self._left.values()}      # removed at commit

    def upsert(self, batch: PassageBatch) -> None:
        doc_id = batch.doc.doc_id
        self._kept.pop(doc_id, None)
        self._staged.pop(doc_id, None)
        self._unbuffer(doc_id)
        self._buffer[doc_id] = batch
        self._buffered += len(batch.chunks)
        if self._buffered >= self.SEGMENT_PASSAGES:
            self.checkpoint()

    def delete(self, doc_id: str) -> None:
        self._kept.pop(doc_id, None)
        self._staged.pop(doc_id, None)
        self._unbuffer(doc_id)

    def _unbuffer(self, doc_id: str) -> None:
        batch = self._buffer.pop(doc_id, None)
        if batch is not None:
            self._buffered -= len(batch.chunks)

    def checkpoint(self) -> None:
        if self._buffer:
            for place in self._staging.write(list(self._buffer.values())):
                self._staged[place.doc.doc_id] = place
                self._segments.add(place.segment)
            self._buffer, self._buffered = {}, 0

    def resume(self, records: Mapping[str, DocInfo]) -> set[str]:
        adopted = set()
        for doc_id, place in self._left.items():  # records may be made on demand: asked for these only
            info = records.get(doc_id)
            # The passages and vectors depend only on the text (hash), the title (embedded with
            # each passage) and the settings (the staging folder's key).
            if info is not None and (place.doc.content_hash, place.doc.title, place.doc.chars) == (
                    info.content_hash, info.title, info.chars):
                self._kept.pop(doc_id, None)
                self._unbuffer(doc_id)
                self._staged[doc_id] = dataclasses.replace(place, doc=info)
                adopted.add(doc_id)
        return adopted

    def abort(self) -> None:
        """Drop the changes. Staged segments stay: a later run with these settings adopts them."""
        self._kept, self._staged, self._buffer, self._buffered = {}, {}, {}, 0

    def commit(self) -> LocalBackend:
        """Write the new version and make it the live one; returns a backend serving it (this
        writer's backend keeps serving the old version to questions already under way)."""
        self.checkpoint()
        snap = self.backend.snapshot
        kept = [snap.passage_range(d) for d in self._kept] if snap is not None else []
        staged = sorted((p for p in self._staged.values() if p.passages[1] > p.passages[0]),
                        key=lambda p: (p.segment.name, p.index))
        if not kept and not staged:
            raise DocumentsError("no passages to index: the documents have no article text")
        docs = _Docs(snap, np.array([snap.doc_row[d] for d in self._kept] if snap is not None else [], np.int64),
                     staged)
        ranges = _merged(kept)
        scratch = self._staging.scratch()
        try:
            vectors, sentences = _concatenate(scratch, snap, ranges, staged)
            chunks = _Chunks(snap, ranges, staged, self._staging, len(vectors))
            backend = self.backend._commit(lambda folder: snapshot.write(folder, self.settings, docs, chunks, vectors,
                                                                         sentences))
            del vectors, sentences
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._staging.remove(self._segments)
        return backend


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Passage ranges with touching neighbours joined (kept documents mostly lie in runs)."""
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _concatenate(scratch: Path, snap: Snapshot | None, ranges: list[tuple[int, int]],
                 staged: list[staging.Staged]) -> tuple[npyfile.NpyRows, npyfile.NpyRows]:
    """The new version's passage and sentence vectors (float16), written into `scratch` range by
    range and segment by segment with file reads and writes (npyfile.py): never the whole
    collection in memory, nor in memory maps."""
    parts = []  # (passage rows, sentence rows, source files)
    live = _live_rows(snap) if ranges else None
    for lo, hi in ranges:
        parts.append(((lo, hi), (int(snap.sent_start[lo]), int(snap.sent_start[hi])), live))
    opened: dict[Path, tuple] = {}
    for p in staged:
        if p.segment not in opened:  # a header read each: cheap, and the data is read later
            opened[p.segment] = tuple(npyfile.NpyRows(path) for path in staging.files(p.segment))
        parts.append((p.passages, p.sentences, opened[p.segment]))
    dim = int(parts[0][2][0].shape[1])
    for _, _, (src_p, src_s) in parts:
        if src_p.shape[1] != dim or src_s.shape[1] != dim:
            raise IndexCorruptError(f"staged vectors have {src_p.shape[1]} dimensions, the index {dim}")
    n = sum(hi - lo for (lo, hi), _, _ in parts)
    s = sum(hi - lo for _, (lo, hi), _ in parts)
    npyfile.write(scratch / "vectors.npy", np.float16, (n, dim),
                  (x for (lo, hi), _, (src, _) in parts for x in npyfile.slices(src, lo, hi)))
    npyfile.write(scratch / "sentences.npy", np.float16, (s, dim),
                  (x for _, (lo, hi), (_, src) in parts for x in npyfile.slices(src, lo, hi)))
    return npyfile.NpyRows(scratch / "vectors.npy"), npyfile.NpyRows(scratch / "sentences.npy")


def _live_rows(snap: Snapshot) -> tuple:
    """The live version's passage and sentence vectors, read from its files; its memory maps when
    the files are gone (a migrated copy opened from a folder already removed, see _migrate)."""
    paths = [snap.directory / snapshot.COLUMNS[name][0] for name in ("vectors", "sent_vectors")]
    if all(p.is_file() for p in paths):
        return tuple(npyfile.NpyRows(p) for p in paths)
    return snap.vectors, snap.sent_vectors


class _Docs(Sequence):
    """The new version's document records in storage order, made again on each pass (snapshot.write
    reads them three times), like _Chunks: the kept ones decoded from the live version a block at a
    time (`rows`: their rows there), then the staged ones. A list of them held every kept record
    decoded, ~0.75 KB a document."""

    def __init__(self, snap: Snapshot | None, rows: np.ndarray, staged: list[staging.Staged]):
        self._snap, self._rows, self._staged = snap, rows, staged

    def __len__(self) -> int:
        return len(self._rows) + len(self._staged)

    def __getitem__(self, i: int) -> DocInfo:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return self._snap.docs.at(int(self._rows[i])) if i < len(self._rows) else self._staged[i - len(self._rows)].doc

    def __iter__(self):
        if len(self._rows):
            yield from self._snap.docs.records(self._rows)
        for p in self._staged:
            yield p.doc


class _Chunks:
    """The new version's passages in storage order, made again on each pass (snapshot.write reads
    them three times) from the live version's columns and the staged segments: never all held."""

    def __init__(self, snap: Snapshot | None, ranges, staged: list[staging.Staged], area: staging.Staging, n: int):
        self._snap, self._ranges, self._staged, self._area, self._n = snap, ranges, staged, area, n

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        for lo, hi in self._ranges:
            yield from self._snap.iter_chunks(lo, hi)
        segment, chunks = None, []
        for p in self._staged:
            if p.segment != segment:
                segment, chunks = p.segment, self._area.chunks(p.segment)
            yield from chunks[p.index]


def check(root: str | os.PathLike) -> str:
    """Verify the live version of an index folder completely (`qa check`): every file's checksum
    and every value. Returns a one-line description of what was checked; raises
    IndexCorruptError on damage, DocumentsError if there is no index."""
    version = IndexStore(root).current()
    if version is None:
        raise DocumentsError(f"no index in {str(root)!r}")
    old = snapshot.manifest_format(version)
    if old in migrate.FROM_FORMATS:
        raise IndexFormatError(f"index is in format {old}: opening it (qa ask, qa index) migrates it "
                               f"to format {snapshot.FORMAT_VERSION}, without embedding again; check it then")
    snapshot.check(version)
    m = snapshot.read_manifest(version)
    return (f"index {version.name} is sound: {m['counts']['documents']} documents, {m['counts']['passages']} "
            f"passages, {len(m['files'])} files ({sum(m['sizes'].values()) / 2**20:.1f} MiB) verified")


def _slice(lex: Lexicon, rows: np.ndarray, ids: np.ndarray) -> Lexicon:
    """The lexicon arrays of some sentence rows (and passages), renumbered from 0."""
    tpos, _, tstart = segments(lex.start[rows], lex.start[rows + 1])
    npos, _, nstart = segments(lex.name_start[rows], lex.name_start[rows + 1])
    spos, _, sstart = segments(lex.same_start[ids], lex.same_start[ids + 1])
    return Lexicon(lex.ids[tpos], tstart, lex.flags[rows], lex.distinct[rows], lex.names[npos], nstart,
                   lex.name_words, lex.same[spos], sstart)


def _distinct(values: np.ndarray) -> np.ndarray:
    """np.unique(values), sorted: without it, whose first call imports numpy.ma (~10 ms of a cold
    question)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _members(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which of `values` are in `sorted_set` (ascending), as a boolean mask."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the (at most) k highest positive scores, best first, equal scores in index order
    (so the same question always gets the same list). A partial sort: O(n) on a million passages."""
    if len(scores) > k > 0:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        part = np.flatnonzero(scores >= kth) if kth > 0 else np.flatnonzero(scores > 0)
    else:
        part = np.flatnonzero(scores > 0) if k > 0 else np.zeros(0, np.int64)
    return part[np.lexsort((part, -scores[part]))][:k]
