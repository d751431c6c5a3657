"""Memory of reading long PDFs: does a 200-page report cost more than its text?

    .venv/bin/python -m benchmarks.bench_pdf_memory [--pages 20 200 1000]

Writes a PDF of each length (fpdf2, A5, BBC article text repeated; made-up text without the corpus)
and reads it with `qa.ingest.read_document` in a fresh interpreter, which parses it in its worker
process (qa.formats). Reports the file size, the extracted text's size, and the peak resident memory
of the reading process and of its worker (getrusage of self and children), so growth with the page
count can be read off against the growth of the text. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_ingest import BBC, to_pdf

READER = r"""
import json, os, resource, sys
from pathlib import Path
from qa.ingest import read_document
from tests.probe import children
p = Path(sys.argv[1])
doc = read_document(p, p.parent)
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def hwm(pid):  # peak resident memory of a live process (its worker is not reaped yet)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, nargs="+", default=[20, 200, 1000])
    args = ap.parse_args()
    base = article_text()
    print(f"{'pages asked':>11} {'pages read':>10} {'file MB':>8} {'text MB':>8} {'reader peak MB':>15} "
          f"{'worker peak MB':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for pages in args.pages:
            path = Path(tmp) / f"report_{pages}.pdf"
            path.write_bytes(pdf_of(pages, base))
            out = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True, text=True,
                                 check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{pages:>11} {r['pages']:>10} {path.stat().st_size / 1e6:>8.2f} {r['chars'] / 1e6:>8.2f} "
                  f"{r['self_mb']:>15.0f} {r['worker_mb']:>15.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
