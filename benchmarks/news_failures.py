"""Where the engine loses on news questions: each question's first passage sorted into categories.

    .venv/bin/python -m benchmarks.news_failures [--news FILE ...] [--index DIR] [--docs DIR] [-v]

right: the first passage holds a gold phrase; lead: the right article is first but its lead
paragraph (first passage) beats the answering one; same article: another wrong paragraph of the
right article is first; other article: a different article is first, the answer among the first 5
/ not among the first 10. Highlight misses are counted over first passages that are right.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.news import BBC, NEWS_DEV, add_sentence_vectors, index_settings, news_engine, news_items  # noqa: E402


def category(backend, passages, golds, doc) -> str:
    from qa.textutil import normalise

    hit = [any(normalise(g) in normalise(p.text) for g in golds) for p in passages]
    if hit and hit[0]:
        return "right"
    if not passages:
        return "declined"
    first = passages[0].citation.doc_id
    answering = {p.citation.doc_id for p, h in zip(passages, hit) if h} | {doc}
    if first in answering:
        lead = backend.passages_of(first).chunks[0].start == passages[0].citation.start
        return "right article, lead paragraph first" if lead else "right article, other paragraph first"
    return "other article first, answer in top 5" if any(hit[:5]) else (
        "other article first, answer in top 10" if any(hit) else "answer not in top 10")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--news", nargs="*", default=[str(NEWS_DEV)])
    ap.add_argument("--index", default=str(ROOT / ".qa-eval" / "bbc-index"))
    ap.add_argument("--docs", default=str(BBC))
    ap.add_argument("-v", action="store_true", help="print every miss")
    add_sentence_vectors(ap)
    args = ap.parse_args()
    from qa.textutil import normalise

    bot = news_engine(Path(args.index), Path(args.docs), index_settings(args))
    backend = bot.engine.backend
    counts, highlight = Counter(), Counter()
    for x in news_items([Path(p) for p in args.news]):
        ans = bot.ask(x.question, k=10, history=list(x.history))
        cat = category(backend, ans.passages, x.golds, x.doc)
        counts[(x.kind, cat)] += 1
        if cat == "right":
            ok = any(normalise(g) in normalise(ans.passages[0].highlight) for g in x.golds)
            highlight[(x.kind, ok)] += 1
            if not ok and args.v:
                print(f"HIGHLIGHT {x.kind}: {x.question}\n    gold {x.golds}\n    got  {ans.passages[0].highlight[:200]}")
        elif args.v:
            top = ans.passages[0] if ans.passages else None
            print(f"{cat.upper()} {x.kind}: {x.question}\n    gold {x.golds} ({x.doc})\n"
                  f"    got  {top.citation.doc_id if top else ''}: {top.text[:200] if top else ''}")
    kinds = sorted({k for k, _ in counts})
    cats = sorted({c for _, c in counts})
    print("\n| category | " + " | ".join(kinds) + " | all |\n|---|" + "---|" * (len(kinds) + 1))
    for c in cats:
        print(f"| {c} | " + " | ".join(str(counts[(k, c)]) for k in kinds) + f" | {sum(counts[(k, c)] for k in kinds)} |")
    print("| highlight misses (first passage right) | " + " | ".join(str(highlight[(k, False)]) for k in kinds)
          + f" | {sum(highlight[(k, False)] for k in kinds)} |")


if __name__ == "__main__":
    main()
