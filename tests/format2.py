"""Writes the previous local index format (2) as qa wrote it before format 3, for migration tests
and benchmarks: passages as chunks.jsonl, float32 vectors, every file's sha256 in the manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from qa.backends import lexicon_files
from qa.backends.snapshot import Snapshot


def write_format_2(snap: Snapshot, old: Path, vectors: np.ndarray | None = None,
                   sent_vectors: np.ndarray | None = None) -> None:
    """The passages of an opened version in the format-2 layout (vectors: float32 originals, else
    the stored float16 ones widened)."""
    old.mkdir(parents=True, exist_ok=True)
    (old / "documents.json").write_text(json.dumps([asdict(x) for x in snap.docs.values()], ensure_ascii=False),
                                        "utf-8")
    with open(old / "chunks.jsonl", "w", encoding="utf-8") as f:
        for c in snap.chunks:
            f.write(json.dumps({"doc_id": c.doc_id, "start": c.start, "end": c.end, "text": c.text,
                                "sentences": c.sentences, "speakers": c.speakers}, ensure_ascii=False) + "\n")
    np.save(old / "vectors.npy", np.asarray(snap.vectors if vectors is None else vectors, np.float32))
    np.save(old / "sentences.npy", np.asarray(snap.sent_vectors if sent_vectors is None else sent_vectors, np.float32))
    shutil.copytree(snap.directory / "bm25", old / "bm25")
    for name in [*lexicon_files.FILES.values(), lexicon_files.NAME_WORDS]:
        shutil.copyfile(snap.directory / name, old / name)
    files = {p.relative_to(old).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(old.rglob("*")) if p.is_file()}
    m = snap.manifest
    manifest = {"format": 2, "model": m["model"], "settings": m["settings"], "documents": m["documents"],
                "counts": {k: m["counts"][k] for k in ("passages", "sentences", "dim")}, "files": files}
    (old / "manifest.json").write_text(json.dumps(manifest, indent=1), "utf-8")
