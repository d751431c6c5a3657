"""Migration of a saved version from the previous local format (2) to the current one.

Embedding a large archive takes hours, so a format change must never re-embed: format 2's vectors
(float32) are stored again as float16, its passages (chunks.jsonl) become the text file and
columns, and its BM25 and lexicon files, which format 3 keeps unchanged, are copied. The old
version is verified completely first (its manifest hashed every file).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError
from ..types import Chunk, DocInfo, Settings
from . import snapshot

FROM_FORMAT = 2


def from_format_2(old: Path, new: Path) -> None:
    """Write the format-2 version in `old` as a current-format version into `new`.

    Raises IndexCorruptError if the old version is damaged (it is then rebuilt, as any damage).
    """
    old = Path(old)
    try:
        manifest = json.loads((old / "manifest.json").read_text("utf-8"))
        if manifest.get("format") != FROM_FORMAT:
            raise IndexCorruptError(f"not a format-{FROM_FORMAT} index")
        for name, digest in manifest["files"].items():
            if name.startswith("/") or ".." in name.split("/"):
                raise IndexCorruptError(f"index manifest names a file outside the index: {name!r}")
            with open(old / name, "rb") as f:
                if hashlib.file_digest(f, "sha256").hexdigest() != digest:
                    raise IndexCorruptError(f"index file {name} does not match its manifest hash")
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
