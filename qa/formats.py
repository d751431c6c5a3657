"""Readers for documents that are not plain text: PDF (its text layer) and DOCX.

Each reader is pure, bytes -> `Extracted`: the text as the project extracts it (citations' offsets
point into it), where each page starts in that text, and the file's title/author/date properties.
The same bytes always give the same text, so a re-read verifies against the indexed offsets.

PDF and DOCX come from untrusted folders and uploads, and their parsers can be made to loop, to
allocate without bound or to crash. `extract_isolated` runs a reader in a separate worker process
with a memory limit (setrlimit) and a time limit after which the worker is killed; readers also
refuse documents past a page, text-size or decompression limit.
"""

from __future__ import annotations

import io
import re
import threading
import zipfile
from dataclasses import dataclass
from datetime import datetime

PDF = "pdf"
DOCX = "docx"
SUFFIXES = {".pdf": PDF, ".docx": DOCX}
_KIND_NAMES = {PDF: "PDF", DOCX: "DOCX"}
# Pages of a PDF, paragraphs of a DOCX: a blank line, so that no paragraph runs across the break.
SEPARATOR = "\n\n"
# C0 controls other than tab and newline (some PDF fonts map glyphs to them), and lone surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True)
class Extracted:
    """A document's text as extracted, with its page starts and file properties."""

    text: str
    pages: tuple[int, ...] = ()  # start offset in `text` of each page; () when the format has none
    title: str | None = None
    author: str | None = None
    date: str | None = None  # creation date recorded in the file, ISO 8601


@dataclass(frozen=True)
class Limits:
    """What an untrusted PDF or DOCX may cost before it is refused."""

    seconds: float = 30.0
    memory_bytes: int = 1_500_000_000  # address space of the worker process, parser included
    max_pages: int = 2000
    max_chars: int = 5_000_000  # of extracted text; far beyond any article
    max_unzipped: int = 200_000_000  # total uncompressed size of a DOCX's parts
    max_ratio: int = 100  # compression ratio above which a large part is a decompression bomb


class FormatError(Exception):
    """The document cannot be read; `reason` is the short human reason shown in the index report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _clean_text(t: str) -> str:
    """One frame for all extracted text: "\\n" newlines, no control characters."""
    return _CONTROL.sub("", t.replace("\r\n", "\n").replace("\r", "\n"))


def _property(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    text = " ".join(_clean_text(str(value)).split())
    return text or None


def _join(parts: list[str], limits: Limits) -> tuple[str, tuple[int, ...]]:
    """Parts joined by SEPARATOR, and the start offset of each part in the result."""
    starts, pos = [], 0
    for part in parts:
        starts.append(pos)
        pos += len(part) + len(SEPARATOR)
        if pos > limits.max_chars:
            raise FormatError(f"more than {limits.max_chars:,} characters of text")
    return SEPARATOR.join(parts), tuple(starts)


# ---------------------------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------------------------


def pdf_text(data: bytes, limits: Limits = Limits()) -> Extracted:
    """The text layer of a PDF, page by page. Raises FormatError (scanned, encrypted, corrupt, too long)."""
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise FormatError("not a PDF file")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:  # many PDFs are encrypted with an empty user password: readable by anyone
                if not reader.decrypt(""):
                    raise FormatError("encrypted PDF (needs a password)")
            except (DependencyError, NotImplementedError) as exc:
                raise FormatError(f"encrypted PDF (cannot decrypt: {exc})") from None
        n = len(reader.pages)
        if n > limits.max_pages:
            raise FormatError(f"PDF has {n:,} pages (limit {limits.max_pages:,})")
        pages, total = [], 0
        for page in reader.pages:
            t = _clean_text(page.extract_text() or "")
            # A page with nothing but whitespace (a scan, a figure) adds no text but keeps its number.
            pages.append(t if t.strip() else "")
            total += len(t)
            if total > limits.max_chars:
                raise FormatError(f"more than {limits.max_chars:,} characters of text")
        meta = reader.metadata
    except FormatError:
        raise
    except FileNotDecryptedError:
        raise FormatError("encrypted PDF (needs a password)") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            AssertionError, RecursionError, OSError, zipfile.BadZipFile) as exc:
        raise FormatError(f"corrupt PDF ({type(exc).__name__})") from None
    if n == 0:
        raise FormatError("corrupt PDF (no pages)")
    if not any(pages):
        raise FormatError("scanned PDF: no text layer")
    text, starts = _join(pages, limits)
    title = author = date = None
    if meta is not None:
        try:
            title, author = _property(meta.title), _property(meta.author)
            date = _property(meta.creation_date)
        except Exception:  # a malformed property is no reason to lose the text
            pass
    return Extracted(text, starts, title, author, date)


# ---------------------------------------------------------------------------------------------
# DOCX
# ---------------------------------------------------------------------------------------------


def _check_zip(data: bytes, limits: Limits) -> None:
    """Refuse a non-zip, or a zip whose parts would inflate past the limits (a zip bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise FormatError("corrupt DOCX (not a zip archive)") from None
    total = sum(i.file_size for i in infos)
    bomb = any(i.file_size > 10_000_000 and i.file_size > limits.max_ratio * max(i.compress_size, 1)
               for i in infos)
    if bomb or total > limits.max_unzipped:
        raise FormatError(f"decompression bomb ({total:,} bytes once unzipped)")


def docx_text(data: bytes, limits: Limits = Limits()) -> Extracted:
    """The body paragraphs of a DOCX, one per blank-line-separated block. Raises FormatError."""
    _check_zip(data, limits)
    import docx
    from docx.opc.exceptions import OpcError

    try:
        document = docx.Document(io.BytesIO(data))
        paragraphs = [t for p in document.paragraphs if (t := _clean_text(p.text)).strip()]
        props = document.core_properties
        title, author = _property(props.title), _property(props.author)
        date = _property(props.created)
    except (OpcError, KeyError, ValueError, TypeError, AttributeError, zipfile.BadZipFile,
            OSError, RecursionError) as exc:
        raise FormatError(f"corrupt DOCX ({type(exc).__name__})") from None
    except Exception as exc:  # lxml's XMLSyntaxError and kin
        raise FormatError(f"corrupt DOCX ({type(exc).__name__})") from None
    if not paragraphs:
        raise FormatError("DOCX has no text")
    text, _ = _join(paragraphs, limits)
    return Extracted(text, (), title, author, date)


_READERS = {PDF: pdf_text, DOCX: docx_text}


def extract(kind: str, data: bytes, limits: Limits = Limits()) -> Extracted:
    """Run the reader for `kind` ("pdf" or "docx") in this process."""
    return _READERS[kind](data, limits)


# ---------------------------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------------------------


def _serve(conn, memory_bytes: int) -> None:
    """Worker loop: read (kind, data, limits), answer ("ok", Extracted) or ("skip", reason)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            kind, data, limits = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", extract(kind, data, limits))
        except FormatError as exc:
            reply = ("skip", exc.reason)
        except MemoryError:
            reply = ("skip", f"{_KIND_NAMES[kind]} needs more than {memory_bytes / 1e6:,.0f} MB to parse")
        except Exception as exc:  # whatever else a hostile file provokes in the parser
            reply = ("skip", f"corrupt {_KIND_NAMES[kind]} ({type(exc).__name__})")
        del data
        conn.send(reply)


class _Worker:
    """One parsing process, reused across files until it is killed or dies."""

    def __init__(self, memory_bytes: int):
        import multiprocessing

        # forkserver, not fork: the caller may be a threaded server, and a forked copy of it could
        # deadlock on a lock some other thread held at the fork.
        ctx = multiprocessing.get_context("forkserver")
        self.memory_bytes = memory_bytes
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, memory_bytes), daemon=True,
                                name="qa-format-reader")
        self.proc.start()
        child.close()

    def run(self, kind: str, data: bytes, limits: Limits) -> tuple[str, object]:
        try:
            self.conn.send((kind, data, limits))
            if not self.conn.poll(limits.seconds):
                self.stop()
                return "skip", f"{_KIND_NAMES[kind]} took longer than {limits.seconds:g} s to parse"
            return self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.stop()
            return "skip", f"{_KIND_NAMES[kind]} parser crashed (corrupt or hostile file)"

    def alive(self) -> bool:
        return self.proc.is_alive()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def extract_isolated(kind: str, data: bytes, limits: Limits = Limits()) -> Extracted:
    """Like `extract`, in the worker process under `limits`; raises FormatError for any refusal."""
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.alive() or _worker.memory_bytes != limits.memory_bytes:
            if _worker is not None:
                _worker.stop()
            _worker = _Worker(limits.memory_bytes)
        status, value = _worker.run(kind, data, limits)
    if status == "ok":
        return value
    raise FormatError(value)
