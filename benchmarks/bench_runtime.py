"""Another runtime for the model: OpenVINO against ONNX Runtime, on the embedding ceiling's texts.

    PYTHONPATH=$PWD:OV_SITE .venv/bin/python -m benchmarks.bench_runtime --model INDEX/model \\
        --work SCRATCH [--docs ../shared/data/bbc] [--limit 300] [--runs 3] [--threads 2]

INDEX/model is an index's int8 export (what `qa index` writes). OpenVINO (and, for its own int8,
nncf) must be importable, e.g. installed with `pip install --target OV_SITE openvino nncf`; the
script says so and stops when they are not. It is never a dependency of qa.

The texts are those of benchmarks.bench_embed_ceiling (--limit BBC articles cut as `qa index` cuts
them: passages, then their sentences on their own), embedded through the engine's Embedder (same
tokenizer, length-sorted batches of Embedder.batch_size, pooling and normalisation); only the
object that runs a padded batch through the model changes. Into SCRATCH go the other exports it
needs (made once, reused): the fp32 export (export_onnx without quantisation), the same int8 recipe
on the graph without onnxruntime's fusions (OpenVINO cannot read the fused QAttention op), and
nncf's int8 of the fp32 model (static, calibrated on other BBC articles than the measured ones;
and weights-only). Variants alternate within each run; median of --runs; wall and CPU seconds.
Cosines compare each variant's vectors with ORT fp32's and ORT int8's (the engine's today) over
all passages and sentences. Not a test: prints tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from benchmarks.bench_embed_ceiling import load
from benchmarks.common import shared_data


class Variant(NamedTuple):
    name: str
    make: Callable[[], object]  # an Embedder ready to run


def ov_properties(threads: int) -> dict:
    """One stream of `threads` threads, as ORT runs: indexing runs one batch at a time. No pinning:
    the machine is shared, and a pinned thread waits for its core when another job holds it."""
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": False}


class OpenVinoBatches:
    """Runs padded batches through an OpenVINO-compiled model; the rest is qa's ONNX backend."""

    def __init__(self, base, model_file: Path, threads: int, extra: dict | None = None):
        import openvino as ov

        self.base = base  # a qa.embed._OnnxBackend: tokenizer, config, pooling
        self.cfg = base.cfg
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(model_file)), "CPU",
                                      {**ov_properties(threads), **(extra or {})})
        self.request = compiled.create_infer_request()
        self.names = [i.get_any_name() for i in compiled.inputs]

    def tokenize(self, texts):
        return self.base.tokenize(texts)

    def encode(self, texts):
        return self.base.encode(texts)

    def hidden(self, seqs):
        from qa.embed import _pad

        ids, mask = _pad(seqs)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        self.request.infer({n: feeds[n] for n in self.names}, share_inputs=True)
        return self.request.get_output_tensor(0).data.copy(), mask

    def run(self, seqs):
        from qa.embed import _pool

        hidden, mask = self.hidden(seqs)
        return _pool(hidden, mask, self.cfg["pooling"])


def exports(work: Path, calib: list[str]) -> dict[str, Path]:
    """The model files the variants read, made into `work` once."""
    import qa.embed as E
    from qa.model_export import export_onnx

    work.mkdir(parents=True, exist_ok=True)
    fp32, plain32, plain8 = work / "fp32", work / "fp32_unfused", work / "int8_unfused"
    if not (fp32 / E.CONFIG_NAME).is_file():
        export_onnx(E.DEFAULT_MODEL, fp32, quantize=False)
    for folder, quantize in ((plain32, False), (plain8, True)):  # plain ONNX ops: what OpenVINO and nncf read
        if not (folder / E.CONFIG_NAME).is_file():
            export_onnx(E.DEFAULT_MODEL, folder, quantize=quantize, fuse=False)
    files = {"fp32": fp32 / E.ONNX_NAME, "fp32_unfused": plain32 / E.ONNX_NAME,
             "int8_unfused": plain8 / E.ONNX_NAME}
    try:
        import nncf  # noqa: F401
    except ImportError:
        print("nncf is not importable: no OpenVINO-own int8 variants")
        return files
    files["nncf_int8"] = work / "nncf_int8.xml"
    files["nncf_weights8"] = work / "nncf_weights8.xml"
    if not files["nncf_int8"].is_file() or not files["nncf_weights8"].is_file():
        _nncf_exports(files["fp32_unfused"], plain32, calib, files["nncf_int8"], files["nncf_weights8"])
    return files


def _nncf_exports(fp32_file: Path, fp32_dir: Path, calib: list[str], static_out: Path,
                  weights_out: Path) -> None:
    import nncf
    import openvino as ov

    from qa.embed import _OnnxBackend, _pad, load_onnx_config

    base = _OnnxBackend(fp32_dir, load_onnx_config(fp32_dir), 2)
    seqs = base.tokenize(calib)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    batches = []
    for b in range(0, len(order), 8):  # small padded batches, as the engine pads its own
        ids, mask = _pad([seqs[i] for i in order[b:b + 8]])
        batches.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    core = ov.Core()
    model = core.read_model(str(fp32_file))
    names = [i.get_any_name() for i in model.inputs]
    data = nncf.Dataset(batches, lambda f: {n: f[n] for n in names})
    q = nncf.quantize(model, data, model_type=nncf.ModelType.TRANSFORMER,
                      subset_size=len(batches))
    ov.save_model(q, str(static_out))
    w = nncf.compress_weights(core.read_model(str(fp32_file)), mode=nncf.CompressWeightsMode.INT8_SYM)
    ov.save_model(w, str(weights_out))


def timed(embedder, texts: list[str]) -> tuple[float, float, np.ndarray]:
    """(wall s, CPU s, vectors) of embedding `texts` once."""
    w, c = time.perf_counter(), time.process_time()
    vecs = embedder.embed_passages(texts)
    return time.perf_counter() - w, time.process_time() - c, vecs


def variants(int8_dir: Path, files: dict[str, Path], threads: int) -> list[Variant]:
    from qa.embed import Embedder

    def ort(folder: Path) -> Callable[[], object]:
        return lambda: Embedder(onnx_dir=folder, threads=threads)

    def ov(file: Path, folder: Path, extra: dict | None = None) -> Callable[[], object]:
        def make():
            emb = Embedder(onnx_dir=folder, threads=threads)
            emb._onnx = OpenVinoBatches(emb._onnx, file, threads, extra)
            return emb
        return make

    fp32_dir = files["fp32"].parent
    out = [
        Variant("ORT int8 (today)", ort(int8_dir)),
        Variant("ORT fp32", ort(fp32_dir)),
        Variant("ORT int8, unfused graph", ort(files["int8_unfused"].parent)),
        Variant("OV fp32 ONNX (fused)", ov(files["fp32"], fp32_dir)),
        Variant("OV fp32 ONNX (unfused)", ov(files["fp32_unfused"], fp32_dir)),
        Variant("OV int8 ONNX (unfused)", ov(files["int8_unfused"], fp32_dir)),
    ]
    if "nncf_int8" in files:
        out += [
            Variant("OV nncf int8 (static)", ov(files["nncf_int8"], fp32_dir)),
            Variant("OV nncf int8 weights", ov(files["nncf_weights8"], fp32_dir)),
        ]
    return out


def cosines(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    c = (a * b).sum(axis=1)
    return float(c.mean()), float(c.min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="an index's int8 export (its model/ folder)")
    ap.add_argument("--work", required=True, help="scratch folder for the other exports")
    ap.add_argument("--docs", default=str(shared_data() / "bbc"))
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="names of variants to run (default: all)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import openvino
    except ImportError:
        print("openvino is not importable: nothing to compare (install it into a folder of its own "
              "and put that on PYTHONPATH)")
        return
    ptexts, stexts = load(Path(args.docs), args.limit)
    # Calibration for nncf: other articles than the measured ones (the ones between them).
    calib_p, calib_s = load(Path(args.docs), args.limit * 2)
    seen = set(ptexts)
    calib = [t for t in calib_p if t not in seen][:200] + calib_s[-200:]
    print(f"openvino {openvino.__version__}; {args.limit} documents: {len(ptexts)} passages, "
          f"{len(stexts)} sentences; {args.threads} threads; load average before "
          f"{os.getloadavg()[0]:.2f}")
    files = exports(Path(args.work), calib)
    chosen = [v for v in variants(Path(args.model), files, args.threads)
              if not args.only or v.name in args.only]
    embs = {}
    for v in chosen:
        embs[v.name] = v.make()
        embs[v.name].embed_passages(ptexts[:64])  # compile, warm
    runs: dict[str, list] = {v.name: [] for v in chosen}
    vecs: dict[str, np.ndarray] = {}
    for _ in range(args.runs):
        for v in chosen:  # variants alternate within each run: load drifts alike
            p, s = timed(embs[v.name], ptexts), timed(embs[v.name], stexts)
            runs[v.name].append((p[:2], s[:2]))
            vecs[v.name] = np.vstack([p[2], s[2]])
            print(f"  run {len(runs[v.name])}, {v.name}: {p[0] + s[0]:.1f} s wall, {p[1] + s[1]:.1f} s CPU, "
                  f"load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}\n")
    n = len(ptexts)
    ref32, ref8 = vecs.get("ORT fp32"), vecs.get("ORT int8 (today)")
    base = None
    print("| runtime, model | passages alone /s (per CPU-s) | their sentences /s (per CPU-s) "
          "| ceiling, both /s (per CPU-s) | vs ORT int8 | cosine to fp32 mean / min "
          "| cosine to ORT int8 mean / min |\n|---|---|---|---|---|---|---|")
    for v in chosen:
        r = runs[v.name]
        pw, pc = (statistics.median(x[0][i] for x in r) for i in (0, 1))
        sw, sc = (statistics.median(x[1][i] for x in r) for i in (0, 1))
        both = n / (pw + sw)
        base = base or both
        c32 = "%.4f / %.4f" % cosines(vecs[v.name], ref32) if ref32 is not None else "-"
        c8 = "%.4f / %.4f" % cosines(vecs[v.name], ref8) if ref8 is not None else "-"
        print(f"| {v.name} | {n / pw:.1f} ({n / pc:.1f}) | {n / sw:.1f} ({n / sc:.1f}) "
              f"| {both:.1f} ({n / (pc + sc):.1f}) | {both / base:.2f}x | {c32} | {c8} |")


if __name__ == "__main__":
    main()
