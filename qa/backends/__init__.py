"""Backends: where passages are stored and searched, behind one small protocol (base.py)."""

from .base import EVERYTHING, Backend, Fetched, Filter, Hit, PassageBatch, Searches, Stats, Writer

__all__ = ["Backend", "Fetched", "Filter", "Hit", "PassageBatch", "Searches", "Stats", "Writer", "EVERYTHING", "open_backend",
           "is_server_location"]


def is_server_location(location) -> bool:
    """Does an index location name a Milvus server (http(s)://host:port) or an embedded Milvus Lite
    file (a path ending in .db), rather than a local index folder?"""
    s = str(location)
    return s.startswith(("http://", "https://")) or s.endswith(".db")


def open_backend(location) -> Backend:
    """The backend for an index location: a Milvus URI gives the Milvus backend (pymilvus is
    imported only then), a folder path the local backend."""
    if is_server_location(location):
        from .milvus import MilvusBackend

        return MilvusBackend(str(location))
    from .local import LocalBackend

    return LocalBackend(location)
