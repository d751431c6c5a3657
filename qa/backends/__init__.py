"""Backends: where passages are stored and searched, behind one small protocol (base.py)."""

from .base import EVERYTHING, Backend, Fetched, Filter, Hit, PassageBatch, Stats, Writer

__all__ = ["Backend", "Fetched", "Filter", "Hit", "PassageBatch", "Stats", "Writer", "EVERYTHING", "open_backend"]


def open_backend(location) -> Backend:
    """The backend for an index location: a folder path gives the local backend."""
    from .local import LocalBackend

    return LocalBackend(location)
