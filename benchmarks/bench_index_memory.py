"""Peak memory of `qa index` building an index from scratch: the process and its children.

    .venv/bin/python -m benchmarks.bench_index_memory --docs ../shared/data/bbc [--limit 500]
        [--model DIR] [--code DIR]

Runs the real command line (`python -m qa index`) in a fresh interpreter over a temporary index
folder, with an exported query model copied in beside it first (--model: the export is a one-time
cost, not indexing). Every 20 ms it sums the resident memory (VmRSS) of the process and of all its
descendants, read from /proc; it reports the largest sum seen, and the kernel's own peak of the
largest single process (getrusage RUSAGE_CHILDREN), which a 20 ms poll cannot miss. --limit N
indexes N documents evenly spread over the sorted names (copied to the temporary folder).

--no-model builds the same index through `QA(docs, index, embedder=...)` with made-up unit vectors
instead of the model: what is left is the memory that grows with the collection (documents,
passages, vectors, BM25, lexicon), without the ONNX session's ~550 MB that does not.
Not a test: prints one line.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """pid and every descendant (from /proc/*/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return out


# The index built with benchmarks/stand_in.py's made-up vectors, loaded by path: the checkout run
# (--code, e.g. an older baseline) may not have that file.
NO_MODEL = r"""
import importlib.util, sys
from qa import QA

spec = importlib.util.spec_from_file_location("stand_in", sys.argv[3])
stand_in = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stand_in)
bot = QA(sys.argv[1], sys.argv[2], embedder=stand_in.UnitEmbedder(), progress=False)
print(f"{bot.last_update.passages} passages indexed")
"""


def measure(docs: Path, index: Path, code: Path, model: bool = True) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(code))
    start = time.perf_counter()
    cmd = (["-m", "qa", "index", "--docs", str(docs), "--index", str(index)] if model
           else ["-c", NO_MODEL, str(docs), str(index), str(Path(__file__).with_name("stand_in.py"))])
    proc = subprocess.Popen([sys.executable, *cmd], cwd=code, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(_rss_kb(p) for p in _tree(proc.pid)))
        time.sleep(0.02)
    output = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"qa index failed ({proc.returncode}):\n{output}")
    return {"seconds": time.perf_counter() - start, "polled_tree_peak_mb": peak / 1024,
            "max_single_process_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "output": output.strip().splitlines()[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", default=str(DEFAULT_DOCS))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--model", default="", help="an exported query model folder to copy beside the index")
    ap.add_argument("--code", default=str(ROOT), help="checkout whose qa is measured")
    ap.add_argument("--tmp", default=None, help="parent folder of the temporary index")
    ap.add_argument("--no-model", action="store_true", help="made-up vectors instead of the model")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-index-memory-", dir=args.tmp) as tmp:
        docs = Path(args.docs)
        if args.limit:
            files = sorted(p for p in docs.iterdir() if p.is_file())
            step = max(1, len(files) // args.limit)
            docs = Path(tmp) / "docs"
            docs.mkdir()
            for f in files[::step][:args.limit]:
                shutil.copy(f, docs / f.name)
        index = Path(tmp) / "index"
        if args.model and not args.no_model:
            shutil.copytree(args.model, index / "model")
        r = measure(docs, index, Path(args.code).resolve(), model=not args.no_model)
    print(f"{r['output']}: {r['seconds']:.1f} s; peak RSS of the process tree (polled) "
          f"{r['polled_tree_peak_mb']:.0f} MB, largest single process {r['max_single_process_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
