"""Browsing a large archive: time of one Documents-tab page (QA.find_documents) on a built index.

    .venv/bin/python -m benchmarks.bench_documents --docs ../shared/data/bbc --index DIR

Opens the index (no re-scan: `qa index` built it), then times pages of 50 for searches of one and two
words taken from the titles, each outlet filter, and every sort order; prints p50 and max in ms over
all of them. This is what the tab and `GET /v1/documents` run per keystroke or click.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from qa import QA


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", required=True)
    ap.add_argument("--index", required=True)
    args = ap.parse_args()
    bot = QA(args.docs, args.index)
    docs = bot.documents()
    words = sorted({w.lower() for d in docs[::20] for w in d.title.split() if len(w) > 4})[:60]
    outlets = sorted({d.outlet for d in docs if d.outlet})[:10]
    cases = [(w, None) for w in words] + [(f"{a} {b}", None) for a, b in zip(words, words[1:])][:30]
    cases += [("", o) for o in outlets] + [("", None)]
    times = []
    for text, outlet in cases:
        for order in ("title", "newest", "oldest", "outlet"):
            t = time.perf_counter()
            bot.find_documents(text, outlet, order, 0, 50)
            times.append((time.perf_counter() - t) * 1000)
    print(f"{len(docs):,} documents, {len(times)} pages: p50 {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
