"""Opening a local index: format 2 (read whole: chunks.jsonl, float32 vectors, FAISS rebuilt) against
format 3 (memory-mapped columns, float16, FAISS read with its mmap flags), in one run.

    .venv/bin/python -m benchmarks.bench_open [--n 10000 300000] [--old-ref adcfa48]

The passages are GENERATED, not embedded (a million real passages take hours): documents of
`--per-doc` passages, each passage three sentences of ten random words from a 20,000-word
synthetic vocabulary; passage vectors are unit vectors around 2,000 random centres and sentence
vectors their perturbed copies. The format-3 version is written with snapshot.write (BM25 and the
lexicon built as for real passages), the format-2 one from it with migrate.write_format_2 (the old
layout). Each version is opened in a fresh process, three times (the fastest reported): format 2 with the
old reader checked out of git at --old-ref (the branch base), format 3 with this tree, as it opens
(deep checks too when under snapshot.DEEP_AT_OPEN_BYTES) and with the cheap checks only. Reported per open: wall time of
LocalBackend(root) (Python imports excluded), resident memory it added (anonymous, and file-backed
pages of the maps), and one dense + one lexical search afterwards. Page cache warm (the files were
just written); the machine is shared, so figures are indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

OPEN = r"""
import json, sys, time
from pathlib import Path
import numpy as np
import faiss  # imports are not part of the open time
from qa.backends.local import LocalBackend
from qa.backends import snapshot

def mem():
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) / 1024
    return out

import qa
from qa.backends.store import IndexStore
root, mode = Path(sys.argv[1]), sys.argv[2]
before = mem()
t = time.perf_counter()
if mode == "as-is":
    b = LocalBackend(root)
else:  # the checks that cost nothing per passage only, as for a version above the open-time budget
    version = IndexStore(root).current()
    b = LocalBackend._bound(root, snapshot.Snapshot.load(version, deep_at_open=0), version)
open_s = time.perf_counter() - t
after = mem()
assert b.problem == "", b.problem
rng = np.random.default_rng(1)
q = rng.standard_normal(b.snapshot.vectors.shape[1]).astype(np.float32)
q /= np.linalg.norm(q)
t = time.perf_counter(); b.search_dense(q, 10); dense_ms = 1000 * (time.perf_counter() - t)
t = time.perf_counter(); b.search_lexical(["w1x1", "w2x2", "w3x3"], 10); lex_ms = 1000 * (time.perf_counter() - t)
t = time.perf_counter(); b.fetch([0, len(b) // 2, len(b) - 1]); fetch_ms = 1000 * (time.perf_counter() - t)
print(json.dumps({"code": qa.__file__, "format": snapshot.FORMAT_VERSION, "open_s": open_s, "rss_mb": after["VmRSS"] - before["VmRSS"],
                  "anon_mb": after["RssAnon"] - before["RssAnon"], "file_mb": after["RssFile"] - before["RssFile"],
                  "dense_ms": dense_ms, "lexical_ms": lex_ms, "fetch3_ms": fetch_ms, "passages": len(b)}))
"""


def generate(n: int, per_doc: int, dim: int = 384, seed: int = 0, vocab: list[str] | None = None):
    """(docs, chunks, vectors, sentence vectors) of n generated passages.

    `vocab`: the words drawn from, uniformly (default: 20,000 made-up words; a real text's word
    stream, repeats kept, gives its words at their real frequencies)."""
    from qa.types import Chunk, DocInfo

    rng = np.random.default_rng(seed)
    vocab = vocab or [f"w{i}x{(i * 7919) % 997}" for i in range(20_000)]
    words = rng.integers(0, len(vocab), (n, 30))
    docs, chunks = {}, []
    for i in range(n):
        k = i // per_doc
        doc = f"gen/{k:07d}.txt"
        sents = [" ".join(vocab[w] for w in words[i, j:j + 10]).capitalize() + "." for j in (0, 10, 20)]
        offset = (i % per_doc) * 1000
        spans, pos = [], offset
        for s in sents:
            spans.append((pos, pos + len(s)))
            pos += len(s) + 1
        text = " ".join(sents)
        if doc not in docs:
            docs[doc] = DocInfo(doc, doc, f"Generated article {k}", None, "Generated", f"{k:064x}", per_doc * 1000)
        chunks.append(Chunk(doc, offset, offset + len(text), text, tuple(spans), (None, None, None)))
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    vecs = np.empty((n, dim), np.float32)
    svecs = np.empty((3 * n, dim), np.float32)
    for s in range(0, n, 50_000):
        e = min(n, s + 50_000)
        v = centres[rng.integers(0, len(centres), e - s)] + 0.6 * rng.standard_normal((e - s, dim)).astype(np.float32)
        vecs[s:e] = v / np.linalg.norm(v, axis=1, keepdims=True)
        sv = np.repeat(vecs[s:e], 3, axis=0) + 0.3 * rng.standard_normal((3 * (e - s), dim)).astype(np.float32)
        svecs[3 * s:3 * e] = sv / np.linalg.norm(sv, axis=1, keepdims=True)
    return list(docs.values()), chunks, vecs, svecs


def old_tree(ref: str, into: Path) -> Path:
    """The package as of git `ref` (the format-2 reader), extracted under `into`."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "qa"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def open_in_fresh_process(root: Path, pythonpath: Path, mode: str = "as-is", repeat: int = 3) -> dict:
    """The figures of the fastest of `repeat` opens (the machine is shared: the minimum is the
    least disturbed)."""
    runs = [_open_once(root, pythonpath, mode) for _ in range(repeat)]
    return min(runs, key=lambda r: r["open_s"])


def _open_once(root: Path, pythonpath: Path, mode: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(pythonpath), HF_HUB_OFFLINE="1")
    # cwd: `python -c` puts the working folder first on sys.path, before PYTHONPATH.
    out = subprocess.run([sys.executable, "-c", OPEN, str(root), mode], env=env, cwd=pythonpath, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def du(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 300_000])
    ap.add_argument("--per-doc", type=int, default=5)
    ap.add_argument("--old-ref", default="adcfa48")
    ap.add_argument("--work", default=None, help="folder for the indexes (default: a temporary one)")
    args = ap.parse_args()
    from qa.backends import migrate, snapshot
    from qa.backends.store import IndexStore
    from qa.types import Settings

    print("command:", " ".join([Path(sys.executable).name] + sys.argv))
    work = Path(args.work or tempfile.mkdtemp(prefix="qa-open-"))
    old = old_tree(args.old_ref, work / "old")
    rows = []
    try:
        for n in args.n:
            t = time.perf_counter()
            docs, chunks, vecs, svecs = generate(n, args.per_doc)
            gen_s = time.perf_counter() - t
            three, two = work / f"f3-{n}", work / f"f2-{n}"
            store3 = IndexStore(three)
            t = time.perf_counter()
            with store3.lock():
                tmp = store3.new_version()
                snapshot.write(tmp, Settings(), docs, chunks, vecs, svecs)
                v3 = store3.commit(tmp)
            write_s = time.perf_counter() - t
            del chunks
            store2 = IndexStore(two)
            with store2.lock():
                tmp = store2.new_version()
                migrate.write_format_2(snapshot.Snapshot.load(v3, deep_at_open=0), tmp, vecs, svecs)
                v2 = store2.commit(tmp)
            del vecs, svecs
            r2 = open_in_fresh_process(two, old)
            r3 = open_in_fresh_process(three, ROOT)
            r3c = open_in_fresh_process(three, ROOT, "cheap")
            assert r2["format"] == 2 and r3["format"] == 3 and str(old) in r2["code"], (r2, r3)
            t = time.perf_counter()
            snapshot.check(v3)
            check_s = time.perf_counter() - t
            print(f"n={n:,}: generated in {gen_s:.0f} s, format 3 written in {write_s:.0f} s, qa check {check_s:.1f} s")
            rows.append((n, len(docs), "2 (old reader)", du(v2), r2))
            rows.append((n, len(docs), "3", du(v3), r3))
            rows.append((n, len(docs), "3, cheap checks only", du(v3), r3c))
            shutil.rmtree(two)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("| passages | documents | format | on disk MiB | open s | RSS added MiB (anon + file) | dense ms | lexical ms | fetch 3 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, d, fmt, size, r in rows:
        print(f"| {n:,} | {d:,} | {fmt} | {size:,.0f} | {r['open_s']:.3f} | {r['rss_mb']:,.0f} ({r['anon_mb']:,.0f} + "
              f"{r['file_mb']:,.0f}) | {r['dense_ms']:.1f} | {r['lexical_ms']:.1f} | {r['fetch3_ms']:.1f} |")


if __name__ == "__main__":
    main()
