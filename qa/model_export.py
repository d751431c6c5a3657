"""Export stage of the embedding model: sentence-transformers' model to the ONNX folder that
qa.embed reads (model.onnx with its weights apart, tokenizer.json, embed_config.json).

Index building only: torch and transformers are imported in a child process (see
export_onnx), never in the caller; answering questions never imports this module's heavy parts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from .embed import (CONFIG_NAME, FORMAT_VERSION, ONNX_NAME, TOKENIZER_NAME, WEIGHTS_NAME, _INPUT_NAMES, _OPSET,
                    _OUTPUT_NAME, _load_tokenizer, _normalize, _pad, _pool, _session, load_onnx_config, model_path,
                    read_st_pipeline)
from .errors import ModelError


def export_onnx(model: str, out_dir: str | os.PathLike, quantize: bool = False, fuse: bool = True) -> None:
    """Export ``model`` for the ONNX path into ``out_dir``, a folder of its own.

    An earlier export at ``out_dir`` is replaced whole; any other non-empty folder is refused.

    Writes ``model.onnx`` (fp32, or dynamically quantised int8 weights when ``quantize``),
    ``tokenizer.json`` and ``embed_config.json``. Everything is written into a temporary
    sibling folder, checked against the torch model, then renamed into place, so ``out_dir``
    never holds a half-written export. Needs torch and transformers (index building only).
    ``fuse=False`` keeps plain ONNX operators (no onnxruntime BERT fusions), for other runtimes.
    """
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / CONFIG_NAME).is_file():
        raise ModelError(f"{out_dir} exists and is not an ONNX export; refusing to replace it")
    pipeline = read_st_pipeline(model_path(model))
    src = Path(pipeline["transformer_dir"])
    if not (src / TOKENIZER_NAME).is_file():
        raise ModelError(f"{src} has no {TOKENIZER_NAME}; the ONNX path needs a fast tokenizer")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _export_in_child(model, tmp, quantize, fuse)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _export_in_child(model: str, tmp: Path, quantize: bool, fuse: bool = True) -> None:
    """Run the export in two child Pythons, one after the other: torch's (trace the model to ONNX,
    and the outputs the check compares with), then ONNX's (fuse, quantise, check). Each gives its
    memory back when it ends, and neither stays in an indexing process that may run for hours: at
    their peaks ~0.75 and ~0.9 GB, where one process holding both reached 1.3 GB."""
    _run_stage(model, ["trace", model, str(tmp)])
    _run_stage(model, ["finish", str(tmp), "int8" if quantize else "fp32", "fuse" if fuse else "plain"])


def _run_stage(model: str, argv: list[str]) -> None:
    """One export stage (`_export_stage(argv)`) in a child Python; ModelError if it fails."""
    import subprocess

    code = "import sys; from qa.model_export import _export_stage; raise SystemExit(_export_stage(sys.argv[1:]))"
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    # The child imports this very package, wherever it was imported from here.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                      env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", code, *argv], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ModelError(f"exporting {model} failed: {lines[-1] if lines else f'exit status {done.returncode}'}")


def _export_stage(argv: list[str]) -> int:
    """A child's side of _export_in_child: `trace MODEL TMP` or `finish TMP PRECISION FUSE`; a
    ModelError's message is its last line on stderr."""
    try:
        if argv[0] == "trace":
            model, tmp = argv[1], Path(argv[2])
            _trace(model, tmp, read_st_pipeline(model_path(model)))
        else:
            _finish(Path(argv[1]), quantize=argv[2] == "int8", fuse=argv[3] == "fuse")
    except ModelError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Put the finished folder ``tmp`` at ``out_dir``; an old export there is removed."""
    trash = []
    try:
        for _ in range(5):  # a concurrent export may slip its folder in between: move it aside too
            if out_dir.exists() or out_dir.is_symlink():
                old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
                trash.append(old)
                os.replace(out_dir, old / "x")
            try:
                os.replace(tmp, out_dir)
                return
            except OSError:
                if not out_dir.exists():
                    raise
        raise ModelError(f"cannot put the export in place at {out_dir}")
    finally:
        for old in trash:
            shutil.rmtree(old, ignore_errors=True)


# The first stage's hand-over to the second, in the temporary folder (deleted by the second).
_TRACE_INFO, _TRACED, _CHECK_BATCH = "trace.json", "raw.onnx", "check_batch.npz"  # ids, mask, reference


def _trace(model: str, tmp: Path, pipeline: dict) -> None:
    """Torch's stage: the model traced to ONNX (raw.onnx), what the second stage needs to know of
    it (trace.json), and its token embeddings of the check texts."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import warnings

    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:  # pragma: no cover - install problem
        raise ModelError(f"exporting to ONNX needs torch and transformers: {exc}") from exc

    src = Path(pipeline["transformer_dir"])
    try:
        from transformers.utils import logging as hf_logging

        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar in index-building output
        try:
            hf = AutoModel.from_pretrained(str(src), attn_implementation="eager")
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
    except Exception as exc:
        raise ModelError(f"cannot load {model!r} with transformers: {exc}") from exc
    hf.eval()
    with_types = "token_type_ids" in _forward_params(hf)

    class _Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            return self.inner(**kwargs, return_dict=True).last_hidden_state

    wrapped = _Wrapped(hf).eval()  # eval on the wrapper too: export restores the wrapper's mode
    names = list(_INPUT_NAMES if with_types else _INPUT_NAMES[:2])
    # A padded sample batch, so the traced graph keeps the masking path.
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    args = (ids, mask, torch.zeros_like(ids))[: len(names)]
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, _OUTPUT_NAME]}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer warnings
            torch.onnx.export(
                wrapped, args, str(tmp / _TRACED), input_names=names, output_names=[_OUTPUT_NAME],
                dynamic_axes=axes, opset_version=_OPSET, do_constant_folding=True, dynamo=False,
            )
    except Exception as exc:
        raise ModelError(f"ONNX export of {model!r} failed: {exc}") from exc

    # The reference the second stage checks the finished graph against (fed the same tokens).
    check_ids, check_mask = _pad([e.ids for e in _load_tokenizer(src / TOKENIZER_NAME, pipeline["max_seq_length"])
                                  .encode_batch(_CHECK_TEXTS)])
    feeds = {"input_ids": check_ids, "attention_mask": check_mask, "token_type_ids": np.zeros_like(check_ids)}
    with torch.no_grad():
        ref = hf(**{k: torch.from_numpy(feeds[k]) for k in names}).last_hidden_state.numpy()
    np.savez(tmp / _CHECK_BATCH, ids=check_ids, mask=check_mask, reference=ref)
    hf_cfg = hf.config
    shutil.copyfile(src / TOKENIZER_NAME, tmp / TOKENIZER_NAME)
    info = {
        "format_version": FORMAT_VERSION,
        "model": model,
        "max_seq_length": pipeline["max_seq_length"],
        "do_lower_case": pipeline["do_lower_case"],
        "pooling": pipeline["pooling"],
        "normalize": pipeline["normalize"],
        "dim": int(pipeline["dim"] or hf_cfg.hidden_size),
        "inputs": names,
        "output": _OUTPUT_NAME,
        "opset": _OPSET,
        "exporter": f"torch.onnx.export(dynamo=False) torch {torch.__version__}",
    }
    shape = {"model_type": getattr(hf_cfg, "model_type", None), "num_attention_heads": int(hf_cfg.num_attention_heads),
             "hidden_size": int(hf_cfg.hidden_size)}
    (tmp / _TRACE_INFO).write_text(json.dumps({"info": info, "architecture": shape}), "utf-8")


def _finish(tmp: Path, quantize: bool, fuse: bool = True) -> None:
    """ONNX's stage (no torch): fuse and quantise the traced graph, keep its weights apart, check it
    against torch's outputs, and write the config last."""
    from types import SimpleNamespace

    traced = json.loads((tmp / _TRACE_INFO).read_text("utf-8"))
    raw = tmp / _TRACED
    fused = fuse and _fuse(raw, tmp / "fused.onnx", SimpleNamespace(**traced["architecture"]))
    graph = tmp / "fused.onnx" if fused else raw
    whole = tmp / "whole.onnx"
    if quantize:
        _quantize(graph, whole)
    else:
        os.replace(graph, whole)
    _save_split(whole, tmp / ONNX_NAME)
    info = {**traced["info"], "precision": "int8" if quantize else "fp32", "fused": fused,
            "quantization": _QUANT_DESC if quantize else None, "weights": WEIGHTS_NAME}
    with np.load(tmp / _CHECK_BATCH, allow_pickle=False) as batch:
        ids, mask, ref = batch["ids"], batch["mask"], batch["reference"]
    for leftover in (raw, tmp / "fused.onnx", whole, tmp / _TRACE_INFO, tmp / _CHECK_BATCH):
        if leftover.exists():
            leftover.unlink()
    _check_export(tmp, info, ids, mask, ref)


def _save_split(src: Path, out: Path) -> None:
    """Write the ONNX model `src` as `out` with its weights in WEIGHTS_NAME beside it (a file that
    must not exist yet: onnx appends to it). The graph and every weight's bytes stay the same."""
    import onnx

    if (out.parent / WEIGHTS_NAME).exists():
        raise ModelError(f"{out.parent / WEIGHTS_NAME} already exists")
    model = onnx.load(str(src))
    onnx.save_model(model, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=WEIGHTS_NAME, size_threshold=1024)


def split_weights(onnx_dir: str | os.PathLike) -> bool:
    """Move the weights of an export made before WEIGHTS_NAME existed out of its model.onnx, so
    that later loads map them instead of parsing them. Returns False if they are apart already.

    The new folder is written beside the old one, must give bit-identical token embeddings on
    sample texts, and replaces it whole (as export_onnx does): a process loading the old files
    meanwhile keeps them, and on any failure the old export stays as it was. Callers serialise
    writers of the folder (QA holds the index lock). Raises whatever stopped it.
    """
    onnx_dir = Path(onnx_dir)
    cfg = load_onnx_config(onnx_dir)
    if cfg.get("weights"):
        return False
    tmp = Path(tempfile.mkdtemp(prefix=f".{onnx_dir.name}.tmp-", dir=onnx_dir.parent))
    try:
        _save_split(onnx_dir / ONNX_NAME, tmp / ONNX_NAME)
        shutil.copyfile(onnx_dir / TOKENIZER_NAME, tmp / TOKENIZER_NAME)
        tok = _load_tokenizer(tmp / TOKENIZER_NAME, cfg["max_seq_length"])
        ids, mask = _pad([e.ids for e in tok.encode_batch(_CHECK_TEXTS)])
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {k: feeds[k] for k in cfg["inputs"]}
        before = _session(onnx_dir / ONNX_NAME).run([cfg["output"]], feeds)[0]
        after = _session(tmp / ONNX_NAME).run([cfg["output"]], feeds)[0]
        if not np.array_equal(before, after):
            raise ModelError(f"the export in {onnx_dir} computes otherwise with its weights apart")
        _write_config(tmp, {**cfg, "weights": WEIGHTS_NAME})
        _replace_dir(tmp, onnx_dir)
        return True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _forward_params(module) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):  # pragma: no cover
        return set()


def _fuse(raw: Path, out: Path, hf_cfg) -> bool:
    """Offline BERT fusions (attention, layer norm, GELU) from onnxruntime's transformer tools.

    Numerically the same graph, a little faster, and int8 quantisation then handles each layer's
    attention as one QAttention op while the embedding table (EmbedLayerNormalization) stays fp32.
    Returns False (and the raw graph is used) when the model is not BERT-like.
    """
    if getattr(hf_cfg, "model_type", None) not in ("bert",):
        return False
    try:
        import logging

        from onnxruntime.transformers.optimizer import optimize_model

        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
        opt = optimize_model(
            str(raw), model_type="bert", num_heads=int(hf_cfg.num_attention_heads),
            hidden_size=int(hf_cfg.hidden_size), opt_level=0,
        )
        opt.save_model_to_file(str(out))
        return True
    except Exception:  # pragma: no cover - fall back to the plain graph
        if out.exists():
            out.unlink()
        return False


# Which int8 recipe: on this AVX2 machine (no VNNI) onnxruntime's default (s8 weights, per tensor,
# everything incl. the embedding table) saturates: mean cosine 0.953 to fp32 on SQuAD paragraphs.
# int8 weights with reduce_range (7 bits, no u8*s8 overflow), per output channel, on the MatMuls and
# the fused Attention, embeddings kept fp32: mean cosine 0.994 (min 0.990), SQuAD-dev paragraph
# retrieval hit@1 0.650 vs 0.653 fp32 (1,500 questions), and the fastest of the variants tried
# (u8 weights or MatMul-only were 0.1-0.2 points closer in cosine but ~15-25% slower).
_QUANT_DESC = {
    "method": "onnxruntime.quantization.quantize_dynamic",
    "weight_type": "QInt8",
    "per_channel": True,
    "reduce_range": True,
    "op_types": ["MatMul", "Attention"],
}


def _quantize(src: Path, out: Path) -> None:
    import logging

    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover - install problem
        raise ModelError(f"int8 export needs onnx and onnxruntime: {exc}") from exc
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" warning
    try:
        quantize_dynamic(
            str(src), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
            op_types_to_quantize=list(_QUANT_DESC["op_types"]),
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    except Exception as exc:
        raise ModelError(f"int8 quantisation failed: {exc}") from exc
    finally:
        root.setLevel(level)


_CHECK_TEXTS = [
    "Who won the Super Bowl in 2016?",
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy. " * 4,
    "",
]


def _check_export(tmp: Path, info: dict, ids: np.ndarray, mask: np.ndarray, ref: np.ndarray) -> None:
    """Compare the exported graph with the torch model's token embeddings `ref` of the padded
    batch (ids, mask), then write the config.

    Guards against a trace that baked a shape or a branch in: fp32 must agree to 1e-3 cosine,
    int8 to 0.95. The config is written last, so a folder with it is a finished export.
    """
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    feeds = {k: v for k, v in feeds.items() if k in info["inputs"]}
    sess = _session(tmp / ONNX_NAME)
    got = sess.run([info["output"]], feeds)[0]
    a = _normalize(_pool(ref, mask, info["pooling"]))
    b = _normalize(_pool(got, mask, info["pooling"]))
    cos = float((a * b).sum(axis=1).min())
    floor = 0.999 if info["precision"] == "fp32" else 0.95
    if not cos >= floor:
        raise ModelError(f"exported ONNX model disagrees with torch (cosine {cos:.4f} < {floor})")
    info["check_min_cosine"] = round(cos, 6)
    _write_config(tmp, info)


def _write_config(folder: Path, info: dict) -> None:
    """embed_config.json, written last: a folder with it is a finished export."""
    with open(folder / CONFIG_NAME, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
