"""Memory of reading long PDFs: does a 200-page report cost more than its text?

    .venv/bin/python -m benchmarks.bench_pdf_memory [--pages 20 200 1000] [--code DIR ...]

Writes a PDF of each length (fpdf2, A5, BBC article text repeated; made-up text without the corpus)
and reads it with `qa.ingest.read_document` in a fresh interpreter, which parses it in its worker
process (qa.formats). Reports the file size, the extracted text's size, and the peak resident memory
of the reading process and of its worker (VmHWM), so growth with the page count can be read off
against the growth of the text: the last two columns are each process's growth over the shortest
PDF divided by the growth of the text (1.0: memory grows by as much as the text).
Each `--code` checkout (another worktree, e.g. main as the baseline) reads the same files in turn.
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_ingest import BBC, to_pdf

ROOT = Path(__file__).resolve().parent.parent

READER = r"""
import json, os, resource, sys
from pathlib import Path
from qa.ingest import read_document
from tests.probe import children
p = Path(sys.argv[1])
doc = read_document(p, p.parent)
def hwm(pid):  # peak resident memory of a live process (its worker is not reaped yet)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
# Not getrusage's ru_maxrss: Linux carries it over an exec, so it would report the peak of the
# benchmark process that forked this one (which has just written the PDF) when that is higher.
me = hwm(os.getpid())
worker = max([hwm(c) for c in children(os.getpid())] + [resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024])
print(json.dumps({"chars": len(doc.text), "pages": len(doc.pages) if doc.pages else 0,
                  "self_mb": me, "worker_mb": worker}))
"""


def article_text() -> str:
    files = sorted(BBC.glob("*.txt"))[:40] if BBC.exists() else []
    text = "\n\n".join(f.read_text("utf-8", "replace") for f in files)
    return text or ("The council met on Monday to discuss the harbour. " * 40 + "\n\n") * 40


def pdf_of(pages: int, base: str) -> bytes:
    """A PDF of about `pages` A5 pages (the text is repeated until it is long enough)."""
    per_page = 1_720  # characters of 11-point text on an A5 page (measured with fpdf2)
    text = (base * (pages * per_page // max(len(base), 1) + 1))[: pages * per_page]
    return to_pdf(text)


def read(path: Path, code: Path) -> dict:
    """Characters, pages and peak memory (MB) of reading `path` with the qa of `code`."""
    env = dict(os.environ, PYTHONPATH=str(code))
    out = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True, text=True,
                         check=True, cwd=code, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def growth(r: dict, first: dict, key: str) -> str:
    """Memory growth over the shortest PDF per byte of text growth (MiB of memory, MB of text)."""
    text = (r["chars"] - first["chars"]) / 1e6
    return f"{(r[key] - first[key]) * 1.048576 / text:.1f}" if text else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, nargs="+", default=[20, 200, 1000])
    ap.add_argument("--code", nargs="+", default=[str(ROOT)], help="checkouts whose qa is measured")
    args = ap.parse_args()
    base = article_text()
    codes = [Path(c).resolve() for c in args.code]
    print(f"{'code':<20} {'pages asked':>11} {'pages read':>10} {'file MB':>8} {'text MB':>8} {'reader peak MiB':>16} "
          f"{'worker peak MiB':>16} {'reader growth/text':>18} {'worker growth/text':>18}")
    first: dict[Path, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pages in sorted(args.pages):
            path = Path(tmp) / f"report_{pages}.pdf"
            path.write_bytes(pdf_of(pages, base))
            for code in codes:
                r = read(path, code)
                f = first.setdefault(code, r)
                print(f"{str(code)[-20:]:<20} {pages:>11} {r['pages']:>10} {path.stat().st_size / 1e6:>8.2f} "
                      f"{r['chars'] / 1e6:>8.2f} {r['self_mb']:>16.1f} {r['worker_mb']:>16.1f} "
                      f"{growth(r, f, 'self_mb'):>18} {growth(r, f, 'worker_mb'):>18}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
