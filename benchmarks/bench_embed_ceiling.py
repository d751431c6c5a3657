"""The ceiling embedding puts on indexing speed: passages and their sentences through the model alone.

    .venv/bin/python -m benchmarks.bench_embed_ceiling --model DIR [--docs ../shared/data/bbc]
        [--limit 300] [--runs 3] [--threads 1 2] [--batch 32]

DIR is an exported query model (an index's `model/` folder, e.g. made by `qa index`). The documents
(--limit of them, evenly spread over the sorted names) are read and cut into passages exactly as
`qa index` does (qa.folder + qa.indexer.passages); then, with nothing else running in the process,
the engine's Embedder embeds (a) the passages' texts, (b) their sentences on their own (what the
default index stores beside each passage), timed separately, median of --runs. Indexing can go no
faster than 1 / (1/a + 1/b) passages/s: reading, chunking, speaker attribution, BM25 and writing
only add to it. CPU seconds are reported too (steadier on a shared machine).
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from benchmarks.common import shared_data


def load(docs: Path, limit: int) -> tuple[list[str], list[str]]:
    """(passage texts as embedded, sentence texts) of `limit` documents spread over the folder."""
    from qa.folder import read_folder
    from qa.indexer import passages
    from qa.types import Settings

    folder = read_folder(docs)
    documents = sorted(folder.documents, key=lambda d: d.doc_id)
    step = max(1, len(documents) // limit) if limit else 1
    chosen = documents[::step][:limit] if limit else documents
    settings = Settings()
    ptexts, stexts = [], []
    for doc in chosen:
        for c in passages(doc, settings):
            ptexts.append(settings.indexed_text(c.text, doc.title))  # as qa.indexer embeds it
            stexts.extend(doc.text[s:e] for s, e in c.sentences)
    return ptexts, stexts


def timed(embedder, texts: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of embedding `texts` once."""
    w, c = time.perf_counter(), time.process_time()
    embedder.embed_passages(texts)
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--docs", default=str(shared_data() / "bbc"))
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, nargs="+", default=[0],
                    help="texts per model run (0: the Embedder's own); several are alternated")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from qa.embed import Embedder

    ptexts, stexts = load(Path(args.docs), args.limit)
    print(f"{args.limit} documents: {len(ptexts)} passages, {len(stexts)} sentences "
          f"({len(stexts) / len(ptexts):.1f} per passage)")
    print("| threads | batch | passages alone: passages/s (per CPU-s) | their sentences: passages/s (per CPU-s) "
          "| ceiling, both: passages/s (per CPU-s) |\n|---|---|---|---|---|")
    for threads in args.threads:
        emb = Embedder(onnx_dir=args.model, threads=threads)
        emb.embed_passages(ptexts[:64])  # warm the session
        sizes = [b or emb.batch_size for b in args.batch]
        runs: dict[int, list] = {b: [] for b in sizes}
        for _ in range(args.runs):  # batch sizes alternate within each run: load drifts alike
            for b in sizes:
                emb.batch_size = b  # an instance attribute: the class default stays
                runs[b].append((timed(emb, ptexts), timed(emb, stexts)))
        n = len(ptexts)
        for b in sizes:
            pw, pc = (statistics.median(r[0][i] for r in runs[b]) for i in (0, 1))
            sw, sc = (statistics.median(r[1][i] for r in runs[b]) for i in (0, 1))
            print(f"| {threads} | {b} | {n / pw:.1f} ({n / pc:.1f}) | {n / sw:.1f} ({n / sc:.1f}) "
                  f"| {n / (pw + sw):.1f} ({n / (pc + sc):.1f}) |")


if __name__ == "__main__":
    main()
