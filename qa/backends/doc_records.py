"""The document records of a saved local version (format 4), read on demand.

Opening must not cost anything per document beyond its id: a collection of 250,000 documents
parsed whole into DocInfo objects took 2.5 s of every open. So the records are stored one per
line and decoded only when asked for; what whole-collection code reads of every document (a
question's filter: date, outlet, byline; keeping the index in line with the folder at every
start: file size and mtime, content hash, path, whether the publication facts are the
document's own; the deep checks: characters) are columns, memory-mapped.

    doc_ids.json      the doc_ids, in storage order (parsed at open: the id -> row map)
    documents.jsonl   one DocInfo per line, compact JSON without the fields at their defaults
    doc_offsets.npy   int64 (documents + 1): record k is documents.jsonl[offsets[k]:offsets[k+1]]
    doc_crc.npy       uint32 (documents): zlib.crc32 of each record's bytes, checked when decoded
    doc_chars.npy     int64 (documents): each document's characters
    doc_facts.npy     int32 (documents, 3): each document's date, outlet and byline as rows of the
                      lists in doc_facts.json (-1: none)
    doc_file.npy      int64 (documents, 2): the file's size and mtime_ns when read
    doc_hash.npy      S64 (documents): the content hash (ASCII)
    doc_place.npy     int32 (documents, 2): the folder the path is `folder/doc_id` under, as a row
                      of doc_facts.json's "folder" (-1: another path, read from the record); 1 if
                      the publication facts in force are the document's own guesses, else 0
    doc_facts.json    {"date": [...], "outlet": [...], "byline": [...], "folder": [...]}: the
                      distinct values
    doc_titles.json   the titles, in storage order: hashed at open with the other JSON files,
                      parsed at the first listing of documents (found and sorted without records)

A record is checked when decoded (its checksum, its doc_id, and its characters and facts against
the columns), so damage raises IndexCorruptError rather than giving a wrong record.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import IndexCorruptError
from ..types import DocInfo
from .base import DocEntry, DocSummary, as_guessed

IDS, RECORDS, FACTS, TITLES = "doc_ids.json", "documents.jsonl", "doc_facts.json", "doc_titles.json"
COLUMNS = {  # as snapshot.COLUMNS: name -> (file, dtype, shape in terms of the counts)
    "d_offsets": ("doc_offsets.npy", np.int64, ("documents+1",)),
    "d_crc": ("doc_crc.npy", np.uint32, ("documents",)),
    "d_chars": ("doc_chars.npy", np.int64, ("documents",)),
    "d_facts": ("doc_facts.npy", np.int32, ("documents", 3)),
    "d_file": ("doc_file.npy", np.int64, ("documents", 2)),
    "d_hash": ("doc_hash.npy", np.dtype("S64"), ("documents",)),
    "d_place": ("doc_place.npy", np.int32, ("documents", 2)),
}
FACT_FIELDS = ("date", "outlet", "byline")
HASH_BYTES = 64
FILES = frozenset({IDS, RECORDS, FACTS, TITLES} | {f for f, _, _ in COLUMNS.values()})

CACHE = 8192  # records kept decoded (a question touches tens; a listing pages through some)
BLOCK = 1024  # records decoded at a time when reading many


class DocFacts(NamedTuple):
    """What a Filter reads of a document (backends.base.Filter.allows), without its record."""

    doc_id: str
    date: str | None
    outlet: str | None
    byline: str | None


class Documents(Mapping):
    """The stored documents as a read-only Mapping doc_id -> DocInfo, in storage order; a record is
    decoded on first access (the last CACHE kept)."""

    def __init__(self, ids: Sequence[str], records: np.ndarray, cols: dict[str, np.ndarray],
                 tables: dict[str, list[str]], titles: Path | None = None):
        self.ids = tuple(ids)
        self.row = {d: k for k, d in enumerate(self.ids)}
        self._records, self._cols = records, cols
        # None appended: code -1 (no value) picks it.
        self._tables = tuple(list(tables[f]) + [None] for f in FACT_FIELDS)
        self._folders = list(tables["folder"])
        self._cache: dict[int, DocInfo] = {}
        self._titles_file, self._titles = titles, None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __contains__(self, doc_id) -> bool:
        return doc_id in self.row

    def __getitem__(self, doc_id: str) -> DocInfo:
        return self.at(self.row[doc_id])

    def __repr__(self) -> str:
        return f"<Documents: {len(self)} stored>"

    def at(self, k: int) -> DocInfo:
        """The record of the document in row k."""
        try:
            return self._cache[k]
        except KeyError:
            pass
        if len(self._cache) >= CACHE:
            self._cache.clear()
        info = self._cache[k] = self._decode(k)
        return info

    @property
    def chars(self) -> np.ndarray:
        """Characters of every document, in storage order."""
        return self._cols["d_chars"]

    def facts(self) -> Iterator[DocFacts]:
        """Every document's filter facts, in storage order, from the columns (no record decoded)."""
        codes = self._cols["d_facts"]
        dates, outlets, bylines = self._tables
        for d, a, b, c in zip(self.ids, codes[:, 0].tolist(), codes[:, 1].tolist(), codes[:, 2].tolist()):
            yield DocFacts(d, dates[a], outlets[b], bylines[c])

    def entries(self) -> Iterator[DocEntry]:
        """Every document's DocEntry, in storage order: the titles (read once, then kept) and the
        fact columns, no record decoded."""
        return (DocEntry(f.doc_id, t, f.date, f.outlet, f.byline) for f, t in zip(self.facts(), self.titles()))

    def titles(self) -> list[str]:
        if self._titles is None:
            titles = json.loads(self._titles_file.read_text("utf-8")) if self._titles_file else []
            if not isinstance(titles, list) or len(titles) != len(self.ids) or not set(map(type, titles)) <= {str}:
                raise IndexCorruptError(f"{TITLES} is not the documents' titles")
            self._titles = titles
        return self._titles

    def summaries(self) -> Iterator[DocSummary]:
        """Every document's DocSummary, in storage order, from the columns (no record decoded)."""
        c, folders = self._cols, self._folders
        size, mtime = c["d_file"][:, 0].tolist(), c["d_file"][:, 1].tolist()
        for k in range(0, len(self.ids), 1 << 14):  # the hashes in blocks: 64 bytes each
            part = slice(k, k + (1 << 14))
            try:
                hashes = [h.decode("ascii") for h in c["d_hash"][part].tolist()]
            except UnicodeDecodeError:
                raise IndexCorruptError("a stored content hash is damaged") from None
            places = c["d_place"][part].tolist()
            for j, (d, h, (folder, guessed)) in enumerate(zip(self.ids[part], hashes, places)):
                yield DocSummary(d, f"{folders[folder]}/{d}" if folder >= 0 else None, size[k + j], mtime[k + j], h,
                                 bool(guessed))

    def _columns(self, rows: np.ndarray) -> list[tuple]:
        """What the columns say of the documents in these rows, each as `_columns_of` says it of a
        record."""
        c, folders = self._cols, self._folders
        dates, outlets, bylines = self._tables
        hashes = [h.decode("ascii") for h in c["d_hash"][rows].tolist()]
        return [(chars, dates[a], outlets[b], bylines[e], size, mtime, h, f"{folders[f]}/{self.ids[k]}" if f >= 0 else None,
                 bool(guessed))
                for k, chars, (a, b, e), (size, mtime), h, (f, guessed)
                in zip(rows.tolist(), c["d_chars"][rows].tolist(), c["d_facts"][rows].tolist(),
                       c["d_file"][rows].tolist(), hashes, c["d_place"][rows].tolist())]

    @staticmethod
    def _columns_of(x: DocInfo, path_known: bool) -> tuple:
        return (x.chars, x.date, x.outlet, x.byline, x.size, x.mtime_ns, x.content_hash,
                x.path if path_known else None, as_guessed(x))

    def _decode(self, k: int) -> DocInfo:
        return self._decode_at(np.array([k], np.int64))[0]

    def _decode_rows(self, lo: int, hi: int) -> Iterator[DocInfo]:
        """The records of documents lo..hi-1, decoded a block at a time."""
        for start in range(lo, hi, BLOCK):
            yield from self._decode_at(np.arange(start, min(hi, start + BLOCK), dtype=np.int64))

    def records(self, rows: np.ndarray) -> Iterator[DocInfo]:
        """The records of the documents in these rows, in that order, decoded a block at a time and
        not kept (writing a new version passes over every kept record: it would only churn the
        cache)."""
        for start in range(0, len(rows), BLOCK):
            yield from self._decode_at(np.asarray(rows[start:start + BLOCK], np.int64))

    def many(self, doc_ids: Iterable[str]) -> dict[str, DocInfo]:
        """The records of these documents, those not kept decoded in one pass over the columns
        (a question's ~100 documents: numpy's per-value reads cost ~1 us each)."""
        rows = {d: self.row[d] for d in doc_ids}
        if len(self._cache) + len(rows) > CACHE:
            self._cache.clear()
        missing = sorted({k for k in rows.values() if k not in self._cache})
        if missing:
            self._cache.update(zip(missing, self._decode_at(np.array(missing, np.int64))))
        return {d: self._cache[k] for d, k in rows.items()}

    def _decode_at(self, rows: np.ndarray) -> list[DocInfo]:
        """The records of the documents in these rows, each checked: its crc32, doc_id, and what
        the columns say of it."""
        c = self._cols
        starts, ends = c["d_offsets"][rows].tolist(), c["d_offsets"][rows + 1].tolist()
        crcs = c["d_crc"][rows].tolist()
        try:
            expected = self._columns(rows)
        except Exception as exc:  # e.g. a hash that is not ASCII
            raise IndexCorruptError(f"the document columns are damaged: {type(exc).__name__}: {exc}") from exc
        out = []
        for k, a, b, crc, columns in zip(rows.tolist(), starts, ends, crcs, expected):
            doc_id = self.ids[k]
            record = self._records[a:b].tobytes()
            if zlib.crc32(record) != crc:
                raise IndexCorruptError(f"the stored record of {doc_id!r} is damaged (checksum)")
            try:
                info = DocInfo(**json.loads(record))
                agree = info.doc_id == doc_id and self._columns_of(info, columns[7] is not None) == columns
            except Exception as exc:  # whatever damage makes parsing raise
                raise IndexCorruptError(f"the stored record of {doc_id!r} is damaged: {type(exc).__name__}: "
                                        f"{exc}") from exc
            if not agree:
                raise IndexCorruptError(f"the stored record of {doc_id!r} disagrees with the document columns")
            out.append(info)
        return out

    def values(self) -> ValuesView:
        return _Values(self)

    def items(self) -> ItemsView:
        return _Items(self)

    # -- checks ---------------------------------------------------------------------------------
    def check_structure(self, documents: int) -> None:
        """Counts, end points, and the columns' values: a few ms at 250,000 documents (vectorised
        over 20 bytes a document), and afterwards no offset or fact code can point astray."""
        off, codes, places = self._cols["d_offsets"], self._cols["d_facts"], self._cols["d_place"]
        if (len(self.ids) != documents or len(self.row) != len(self.ids) or int(off[0]) != 0
                or int(off[-1]) != len(self._records)):
            raise IndexCorruptError("document records disagree with the counts (or a doc_id is stored twice)")
        if np.any(np.diff(off) < 1) or (documents and int(self._cols["d_chars"].min()) < 0):
            raise IndexCorruptError("document record offsets do not ascend, or a document has no size")
        for j, table in enumerate(self._tables):
            if documents and (int(codes[:, j].min()) < -1 or int(codes[:, j].max()) >= len(table) - 1):
                raise IndexCorruptError(f"a document's {FACT_FIELDS[j]} is not stored")
        if documents and (int(places[:, 0].min()) < -1 or int(places[:, 0].max()) >= len(self._folders)
                          or not set(np.unique(places[:, 1]).tolist()) <= {0, 1}):
            raise IndexCorruptError("a document's folder is not stored")

    def check_contents(self) -> None:
        """Every record decoded and checked (O(documents): the deep checks)."""
        for info, title in zip(self._decode_rows(0, len(self.ids)), self.titles()):
            if info.title != title:
                raise IndexCorruptError(f"the stored title of {info.doc_id!r} disagrees with its record")


class _Values(ValuesView):
    """Every record in storage order, decoded by blocks and not kept (a whole pass would only
    churn the cache)."""

    def __iter__(self):
        docs = self._mapping
        return docs._decode_rows(0, len(docs))


class _Items(ItemsView):
    def __iter__(self):
        docs = self._mapping
        return zip(docs.ids, docs._decode_rows(0, len(docs)))


def load(d: Path, cols: dict[str, np.ndarray]) -> Documents:
    """The documents of the version in `d` (its columns already mapped and shape-checked)."""
    ids = json.loads((d / IDS).read_text("utf-8"))
    # Types read in C (map): hundreds of thousands of ids.
    if not isinstance(ids, list) or not set(map(type, ids)) <= {str}:
        raise IndexCorruptError(f"{IDS} is not a list of doc_ids")
    tables = json.loads((d / FACTS).read_text("utf-8"))
    if not (isinstance(tables, dict) and all(isinstance(tables.get(f), list) and set(map(type, tables[f])) <= {str}
                                             for f in (*FACT_FIELDS, "folder"))):
        raise IndexCorruptError(f"{FACTS} does not list the distinct facts")
    size = (d / RECORDS).stat().st_size
    records = np.asarray(np.memmap(d / RECORDS, dtype=np.uint8, mode="r")) if size else np.zeros(0, np.uint8)
    return Documents(ids, records, {name: cols[name] for name in COLUMNS}, tables, d / TITLES)


# -- writing --------------------------------------------------------------------------------------

def write(d: Path, docs: Sequence[DocInfo]) -> None:
    """The document files of a version holding `docs` (in storage order) into folder `d`."""
    n = len(docs)
    offsets, crc = np.zeros(n + 1, np.int64), np.zeros(n, np.uint32)
    chars, codes = np.zeros(n, np.int64), np.full((n, 3), -1, np.int32)
    files, hashes, places = np.zeros((n, 2), np.int64), np.zeros(n, COLUMNS["d_hash"][1]), np.zeros((n, 2), np.int32)
    tables: tuple[dict[str, int], ...] = tuple({} for _ in FACT_FIELDS)
    folders: dict[str, int] = {}
    ids, titles = [], []
    with open(d / RECORDS, "wb") as f:
        for k, x in enumerate(docs):  # one pass: `docs` may decode each record as it is read
            ids.append(x.doc_id)
            titles.append(x.title)
            data = (json.dumps(doc_row(x), ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
            f.write(data)
            offsets[k + 1] = offsets[k] + len(data)
            crc[k] = zlib.crc32(data)
            chars[k] = x.chars
            for j, (field, table) in enumerate(zip(FACT_FIELDS, tables)):
                value = getattr(x, field)
                if value is not None:
                    codes[k, j] = table.setdefault(value, len(table))
            files[k] = (x.size, x.mtime_ns)
            digest = x.content_hash.encode("ascii")
            if len(digest) > HASH_BYTES or digest.endswith(b"\0"):  # S64 would cut or strip it
                raise ValueError(f"{x.doc_id}: content hash {x.content_hash!r} is not a hash")
            hashes[k] = digest
            tail = "/" + x.doc_id
            folder = folders.setdefault(x.path[:-len(tail)], len(folders)) if x.path.endswith(tail) else -1
            places[k] = (folder, as_guessed(x))
    arrays = {"d_offsets": offsets, "d_crc": crc, "d_chars": chars, "d_facts": codes, "d_file": files,
              "d_hash": hashes, "d_place": places}
    for name, arr in arrays.items():
        np.save(d / COLUMNS[name][0], arr, allow_pickle=False)
    if len(set(ids)) != len(ids):
        raise IndexCorruptError("a doc_id is given twice")
    (d / IDS).write_text(json.dumps(ids, ensure_ascii=False, separators=(",", ":")), "utf-8")
    (d / TITLES).write_text(json.dumps(titles, ensure_ascii=False, separators=(",", ":")), "utf-8")
    (d / FACTS).write_text(json.dumps({**{f: list(t) for f, t in zip(FACT_FIELDS, tables)}, "folder": list(folders)},
                                      ensure_ascii=False), "utf-8")


_DOC_DEFAULTS = {f.name: f.default for f in dataclasses.fields(DocInfo) if f.default is not dataclasses.MISSING}


def doc_row(x: DocInfo) -> dict:
    """A document's record without the fields at their defaults (DocInfo(**row) restores them):
    smaller files, faster decoding."""
    row = {}
    for name in (f.name for f in dataclasses.fields(DocInfo)):
        value = getattr(x, name)
        if name not in _DOC_DEFAULTS or value != _DOC_DEFAULTS[name]:
            row[name] = asdict(value) if dataclasses.is_dataclass(value) else value
    if "guess" in row:
        row["guess"] = {k: v for k, v in row["guess"].items() if v not in (None, ())}
    return row
