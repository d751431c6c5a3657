"""The engine record: the parts that answer questions, held and swapped whole by `QA`."""

from __future__ import annotations

from dataclasses import dataclass

from .backends import Backend
from .retrieve import Weights
from .types import Settings


@dataclass(frozen=True, eq=False)
class Engine:
    """The parts that answer questions, swapped whole so a question never sees half an update."""

    embedder: object          # embed_query(text) -> unit vector; embed_passages(texts, progress)
    backend: Backend
    settings: Settings
    weights: Weights = Weights()
