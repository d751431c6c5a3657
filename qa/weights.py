"""The answer stage's fitted weights: feature name -> weight, with where they came from (weights.json).

Weights are looked up by name, never aligned by position: a model whose names differ from the
features the code computes is an error at import, not a silently shifted ranking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

WEIGHTS_FILE = Path(__file__).with_name("weights.json")


@dataclass(frozen=True)
class LinearModel:
    """One fitted linear model: weights by feature name, an optional bias and decision threshold."""

    weights: Mapping[str, float]
    provenance: str
    bias: float = 0.0
    threshold: float | None = None

    def vector(self, names: Sequence[str]) -> np.ndarray:
        """The weights in the order of `names`, which must be exactly the model's features.

        Raises:
            ValueError: a feature without a weight, or a weight for no feature.
        """
        missing, extra = set(names) - set(self.weights), set(self.weights) - set(names)
        if missing or extra:
            raise ValueError(f"weights and features differ: no weight for {sorted(missing)}, "
                             f"weights for unknown features {sorted(extra)}")
        return np.array([self.weights[n] for n in names], dtype=np.float64)


def load(path: Path = WEIGHTS_FILE) -> Mapping[str, LinearModel]:
    """The models saved in `path`, by name (passage, sentence, abstain)."""
    raw = json.loads(path.read_text("utf-8"))
    return MappingProxyType({name: LinearModel(MappingProxyType(dict(m["weights"])), m.get("provenance", ""),
                                               float(m.get("bias", 0.0)), m.get("threshold"))
                             for name, m in raw.items() if isinstance(m, dict) and "weights" in m})


MODELS = load()
