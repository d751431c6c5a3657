"""A stand-in for the embedding model: made-up unit vectors of its width (384), the same for the
same text. For memory and byte-identity runs that must leave the model out. Imports only numpy and
zlib: bench_index_memory loads this file by path into another checkout's interpreter."""

from __future__ import annotations

import zlib

import numpy as np


class UnitEmbedder:
    def embed_passages(self, texts, progress=False):
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(384) for t in texts]
        v = np.asarray(rows, np.float32).reshape(-1, 384)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def embed_query(self, text):
        return self.embed_passages([text])[0]
