"""Typed, frozen records that flow through the pipeline: ingest -> chunk -> embed -> index -> retrieve -> answer."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Block:
    """A kept paragraph of a document: text[start:end] of the raw file text."""

    start: int
    end: int


@dataclass(frozen=True)
class Publication:
    """Publication facts of a document; `sources` says where each known one came from (field, source)."""

    date: str | None = None      # ISO YYYY-MM-DD
    outlet: str | None = None
    author: str | None = None
    url: str | None = None
    sources: tuple[tuple[str, str], ...] = ()

    def merged_over(self, guess: "Publication") -> "Publication":
        """These facts where known, the guess's elsewhere."""
        mine, theirs = dict(self.sources), dict(guess.sources)
        values, sources = {}, []
        for name in PUBLICATION_FIELDS:
            value = getattr(self, name) or getattr(guess, name)
            values[name] = value
            if value:
                sources.append((name, mine.get(name) if getattr(self, name) else theirs.get(name, "document")))
        return Publication(**values, sources=tuple(sources))


PUBLICATION_FIELDS = ("date", "outlet", "author", "url")


@dataclass(frozen=True)
class Document:
    """One article as read from disk, with the paragraphs that survived noise removal.

    For a text file, `text` is the file's full text exactly as `Path(path).read_text(encoding=
    encoding)` returns it, so every offset in the pipeline points into the file itself. For a PDF
    or DOCX (`encoding` ""), it is the text the project extracts, the same on every read of the
    same file; `pages` holds the start offset of each page in it (empty for page-less formats).
    """

    doc_id: str
    path: str
    text: str
    blocks: tuple[Block, ...]
    title: str
    byline: str | None = None
    outlet: str | None = None
    content_hash: str = ""  # identifies `text` (see ingest._content_hash)
    encoding: str = "utf-8"
    pages: tuple[int, ...] = ()
    language: str | None = None  # ISO 639-1 code detected from the text; None when unsure
    file_sha256: str = ""  # of the file's bytes
    guess: Publication = Publication()  # date, outlet, author, URL as the document itself gives them

    def block_text(self, block: Block) -> str:
        return self.text[block.start : block.end]


@dataclass(frozen=True)
class DocInfo:
    """What the index keeps about a document (everything but its text)."""

    doc_id: str
    path: str
    title: str
    byline: str | None
    outlet: str | None
    content_hash: str
    chars: int
    # Defaults: indexes saved before these fields existed still load.
    encoding: str = "utf-8"
    pages: tuple[int, ...] = ()
    language: str | None = None
    file_sha256: str = ""
    # The file's size and modification time when it was read: opening an index compares these
    # cheap facts and reads only files whose facts differ (their content hash then decides).
    size: int = 0
    mtime_ns: int = 0
    # Publication facts in force (outlet and byline above too): a manifest's, else the guesses.
    date: str | None = None       # ISO YYYY-MM-DD; None when nobody gives it
    url: str | None = None
    meta_sources: tuple[tuple[str, str], ...] = ()  # (field, where it came from)
    guess: Publication = Publication()  # what the document itself gave

    def __post_init__(self):
        # Loaded from JSON, lists and dicts come back: tuples and a Publication keep DocInfo equal
        # to the one saved.
        object.__setattr__(self, "pages", tuple(self.pages))
        object.__setattr__(self, "meta_sources", tuple(tuple(x) for x in self.meta_sources))
        if isinstance(self.guess, dict):
            g = dict(self.guess)
            g["sources"] = tuple(tuple(x) for x in g.get("sources", ()))
            object.__setattr__(self, "guess", Publication(**g))


@dataclass(frozen=True)
class Chunk:
    """An indexed unit: a verbatim span of a document, split into sentences (absolute offsets)."""

    doc_id: str
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...]
    # Who makes the statement in each sentence (see attribution.py); empty until indexed.
    speakers: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class Citation:
    """Where a passage stands: `start:end` in its document's text (for a text file,
    `Path(path).read_text(encoding=...)[start:end]`); `page` counts from 1, None without pages."""

    doc_id: str
    title: str
    path: str
    start: int
    end: int
    outlet: str | None = None
    byline: str | None = None
    page: int | None = None
    date: str | None = None  # publication date, ISO YYYY-MM-DD
    url: str | None = None
    file_sha256: str = ""    # of the source file's bytes when it was indexed
    encoding: str = "utf-8"  # the text file's detected encoding ("" for PDF/DOCX: offsets are into the extracted text)


def page_of(pages, offset: int) -> int | None:
    """The page (counted from 1) holding `offset`, given each page's start offset; None if no pages."""
    return max(bisect_right(pages, offset), 1) if pages else None


@dataclass(frozen=True)
class Ranks:
    """Each retrieval method's 1-based rank for a passage (None: not in that method's list)."""

    dense: int | None
    bm25: int | None


@dataclass(frozen=True)
class Passage:
    """One ranked answer passage: verbatim text, the answering sentence(s), and its source."""

    text: str
    highlight: str
    score: float
    citation: Citation
    also_in: tuple[Citation, ...] = ()
    ranks: Ranks = field(default_factory=lambda: Ranks(None, None))
    # Offsets of the highlight inside the source file (same frame as citation.start/end).
    highlight_start: int = 0
    highlight_end: int = 0
    speaker: str | None = None
    # For "what did X say about Y": X makes a statement related to Y in this passage.
    statement: bool = False


@dataclass(frozen=True)
class Answer:
    """The reply to one question. `answered` is False when the documents do not answer it."""

    question: str
    answered: bool
    passages: tuple[Passage, ...]
    query: str = ""
    reason: str = ""
    # The filters the search was restricted by, as (name, value) for display, and how many
    # documents a date filter left out for having no known date.
    filters: tuple[tuple[str, str], ...] = ()
    undated_left_out: int = 0

    def to_dict(self) -> dict:
        """JSON-ready dict of the whole answer."""
        return asdict(self)


@dataclass(frozen=True)
class DocumentPage:
    """One page of the documents matching a search, and how many there are."""

    documents: tuple[DocInfo, ...]
    matching: int   # documents matching the search
    total: int      # documents in the index
    offset: int     # of the first one shown, counted from 0


@dataclass(frozen=True)
class IndexStatus:
    """What an index serves now: its backend kind, version, and size."""

    backend: str
    version: str
    documents: int
    passages: int

    def to_dict(self) -> dict:
        return asdict(self)


SENTENCE_VECTORS = ("in-passage", "separate")


@dataclass(frozen=True)
class Settings:
    """Everything that changes what the index contains; recorded in the manifest."""

    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    max_passage_chars: int = 1200
    # A paragraph shorter than this is joined with a neighbour when the two fit in
    # joined_max_chars (news paragraphs are often a single sentence).
    min_passage_chars: int = 400
    joined_max_chars: int = 700
    title_in_embedding: bool = True
    # Embed with a quantised int8 copy of the model: 1.5x faster than fp32 at no measured cost in
    # retrieval quality on SQuAD (BENCHMARKS.md); False uses the fp32 export.
    int8: bool = True
    # How sentence vectors (highlight and ranking features) are made: "separate" embeds every
    # sentence on its own as well as its passage; "in-passage" pools the passage's own token
    # embeddings over each sentence (one model pass per passage, about twice as fast to index, but
    # with the feature weights fitted on separate vectors SQuAD highlight fell 0.788 -> 0.772).
    sentence_vectors: str = "separate"
    # Version of the BM25 analyser (tokens, stopwords, stemmer): a change must rebuild the index.
    analyzer: str = "en-snowball-3"
    # Above this many passages the dense index switches from exact to approximate (IVF) search,
    # probing this many of its inverted lists per question.
    ann_threshold: int = 200_000
    ann_nprobe: int = 48

    def __post_init__(self):
        if self.sentence_vectors not in SENTENCE_VECTORS:
            raise ValueError(f"sentence_vectors must be one of {SENTENCE_VECTORS}, not {self.sentence_vectors!r}")

    def indexed_text(self, passage_text: str, title: str) -> str:
        """What is embedded and matched for a passage: its text, prefixed by the article title
        when configured (a paragraph often leaves the story's subject to the headline)."""
        return f"{title}\n{passage_text}" if self.title_in_embedding and title else passage_text


@dataclass(frozen=True)
class Skipped:
    """A file that was not ingested, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class IndexUpdate:
    """What an index build or update did."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()  # files not indexed, each with why
    rebuilt: bool = False
    reason: str = ""
    passages: int = 0

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rebuilt)
