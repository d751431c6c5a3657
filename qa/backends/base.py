"""The search seam: what the engine needs from a place that stores passages, and nothing more.

The engine (retrieve, features, answer) talks to a `Backend` in the engine's own types. A backend
stores passages (verbatim spans of documents with their sentence spans and speakers), their vectors
and their sentences' vectors, the per-sentence lexical arrays made at index time (lexicon.py), and
per-document facts. It answers dense and lexical searches, both restricted by a `Filter` inside the
search (before top-k), and hands back the stored data of the candidates a question needs.

Passage ids are the backend's own integers: stable within one opened version of the collection,
never interpreted by the engine except as keys to `fetch` and `neighbours`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ContextManager, Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

from ..lexicon import Lexicon
from ..textutil import normalise
from ..types import Chunk, DocInfo, Settings


@dataclass(frozen=True)
class Filter:
    """Which passages a search may return; applied inside the search, before top-k.

    Args:
        sources: only passages of these doc_ids (None: any document).
        phrases: only passages containing each of these exact phrases (compared after
            textutil.normalise: case, spacing and quote style do not matter).
        since, until: only documents published on or after / on or before these ISO dates
            (YYYY-MM-DD); an undated document is left out by either.
        outlets: only documents of these outlets (normalised names; None: any).
        authors: only documents whose byline names one of these (normalised; None: any).
    """

    sources: frozenset[str] | None = None
    phrases: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    outlets: frozenset[str] | None = None
    authors: frozenset[str] | None = None

    @property
    def is_empty(self) -> bool:
        """True when the filter lets every passage through."""
        return (self.sources is None and not self.phrases and self.since is None and self.until is None
                and self.outlets is None and self.authors is None)

    def allows(self, doc: DocInfo) -> bool:
        """Does the filter let this document's passages through (before any phrase test)?

        Reads only doc_id, date, outlet and byline: a DocInfo or a backend's lighter record of
        those facts (doc_records.DocFacts) will do."""
        if self.sources is not None and doc.doc_id not in self.sources:
            return False
        if self.since is not None or self.until is not None:
            if doc.date is None or (self.since and doc.date < self.since) or (self.until and doc.date > self.until):
                return False
        if self.outlets is not None and normalise(doc.outlet or "") not in self.outlets:
            return False
        if self.authors is not None:
            byline = normalise(doc.byline or "")
            if not any(a in byline for a in self.authors):
                return False
        return True


EVERYTHING = Filter()


class DocSummary(NamedTuple):
    """What keeping the index in line with its folder reads of every stored document, without its
    record (backends.base.summaries)."""

    doc_id: str
    path: str | None  # None: read it from the record
    size: int
    mtime_ns: int
    content_hash: str
    as_guessed: bool  # the publication facts in force are the document's own guesses


class DocEntry(NamedTuple):
    """What a listing of documents shows, finds and sorts by, without the record (backends.base.entries)."""

    doc_id: str
    title: str
    date: str | None
    outlet: str | None
    byline: str | None


def as_guessed(x: DocInfo) -> bool:
    """Are the publication facts in force the document's own (no manifest changed them)?"""
    g = x.guess
    return (x.date, x.outlet, x.byline, x.url, x.meta_sources) == (g.date, g.outlet, g.author, g.url, g.sources)


def summaries(docs: Mapping[str, DocInfo]) -> Iterator[DocSummary]:
    """What keeping an index in line with its folder reads of every stored document: the local
    backend's columns (no record decoded), else made from the records."""
    if hasattr(docs, "summaries"):
        return docs.summaries()  # doc_records.Documents
    return (DocSummary(x.doc_id, x.path, x.size, x.mtime_ns, x.content_hash, as_guessed(x)) for x in docs.values())


def entries(docs: Mapping[str, DocInfo]) -> Iterator[DocEntry]:
    """Every stored document's DocEntry: the local backend's columns and titles (no record
    decoded), else made from the records."""
    if hasattr(docs, "entries"):
        return docs.entries()  # doc_records.Documents
    return (DocEntry(x.doc_id, x.title, x.date, x.outlet, x.byline) for x in docs.values())


def contains_phrases(text: str, phrases: tuple[str, ...]) -> bool:
    """Does a passage's text hold every (normalised) phrase?"""
    if not phrases:
        return True
    flat = normalise(text)
    return all(p in flat for p in phrases)


@dataclass(frozen=True)
class Hit:
    """One search result: a backend passage id and the method's score (higher is better)."""

    passage: int
    score: float


class Searches(NamedTuple):
    """A question's dense and lexical hits (Backend.search_both)."""

    dense: list[Hit]
    lexical: list[Hit]


@dataclass(frozen=True, eq=False)
class Fetched:
    """The stored data of some passages, numbered 0..n-1 in the order they were asked for.

    The answer stage works on these local numbers; `ids` maps them back to the backend's ids.
    Sentence rows are local too: passage i owns rows sent_start[i]:sent_start[i+1] of
    `sent_vectors`, `sent_chars` and the lexicon's per-sentence arrays.
    """

    ids: np.ndarray                # (n,) backend passage ids
    chunks: tuple[Chunk, ...]      # the passages
    docs: dict[str, DocInfo]       # every document of these passages
    vectors: np.ndarray            # (n, dim) unit passage vectors
    sent_vectors: np.ndarray       # (sentences, dim) unit sentence vectors
    sent_start: np.ndarray         # (n + 1,) first sentence row of each passage
    sent_chars: np.ndarray         # (sentences,) characters of each sentence
    lexicon: Lexicon               # per-sentence term ids, flags, names; `same` holds backend ids
    stats: "Stats"                 # collection statistics (document frequencies, vocabulary)
    previous: np.ndarray           # (n,) local number of the passage before it in its document, or -1
    is_lead: np.ndarray            # (n,) bool: the first passage of its document
    doc_terms: dict[str, np.ndarray]  # per document of these passages: its sorted distinct term ids
    doc_text: dict[str, str]       # per document: its title and passages, one text (names are found in it)
    # Derived data (e.g. a title's terms) computed once; a backend may share one dict across
    # questions for as long as its collection version is unchanged.
    cache: dict = field(default_factory=dict)

    def memo(self, key, compute):
        """cache[key], computed by compute() the first time."""
        try:
            return self.cache[key]
        except KeyError:
            value = self.cache[key] = compute()
            return value

    def __len__(self) -> int:
        return len(self.chunks)

    def sentence_rows(self, i: int) -> slice:
        return slice(int(self.sent_start[i]), int(self.sent_start[i + 1]))

    # The statistics the features ask for, under the names they use.
    def term_id(self, term: str) -> int | None:
        return self.stats.term_id(term)

    def doc_freq(self, term: str) -> int | None:
        return self.stats.doc_freq(term)

    @property
    def vocab_size(self) -> int:
        return self.stats.vocab_size

    @property
    def passages(self) -> int:
        """Passages in the whole collection (for idf)."""
        return self.stats.passages


@runtime_checkable
class Stats(Protocol):
    """Collection statistics the features need."""

    passages: int      # how many passages the collection holds
    vocab_size: int    # term ids run from 0 below this

    def term_id(self, term: str) -> int | None:
        """The id of an analysed term; None if no passage holds it."""

    def doc_freq(self, term: str) -> int | None:
        """How many passages hold an analysed term; None if none does."""


@dataclass(frozen=True, eq=False)
class PassageBatch:
    """One document's passages as the indexer hands them to a backend."""

    doc: DocInfo
    chunks: tuple[Chunk, ...]
    vectors: np.ndarray        # (passages, dim)
    sent_vectors: np.ndarray   # (sentences of all passages, dim), in passage order


@runtime_checkable
class Writer(Protocol):
    """Changes to a collection, seen by readers only after `commit` (all or nothing)."""

    def upsert(self, batch: PassageBatch) -> None:
        """Add a document's passages, replacing any it had."""

    def delete(self, doc_id: str) -> None:
        """Remove a document and all its passages."""

    def commit(self) -> "Backend":
        """Make the changes visible at once; returns a backend serving the new version."""

    def abort(self) -> None:
        """Drop the changes."""


@runtime_checkable
class Resumable(Protocol):
    """A writer that saves each batch as it is given, so that a run killed before its commit can be
    resumed: the next writer with the same settings adopts what was saved instead of the indexer
    embedding it again. Optional: the indexer uses it when a writer has it."""

    def checkpoint(self) -> None:
        """Save the batches given since the last checkpoint (the indexer calls it after each
        embedding batch)."""

    def resume(self, records: Mapping[str, DocInfo]) -> set[str]:
        """Adopt, as upserts with these records, the saved passages of those documents whose
        saved content (hash and title) is that of their record; returns their doc_ids. `records`
        may make each record when asked for: look up the saved documents, do not iterate it."""


class PendingChanges:
    """A writer's changes until commit: the stored documents it keeps as they are, and the new or
    replaced ones. Writers that rewrite a whole version at commit share this bookkeeping."""

    def __init__(self, stored: Iterable[str]):
        self._kept: dict[str, None] = dict.fromkeys(stored)  # stored documents not replaced or deleted
        self._new: dict[str, PassageBatch] = {}

    def upsert(self, batch: PassageBatch) -> None:
        self._kept.pop(batch.doc.doc_id, None)
        self._new[batch.doc.doc_id] = batch

    def delete(self, doc_id: str) -> None:
        self._kept.pop(doc_id, None)
        self._new.pop(doc_id, None)

    def abort(self) -> None:
        self._kept, self._new = {}, {}


@runtime_checkable
class Backend(Protocol):
    """A store of passages that the engine searches. Every implementation passes
    tests/backend_contract.py."""

    settings: Settings | None   # the settings the stored passages were made with (None: empty)
    problem: str                # why a stored collection could not be used ("" if it could or none existed)

    def documents(self) -> dict[str, DocInfo]:
        """Every stored document by doc_id (with its content hash)."""

    def stats(self) -> Stats:
        """Collection statistics."""

    def search_dense(self, vector: np.ndarray, k: int, where: Filter = EVERYTHING) -> list[Hit]:
        """The k passages closest to a unit vector (cosine), best first."""

    def search_lexical(self, terms: Sequence[str], k: int, where: Filter = EVERYTHING) -> list[Hit]:
        """The k best BM25 matches of analysed terms (score > 0), best first."""

    def search_both(self, vector: np.ndarray, terms: Sequence[str], k: int, where: Filter = EVERYTHING) -> Searches:
        """search_dense(vector, k, where) and search_lexical(terms, k, where) of one question, in
        one call: a backend whose searches are round trips to a server makes them side by side (so
        a question waits for one round trip, not two); one that searches in its own memory may
        make them in turn."""

    def fetch(self, ids: Iterable[int]) -> Fetched:
        """The stored data of these passages (and of the passage before each, for context)."""

    def neighbours(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """(previous, next) passage id of each in its document; -1 where there is none."""

    def passages_of(self, doc_id: str) -> PassageBatch:
        """All of a document's stored passages with their vectors, in document order."""

    def writer(self, settings: Settings, fresh: bool = False) -> Writer:
        """Start changes; `fresh` starts from an empty collection (a rebuild)."""

    def lock(self) -> ContextManager:
        """Hold while planning and writing changes: serialises writers of one collection."""

    def is_current(self, ask: bool = True) -> bool:
        """Is the version this backend serves still the collection's live one? With `ask` False, a
        backend whose check is a round trip answers from what it last learnt, never blocking on a
        new call (it may start one in the background for the next look)."""

    def reopen(self) -> "Backend":
        """A backend of the same kind serving the collection's live version now."""

    def close(self) -> None:
        """Release files and connections."""
