"""Connections to a Milvus server: one client per URI in a process, the error every failed call
becomes, the writers' lock, and the local cache folder of an index."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from ...errors import QAError

CONNECT_TIMEOUT = 5.0         # seconds: a server that is down is reported quickly
CALL_TIMEOUT = 60.0


class IndexServerError(QAError):
    """The index server cannot be reached or refused a call."""


# One connection per URI in a process, shared by the backends of its successive versions (a
# process that follows many updates would otherwise keep a connection per version), with a count
# of the backends using it; and one small pool for the calls a question makes side by side.
_CLIENTS: dict[str, list] = {}
_CLIENTS_LOCK = threading.Lock()
POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="milvus")


def acquire(uri: str):
    """The process' client for `uri` (made on first use); pair with `release`."""
    with _CLIENTS_LOCK:
        shared = _CLIENTS.get(uri)
        if shared is None:
            shared = _CLIENTS[uri] = [_new_client(uri), 0]
        shared[1] += 1
        return shared[0]


def release(uri: str) -> None:
    """One user fewer of `uri`'s client; closed when none is left."""
    with _CLIENTS_LOCK:
        shared = _CLIENTS.get(uri)
        if shared is None:
            return
        shared[1] -= 1
        if shared[1] > 0:
            return
        del _CLIENTS[uri]
    try:
        shared[0].close()
    except Exception:  # closing a connection to a dead server is not an error worth raising
        pass


def cache_dir(location) -> Path:
    """A local folder for what a process derives for a Milvus index (the exported query model):
    under $QA_CACHE or ~/.cache/qa, keyed by the URI."""
    base = Path(os.environ.get("QA_CACHE") or Path.home() / ".cache" / "qa")
    where = str(location)
    if not where.startswith(("http://", "https://")):  # a Milvus Lite file: one key however it is spelt
        where = str(Path(where).resolve())
    key = hashlib.sha1(where.encode("utf-8")).hexdigest()[:16]
    return base / f"milvus-{key}"


@contextmanager
def writers_lock(uri: str, name: str):
    """Serialise writers on this machine (a file lock keyed by the URI and name); a writer on
    another machine is caught at commit, which refuses to publish over a version that moved."""
    # In the machine's temporary folder, not the per-user cache: every process here shares it.
    key = hashlib.sha1(f"{cache_dir(uri).name}/{name}".encode("utf-8")).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "qa-milvus-locks" / f"{key}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "w")
    except OSError as exc:
        raise QAError(f"cannot create the index lock {str(path)!r}: {exc.strerror or exc}") from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _new_client(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError:  # the optional extra is not installed
        raise IndexServerError("a Milvus index needs pymilvus: pip install 'qa[milvus]'") from None
    _quiet_pymilvus()
    try:
        return MilvusClient(uri, timeout=CONNECT_TIMEOUT)
    except Exception as exc:
        raise IndexServerError(f"cannot reach the index server at {uri}: {short(exc)}") from None


def _quiet_pymilvus() -> None:
    """pymilvus logs every failed call (and each reconnection attempt) with a traceback, through
    handlers it configures on import; its failures reach the user as one IndexServerError line."""
    for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def short(exc: Exception) -> str:
    """One line about a pymilvus or gRPC failure."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:300]
