"""Indexing speed end to end: passages/s, time per stage and peak memory of a fresh index build.

    .venv/bin/python -m benchmarks.bench_index [--docs ../shared/data/bbc] [--limit N]
        [--cache .qa-eval/onnx-int8] [--code DIR] [--settings JSON] [--profile FILE] [--runs 1]

The model export is done once, in its own process, into --cache (reused by later runs) and timed
separately: it is a one-time cost, not part of indexing. Each run then builds an index over the
documents in a fresh process, as `QA(docs, index)` does on first use (read and clean, chunk,
attribute, embed, BM25, lexicon, save, with the exported model copied beside the index), and
reports:

* passages/s: passages indexed / wall time of the whole build, imports included;
* the time of each stage (chunking with speaker attribution, embedding, writing the version: BM25,
  lexicon and files), measured by wrapping the pipeline's functions (the code under test is not
  changed; "other" is what no wrapper covers: imports, the model, reading the folder);
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
STAGES = ("chunk + attribution", "embed", "write version (BM25, lexicon, files)")


def export(cache: Path) -> float | None:
    """Export the int8 model into `cache` in a child process unless already there; its seconds."""
    if (cache / "embed_config.json").is_file():
        return None
    code = ("import sys; from qa.embed import DEFAULT_MODEL; from qa.model_export import export_onnx; "
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


def worker(docs: Path, cache: Path, out: Path) -> dict:
    """Build one index over `docs` into `out` (the indexing process itself), as `QA(docs, out)` does
    on first use, with the exported model copied beside the index."""
    import resource

    t0 = time.perf_counter()
    times: dict[str, float] = {}
    from qa import QA, embed, indexer
    from qa.backends import snapshot

    # Timers around the pipeline's stages (looked up at call time, so wrapping the module names
    # times them without changing the code under test).
    indexer.passages = _timed(times, "chunk + attribution", indexer.passages)
    embed.embed_chunks = _timed(times, "embed", embed.embed_chunks)
    snapshot.write = _timed(times, "write version (BM25, lexicon, files)", snapshot.write)
    shutil.copytree(cache, out / "model")
    settings = json.loads(os.environ.get("BENCH_SETTINGS") or "{}")
    bot = QA(docs, out, **({"settings": _settings(settings)} if settings else {}))
    status = bot.status()
    total = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"documents": status.documents, "passages": status.passages, "seconds": total, "stages": times,
            "cpu_s": usage.ru_utime + usage.ru_stime + child.ru_utime + child.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "peak_rss_children_mb": child.ru_maxrss / 1024}


def _settings(fields: dict):
    from qa.types import Settings

    return Settings(**fields)


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
    print(f"{r['documents']} documents, {r['passages']} passages: "
          f"{r['seconds']:.1f} s, {r['passages'] / r['seconds']:.1f} passages/s; CPU {r['cpu_s']:.0f} s "
          f"({r['passages'] / r['cpu_s']:.1f} passages per CPU-second; 2 cores at most 2x that); "
          f"peak RSS {r['peak_rss_mb']:.0f} MB (children {r['peak_rss_children_mb']:.0f} MB)")
    stages = r["stages"]
    covered = sum(v for k, v in stages.items() if not k.startswith(" "))
    for name in STAGES:
        if name in stages:
            print(f"  {name:38s} {stages[name]:7.1f} s  {100 * stages[name] / r['seconds']:5.1f}%")
    print(f"  {'other (imports, model, reading files)':38s} {r['seconds'] - covered:7.1f} s")


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
