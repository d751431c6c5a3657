"""Crash-safe versions of an index folder: atomic commit, old versions collected, one writer at a time.

The index folder holds complete versions in `v-*` subfolders and a one-line `CURRENT` file naming
the live one. A new version is written to a temporary folder, renamed into place, and only then
does `CURRENT` change (by an atomic rename), so a crash at any moment leaves the old index usable.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

from ..errors import QAError


class IndexStore:
    """The versions of an index kept under one folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def current(self) -> Path | None:
        """The live version's folder, or None if there is none."""
        try:
            name = (self.root / "CURRENT").read_text("utf-8").strip()
        except OSError:
            return None
        if not name or "/" in name or name.startswith("."):
            return None
        path = self.root / name
        return path if path.is_dir() else None

    @contextmanager
    def lock(self, wait: bool = True):
        """Serialise writers (processes and threads) of this index folder. With wait=False, yields
        False at once instead of waiting when another holder (this process too) has the lock."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            f = open(self.root / ".lock", "w")
        except OSError as exc:  # e.g. the path is a file, or not writable: a clear error, not a traceback
            raise QAError(f"cannot use index folder {str(self.root)!r}: {exc.strerror or exc}") from None
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def new_version(self) -> Path:
        """A fresh temporary folder to write a version into."""
        path = self.root / f".tmp-{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        return path

    def commit(self, tmp: Path) -> Path:
        """Make a fully written temporary folder the live version, then drop older ones."""
        final = self.root / f"v-{uuid.uuid4().hex[:12]}"
        _fsync_tree(tmp)
        os.rename(tmp, final)
        pointer = self.root / f".CURRENT-{uuid.uuid4().hex}"
        with open(pointer, "w", encoding="utf-8") as f:
            f.write(final.name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer, self.root / "CURRENT")
        _fsync_dir(self.root)
        self.collect_garbage(keep=final)
        return final

    def collect_garbage(self, keep: Path) -> None:
        """Remove versions and half-written folders other than `keep` (called under the lock)."""
        for child in self.root.iterdir():
            if child != keep and (child.name.startswith("v-") or child.name.startswith(".tmp-")
                                  or child.name.startswith(".CURRENT-")):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def _fsync_tree(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
