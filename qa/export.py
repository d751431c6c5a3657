"""Answers and statement lists exported with their provenance (CSV, JSON, Markdown), and a check
that every exported quotation still stands, word for word, at its place in its source file."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from .types import Answer, Citation, Passage

FORMATS = ("csv", "json", "md")
COLUMNS = ("rank", "text", "highlight", "doc_id", "path", "start", "end", "page", "file_sha256", "encoding",
           "title", "outlet", "author", "date", "url", "question", "filters")


def rows(answer_or_statements) -> list[dict]:
    """One row per passage (per statement), with the question and the filters it was asked under."""
    from .statements import Statements, question_for

    if isinstance(answer_or_statements, Statements):
        st = answer_or_statements
        question = question_for(st.person, st.about)
        passages = [s.passage for s in st.statements]
        filters = st.filters
    else:
        question, passages, filters = answer_or_statements.question, answer_or_statements.passages, answer_or_statements.filters
    shown = "; ".join(f"{n}: {v}" for n, v in filters)
    return [_row(i, p, question, shown) for i, p in enumerate(passages, start=1)]


def _row(rank: int, p: Passage, question: str, filters: str) -> dict:
    c: Citation = p.citation
    return {"rank": rank, "text": p.text, "highlight": p.highlight, "doc_id": c.doc_id, "path": c.path,
            "start": c.start, "end": c.end, "page": c.page, "file_sha256": c.file_sha256, "encoding": c.encoding,
            "title": c.title, "outlet": c.outlet, "author": c.byline, "date": c.date, "url": c.url,
            "question": question, "filters": filters}


def render(answer_or_statements, fmt: str) -> str:
    """The export as text in one of FORMATS."""
    data = rows(answer_or_statements)
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
        return out.getvalue()
    if fmt == "md":
        return _markdown(data)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def _markdown(data: list[dict]) -> str:
    if not data:
        return "_No passages._\n"
    lines = [f"**Question:** {data[0]['question']}"]
    if data[0]["filters"]:
        lines.append(f"**Filters:** {data[0]['filters']}")
    for r in data:
        where = f"{r['doc_id']}, characters {r['start']}–{r['end']}" + (f", page {r['page']}" if r["page"] else "")
        facts = " · ".join(x for x in (r["outlet"], r["author"], r["date"], r["url"]) if x)
        lines += ["", f"{r['rank']}. {r['title']}" + (f" ({facts})" if facts else ""),
                  "", *("   > " + line for line in r["text"].splitlines() or [""]),
                  "", f"   Answering sentence: {r['highlight']}",
                  f"   Source: {where}; file SHA-256 {r['file_sha256'] or 'unknown'}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Check:
    """The outcome of checking one exported quotation against its source."""

    rank: int
    doc_id: str
    ok: bool
    reason: str = ""


def verify(path: str | Path) -> list[Check]:
    """Re-check every quotation of a CSV or JSON export against its source file.

    A quotation holds when the file still has the hash recorded (or, failing that, when the text at
    its offsets is still the quotation); for PDF and DOCX the text is extracted again the same way.
    """
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if text.lstrip().startswith("[") else list(csv.DictReader(io.StringIO(text)))
    return [_check(r) for r in data]


def _check(r: dict) -> Check:
    rank, doc = int(r["rank"]), r["doc_id"]
    try:
        start, end, path = int(r["start"]), int(r["end"]), Path(r["path"])
        raw = path.read_bytes()
    except (OSError, ValueError, KeyError) as exc:
        return Check(rank, doc, False, f"cannot read the source: {exc}")
    # No hash recorded (an index made before hashes were kept): the text at the offsets decides alone.
    same_file = not r.get("file_sha256") or hashlib.sha256(raw).hexdigest() == r["file_sha256"]
    try:
        source = _source_text(path, raw, r.get("encoding") or "")
    except Exception as exc:  # any failure to read it back means the quotation cannot be confirmed
        return Check(rank, doc, False, f"cannot read the source: {exc}")
    if source[start:end] != r["text"]:
        return Check(rank, doc, False, "the text at these offsets is no longer the quotation"
                     + ("" if same_file else " (the file has changed)"))
    return Check(rank, doc, True, "" if same_file else "the file has changed, but the quotation still stands")


def _source_text(path: Path, raw: bytes, encoding: str) -> str:
    if encoding and path.suffix.lower() not in (".html", ".htm"):
        # a text file: offsets index the text as Python reads it (universal newlines)
        return raw.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")
    from .ingest import read_document

    return read_document(path, path.parent, languages=None).text  # HTML, PDF, DOCX: extracted again
