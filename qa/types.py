"""Typed, frozen records that flow through the pipeline: ingest -> chunk -> embed -> index -> retrieve -> answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Block:
    """A kept paragraph of a document: text[start:end] of the raw file text."""

    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One article as read from disk, with the paragraphs that survived noise removal.

    `text` is the file's full text exactly as `Path(path).read_text(encoding="utf-8")` returns it,
    so every offset in the pipeline points into the file itself.
    """

    doc_id: str
    path: str
    text: str
    blocks: tuple[Block, ...]
    title: str
    byline: str | None = None
    outlet: str | None = None
    content_hash: str = ""

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
    """Where a passage stands: `Path(path).read_text(encoding="utf-8")[start:end]` is its text."""

    doc_id: str
    title: str
    path: str
    start: int
    end: int
    outlet: str | None = None
    byline: str | None = None


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


@dataclass(frozen=True)
class Answer:
    """The reply to one question. `answered` is False when the documents do not answer it."""

    question: str
    answered: bool
    passages: tuple[Passage, ...]
    query: str = ""
    reason: str = ""

    def to_dict(self) -> dict:
        """JSON-ready dict of the whole answer."""
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


@dataclass(frozen=True)
class IndexUpdate:
    """What an index build or update did."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    rebuilt: bool = False
    reason: str = ""
    passages: int = 0

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rebuilt)
