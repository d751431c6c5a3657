"""A smaller copy of the news archive for quick runs of bench_news.py while the full index is not built.

    .venv/bin/python -m benchmarks.news_subset [--every 8] [--out .qa-eval/bbc-subset/docs]

Keeps every article a news dev question was written from, all their near-duplicate copies, and every
--every-th other article (in name order). Prints the copies found in the whole archive. Figures on
the subset are easier than on the full archive (fewer distractors): use them to try the pipeline,
not as the baseline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.common import near_duplicates, shared_data  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", default=str(shared_data() / "news_dev.json"))
    ap.add_argument("--docs", default=str(shared_data() / "bbc"))
    ap.add_argument("--every", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / ".qa-eval" / "bbc-subset" / "docs"))
    args = ap.parse_args()
    from qa.ingest import read_folder

    docs = {d.doc_id: (d.title, "\n".join(d.block_text(b) for b in d.blocks)) for d in read_folder(Path(args.docs)).documents}
    copies = near_duplicates(docs)
    print(f"whole archive: {len(docs)} documents, {len(copies)} have a copy, "
          f"{sum(len(s) for s in copies.values()) // 2} copy pairs")
    q = json.loads(Path(args.questions).read_text(encoding="utf-8"))
    wanted = {x["doc"] for x in q.get("answerable", []) + q.get("conversations", []) if x.get("doc")}
    keep = set(wanted).union(*(copies.get(d, set()) for d in wanted), sorted(docs)[::args.every])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for d in sorted(keep):
        shutil.copy(Path(args.docs) / d, out / d)
    print(f"{len(keep)} articles written to {out} ({len(wanted)} question articles, "
          f"{sum(d in copies for d in wanted)} of them with copies)")


if __name__ == "__main__":
    main()
