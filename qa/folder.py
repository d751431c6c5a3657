"""Listing a documents folder: its article files with their size and modification time, and
reading (ingest.read_document) only those whose facts differ from the indexed ones.

Apart from ingest.py, whose cleaning rules, decoders and parsers cost ~20 ms to import: opening an
index whose files are unchanged, as every cold question does, never needs them.

The documents read are not held in memory: each one is written to a spool file as it is read and
read back when the indexer embeds it, so that memory does not grow with the folder (issue 13).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

from .errors import DocumentsError
from .types import Block, Document, Publication, Skipped

log = logging.getLogger("qa")

_PLAIN_SUFFIXES = (".txt", ".md")  # the text is the file's decoding; others are extracted from it
_HTML_SUFFIXES = (".html", ".htm")
_EXTRACTED_SUFFIXES = (".pdf", ".docx")  # those of formats.SUFFIXES (a test keeps them equal)
SUPPORTED_SUFFIXES = _PLAIN_SUFFIXES + _HTML_SUFFIXES + _EXTRACTED_SUFFIXES
DEFAULT_MAX_BYTES = 20_000_000
# The model and the stemmer are English: other languages are refused unless asked for.
DEFAULT_LANGUAGES = frozenset({"en"})


class _Entry(NamedTuple):
    """What stays in memory of one spooled document (a tuple: ~100 bytes with its hash)."""

    content_hash: str
    chars: int
    offset: int  # of its record in the spool file
    length: int  # of the record, in bytes


class DocumentSpool(Sequence[Document]):
    """The documents one read of a folder found, in doc_id order, kept in a spool file instead of
    memory: each is written whole as it is read, and read back, a new Document each time, when
    asked for (indexing, or a record to compare). A spooled document is exactly the one read: its
    text is the text its `content_hash` was computed from, however its file changed since.

    In memory stay only each document's content hash, characters and place in the file. The file
    is an unnamed temporary file (tempfile.TemporaryFile) in `directory` (the index folder: on
    disk, where /tmp may be memory); it disappears when the spool is closed or collected, or the
    process ends. Written by one thread (read_folder), then read by any: reads use pread.
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self._directory = directory
        self._file = None  # created by the first document: opening unchanged files writes nothing
        self._size = 0
        self._entries: dict[str, _Entry] = {}
        self._ids: tuple[str, ...] = ()

    def add(self, doc: Document) -> None:
        """Spool one document read (a later one with the same doc_id replaces it)."""
        if self._file is None:
            import tempfile  # only now: an open whose files are unchanged reads none

            self._file = tempfile.TemporaryFile(prefix=".read-", dir=self._directory)
        record = _encode(doc)
        self._file.write(record)
        self._entries[doc.doc_id] = _Entry(doc.content_hash, len(doc.text), self._size, len(record))
        self._size += len(record)
        self._ids = ()

    def sealed(self) -> "DocumentSpool":
        """This spool, written out and ready to be read back (read_folder calls it)."""
        if self._file is not None:
            self._file.flush()
        self._ids = tuple(sorted(self._entries))
        return self

    @property
    def ids(self) -> tuple[str, ...]:
        """The doc_ids, sorted."""
        return self._ids or tuple(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, doc_id) -> bool:
        return doc_id in self._entries

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.get(d) for d in self.ids[i]]
        return self.get(self.ids[i])

    def __iter__(self) -> Iterator[Document]:
        for doc_id in self.ids:
            yield self.get(doc_id)

    def get(self, doc_id: str) -> Document:
        """The document read as `doc_id`, read back from the spool (KeyError if none)."""
        entry = self._entries[doc_id]
        data = os.pread(self._file.fileno(), entry.length, entry.offset)
        doc = _decode(data)
        if doc.doc_id != doc_id or doc.content_hash != entry.content_hash or len(data) != entry.length:
            raise DocumentsError(f"the spooled copy of {doc_id} is damaged")  # never index another text
        return doc

    def content_hash(self, doc_id: str) -> str:
        return self._entries[doc_id].content_hash

    def chars(self, doc_id: str) -> int:
        return self._entries[doc_id].chars

    def hashes(self) -> dict[str, str]:
        """Content hash by doc_id (a new dict)."""
        return {d: e.content_hash for d, e in self._entries.items()}

    @property
    def total_chars(self) -> int:
        return sum(e.chars for e in self._entries.values())

    def close(self) -> None:
        """Delete the spool file now (the documents can no longer be read back)."""
        if self._file is not None:
            self._file.close()

    def __repr__(self) -> str:
        return f"DocumentSpool({len(self)} documents)"


# A spooled document: one line of UTF-8 JSON (JSON escapes newlines, so a record never holds
# one), lone surrogates passed through as decoding may leave them. No pickle.
def _encode(doc: Document) -> bytes:
    row = {f.name: getattr(doc, f.name) for f in fields(Document)}
    row["blocks"] = [x for b in doc.blocks for x in (b.start, b.end)]
    row["guess"] = asdict(doc.guess)
    text = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass") + b"\n"


def _decode(data: bytes) -> Document:
    row = json.loads(data.decode("utf-8", "surrogatepass"))
    edges = row["blocks"]
    row["blocks"] = tuple(Block(s, e) for s, e in zip(edges[::2], edges[1::2]))
    row["pages"] = tuple(row["pages"])
    guess = row["guess"]
    row["guess"] = Publication(**{**guess, "sources": tuple(tuple(x) for x in guess["sources"])})
    return Document(**row)


@dataclass(frozen=True)
class Folder:
    """What one read of a documents folder found.

    `documents` holds the documents read, on disk (DocumentSpool): each is read back when asked
    for. Close the folder (or use it in a with-statement) to delete its spool file at once.
    """

    documents: DocumentSpool
    skipped: tuple[Skipped, ...]
    # (size, mtime_ns) of every file listed, read or not, by doc_id, as stat gave them before reading.
    facts: dict[str, tuple[int, int]] = field(default_factory=dict)
    # doc_ids not read because their facts equal the known ones (see read_folder's `known`).
    unchanged: tuple[str, ...] = ()

    def close(self) -> None:
        self.documents.close()

    def __enter__(self) -> "Folder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class UnreadableDocumentError(DocumentsError):
    """One file cannot be ingested; `reason` is the short human reason used in Skipped."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"cannot ingest {path}: {reason}")
        self.reason = reason


def _doc_id(path: Path, root: Path) -> str:
    """POSIX path of `path` relative to `root`, as found (links not resolved)."""
    absolute = Path(os.path.abspath(path))
    for base in (lambda: Path(os.path.abspath(root)), lambda: Path(root).resolve()):  # resolve only if needed
        base = base()
        if absolute.is_relative_to(base):
            return absolute.relative_to(base).as_posix()
    return absolute.resolve().relative_to(Path(root).resolve()).as_posix()


def _walk(folder: Path, real_root: Path, skip, ancestors: frozenset[Path]) -> Iterator[str]:
    """Paths (as strings) of the supported files under `folder`, sorted, never leaving `real_root`;
    hidden names ignored. Plain files need no Path object: opening a large archive walks them all."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        skip(folder, f"cannot list folder ({exc.strerror})")
        return
    for entry in entries:
        if entry.name.startswith("."):
            log.debug("ignoring hidden %s", entry.path)
            continue
        suffix = os.path.splitext(entry.name)[1]
        supported = suffix.lower() in SUPPORTED_SUFFIXES
        try:
            if entry.is_symlink():
                target = Path(entry.path).resolve()
                if not target.is_relative_to(real_root):
                    if supported or target.is_dir():
                        skip(entry.path, "symbolic link leaves the folder")
                    continue
            if entry.is_dir(follow_symlinks=True):
                real = Path(entry.path).resolve()
                if real in ancestors:  # a link back up the tree would loop forever
                    log.debug("ignoring %s: symbolic link loop", entry.path)
                else:
                    yield from _walk(Path(entry.path), real_root, skip, ancestors | {real})
            elif supported:
                yield entry.path
            else:
                log.debug("ignoring %s: not an article file (%s)", entry.path, suffix or "no suffix")
        except (OSError, RuntimeError) as exc:
            skip(entry.path, f"cannot inspect ({exc})")


def read_folder(folder: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES,
                languages: frozenset[str] | None = DEFAULT_LANGUAGES,
                known: dict[str, tuple[int, int]] | None = None,
                spool_dir: str | os.PathLike | None = None) -> Folder:
    """Read every supported file under `folder`; unusable files are logged and listed as skipped.

    `known` maps doc_ids to the (size, mtime_ns) they had when last read: a file whose facts are
    the same is listed as unchanged without being read (opening a large archive costs one stat per
    file). Without it every file is read. The documents read are spooled to a temporary file in
    `spool_dir` (default: the system's temporary folder); see DocumentSpool.
    """
    root = Path(os.path.abspath(folder))
    if not root.exists():
        raise DocumentsError(f"documents folder {str(folder)!r} does not exist")
    if not root.is_dir():
        raise DocumentsError(f"documents folder {str(folder)!r} is not a directory")
    real_root = root.resolve()
    documents = DocumentSpool(spool_dir)
    skipped: list[Skipped] = []
    facts: dict[str, tuple[int, int]] = {}
    unchanged: list[str] = []

    def skip(path: Path, reason: str) -> None:
        log.warning("skipping %s: %s", path, reason)
        skipped.append(Skipped(str(path), reason))

    under = os.path.join(str(root), "")  # root/: _walk's paths are root/name... as built, unresolved
    for path in _walk(root, real_root, skip, frozenset({real_root})):
        try:
            # What _doc_id finds, without its path objects (~20 us a file, 2,225 at each BBC open).
            doc_id = path[len(under):] if path.startswith(under) else _doc_id(Path(path), root)
            if os.sep != "/":
                doc_id = doc_id.replace(os.sep, "/")
            st = os.stat(path)  # stat before reading: a later change shows
            facts[doc_id] = (st.st_size, st.st_mtime_ns)
            if known and known.get(doc_id) == facts[doc_id]:
                unchanged.append(doc_id)
                continue
            from .ingest import read_document  # only now: cleaning and decoding import much

            documents.add(read_document(Path(path), root, max_bytes, languages))
        except UnreadableDocumentError as exc:
            skip(path, exc.reason)
        except Exception as exc:  # one bad file must never stop the whole read
            skip(path, f"cannot read ({type(exc).__name__}: {exc})")
    return Folder(documents.sealed(), tuple(skipped), facts, tuple(sorted(unchanged)))
