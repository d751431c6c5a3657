"""Query latency and memory of the Milvus backend as the collection grows, beside the local backend.

    .venv/bin/python -m benchmarks.bench_milvus_scale [--sizes 10000 30000 100000] [--questions 200]
        [--model /work/cache/bbc-index/model] [--out result.json]

The passages are MADE UP, not embedded (100k real passages take hours to embed here), by
bench_open.generate: documents of --per-doc passages, each three sentences of ten words. Unlike
bench_open's default, the words are drawn from the SQuAD dev half's article text (its word stream,
repeats kept), so a real question's terms occur at real-text frequencies and the lexical search
(BM25, the lexicon's per-sentence arrays) does real work; the sentences are not grammatical and
answer nothing. Passage vectors are unit vectors around 2,000 random centres and sentence vectors
their perturbed copies: spread over the whole sphere, unlike real embeddings, which fill a narrow
cone. The QUESTIONS are real: --questions SQuAD dev-half questions (evenly spread), embedded with the
project's query model once, before timing. So the latency is the engine's cost at that size, not its
quality (there is no right answer among made-up passages).

For each size: a fresh `milvus-lite server` (its own data folder) takes the passages through the
project's writer (MilvusBackend.writer(fresh=True), one PassageBatch per document, commit), and a fresh
local backend takes the same ones. Reported per backend: write speed (passages/s, the writer alone),
on-disk size, the questions' latency p50/p99 through the path QA.ask takes after embedding (make_filter,
formulate, retrieve, compose; k=10), and for Milvus the time outside the server (the question's time
minus the union of its client calls' spans, counted by tests.probe.CountingClient; pymilvus' own
encoding and decoding count as server time), each call's p50 by collection part, the server's resident
memory (the process and its children, from /proc) empty, after the write and after the questions, and
this process's. Load average is printed at each step: the machine is shared, so the figures are
indicative. --skip-local measures Milvus alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_milvus import start_server
from benchmarks.bench_open import du, generate
from tests.probe import CountingClient, children, stop

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rss_mb(pid: int, descendants: bool = True) -> float:
    """Resident memory of a process and (by default) all its descendants (MiB)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo += children(p) if descendants else []
    return round(total / 1024, 1)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def questions(squad: Path, n: int, model: Path):
    """(question texts, their query vectors, the articles' word stream) from the SQuAD file."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import even_sample
    from qa.embed import Embedder
    from qa.retrieve import formulate
    from qa.types import Settings

    data = json.loads(squad.read_text(encoding="utf-8"))["data"]
    words = [w for a in data for p in a["paragraphs"] for w in re.findall(r"[A-Za-z][A-Za-z'-]*", p["context"])]
    qs = even_sample([q["question"] for a in data for p in a["paragraphs"] for q in p["qas"]], n)
    embedder = Embedder(Settings().model, onnx_dir=model)
    qvecs = np.stack([embedder.embed_query(formulate(q, [])) for q in qs])
    return qs, qvecs, words


def batches(n: int, per_doc: int, vocab: list[str]):
    from qa.backends.base import PassageBatch

    docs, chunks, vecs, svecs = generate(n, per_doc, vocab=vocab)
    out, i = [], 0
    for doc in docs:
        j = i
        while j < len(chunks) and chunks[j].doc_id == doc.doc_id:
            j += 1
        out.append(PassageBatch(doc, tuple(chunks[i:j]), vecs[i:j], svecs[3 * i:3 * j]))
        i = j
    assert i == len(chunks) == n
    return out


def write(backend, settings, bs) -> tuple[object, float]:
    """The committed backend and the passages per second of writing bs into it."""
    t = time.perf_counter()
    writer = backend.writer(settings, fresh=True)
    for b in bs:
        writer.upsert(b)
    live = writer.commit()
    return live, round(sum(len(b.chunks) for b in bs) / (time.perf_counter() - t), 1)


def ask(backend, weights, question: str, qvec: np.ndarray, k: int = 10):
    """QA.ask after the embedding: the same calls, no filter."""
    from qa.answer import compose
    from qa.filters import make_filter
    from qa.retrieve import formulate, retrieve
    from qa.textutil import quoted_phrases

    docs = backend.documents()
    where = make_filter(docs, [], None, None, [], [], quoted_phrases(question))
    query = formulate(question, [])
    return compose(question, query, [], retrieve(backend, qvec, query, weights, where=where), qvec, k)


def union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, -1.0
    for s, e in sorted(spans):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


class LabelledClient(CountingClient):
    """A CountingClient that also records each call's collection part (passages, docs, terms)."""

    def reset(self) -> None:
        super().reset()
        self.labelled: list[tuple[str, float, float]] = []

    def __getattr__(self, name):
        call = super().__getattr__(name)

        def labelled(*args, **kwargs):
            start = time.monotonic()
            try:
                return call(*args, **kwargs)
            finally:
                target = str(args[0]) if args else str(kwargs.get("collection_name", ""))
                part = next((p for p in ("docs", "terms") if target.endswith("_" + p)), "passages")
                self.labelled.append((f"{name} {part}", start, time.monotonic()))
        return labelled


def latency(backend, qs, qvecs, counter: CountingClient | None = None) -> dict:
    from qa.retrieve import Weights

    weights = Weights()
    ask(backend, weights, qs[0], qvecs[0])  # warm: the version's document table
    total, outside, answered, by_call = [], [], 0, {}
    for q, v in zip(qs, qvecs):
        if counter:
            counter.reset()
        t0 = time.monotonic()
        ans = ask(backend, weights, q, v)
        took = time.monotonic() - t0
        answered += ans.answered
        total.append(took * 1000)
        outside.append((took - (union(counter.spans) if counter else 0.0)) * 1000)
        seen: dict[str, int] = {}
        for name, s, e in sorted(getattr(counter, "labelled", ()), key=lambda c: c[1]):
            seen[name] = seen.get(name, 0) + 1
            by_call.setdefault(f"{name} {seen[name]}", []).append((e - s) * 1000)

    def pct(xs, p):
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, int(p * len(xs)))], 1)

    out = {"p50_ms": pct(total, 0.5), "p99_ms": pct(total, 0.99),
           "outside_server_p50_ms": pct(outside, 0.5), "outside_server_p99_ms": pct(outside, 0.99),
           "answered": answered}
    if counter:
        out["calls_per_question"] = len(counter.calls)
        # Which call the time goes to: each call's p50 (the nth call of that name in a question, by start).
        out["call_p50_ms"] = {k: pct(v, 0.5) for k, v in sorted(by_call.items())}
    return out


def main() -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import shared_data
    from qa.backends.local import LocalBackend
    from qa.backends.milvus import MilvusBackend
    from qa.types import Settings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--per-doc", type=int, default=5)
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--squad", default=str(shared_data() / "squad-dev-half.json"))
    ap.add_argument("--model", default="/work/cache/bbc-index/model", help="the query model's ONNX export")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--skip-local", action="store_true")
    args = ap.parse_args()
    print("command:", " ".join([Path(sys.executable).name] + sys.argv), flush=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-milvus-scale-"))
    settings = Settings()
    t = time.perf_counter()
    qs, qvecs, words = questions(Path(args.squad), args.questions, Path(args.model))
    print(f"{len(qs)} questions embedded in {time.perf_counter() - t:.0f} s; {len(words):,} words; load {load()}",
          flush=True)
    rows = []
    try:
        for n in args.sizes:
            row: dict = {"passages": n}
            t = time.perf_counter()
            bs = batches(n, args.per_doc, words)
            row["generate_s"] = round(time.perf_counter() - t, 1)
            data = work / f"milvus-{n}"
            proc, uri = start_server(data)
            try:
                time.sleep(2)
                m: dict = {"server_rss_empty_mb": rss_mb(proc.pid)}
                live, m["write_passages_per_s"] = write(MilvusBackend(uri, name="scale", load=False), settings, bs)
                m["load_after_write"] = load()
                m["server_rss_after_write_mb"] = rss_mb(proc.pid)
                m["disk_mb"] = round(du(data), 1)
                counter = live.client = LabelledClient(live.client)
                m.update(latency(live, qs, qvecs, counter))
                live.client = counter._client
                m["server_rss_after_questions_mb"] = rss_mb(proc.pid)
                m["client_rss_mb"] = rss_mb(os.getpid(), descendants=False)  # the server is our child
                m["load_after_questions"] = load()
                live.close()
            finally:
                stop(proc)
            row["milvus"] = m
            print(n, "milvus", json.dumps(m), flush=True)
            if not args.skip_local:
                root = work / f"local-{n}"
                loc: dict = {}
                live, loc["write_passages_per_s"] = write(LocalBackend(root, load=False), settings, bs)
                loc["disk_mb"] = round(du(root), 1)
                live.close()
                live = LocalBackend(root)  # opened as a reader would: the version's mapped files
                loc.update(latency(live, qs, qvecs))
                loc["client_rss_mb"] = rss_mb(os.getpid(), descendants=False)  # the server is our child
                loc["load_after_questions"] = load()
                live.close()
                row["local"] = loc
                print(n, "local", json.dumps(loc), flush=True)
            del bs
            gc.collect()
            shutil.rmtree(data, ignore_errors=True)
            rows.append(row)
            if args.out:
                Path(args.out).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("| passages | backend | write passages/s | on disk MiB | p50 / p99 ms | outside server p50 / p99 ms | "
          "server RSS empty → written → after questions MiB | client RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for name in ("milvus", "local"):
            if name not in r:
                continue
            x = r[name]
            server = (f"{x['server_rss_empty_mb']:,.0f} → {x['server_rss_after_write_mb']:,.0f} → "
                      f"{x['server_rss_after_questions_mb']:,.0f}") if name == "milvus" else "–"
            print(f"| {r['passages']:,} | {name} | {x['write_passages_per_s']:,.0f} | {x['disk_mb']:,.0f} | "
                  f"{x['p50_ms']} / {x['p99_ms']} | {x['outside_server_p50_ms']} / {x['outside_server_p99_ms']} | "
                  f"{server} | {x['client_rss_mb']:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
