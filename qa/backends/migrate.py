"""Migration of a saved version from the previous local formats (2 and 3) to the current one (4).

Embedding a large archive takes hours, so a format change must never re-embed. Format 2's vectors
(float32) are stored again as float16, its passages (chunks.jsonl) become the text file and
columns, and its BM25 and lexicon files, which later formats keep unchanged, are copied. Format 3
differs from 4 only in how documents are stored (documents.json parsed whole, per-document hashes
in the manifest): its documents are written again and every other file is linked (or copied)
as it is. The old version is verified completely first (its manifest hashed every file).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError
from ..types import Chunk, DocInfo, Settings
from . import doc_records, lexicon_files, snapshot

FROM_FORMATS = (2, 3)


def migrate(old: Path, new: Path) -> None:
    """Write the old-format version in `old` as a current-format version into `new`."""
    if snapshot.manifest_format(old) == 3:
        from_format_3(old, new)
    else:
        from_format_2(old, new)


def _verified_manifest(old: Path, version: int) -> dict:
    """The old version's manifest, after checking every file it names against its sha256."""
    manifest = json.loads((old / "manifest.json").read_text("utf-8"))
    if manifest.get("format") != version:
        raise IndexCorruptError(f"not a format-{version} index")
    for name, digest in manifest["files"].items():
        if name.startswith("/") or ".." in name.split("/"):
            raise IndexCorruptError(f"index manifest names a file outside the index: {name!r}")
        with open(old / name, "rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() != digest:
                raise IndexCorruptError(f"index file {name} does not match its manifest hash")
    return manifest


def from_format_3(old: Path, new: Path) -> None:
    """Write the format-3 version in `old` as a format-4 version into `new`: its documents are
    written again, every other file is kept byte for byte (hard-linked where the file system
    allows: versions are never modified).

    Raises IndexCorruptError if the old version is damaged.
    """
    old, new = Path(old), Path(new)
    try:
        manifest = _verified_manifest(old, 3)
        settings = Settings(**manifest["settings"])
        docs = [DocInfo(**x) for x in json.loads((old / "documents.json").read_text("utf-8"))]
        counts = manifest["counts"]
        if [x.doc_id for x in docs] != list(manifest["documents"]) or len(docs) != counts["documents"]:
            raise IndexCorruptError("index documents disagree with the manifest")
        kept = {name: digest for name, digest in manifest["files"].items() if name != "documents.json"}
    except IndexCorruptError:
        raise
    except Exception as exc:  # whatever a damaged old file makes reading raise, it is damage
        raise IndexCorruptError(f"cannot migrate index in {old}: {type(exc).__name__}: {exc}") from exc
    new.mkdir(parents=True, exist_ok=True)
    for name in kept:
        target = new / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(old / name, target)
        except OSError:
            shutil.copyfile(old / name, target)
    doc_records.write(new, docs)
    snapshot.write_manifest(new, settings, counts, known=kept)


def from_format_2(old: Path, new: Path) -> None:
    """Write the format-2 version in `old` as a current-format version into `new`.

    Raises IndexCorruptError if the old version is damaged (it is then rebuilt, as any damage).
    """
    old = Path(old)
    try:
        manifest = _verified_manifest(old, 2)
        settings = Settings(**manifest["settings"])
        docs = [DocInfo(**x) for x in json.loads((old / "documents.json").read_text("utf-8"))]
        chunks = []
        with open(old / "chunks.jsonl", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                chunks.append(Chunk(r["doc_id"], r["start"], r["end"], r["text"],
                                    tuple(tuple(s) for s in r["sentences"]), tuple(r["speakers"])))
        vectors = np.load(old / "vectors.npy", allow_pickle=False, mmap_mode="r")
        sent_vectors = np.load(old / "sentences.npy", allow_pickle=False, mmap_mode="r")
        # Documents in the order their passages are stored (format 2 kept them together).
        order = list(dict.fromkeys(c.doc_id for c in chunks))
        by_id = {d.doc_id: d for d in docs}
        if set(order) != set(by_id) or set(by_id) != set(manifest["documents"]) \
                or len(chunks) != manifest["counts"]["passages"]:
            raise IndexCorruptError("index documents or passage count disagree with the manifest")
    except IndexCorruptError:
        raise
    except Exception as exc:  # whatever a damaged old file makes reading raise, it is damage
        raise IndexCorruptError(f"cannot migrate index in {old}: {type(exc).__name__}: {exc}") from exc
    # Writing errors (a full disk, a read-only folder) are not damage: they propagate as they are.
    snapshot.write(new, settings, [by_id[d] for d in order], chunks, vectors, sent_vectors, lexical_from=old)


# -- the old layout, written for the migration tests and the open-time benchmark ----------------

def write_format_2(snap: "snapshot.Snapshot", old: Path, vectors: np.ndarray | None = None,
                   sent_vectors: np.ndarray | None = None) -> None:
    """The passages of an opened version in the format-2 layout, as qa wrote it before format 3
    (vectors: float32 originals, else the stored float16 ones widened)."""
    old.mkdir(parents=True, exist_ok=True)
    (old / "documents.json").write_text(json.dumps([asdict(x) for x in snap.docs.values()], ensure_ascii=False),
                                        "utf-8")
    with open(old / "chunks.jsonl", "w", encoding="utf-8") as f:
        for c in snap.chunks:
            f.write(json.dumps({"doc_id": c.doc_id, "start": c.start, "end": c.end, "text": c.text,
                                "sentences": c.sentences, "speakers": c.speakers}, ensure_ascii=False) + "\n")
    np.save(old / "vectors.npy", np.asarray(snap.vectors if vectors is None else vectors, np.float32))
    np.save(old / "sentences.npy", np.asarray(snap.sent_vectors if sent_vectors is None else sent_vectors, np.float32))
    if snapshot._is_approximate(len(snap), snap.settings):  # format 2 saved only an approximate index
        import faiss

        vecs = np.asarray(snap.vectors if vectors is None else vectors, np.float32)
        dim, nlist = vecs.shape[1], int(4 * np.sqrt(len(vecs)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(len(vecs), size=min(len(vecs), 40 * nlist), replace=False)
        index.train(np.ascontiguousarray(vecs[np.sort(sample)]))
        index.add(vecs)
        faiss.write_index(index, str(old / "dense.faiss"))
    shutil.copytree(snap.directory / "bm25", old / "bm25")
    for name in [*lexicon_files.FILES.values(), lexicon_files.NAME_WORDS]:
        shutil.copyfile(snap.directory / name, old / name)
    files = {p.relative_to(old).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(old.rglob("*")) if p.is_file()}
    m = snap.manifest
    manifest = {"format": 2, "model": m["model"], "settings": m["settings"],
                "documents": {x.doc_id: x.content_hash for x in snap.docs.values()},
                "counts": {k: m["counts"][k] for k in ("passages", "sentences", "dim")}, "files": files}
    (old / "manifest.json").write_text(json.dumps(manifest, indent=1), "utf-8")


def write_format_3(snap: "snapshot.Snapshot", old: Path) -> None:
    """An opened version in the format-3 layout, as qa wrote it before format 4: its files but the
    document ones, with documents.json (compact rows) and per-document hashes in the manifest."""
    old = Path(old)
    old.mkdir(parents=True, exist_ok=True)
    for p in sorted(snap.directory.rglob("*")):
        name = p.relative_to(snap.directory).as_posix()
        if p.is_file() and name != "manifest.json" and name not in doc_records.FILES \
                and name.split("/")[0] != "model":
            (old / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, old / name)
    docs = list(snap.docs.values())
    with open(old / "documents.json", "w", encoding="utf-8") as f:
        json.dump([doc_records.doc_row(x) for x in docs], f, ensure_ascii=False, separators=(",", ":"))
    files = sorted(p for p in old.rglob("*") if p.is_file() and p.name != "manifest.json")
    m = snap.manifest
    manifest = {"format": 3, "model": m["model"], "settings": m["settings"],
                "documents": {x.doc_id: x.content_hash for x in docs}, "counts": m["counts"],
                "files": {p.relative_to(old).as_posix(): snapshot._file_hash(p) for p in files},
                "sizes": {p.relative_to(old).as_posix(): p.stat().st_size for p in files}}
    (old / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), "utf-8")
