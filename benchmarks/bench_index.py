"""Indexing speed end to end: passages/s, time per stage and peak memory of a fresh index build.

    .venv/bin/python -m benchmarks.bench_index [--docs ../shared/data/bbc] [--limit N]
        [--cache .qa-eval/onnx-int8] [--code DIR] [--settings JSON] [--profile FILE] [--runs 1]

The model export is done once, in its own process, into --cache (reused by later runs) and timed
separately: it is a one-time cost, not part of indexing. Each run then builds an index over the
documents in a fresh process, as `QA(docs, index)` does on first use (read and clean, chunk,
attribute, embed, BM25, lexicon, save, with the exported model copied beside the index), and
reports:

* passages/s: passages indexed / wall time of the whole build, imports included;
* the time of each stage, measured by wrapping the pipeline's functions (the code under test is
  not changed; "other" is what no wrapper covers);
* CPU seconds of the indexing process: on a machine shared with other jobs, wall time varies
  with their load, CPU time much less (contended caches and cores still inflate it);
* peak RSS of the indexing process (getrusage RUSAGE_SELF) and of its children (RUSAGE_CHILDREN).

--limit N copies N documents evenly spread over the sorted names into a temporary folder. --profile FILE
runs cProfile in the indexing process and prints its top functions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DOCS = ROOT.parent / "shared" / "data" / "bbc"
if not DEFAULT_DOCS.is_dir():
    DEFAULT_DOCS = Path("/work/shared/data/bbc")
STAGES = ("read+clean", "chunk", "attribution", "model load", "embed passages", "embed sentences",
          "embed_chunks", "  of which embed passages", "  of which embed sentences", "dense", "bm25",
          "lexicon", "save")


def export(cache: Path) -> float | None:
    """Export the int8 model into `cache` in a child process unless already there; its seconds."""
    if (cache / "embed_config.json").is_file():
        return None
    code = ("import sys; from qa.embed import DEFAULT_MODEL, export_onnx; "
            "export_onnx(DEFAULT_MODEL, sys.argv[1], quantize=True)")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(cache)], check=True, cwd=ROOT)
    return time.perf_counter() - t


# ---------------------------------------------------------------------------------------------
# The indexing process


def _timed(times: dict, stage: str, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[stage] = times.get(stage, 0.0) + time.perf_counter() - t
    return wrapper


class _SplitTimer:
    """Wraps an embedder. A call holding passages then sentences (the old build's single call) is
    timed as two stages; the split point is the number of passages chunking produced. Inside
    embed_chunks (timed as a whole) its calls are shown as parts of that stage."""

    def __init__(self, inner, times: dict, passages: list[int]):
        self.inner, self.times, self.passages = inner, times, passages
        self.inside = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_passages(self, texts, progress=False):
        import numpy as np

        n = min(self.passages[0], len(texts))
        if self.inside and len(texts) < self.passages[0]:
            n = 0  # in-context sentence vectors: only the sentences the passage pass did not cover
        prefix = "  of which " if self.inside else ""
        parts = []
        for stage, chunk in (("embed passages", texts[:n]), ("embed sentences", texts[n:])):
            if chunk:
                t = time.perf_counter()
                parts.append(self.inner.embed_passages(chunk, progress))
                key = prefix + stage
                self.times[key] = self.times.get(key, 0.0) + time.perf_counter() - t
        return np.concatenate(parts) if parts else self.inner.embed_passages(texts, progress)


def worker(docs: Path, cache: Path, out: Path) -> dict:
    """Build one index over `docs` into `out` (the indexing process itself)."""
    import resource

    t0 = time.perf_counter()
    times: dict[str, float] = {}
    from qa import attribution, chunk, embed, index, lexicon
    from qa.index import Index
    from qa.ingest import read_folder
    from qa.store import build
    from qa.types import Settings

    settings = Settings(**json.loads(os.environ.get("BENCH_SETTINGS") or "{}"))
    passages = [0]
    chunk_fn = chunk.chunk_document

    def counting_chunk(*args, **kwargs):
        result = chunk_fn(*args, **kwargs)
        passages[0] += len(result)
        return result

    chunk.chunk_document = _timed(times, "chunk", counting_chunk)
    attribution.attribute = _timed(times, "attribution", attribution.attribute)
    lexicon.build = _timed(times, "lexicon", lexicon.build)
    index._bm25_index = _timed(times, "bm25", index._bm25_index)
    index._dense_index = _timed(times, "dense", index._dense_index)
    timer = None
    if hasattr(embed, "embed_chunks"):
        inner_chunks = _timed(times, "embed_chunks", embed.embed_chunks)

        def embed_chunks(*args, **kwargs):
            timer.inside = True
            try:
                return inner_chunks(*args, **kwargs)
            finally:
                timer.inside = False
        embed.embed_chunks = embed_chunks

    t = time.perf_counter()
    folder = read_folder(docs)
    times["read+clean"] = time.perf_counter() - t
    t = time.perf_counter()
    shutil.copytree(cache, out / "model")  # as QA does: the query model lives beside the index
    embedder = embed.Embedder(settings.model, onnx_dir=out / "model")
    embedder.embed_query("warm-up")
    times["model load"] = time.perf_counter() - t
    timer = _SplitTimer(embedder, times, passages)
    built = build(folder.documents, None, settings, timer, progress=False)
    t = time.perf_counter()
    built.save(out)
    times["save"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    self_kb = usage.ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"documents": len(folder.documents), "passages": len(built.chunks),
            "sentences": int(built.sent_start[-1]), "seconds": total, "stages": times,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": self_kb / 1024, "peak_rss_children_mb": child_kb / 1024}


def _worker_main(args) -> None:
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(worker, Path(args.docs), Path(args.cache), Path(args.out))
        prof.dump_stats(args.profile)
        stats = pstats.Stats(args.profile, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    else:
        result = worker(Path(args.docs), Path(args.cache), Path(args.out))
    print("RESULT " + json.dumps(result))


# ---------------------------------------------------------------------------------------------


def run_once(docs: Path, cache: Path, profile: str | None, code: Path, settings: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        cmd = [sys.executable, __file__, "--worker", "--docs", str(docs), "--cache", str(cache),
               "--out", str(Path(tmp) / "index")]
        if profile:
            cmd += ["--profile", profile]
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(code), BENCH_SETTINGS=settings)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True)
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
        return json.loads(line[len("RESULT "):])


def report(r: dict) -> None:
    print(f"{r['documents']} documents, {r['passages']} passages, {r['sentences']} sentences: "
          f"{r['seconds']:.1f} s, {r['passages'] / r['seconds']:.1f} passages/s; CPU {r['cpu_s']:.0f} s "
          f"({r['passages'] / r['cpu_s']:.1f} passages per CPU-second; 2 cores at most 2x that); "
          f"peak RSS {r['peak_rss_mb']:.0f} MB (children {r['peak_rss_children_mb']:.0f} MB)")
    stages = r["stages"]
    covered = sum(v for k, v in stages.items() if not k.startswith(" "))
    for name in STAGES:
        if name in stages:
            print(f"  {name:18s} {stages[name]:7.1f} s  {100 * stages[name] / r['seconds']:5.1f}%")
    print(f"  {'other (imports...)':18s} {r['seconds'] - covered:7.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", default=str(DEFAULT_DOCS))
    ap.add_argument("--limit", type=int, help="index N documents evenly spread over the sorted names")
    ap.add_argument("--cache", default=str(ROOT / ".qa-eval" / "onnx-int8"), help="model export, reused")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--code", default=str(ROOT), help="folder whose qa package is measured (e.g. a checkout of main)")
    ap.add_argument("--settings", default="{}", help='Settings fields as JSON, e.g. \'{"sentence_vectors": "separate"}\'')
    ap.add_argument("--profile", help="cProfile the indexing process into this file")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        _worker_main(args)
        return
    print("command:", " ".join([Path(sys.executable).name] + sys.argv))
    cache = Path(args.cache).resolve()
    took = export(cache)
    print(f"model export: {took:.1f} s (one-time)" if took is not None else f"model export: reused {cache}")
    docs = Path(args.docs).resolve()
    with tempfile.TemporaryDirectory(prefix="bench-docs-") as tmp:
        if args.limit:
            every = sorted(p for p in docs.iterdir() if p.is_file())
            # Evenly spread over the sorted names, so a subset covers every section of the corpus.
            names = [every[i * len(every) // args.limit] for i in range(min(args.limit, len(every)))]
            docs = Path(tmp) / "docs"
            docs.mkdir()
            for p in names:
                shutil.copy2(p, docs / p.name)
        results = []
        for _ in range(args.runs):
            results.append(run_once(docs, cache, args.profile, Path(args.code).resolve(), args.settings))
            report(results[-1])
    if args.json:
        Path(args.json).write_text(json.dumps({"export_s": took, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
