"""Retrieval quality on SQuAD: this engine against BM25 alone, dense alone and plain RRF, in one run.

    .venv/bin/python -m benchmarks.bench_quality [--squad ../shared/data/squad-dev-half.json] [--n 1000]

Baselines use SQuAD paragraphs as passages, as a user of the usual tools would: bm25s with its
default English tokenizer and stopwords; dense = the same model, one vector per paragraph, FAISS
flat inner product; RRF (k=60) of the two. The engine is asked through `QA.ask`, exactly as a user
asks. hit@k: a gold answer string inside one of the first k passages; highlight: inside the first
passage's highlighted sentence(s). Questions are evenly sampled over the file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.common import gold_rank, peer_rankings  # noqa: E402
from qa.evaluation import Item, load_questions  # noqa: E402
from qa.textutil import normalise  # noqa: E402


def _hits(ranked_texts: list[list[str]], items: list[Item]) -> dict:
    ranks = [gold_rank(texts, [p for _, p in item.gold]) for texts, item in zip(ranked_texts, items)]
    n = len(items)
    return {"hit@1": sum(r == 1 for r in ranks if r) / n, "hit@5": sum(r <= 5 for r in ranks if r) / n,
            "mrr@10": sum(1 / r for r in ranks if r) / n}


def baselines(data: dict, items: list[Item]) -> dict[str, dict]:
    from qa.embed import Embedder

    paras = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    emb = Embedder()
    questions = [x.question for x in items]
    ranked = peer_rankings(paras, emb.embed_passages(paras), questions, emb.embed_passages(questions))
    return {name: _hits([[paras[i] for i in row] for row in rows], items) for name, rows in ranked.items()}


def engine(items: list[Item], docs: Path, index_dir: Path, int8: bool = True) -> dict:
    from qa import QA, Settings

    t = time.perf_counter()
    bot = QA(docs, index_dir, settings=Settings(int8=int8))
    build_s = time.perf_counter() - t
    texts, lat, in_hl, answered, lengths = [], [], 0, 0, []
    for item in items:
        t = time.perf_counter()
        ans = bot.ask(item.question, k=10)
        lat.append(time.perf_counter() - t)
        texts.append([p.text for p in ans.passages])
        answered += ans.answered
        if ans.passages:
            lengths.append(len(ans.passages[0].text))
            hl = normalise(ans.passages[0].highlight)
            in_hl += any(normalise(g) in hl for _, g in item.gold)
    r = _hits(texts, items)
    r["highlight"] = in_hl / len(items)
    r["answered"] = answered / len(items)
    r["mean passage chars"] = float(np.mean([len(c.text) for c in bot.engine.backend.snapshot.chunks]))
    r["ask p50 ms"] = 1000 * float(np.percentile(lat, 50))
    r["ask p95 ms"] = 1000 * float(np.percentile(lat, 95))
    r["index build s"] = build_s
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--squad", default=str(ROOT.parent / "shared" / "data" / "squad-dev-half.json"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--work", default=str(ROOT / ".qa-eval" / "bench"))
    ap.add_argument("--fp32", action="store_true", help="also run the engine with the fp32 model")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print("command:", " ".join([Path(sys.executable).name] + sys.argv))
    data = json.loads(Path(args.squad).read_text(encoding="utf-8"))
    work = Path(args.work)
    items, docs = load_questions(args.squad, work / "docs", limit=args.n)
    paras = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    print(f"{len(items)} questions sampled evenly; {len(paras)} paragraphs, mean {np.mean([len(p) for p in paras]):.0f} chars")
    rows = baselines(data, items)
    rows["this engine (QA.ask)"] = engine(items, docs, work / "index")
    if args.fp32:
        rows["this engine, fp32 model"] = engine(items, docs, work / "index-fp32", int8=False)
    cols = ["hit@1", "hit@5", "mrr@10", "highlight", "answered", "mean passage chars", "ask p50 ms", "ask p95 ms"]
    print(f"\n| method | {' | '.join(cols)} |")
    print("|" + "---|" * (len(cols) + 1))
    for name, r in rows.items():
        cells = [f"{r[c]:.3f}" if c in r and c.startswith(("hit", "mrr", "high", "answ")) else
                 (f"{r[c]:.0f}" if c in r and "chars" in c else (f"{r[c]:.1f}" if c in r else "-")) for c in cols]
        print(f"| {name} | {' | '.join(cells)} |")
    for name, r in rows.items():
        if "index build s" in r:
            print(f"{name}: index build {r['index build s']:.1f} s (includes embedding when the index is new)")


if __name__ == "__main__":
    main()
