"""A local writer's embedded batches, saved under the index folder as they arrive.

Embedding is the slow part of indexing. Each batch a writer is given is written at once as a
segment of plain files, so the writer holds no more than one batch in memory, and a run killed
before its commit leaves what it embedded behind: the next run with the same settings adopts every
staged document whose content is unchanged instead of embedding it again. The live version is
never touched here; only a commit (local.py) reads the segments into a new version, and then
removes the staging folder.

    <index>/.staging/<key>/            key: a hash of the settings (vectors from other settings are
                                       never mixed in: their folders are removed at the next start)
        seg-<ns>-<uuid>/               one batch, complete or absent: written under .tmp-<uuid>,
                                       then renamed
            vectors.npy                float16 (passages, dim), as a version stores them
            sentences.npy              float16 (sentences, dim)
            batch.json                 settings, each document's record and passages, counts, and
                                       the sha256 of both arrays
            batch.sha256               the sha256 of batch.json (all checked before a segment is used)

No pickle: numpy arrays with allow_pickle=False and JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..types import Chunk, DocInfo, Settings
from . import doc_records
from .base import PassageBatch

log = logging.getLogger("qa")

STAGING = ".staging"
VECTORS, SENTENCES, BATCH, BATCH_HASH = "vectors.npy", "sentences.npy", "batch.json", "batch.sha256"


@dataclass(frozen=True)
class Staged:
    """Where one staged document's passages are: its segment, its place in the segment's records,
    and its rows of the segment's passage and sentence arrays."""

    segment: Path
    index: int
    doc: DocInfo
    passages: tuple[int, int]
    sentences: tuple[int, int]


def settings_key(settings: Settings) -> str:
    return hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:16]


class Staging:
    """The staging folder of one index folder for one set of settings. Used under the index lock."""

    def __init__(self, root: Path, settings: Settings):
        self.settings = settings
        self.base = Path(root) / STAGING
        self.dir = self.base / settings_key(settings)

    def drop_others(self) -> None:
        """Remove what runs with other settings left: it can never be used with these."""
        if self.base.is_dir():
            for child in self.base.iterdir():
                if child != self.dir:
                    shutil.rmtree(child, ignore_errors=True)

    def write(self, batches: list[PassageBatch]) -> list[Staged]:
        """Save some documents' passages as one new segment; where each one now lies."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            dim = next((b.vectors.shape[1] for b in batches if b.vectors.ndim == 2), 0)
            vectors = np.concatenate([np.asarray(b.vectors, np.float16).reshape(-1, dim) for b in batches])
            sentences = np.concatenate([np.asarray(b.sent_vectors, np.float16).reshape(-1, dim) for b in batches])
            np.save(tmp / VECTORS, vectors, allow_pickle=False)
            np.save(tmp / SENTENCES, sentences, allow_pickle=False)
            record = {"settings": asdict(self.settings), "dim": dim, "passages": len(vectors),
                      "sentences": len(sentences),
                      "files": {name: _sha256(tmp / name) for name in (VECTORS, SENTENCES)},
                      "documents": [{"doc": doc_records.doc_row(b.doc), "chunks": [_chunk_row(c) for c in b.chunks]}
                                    for b in batches]}
            with open(tmp / BATCH, "w", encoding="utf-8") as f:
                json.dump(record, f, ensure_ascii=False, separators=(",", ":"))
            (tmp / BATCH_HASH).write_text(_sha256(tmp / BATCH), encoding="ascii")
            final = self.dir / f"seg-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return list(_places(final, record))

    def found(self) -> Iterator[Staged]:
        """Every document of the sound segments left by earlier runs, oldest segment first (a later
        copy of a document replaces an earlier one). Damaged or foreign segments are skipped and
        removed; half-written ones (.tmp-*) removed."""
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.iterdir()):
            if not path.name.startswith("seg-"):
                shutil.rmtree(path, ignore_errors=True)
                continue
            record = self._sound(path)
            if record is None:
                shutil.rmtree(path, ignore_errors=True)
                continue
            yield from _places(path, record)

    def _sound(self, path: Path) -> dict | None:
        """The segment's record if every check passes, else None (logged)."""
        try:
            if _sha256(path / BATCH) != (path / BATCH_HASH).read_text("ascii"):
                raise ValueError(f"{BATCH} does not match its hash")
            record = json.loads((path / BATCH).read_text("utf-8"))
            if record["settings"] != asdict(self.settings):
                raise ValueError("made with other settings")
            for name in (VECTORS, SENTENCES):
                if _sha256(path / name) != record["files"][name]:
                    raise ValueError(f"{name} does not match its hash")
            n = sum(len(d["chunks"]) for d in record["documents"])
            s = sum(len(c[3]) for d in record["documents"] for c in d["chunks"])
            for name, rows in ((VECTORS, n), (SENTENCES, s)):
                a = np.load(path / name, mmap_mode="r", allow_pickle=False)
                if a.dtype != np.float16 or a.shape != (rows, record["dim"]):
                    raise ValueError(f"{name} holds {a.dtype}{list(a.shape)}")
            for d in record["documents"]:
                DocInfo(**d["doc"])
                if not all(len(_chunk(d["doc"]["doc_id"], c).text) == c[1] - c[0] for c in d["chunks"]):
                    raise ValueError("a passage's text does not fit its offsets")
            return record
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("staged batch %s ignored: %s", path.name, exc)
            return None

    def chunks(self, segment: Path) -> list[tuple[Chunk, ...]]:
        """Each staged document's passages in one segment, in record order."""
        record = json.loads((segment / BATCH).read_text("utf-8"))
        return [tuple(_chunk(d["doc"]["doc_id"], c) for c in d["chunks"]) for d in record["documents"]]

    def scratch(self) -> Path:
        """A fresh folder for a commit's work files (removed by the commit; by `found` if left)."""
        path = self.dir / f".commit-{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        return path

    def remove(self, segments) -> None:
        """Remove these segments (committed, or stale), then the folders if nothing else is left
        (e.g. segments a writer started meanwhile without the lock)."""
        for path in segments:
            shutil.rmtree(path, ignore_errors=True)
        for folder in (self.dir, self.base):
            try:
                folder.rmdir()
            except OSError:
                pass


def files(segment: Path) -> tuple[Path, Path]:
    """A segment's passage and sentence vector files."""
    return segment / VECTORS, segment / SENTENCES


def _places(segment: Path, record: dict) -> Iterator[Staged]:
    p = s = 0
    for k, d in enumerate(record["documents"]):
        n, m = len(d["chunks"]), sum(len(c[3]) for c in d["chunks"])
        yield Staged(segment, k, DocInfo(**d["doc"]), (p, p + n), (s, s + m))
        p, s = p + n, s + m


def _chunk_row(c: Chunk) -> list:
    return [c.start, c.end, c.text, [list(x) for x in c.sentences], list(c.speakers)]


def _chunk(doc_id: str, row: list) -> Chunk:
    start, end, text, sentences, speakers = row
    return Chunk(doc_id, start, end, text, tuple(tuple(x) for x in sentences), tuple(speakers))


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
