"""Ingest throughput per format: documents (and PDF pages) read per second by qa.ingest.read_folder.

    .venv/bin/python -m benchmarks.bench_ingest [--docs 200] [--runs 3] [--baseline-root ../main] [--formats pdf]

Writes its own folders: the same articles as UTF-8 .txt, Windows-1252 .txt, .html, multi-page
.pdf (fpdf2) and .docx (python-docx). The article texts are the first --docs BBC articles of --bbc
(default ../shared/data/bbc; real prose of realistic length; made-up text if it is missing).
Each timing runs read_folder in a fresh interpreter (imports excluded, PDF/DOCX worker start
included), interleaved across formats, median of --runs. With --baseline-root, the .txt and .html
folders (or those of --formats) are also read by that checkout's code in the same run, for the
cost of a change (encoding and language detection; PDF streaming). Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from qa.ingest import decode  # noqa: E402

BBC = ROOT.parent / "shared" / "data" / "bbc"
# Typographic characters, so that the Windows-1252 copies are not plain ASCII.
_TYPOGRAPHY = str.maketrans({"'": "’", "-": "–"})

_TIMER = """
import json, sys, time
from qa.ingest import read_folder
import qa.ingest
t = time.perf_counter()
f = read_folder(sys.argv[1])
dt = time.perf_counter() - t
pages = sum(max(len(getattr(d, "pages", ())), 1) for d in f.documents)
print(json.dumps({"seconds": dt, "docs": len(f.documents), "pages": pages, "skipped": len(f.skipped)}))
"""


def articles(n: int, bbc: Path = BBC) -> list[str]:
    paths = sorted(bbc.glob("*.txt"))[:n] if bbc.is_dir() else []
    texts = [decode(p, p.read_bytes())[0] for p in paths]
    rng = random.Random(0)
    words = ("the council said on monday that the new budget for schools would raise spending on "
             "teachers by five percent over two years while parents asked for more money").split()
    while len(texts) < n:  # made-up stand-ins when the BBC folder is missing
        paras = [" ".join(rng.choice(words) for _ in range(40)).capitalize() + "." for _ in range(8)]
        texts.append("Budget Row Deepens\n\n" + "\n\n".join(paras) + "\n")
    return texts


def to_pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A5")  # a news article runs over 2-4 pages
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    for para in text.split("\n\n"):
        pdf.multi_cell(0, 6, para.encode("latin-1", "replace").decode("latin-1"))
        pdf.ln(3)
    return bytes(pdf.output())


def to_docx(text: str) -> bytes:
    import docx

    d = docx.Document()
    for para in text.split("\n\n"):
        d.add_paragraph(para)
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def to_html(text: str) -> bytes:
    import html

    title, _, body = text.partition("\n")
    paras = "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n") if p.strip())
    return (f"<html><head><title>{html.escape(title)}</title></head><body><nav><a href='/'>Home</a></nav>"
            f"<article><h1>{html.escape(title)}</h1>{paras}</article></body></html>").encode("utf-8")


def write_folders(base: Path, texts: list[str], only: list[str] | None = None) -> dict[str, Path]:
    makers = {
        "txt utf-8": (".txt", lambda t: t.encode("utf-8")),
        "txt cp1252": (".txt", lambda t: t.translate(_TYPOGRAPHY).replace("\n", "\r\n").encode("cp1252", "replace")),
        "html": (".html", to_html),
        "pdf": (".pdf", to_pdf),
        "docx": (".docx", to_docx),
    }
    folders = {}
    for name, (suffix, make) in makers.items():
        if only and name not in only:
            continue
        d = base / name.replace(" ", "-")
        d.mkdir()
        for i, t in enumerate(texts):
            (d / f"a{i:04d}{suffix}").write_bytes(make(t))
        folders[name] = d
    return folders


def time_read(code_root: Path, folder: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code_root), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", _TIMER, str(folder)], env=env, capture_output=True, cwd=code_root,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline-root", type=Path, default=None)
    ap.add_argument("--bbc", type=Path, default=BBC, help="folder of article texts to write in each format")
    ap.add_argument("--formats", nargs="+", choices=["txt utf-8", "txt cp1252", "html", "pdf", "docx"],
                    help="only these (default all; the baseline then reads these too)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folders = write_folders(Path(tmp), articles(args.docs, args.bbc), args.formats)
        jobs = [(name, ROOT, folder) for name, folder in folders.items()]
        if args.baseline_root:
            compared = args.formats or ("txt utf-8", "txt cp1252", "html")
            jobs += [(f"{name} (baseline)", args.baseline_root, folders[name]) for name in compared]
        results: dict[str, list[dict]] = {name: [] for name, _, _ in jobs}
        for _ in range(args.runs):
            for name, code, folder in jobs:
                results[name].append(time_read(code, folder))
    print(f"{'format':24} {'docs':>5} {'pages':>6} {'skipped':>7} {'seconds':>8} {'docs/s':>8} {'pages/s':>8}")
    for name, runs in results.items():
        sec = statistics.median(r["seconds"] for r in runs)
        r = runs[0]
        print(f"{name:24} {r['docs']:5d} {r['pages']:6d} {r['skipped']:7d} {sec:8.2f} "
              f"{r['docs'] / sec if sec else 0:8.1f} {r['pages'] / sec if sec else 0:8.1f}")


if __name__ == "__main__":
    main()
