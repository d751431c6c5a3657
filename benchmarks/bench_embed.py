"""Embedding speed and agreement: sentence-transformers vs the ONNX path (fp32 and int8).

    .venv/bin/python -m benchmarks.bench_embed [--passages 2000] [--runs 3] [--onnx-dir D] [--int8-dir D]

Passages are SQuAD paragraphs (data[*].paragraphs[*].context of ../shared/data/squad-dev-half.json);
that file has fewer paragraphs than asked for, so the rest are made by splitting paragraphs in two
at a sentence boundary (real text, shorter pieces, as chunking would give). Questions for the
latency figures are the file's questions.

Throughput runs are interleaved (ST, fp32, int8, ST, ...) so that load from other processes on
the machine hits all three alike; each figure is the median of --runs. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # adds, never unsets

import numpy as np  # noqa: E402

from qa import embed  # noqa: E402
from qa.embed import DEFAULT_MODEL, Embedder  # noqa: E402
from qa.model_export import export_onnx  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "squad-dev-half.json"


def load_passages(path: Path, n: int) -> tuple[list[str], list[str], int]:
    data = json.loads(path.read_text(encoding="utf-8"))
    paras = [p["context"] for art in data["data"] for p in art["paragraphs"]]
    questions = [q["question"] for art in data["data"] for p in art["paragraphs"] for q in p["qas"]]
    passages = paras[:n]
    for para in paras:
        if len(passages) >= n:
            break
        sents = re.split(r"(?<=[.!?])\s+", para)
        if len(sents) < 2:
            continue
        half = len(sents) // 2
        for piece in (" ".join(sents[:half]), " ".join(sents[half:])):
            if len(passages) < n:
                passages.append(piece)
    return passages, questions, min(len(paras), n)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def cold_run(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--questions", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=Embedder.batch_size, help="ONNX batch size")
    ap.add_argument("--onnx-dir", help="existing fp32 export (default: export to a temp folder)")
    ap.add_argument("--int8-dir", help="existing int8 export (default: export to a temp folder)")
    args = ap.parse_args()

    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"cores: {embed._cpu_count()}  load average at start: {os.getloadavg()[0]:.2f}")
    passages, questions, n_paras = load_passages(DATA, args.passages)
    questions = questions[: args.questions]
    print(f"passages: {len(passages)} ({n_paras} SQuAD paragraphs + {len(passages) - n_paras} half-paragraphs), "
          f"mean {np.mean([len(p) for p in passages]):.0f} chars; questions: {len(questions)}")

    tmp = tempfile.TemporaryDirectory(prefix="bench_embed_")
    export_s = {}
    dirs = {}
    for key, given, quant in (("fp32", args.onnx_dir, False), ("int8", args.int8_dir, True)):
        if given:
            dirs[key] = Path(given)
            export_s[key] = None
        else:
            dirs[key] = Path(tmp.name) / key
            t = time.perf_counter()
            export_onnx(DEFAULT_MODEL, dirs[key], quantize=quant)
            export_s[key] = time.perf_counter() - t

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in the table
    st_model = embed._st_model(DEFAULT_MODEL)
    fp32 = Embedder(onnx_dir=dirs["fp32"])
    int8 = Embedder(onnx_dir=dirs["int8"])
    for e in (fp32, int8):
        e.batch_size = args.batch_size
    tok = fp32._onnx.tokenize(passages)
    lengths = np.array([len(t) for t in tok])
    print(f"tokens per passage: mean {lengths.mean():.0f}, {np.mean(lengths >= 256) * 100:.0f}% truncated at 256")

    systems = {
        "(a) sentence-transformers encode(batch_size=32)*": lambda texts: st_model.encode(
            texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True),
        f"(b) ONNX fp32, length-sorted, batch {args.batch_size}": fp32.embed_passages,
        f"(c) ONNX int8, length-sorted, batch {args.batch_size}": int8.embed_passages,
    }
    for fn in systems.values():  # warm up: session creation, first-call allocations
        fn(passages[:8])
    times = {name: [] for name in systems}
    cpu = {name: [] for name in systems}
    vecs = {}
    for _ in range(args.runs):
        for name, fn in systems.items():
            t, c = time.perf_counter(), time.process_time()
            vecs[name] = fn(passages)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)

    names = list(systems)
    ref = vecs[names[0]]
    base_rate = len(passages) / statistics.median(times[names[0]])
    print()
    base_cpu = len(passages) / statistics.median(cpu[names[0]])
    print(f"{'indexing ' + str(len(passages)) + ' passages':<50} {'passages/s':>10} {'speed-up':>9} "
          f"{'wall runs (s)':>18} {'per cpu-s':>10} {'speed-up':>9} {'cos mean':>9} {'cos min':>8}")
    for name in names:
        rate = len(passages) / statistics.median(times[name])
        crate = len(passages) / statistics.median(cpu[name])
        c = cosines(vecs[name], ref)
        runs = " ".join(f"{x:.1f}" for x in times[name])
        print(f"{name:<50} {rate:>10.1f} {rate / base_rate:>8.2f}x {runs:>18} {crate:>10.1f} "
              f"{crate / base_cpu:>8.2f}x {c.mean():>9.5f} {c.min():>8.5f}")
    print("(wall: median of the runs; per cpu-s: passages per second of this process's CPU time, all threads,"
          " which other load on the machine disturbs less)")

    # Query latency: one question at a time, warm.
    def p50(fn) -> float:
        fn(questions[0])
        ts = []
        for q in questions:
            t = time.perf_counter()
            fn(q)
            ts.append(time.perf_counter() - t)
        return statistics.median(ts) * 1000

    st_emb = Embedder()
    qcos = {}
    st_q = np.stack([st_emb.embed_query(q) for q in questions])
    for key, e in (("fp32", fp32), ("int8", int8)):
        qcos[key] = cosines(np.stack([e.embed_query(q) for q in questions]), st_q)
    print("* sentence-transformers 6.2 encode() itself sorts its input by character length before batching")
    print()
    print(f"{'query latency (one question, warm)':<50} {'p50 ms':>10} {'cos mean':>9} {'cos min':>8}")
    print(f"{'sentence-transformers':<50} {p50(st_emb.embed_query):>10.1f}")
    print(f"{'ONNX fp32':<50} {p50(fp32.embed_query):>10.1f} {qcos['fp32'].mean():>9.5f} {qcos['fp32'].min():>8.5f}")
    print(f"{'ONNX int8':<50} {p50(int8.embed_query):>10.1f} {qcos['int8'].mean():>9.5f} {qcos['int8'].min():>8.5f}")

    print()
    print(f"{'cold: new python, import, load, embed one query':<58} {'median s':>10}")
    cold = {
        "sentence-transformers: Embedder().embed_query('q')":
            "from qa.embed import Embedder; Embedder().embed_query('q')",
        "ONNX fp32: Embedder(onnx_dir=D).embed_query('q')":
            f"from qa.embed import Embedder; Embedder(onnx_dir={str(dirs['fp32'])!r}).embed_query('q')",
        "ONNX int8: Embedder(onnx_dir=D).embed_query('q')":
            f"from qa.embed import Embedder; Embedder(onnx_dir={str(dirs['int8'])!r}).embed_query('q')",
        "baseline: python -c 'import numpy'": "import numpy",
    }
    for name, code in cold.items():
        print(f"{name:<58} {cold_run(code, args.runs):>10.2f}")

    print()
    for key in ("fp32", "int8"):
        size = (dirs[key] / "model.onnx").stat().st_size / 1e6
        made = f"exported in {export_s[key]:.1f} s" if export_s[key] is not None else "given"
        print(f"ONNX {key}: model.onnx {size:.1f} MB, {made}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
