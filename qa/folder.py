"""Listing a documents folder: its article files with their size and modification time, and
reading (ingest.read_document) only those whose facts differ from the indexed ones.

Apart from ingest.py, whose cleaning rules, decoders and parsers cost ~20 ms to import: opening an
index whose files are unchanged, as every cold question does, never needs them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DocumentsError
from .types import Document, Skipped

log = logging.getLogger("qa")

_PLAIN_SUFFIXES = (".txt", ".md")  # the text is the file's decoding; others are extracted from it
_HTML_SUFFIXES = (".html", ".htm")
_EXTRACTED_SUFFIXES = (".pdf", ".docx")  # those of formats.SUFFIXES (a test keeps them equal)
SUPPORTED_SUFFIXES = _PLAIN_SUFFIXES + _HTML_SUFFIXES + _EXTRACTED_SUFFIXES
DEFAULT_MAX_BYTES = 20_000_000
# The model and the stemmer are English: other languages are refused unless asked for.
DEFAULT_LANGUAGES = frozenset({"en"})


@dataclass(frozen=True)
class Folder:
    """Everything read from a documents folder."""

    documents: tuple[Document, ...]
    skipped: tuple[Skipped, ...]
    # (size, mtime_ns) of every file listed, read or not, by doc_id.
    facts: dict[str, tuple[int, int]] = field(default_factory=dict)
    # doc_ids not read because their facts equal the known ones (see read_folder's `known`).
    unchanged: tuple[str, ...] = ()


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
                known: dict[str, tuple[int, int]] | None = None) -> Folder:
    """Read every supported file under `folder`; unusable files are logged and listed as skipped.

    `known` maps doc_ids to the (size, mtime_ns) they had when last read: a file whose facts are
    the same is listed as unchanged without being read (opening a large archive costs one stat per
    file). Without it every file is read.
    """
    root = Path(os.path.abspath(folder))
    if not root.exists():
        raise DocumentsError(f"documents folder {str(folder)!r} does not exist")
    if not root.is_dir():
        raise DocumentsError(f"documents folder {str(folder)!r} is not a directory")
    real_root = root.resolve()
    documents: list[Document] = []
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

            documents.append(read_document(Path(path), root, max_bytes, languages))
        except UnreadableDocumentError as exc:
            skip(path, exc.reason)
        except Exception as exc:  # one bad file must never stop the whole read
            skip(path, f"cannot read ({type(exc).__name__}: {exc})")
    documents.sort(key=lambda d: d.doc_id)
    return Folder(tuple(documents), tuple(skipped), facts, tuple(sorted(unchanged)))
