"""Listing every document of a built local index as the app's pickers do: from the columns
(`QA.document_entries`, no record decoded) against from the records (`QA.documents`), in one run.

    .venv/bin/python -m benchmarks.bench_listing --index DIR [--runs 3]

DIR is an index folder (e.g. one bench_scale_real built: 1M passages, ~250,000 documents). Each
run opens the index afresh, then sorts the entries by doc_id, makes the dropdown labels and the
distinct outlets. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import print_timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from qa.backends import open_backend
    from qa.backends.base import entries

    ways = {"records (documents())": lambda docs: docs.values(), "columns (document_entries())": entries}
    times: dict[str, list[float]] = {name: [] for name in ways}
    count = 0
    for _ in range(args.runs):
        for name, listing in ways.items():
            docs = open_backend(args.index).documents()
            start = time.perf_counter()
            rows = sorted(listing(docs), key=lambda d: d.doc_id)
            labels = [(f"{d.title[:60]} ({d.doc_id})", d.doc_id) for d in rows]
            outlets = sorted({d.outlet for d in rows if d.outlet})
            times[name].append(time.perf_counter() - start)
            count = len(labels)
            del outlets
    print(f"{count:,} documents")
    print_timings("listing from", "s", times)


if __name__ == "__main__":
    main()
