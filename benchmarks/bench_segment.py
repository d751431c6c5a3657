"""Sentence segmentation: qa's (pysbd's rules, sentences located with str.find) against pysbd's own
`segment` (a regex compiled per sentence to locate it), in one run, on the same texts.

    .venv/bin/python -m benchmarks.bench_segment [--docs ../shared/data/bbc] [--limit 500] [--runs 3]

The texts are the paragraphs of --limit articles evenly spread over the sorted names, as chunking
segments them. Prints CPU seconds of each way (alternating, median of --runs) and checks that both
give the same spans. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import print_timings, shared_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", default=str(shared_data() / "bbc"))
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from qa.folder import read_folder
    from qa.textutil import _segmenter, _segments

    documents = sorted(read_folder(Path(args.docs)).documents, key=lambda d: d.doc_id)
    step = max(1, len(documents) // args.limit) if args.limit else 1
    texts = [d.block_text(b) for d in documents[::step][:args.limit or None] for b in d.blocks]

    def pysbd_own(text: str):
        return [(s.sent, s.start, s.end) for s in _segmenter().segment(text)] if text else []

    ways = {"pysbd segment()": pysbd_own, "qa _segments()": _segments}
    results = {name: [way(t) for t in texts] for name, way in ways.items()}  # also warms the re cache
    same = results["pysbd segment()"] == results["qa _segments()"]
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.runs):
        for name, way in ways.items():
            start = time.process_time()
            for t in texts:
                way(t)
            times[name].append(time.process_time() - start)
    sentences = sum(len(r) for r in results["qa _segments()"])
    print(f"{len(texts):,} paragraphs, {sentences:,} sentences; identical spans: {same}")
    print_timings("segmentation", "CPU s", times)


if __name__ == "__main__":
    main()
