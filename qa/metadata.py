"""Publication facts of documents (date, outlet, author, URL), each with where it came from.

Guesses come from the document itself (HTML metadata through trafilatura, PDF/DOCX properties, a
byline or outlet line in the text). An optional manifest in the documents folder wins over them:
`qa-manifest.csv` (header `file,date,outlet,author,url`) or `qa-manifest.jsonl` (one object per
line with those keys), `file` being the path relative to the folder. A date nobody gives stays
unknown: it is never taken from the file's modification time.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from dataclasses import replace
from pathlib import Path

from .types import DocInfo, Publication

log = logging.getLogger("qa")

MANIFEST_NAMES = ("qa-manifest.csv", "qa-manifest.jsonl")
def iso_date(value) -> str | None:
    """A date as ISO YYYY-MM-DD from a date, a datetime or an ISO string (date or date-time);
    None when it is not one."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for candidate in (text, text[:10]):
        try:
            return dt.date.fromisoformat(candidate).isoformat()
        except ValueError:
            continue
    return None


def read_manifest(folder: str | Path) -> dict[str, Publication]:
    """The manifest's facts by doc_id ({} without a manifest); bad rows and values are warned about
    and left out, never guessed."""
    folder = Path(folder)
    for name in MANIFEST_NAMES:
        path = folder / name
        if path.is_file():
            try:
                rows = _rows(path)
            except (OSError, UnicodeDecodeError, csv.Error) as exc:
                log.warning("manifest %s cannot be read: %s", path, exc)
                return {}
            return dict(_facts(path, rows))
    return {}


def _rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError:
                log.warning("manifest %s line %d is not JSON; left out", path, n)
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _facts(path: Path, rows: list[dict]):
    for n, row in enumerate(rows, 1):
        file = str(row.get("file") or "").strip().replace("\\", "/")
        if not file:
            log.warning("manifest %s row %d names no file; left out", path, n)
            continue
        date = iso_date(row.get("date"))
        if row.get("date") and date is None:
            log.warning("manifest %s row %d: %r is not an ISO date; left out", path, n, row.get("date"))
        values = {"date": date, **{k: _text(row.get(k)) for k in ("outlet", "author", "url")}}
        yield file, Publication(**values, sources=tuple((k, "manifest") for k, v in values.items() if v))


def _text(value) -> str | None:
    return " ".join(str(value).split()) or None if value is not None else None


def effective(info: DocInfo, manifest: Publication | None) -> DocInfo:
    """The record with its publication facts: the manifest's where it gives them, else the document's
    own guesses (kept in `info.guess`, so a manifest row removed later restores them)."""
    facts = manifest.merged_over(info.guess) if manifest is not None else info.guess
    return replace(info, date=facts.date, outlet=facts.outlet, byline=facts.author, url=facts.url,
                   meta_sources=facts.sources)
