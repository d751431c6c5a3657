"""A million passages: approximate dense search against exact search, in one run.

    .venv/bin/python -m benchmarks.bench_scale [--n 1000000] [--queries 200]

Embedding a million real passages takes hours on two cores, so the vectors and texts are
GENERATED: unit vectors drawn around 2,000 random centres (real embeddings cluster by topic; pure
noise would be an unrealistically hard case for any approximate index) and passages of 25 random
words from a 20,000-word synthetic vocabulary. Questions are perturbed copies of stored vectors
(so each has a true near neighbour) with a few words of text. The engine's own Index is built
(above Settings.ann_threshold it picks FAISS IVF), saved, and loaded again; then, for the same
questions: exact FAISS flat search (the baseline), the engine's approximate dense search, and the
engine's whole hybrid retrieval (dense + BM25 + fusion), all excluding the question's embedding.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(n: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    vecs = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        v = centres[rng.integers(0, len(centres), e - s)] + 0.6 * rng.standard_normal((e - s, dim)).astype(np.float32)
        vecs[s:e] = v / np.linalg.norm(v, axis=1, keepdims=True)
    vocab = np.array([f"w{i}x{(i * 7919) % 997}" for i in range(20_000)])
    words = rng.integers(0, len(vocab), (n, 25))
    return vecs, vocab, words, rng


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import faiss

    from qa.backends.local import LocalBackend
    from qa.backends import snapshot
    from qa.backends.snapshot import Snapshot as Index
    from qa.retrieve import retrieve
    from qa.types import Chunk, DocInfo, Settings

    print("command:", " ".join([Path(sys.executable).name] + sys.argv))
    print(f"GENERATED data: {args.n:,} passages (random clustered unit vectors, random-word texts)")
    t = time.perf_counter()
    vecs, vocab, words, rng = generate(args.n, 384)
    chunks, docs = [], {}
    for i in range(args.n):
        text = " ".join(vocab[words[i]]) + "."
        doc = f"gen/{i // 20:06d}.txt"
        if doc not in docs:
            docs[doc] = DocInfo(doc, doc, f"Generated {i // 20}", None, None, "0" * 64, 10_000)
        chunks.append(Chunk(doc, 0, len(text), text, ((0, len(text)),), (None,)))
    print(f"generated in {time.perf_counter() - t:.0f} s")

    settings = Settings()
    work = Path(tempfile.mkdtemp(prefix="qa-scale-"))
    try:
        t = time.perf_counter()
        # one sentence per passage: its vector
        snapshot.write(work / "v", settings, list(docs.values()), chunks, vecs, vecs)
        build_s = save_s = time.perf_counter() - t  # format 3 builds straight into its files
        del chunks
        dense_file = work / "v" / "dense.faiss"
        dense_bytes = dense_file.stat().st_size
        rss_before = rss_mb()
        t = time.perf_counter()
        index = Index.load(work / "v", deep_at_open=0)  # cheap checks only, as for any large index
        load_s = time.perf_counter() - t
        rss_after = rss_mb()
        print(f"index built and saved in {build_s:.0f} s ({type(index.dense).__name__}, "
              f"nlist={getattr(index.dense, 'nlist', '-')}, nprobe={getattr(index.dense, 'nprobe', '-')})")
        backend = LocalBackend._bound(work, index, work / "v")

        qi = rng.integers(0, args.n, args.queries)
        q = vecs[qi] + 0.3 * rng.standard_normal((args.queries, 384)).astype(np.float32) / np.sqrt(384)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        exact = faiss.IndexFlatIP(384)
        exact.add(vecs)
        ex_t, ex_ids = [], []
        for v in q:
            t = time.perf_counter()
            _, ids = exact.search(v[None, :], 10)
            ex_t.append(time.perf_counter() - t)
            ex_ids.append(ids[0])
        del exact
        ann_t, hyb_t, recall = [], [], []
        for v, truth in zip(q, ex_ids):
            t = time.perf_counter()
            ids, _ = index.search_dense(v, 10)
            ann_t.append(time.perf_counter() - t)
            recall.append(len(set(ids.tolist()) & set(truth.tolist())) / 10)
            text = " ".join(vocab[rng.integers(0, len(vocab), 4)])
            t = time.perf_counter()
            retrieve(backend, v, text)
            hyb_t.append(time.perf_counter() - t)
        ms = lambda xs, p: 1000 * float(np.percentile(xs, p))  # noqa: E731
        print()
        print("| search (question embedding excluded) | p50 ms | p95 ms | recall@10 vs exact |")
        print("|---|---|---|---|")
        print(f"| exact FAISS flat (baseline) | {ms(ex_t, 50):.1f} | {ms(ex_t, 95):.1f} | 1.000 |")
        print(f"| engine dense search ({type(index.dense).__name__}) | {ms(ann_t, 50):.1f} | {ms(ann_t, 95):.1f} | {np.mean(recall):.3f} |")
        print(f"| engine retrieve(): dense + BM25 + fusion | {ms(hyb_t, 50):.1f} | {ms(hyb_t, 95):.1f} | - |")
        print()
        print(f"dense index on disk / in memory: {dense_bytes / 2**30:.2f} GiB; build {build_s:.0f} s; "
              f"save {save_s:.0f} s; load {load_s:.1f} s; resident memory grew {rss_after - rss_before:.0f} MiB on load")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
