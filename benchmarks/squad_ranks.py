"""Each SQuAD dev-half question's gold rank, answered flag and highlight hit, as JSON, for comparing
two versions of the code question by question (run it once per checkout, then --compare).

    PYTHONPATH=CHECKOUT .venv/bin/python -m benchmarks.squad_ranks --work WORK --out ROWS.json
    .venv/bin/python -m benchmarks.squad_ranks --compare BASE.json MAIN.json

WORK is a `bench_quality.py --work` folder (its docs/ and index/ are reused). Only the package's
public API is used, so the script runs against older checkouts too (via PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def dump(work: Path, squad: str, n: int, out: str) -> None:
    from qa import QA
    from qa.evaluation import load_questions
    from qa.textutil import normalise

    items, docs = load_questions(squad, work / "docs", limit=n)
    bot = QA(docs, work / "index")
    rows = []
    for it in items:
        ans = bot.ask(it.question, k=10)
        golds = [normalise(g) for _, g in it.gold]
        rank = next((i + 1 for i, p in enumerate(ans.passages) if any(g in normalise(p.text) for g in golds)), 0)
        hl = normalise(ans.passages[0].highlight) if ans.passages else ""
        rows.append({"question": it.question, "rank": rank, "answered": bool(ans.answered),
                     "highlight": any(g in hl for g in golds)})
    Path(out).write_text(json.dumps(rows), encoding="utf-8")


def compare(base: list[dict], main: list[dict]) -> None:
    n = len(base)
    for name, rows in (("base", base), ("main", main)):
        print(f"{name}: hit@1 {sum(r['rank'] == 1 for r in rows) / n:.4f} hit@5 "
              f"{sum(0 < r['rank'] <= 5 for r in rows) / n:.4f} highlight {sum(r['highlight'] for r in rows) / n:.4f} "
              f"answered {sum(r['answered'] for r in rows) / n:.4f}")
    both = [(b, m) for b, m in zip(base, main) if b["answered"] and m["answered"]]
    print(f"both answer {len(both)}: first right base {sum(b['rank'] == 1 for b, _ in both)} main "
          f"{sum(m['rank'] == 1 for _, m in both)}; in the first 5 base {sum(0 < b['rank'] <= 5 for b, _ in both)} "
          f"main {sum(0 < m['rank'] <= 5 for _, m in both)}")
    only_main = [b for b, m in zip(base, main) if b["answered"] and not m["answered"]]
    only_base = [m for b, m in zip(base, main) if m["answered"] and not b["answered"]]
    print(f"declined: base {sum(not r['answered'] for r in base)}, main {sum(not r['answered'] for r in main)}; "
          f"only main declines {len(only_main)} (base right first {sum(r['rank'] == 1 for r in only_main)}, "
          f"in first 5 {sum(0 < r['rank'] <= 5 for r in only_main)}); only base declines {len(only_base)} "
          f"(main right first {sum(r['rank'] == 1 for r in only_base)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path)
    ap.add_argument("--out")
    ap.add_argument("--squad", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "squad-dev-half.json"))
    ap.add_argument("--n", type=int, default=4961)
    ap.add_argument("--compare", nargs=2, metavar=("BASE", "MAIN"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.compare:
        compare(*(json.loads(Path(p).read_text(encoding="utf-8")) for p in args.compare))
    else:
        dump(args.work, args.squad, args.n, args.out)


if __name__ == "__main__":
    main()
