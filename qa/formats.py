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

import atexit
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


# Titles that writing programs put in a file's properties by default: a file name, "Untitled".
_NOT_A_TITLE = re.compile(r"(?i)^(?:untitled\b.*|microsoft (?:word|powerpoint) - .*|.*\.(?:docx?|pdf|txt|rtf|odt|indd|qxd))$")


def _title(value) -> str | None:
    title = _property(value)
    return None if title is None or _NOT_A_TITLE.match(title) else title


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

_SHORT_LINE = 0.75  # of the page's full line width: a line this short ends its paragraph


def _paragraphs(page: str) -> str:
    """A PDF page's lines rejoined into paragraphs, one per blank-line-separated block.

    A PDF stores lines, not paragraphs. A line well short of the page's full width (its 90th
    percentile) ends a paragraph or is a heading: a blank line follows it. Other line breaks are
    wraps inside a paragraph and become spaces, except after a hyphen (kept: "well-" / "known"
    or "inter-" / "national" cannot be told apart here; clean() joins such lines).
    """
    lines = page.split("\n")
    widths = sorted(len(x.strip()) for x in lines if x.strip())
    if len(widths) < 3:
        return page
    full = widths[int(0.9 * (len(widths) - 1))]
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i + 1 == len(lines):
            break
        body = line.strip()
        if not body or not lines[i + 1].strip() or body.endswith("-"):
            out.append("\n")
        elif len(body) < _SHORT_LINE * full:
            out.append("\n\n")
        else:
            out.append(" ")
    return "".join(out)


# pypdf keeps every object it resolves (a page's content stream, compressed and decoded, its
# resources) for the reader's life, about 7 KB a page beyond the text. Forgetting what the last
# few pages resolved keeps that bounded; the objects are read again from the file if needed.
_RELEASE_EVERY = 8  # pages


def _release(reader, keep: frozenset) -> None:
    """Drop the objects resolved since `keep` (the document's skeleton) was taken from the cache.

    `resolved_objects` is pypdf's cache of indirect objects, consulted before the file is read
    again; without it (another pypdf), pages are still read correctly, only with more memory.
    Objects stored inside an object stream stay: pypdf re-parses the whole stream to get one back,
    and they are small (no stream can be in one: content, images and fonts are all released).
    """
    cache = getattr(reader, "resolved_objects", None)
    in_streams = getattr(reader, "xref_objStm", {})
    if isinstance(cache, dict):
        for generation, number in cache.keys() - keep:
            if generation != 0 or number not in in_streams:
                del cache[generation, number]


def _pdf_pages(data: bytes, limits: Limits, emit) -> tuple[str | None, str | None, str | None]:
    """Pass each page's text to `emit` as it is read, in order; return the title, author and date.

    A page with nothing but whitespace (a scan, a figure) is emitted as "": no text, but it keeps
    its number. Raises FormatError (scanned, encrypted, corrupt, too long); pages emitted before
    then are to be discarded.
    """
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    if b"%PDF-" not in data[:1024]:  # readers accept a header anywhere in the first kilobyte
        raise FormatError("not a PDF file")
    n = joined = 0  # `joined`: the length of the text once the pages are joined (see _join)
    any_text = False
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
        keep = frozenset(getattr(reader, "resolved_objects", ()))  # the page tree, trailer, xref streams
        total = 0
        for i, page in enumerate(reader.pages, start=1):
            t = _paragraphs(_clean_text(page.extract_text() or ""))
            total += len(t)
            if total > limits.max_chars:
                raise FormatError(f"more than {limits.max_chars:,} characters of text")
            t = t if t.strip() else ""
            any_text = any_text or bool(t)
            joined += len(t) + len(SEPARATOR)
            emit(t)
            if i % _RELEASE_EVERY == 0:
                _release(reader, keep)
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
    if not any_text:
        raise FormatError("scanned PDF: no text layer")
    if joined > limits.max_chars:  # what _join refuses, checked before any page is joined
        raise FormatError(f"more than {limits.max_chars:,} characters of text")
    title = author = date = None
    if meta is not None:
        try:
            title, author = _title(meta.title), _property(meta.author)
            date = _property(meta.creation_date)
        except Exception:  # a malformed property is no reason to lose the text
            pass
    return title, author, date


def pdf_text(data: bytes, limits: Limits = Limits()) -> Extracted:
    """The text layer of a PDF, page by page. Raises FormatError (scanned, encrypted, corrupt, too long)."""
    pages: list[str] = []
    title, author, date = _pdf_pages(data, limits, pages.append)
    text, starts = _join(pages, limits)
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
        title, author = _title(props.title), _property(props.author)
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
# A fresh interpreter (subprocess), not multiprocessing: forking a threaded server can deadlock,
# and multiprocessing's spawn and forkserver re-import the caller's main script. A request is one
# JSON header line and the file's bytes; a reply is JSON lines: a PDF's pages one line each as
# they are read (so that the worker holds no page's text once it is sent), then one closing line
# with the properties, or with the reason for a refusal (pages already sent are then discarded).
# No pickle from a process that has just parsed a hostile file.


def _out_of_memory(exc: BaseException | None) -> bool:
    """A MemoryError, or an error raised while handling one (a lazy import that could not load)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, MemoryError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _reply(kind: str, memory_bytes: int, data: bytes, limits: Limits, emit) -> dict:
    """The closing line of a reply; a PDF's pages go to `emit` (a dict each) before it."""
    try:
        if kind == PDF:
            title, author, date = _pdf_pages(data, limits, lambda t: emit({"page": t}))
            return {"end": True, "title": title, "author": author, "date": date}
        got = extract(kind, data, limits)
    except FormatError as exc:
        return {"skip": exc.reason}
    except Exception as exc:  # whatever else a hostile file provokes in the parser
        if _out_of_memory(exc):
            return {"skip": f"{_KIND_NAMES[kind]} needs more than {memory_bytes / 1e6:,.0f} MB to parse"}
        return {"skip": f"corrupt {_KIND_NAMES[kind]} ({type(exc).__name__})"}
    return {"text": got.text, "pages": list(got.pages), "title": got.title, "author": got.author,
            "date": got.date}


def _serve(memory_bytes: int) -> None:
    """Worker loop on stdin/stdout, under an address-space limit."""
    import json
    import logging
    import resource
    import sys

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # warnings about sloppy files are not errors
    # Imported before the limit (pypdf.filters is otherwise imported on the first page), so that
    # the limit bounds parsing alone.
    import docx  # noqa: F401
    import pypdf.filters  # noqa: F401

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    src, out = sys.stdin.buffer, sys.stdout.buffer

    def emit(message: dict) -> None:  # buffered: the pipe is written a few pages at a time
        out.write(json.dumps(message, ensure_ascii=True).encode())
        out.write(b"\n")

    while True:
        line = src.readline()
        if not line:
            return
        head = json.loads(line)
        data = src.read(head["size"])
        reply = _reply(head["kind"], memory_bytes, data, Limits(**head["limits"]), emit)
        del data
        emit(reply)
        out.flush()


class _Worker:
    """One parsing process, reused across files until it is killed or dies."""

    def __init__(self, memory_bytes: int):
        import os
        import subprocess
        import sys
        from pathlib import Path

        self.memory_bytes = memory_bytes
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from qa.formats import _serve; _serve({int(memory_bytes)})"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def run(self, kind: str, data: bytes, limits: Limits) -> dict:
        """The reply's closing line, with the PDF pages before it under "pages_text"."""
        import json
        import os
        import select
        import time
        from dataclasses import asdict

        name = _KIND_NAMES[kind]
        try:
            head = {"kind": kind, "size": len(data), "limits": asdict(limits)}
            self.proc.stdin.write(json.dumps(head).encode() + b"\n")
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            deadline = time.monotonic() + limits.seconds
            fd, pending, pages = self.proc.stdout.fileno(), bytearray(), []
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    self.stop()
                    return {"skip": f"{name} took longer than {limits.seconds:g} s to parse"}
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise EOFError
                # Each complete line is decoded as it comes, so that only the pages' text is kept.
                start, searched = 0, len(pending)
                pending += chunk
                end = pending.find(b"\n", searched)  # a long line is searched once, not once per chunk
                while end >= 0:
                    message = json.loads(pending[start:end])
                    if "page" not in message:
                        return {**message, "pages_text": pages} if "end" in message else message
                    pages.append(message["page"])
                    start, end = end + 1, pending.find(b"\n", end + 1)
                del pending[:start]
        except (EOFError, OSError, ValueError):
            self.stop()
            return {"skip": f"{name} parser crashed (corrupt or hostile file)"}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


_worker: _Worker | None = None
_worker_lock = threading.Lock()


@atexit.register
def _stop_worker() -> None:
    with _worker_lock:
        if _worker is not None:
            _worker.stop()


def extract_isolated(kind: str, data: bytes, limits: Limits = Limits()) -> Extracted:
    """Like `extract`, in the worker process under `limits`; raises FormatError for any refusal."""
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.alive() or _worker.memory_bytes != limits.memory_bytes:
            if _worker is not None:
                _worker.stop()
            _worker = _Worker(limits.memory_bytes)
        reply = _worker.run(kind, data, limits)
    if "skip" in reply:
        raise FormatError(reply["skip"])
    if "end" in reply:  # a PDF: its pages, joined here once
        text, starts = _join(reply.pop("pages_text"), limits)
        return Extracted(text, starts, reply["title"], reply["author"], reply["date"])
    return Extracted(reply["text"], tuple(reply["pages"]), reply["title"], reply["author"], reply["date"])
