"""The news archive benchmark: the engine against BM25, dense, RRF and txtai on the same passages.

    .venv/bin/python -m benchmarks.bench_news [--index .qa-eval/bbc-index] [--squad-n 500] [--json out.json]

1. Quality on the news dev set (BBC archive), per kind (quote, fact, number, follow-up) and overall:
   hit@1 and hit@5 (a gold phrase inside one of the first 1 / 5 passages), highlight@1 (inside the
   engine's first highlighted sentence; the peers have no highlight), answered; and the share of
   unanswerable questions declined (the peers never decline). Every method ranks the engine's own
   passages: BM25 = bm25s over their text; dense = FAISS flat over the engine's passage vectors and
   its question vector; RRF (k=60) of the two; txtai = its hybrid search (its own dense vectors from
   the same model plus its own BM25) indexing the same passage texts. Follow-ups: the engine gets the
   history; the peers get the previous turn and the question joined, as the engine's formulate() does.
2. Made-unanswerable questions: each answerable news question and --squad-n SQuAD questions asked
   again with their own article and its copies (same title or >= 50% shared word 5-grams) left out
   through `QA.ask(..., sources=...)`. Reported: the share declined (higher is better) and the right
   answers lost: the share of questions answered right normally (gold in the first 5 passages) that
   the engine declines when asked normally (lower is better).
3. Speed on the archive: warm ask() p50/p95 and cold `qa ask` (a new process) wall time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.common import (gold_rank, near_duplicates, peer_rankings, shared_data, squad_engine,  # noqa: E402
                    squad_questions, txtai_rankings)

DATA = shared_data()
ENGINE = "engine (QA.ask)"
TXTAI = "txtai hybrid"


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", default=str(DATA / "news_dev.json"))
    ap.add_argument("--docs", default=str(DATA / "bbc"))
    ap.add_argument("--index", default=str(ROOT / ".qa-eval" / "bbc-index"))
    ap.add_argument("--squad", default=str(DATA / "squad-dev-half.json"))
    ap.add_argument("--squad-n", type=int, default=500, help="SQuAD questions made unanswerable (0: none)")
    ap.add_argument("--squad-work", default=str(ROOT / ".qa-eval" / "bench"))
    ap.add_argument("--txtai-cache", default=str(ROOT / ".qa-eval" / "txtai"))
    ap.add_argument("--no-txtai", action="store_true")
    ap.add_argument("--prepare-txtai", action="store_true",
                    help="only build txtai's cached index over the folder's passages (no engine index needed)")
    ap.add_argument("--squad-only", action="store_true", help="only the made-unanswerable SQuAD questions")
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--json", help="also write every figure to this file")
    return ap.parse_args()


# -- per-question outcomes and their summary ------------------------------------------------------

def summarise(outcomes: list[dict]) -> dict:
    """hit@1, hit@5, highlight@1 (None when the method has no highlight) and answered."""
    n = len(outcomes)
    if not n:
        return {"n": 0}
    ranks = [o["rank"] for o in outcomes]
    hl = [o["highlight"] for o in outcomes]
    return {"n": n, "hit@1": sum(r == 1 for r in ranks if r) / n, "hit@5": sum(r <= 5 for r in ranks if r) / n,
            "highlight@1": None if None in hl else sum(hl) / n,
            "answered": sum(o["answered"] for o in outcomes) / n}


def by_kind(items, outcomes: list[dict]) -> dict[str, dict]:
    """Figures per question kind and over all answerable questions, plus unanswerable declined."""
    kinds = sorted({x.kind for x in items if x.gold})
    out = {k: summarise([o for o, x in zip(outcomes, items) if x.gold and x.kind == k]) for k in kinds}
    out["all answerable"] = summarise([o for o, x in zip(outcomes, items) if x.gold])
    unanswerable = [o for o, x in zip(outcomes, items) if not x.gold]
    out["unanswerable"] = {"n": len(unanswerable),
                           "declined": sum(not o["answered"] for o in unanswerable) / max(1, len(unanswerable))}
    return out


def peer_query(item) -> str:
    """What a peer is asked: the previous turn and the question joined for a follow-up."""
    return f"{item.history[-1]} {item.question}" if item.history else item.question


# -- 1. the news dev set ------------------------------------------------------------------------

def engine_outcomes(bot, items) -> list[dict]:
    """Each question asked as a user asks it; outcome as `qa eval` scores it (rank within 10, highlight)."""
    from qa.evaluation import _outcome

    return [_outcome(x, bot.ask(x.question, k=10, history=list(x.history))) for x in items]


def peer_outcomes(index, items, ranked: list[list[int]]) -> list[dict]:
    from qa.evaluation import _hit

    chunks = index.chunks
    out = []
    for item, ids in zip(items, ranked):
        ranks = [i for i, c in enumerate(ids[:10], 1) if _hit(chunks[c].doc_id, chunks[c].text, item.gold)]
        out.append({"rank": ranks[0] if ranks else None, "answered": True, "highlight": None})
    return out


def news_quality(bot, items, txtai_cache: Path | None) -> tuple[dict[str, dict], dict]:
    index, embedder = bot.engine.backend.snapshot, bot.engine.embedder
    engine = engine_outcomes(bot, items)
    queries = [peer_query(x) for x in items]
    qvecs = np.stack([embedder.embed_query(q) for q in queries])
    passages = [c.text for c in index.chunks]
    ranked = peer_rankings(passages, index.vectors, queries, qvecs)
    notes = {}
    if txtai_cache is not None:
        t = time.perf_counter()
        try:
            ranked[TXTAI] = txtai_rankings(passages, queries, txtai_cache)
            notes["txtai index+search s"] = time.perf_counter() - t
        except Exception as exc:  # report why, and keep the other peers
            notes["txtai error"] = f"{type(exc).__name__}: {exc}"
    rows = {ENGINE: by_kind(items, engine)}
    for name, ids in ranked.items():
        rows[name] = by_kind(items, peer_outcomes(index, items, ids))
    return rows, notes


# -- 2. made-unanswerable questions ------------------------------------------------------------

def document_copies(index) -> dict[str, set[str]]:
    """Near-duplicate documents of an index, from its titles and passage texts."""
    texts: dict[str, list[str]] = {}
    for c in index.chunks:
        texts.setdefault(c.doc_id, []).append(c.text)
    return near_duplicates({d: (index.docs[d].title, "\n".join(t)) for d, t in texts.items()})


def made_unanswerable(bot, asks: list[tuple[str, tuple, str]], copies: dict[str, set[str]]) -> dict:
    """Each (question, gold phrases, own doc_id) asked normally and without its article and copies."""
    everything = sorted(bot.engine.backend.snapshot.docs)
    right, lost, declined, still_found = [], [], [], []
    for question, golds, own in asks:
        normal = bot.ask(question, k=5)
        ok = gold_rank([p.text for p in normal.passages], golds, 5) is not None
        right.append(ok)
        lost.append(ok and not normal.answered)
        gone = {own} | copies.get(own, set())
        ans = bot.ask(question, k=5, sources=[d for d in everything if d not in gone])
        declined.append(not ans.answered)
        # A gold phrase found elsewhere (a common number, a name) means "unanswerable" is not certain.
        still_found.append(gold_rank([p.text for p in ans.passages], golds, 5) is not None)
    n, r = max(1, len(asks)), max(1, sum(right))
    return {"n": len(asks), "right@5 normally": sum(right) / n, "right answers lost": sum(lost) / r,
            "declined without own article": sum(declined) / n,
            "gold still in first 5 without own article": sum(still_found) / n}


def news_asks(questions: Path, items) -> list[tuple[str, tuple, str]]:
    """The answerable single-turn news questions with the article each was written from."""
    raw = json.loads(questions.read_text(encoding="utf-8"))
    doc = {x["q"]: x["doc"] for x in raw.get("answerable", []) if x.get("doc")}
    return [(x.question, tuple(p for _, p in x.gold), doc[x.question])
            for x in items if x.gold and not x.history and x.question in doc]


def squad_asks(work: Path, squad: Path, n: int):
    bot, data, names = squad_engine(work, squad)
    missing = set(names) - set(bot.engine.backend.snapshot.docs)
    if missing:
        raise SystemExit(f"SQuAD documents not found in the index under their names: {sorted(missing)[:3]}")
    return bot, [(q, golds, names[art]) for q, golds, art in squad_questions(data, n)]


# -- 3. speed ------------------------------------------------------------------------------------

def warm_latency(bot, items, rounds: int = 3) -> dict:
    for item in items[:5]:
        bot.ask(item.question)
    lat = []
    for _ in range(rounds):
        for item in items:
            t = time.perf_counter()
            bot.ask(item.question, k=5, history=list(item.history))
            lat.append(1000 * (time.perf_counter() - t))
    return {"warm ask p50 ms": float(np.percentile(lat, 50)), "warm ask p95 ms": float(np.percentile(lat, 95)),
            "asks": len(lat)}


def cold_ask(question: str, docs: Path, index: Path, runs: int) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    cmd = [sys.executable, "-m", "qa", "ask", question, "--docs", str(docs), "--index", str(index)]
    times = []
    for i in range(runs + 1):  # the first run fills the file cache and is not counted
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        if i:
            times.append(time.perf_counter() - t)
    return {"cold qa ask median s": statistics.median(times), "cold runs": runs}


def folder_passages(docs: Path) -> list[str]:
    """The passages the engine's index holds for a folder, in index order, without embedding them."""
    from qa.chunk import chunk_document
    from qa.ingest import read_folder
    from qa.types import Settings

    st = Settings()
    return [c.text for d in read_folder(docs).documents
            for c in chunk_document(d, st.max_passage_chars, st.min_passage_chars, st.joined_max_chars)]


# -- output --------------------------------------------------------------------------------------

def table(rows: dict[str, dict]) -> str:
    methods = list(rows)
    kinds = [k for k in rows[ENGINE] if k != "unanswerable"]
    lines = ["| kind (n) | figure | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for kind in kinds:
        for fig in ("hit@1", "hit@5", "highlight@1", "answered"):
            cells = [rows[m][kind].get(fig) for m in methods]
            lines.append(f"| {kind} ({rows[ENGINE][kind]['n']}) | {fig} | "
                         + " | ".join("n/a" if v is None else f"{v:.3f}" for v in cells) + " |")
    u = rows[ENGINE]["unanswerable"]
    lines.append(f"| unanswerable ({u['n']}) | declined | "
                 + " | ".join(f"{rows[m]['unanswerable']['declined']:.3f}" for m in methods) + " |")
    return "\n".join(lines)


def print_unanswerable(unans: dict[str, dict]) -> None:
    cols = ["n", "right@5 normally", "right answers lost", "declined without own article",
            "gold still in first 5 without own article"]
    print("\n| made unanswerable | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for name, r in unans.items():
        print(f"| {name} | " + " | ".join(str(r[c]) if c == "n" else f"{r[c]:.3f}" for c in cols) + " |")


def squad_part(args, report: dict) -> dict:
    squad_bot, asks = squad_asks(Path(args.squad_work), Path(args.squad), args.squad_n)
    squad_copies = document_copies(squad_bot.engine.backend.snapshot)
    report["squad copies"] = {"documents with a copy": len(squad_copies)}
    return made_unanswerable(squad_bot, asks, squad_copies)


def main() -> None:
    args = arguments()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet = logging.StreamHandler()
    quiet.setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG
    logging.basicConfig(level=logging.WARNING, handlers=[quiet])
    print("command:", " ".join([Path(sys.executable).name] + sys.argv))
    from qa import QA
    from qa.evaluation import load_questions

    questions = Path(args.questions)
    items, docs = load_questions(questions, Path(args.docs))
    report: dict = {}
    if args.prepare_txtai:
        t = time.perf_counter()
        passages = folder_passages(docs)
        txtai_rankings(passages, [items[0].question], Path(args.txtai_cache))
        print(f"txtai index over {len(passages)} passages ready in {time.perf_counter() - t:.0f} s")
        return
    if args.squad_only:
        unans = {"SQuAD dev half": squad_part(args, report)}
        report["made unanswerable"] = unans
        print_unanswerable(unans)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
        return
    if not (Path(args.index) / "CURRENT").exists():
        # Embedding the whole archive takes long: build it on purpose (qa index), not by accident here.
        raise SystemExit(f"no index at {args.index}: build it with `qa index --docs {docs} --index {args.index}`")
    t = time.perf_counter()
    bot = QA(docs, args.index)
    report.update({"open index s": time.perf_counter() - t, "passages": len(bot.engine.backend.snapshot.chunks),
                   "documents": len(bot.engine.backend.snapshot.docs)})
    print(f"{len(items)} questions; {report['documents']} documents, {report['passages']} passages "
          f"(index opened in {report['open index s']:.1f} s)")

    rows, notes = news_quality(bot, items, None if args.no_txtai else Path(args.txtai_cache))
    report["news quality"], report["notes"] = rows, notes
    print("\n" + table(rows))
    print("\nhighlight@1: the peers return passages only, no highlighted sentence (n/a); they never decline.")
    for k, v in notes.items():
        print(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}")

    copies = document_copies(bot.engine.backend.snapshot)
    pairs = sum(len(s) for s in copies.values()) // 2
    report["news copies"] = {"documents with a copy": len(copies), "copy pairs": pairs}
    print(f"\nnear-duplicate copies in the archive: {len(copies)} documents have at least one, {pairs} pairs")
    asks = news_asks(questions, items)
    with_copies = sum(own in copies for _, _, own in asks)
    report["news copies"]["questions whose article has a copy"] = with_copies
    print(f"{with_copies} of the {len(asks)} answerable single-turn questions come from an article with a copy")
    unans = {"news dev": made_unanswerable(bot, asks, copies)}
    if args.squad_n:
        unans["SQuAD dev half"] = squad_part(args, report)
    report["made unanswerable"] = unans
    print_unanswerable(unans)

    speed = warm_latency(bot, items)
    speed.update(cold_ask(items[0].question, docs, Path(args.index), args.cold_runs))
    report["speed"] = speed
    print(f"\nwarm ask() on the archive: p50 {speed['warm ask p50 ms']:.1f} ms, p95 {speed['warm ask p95 ms']:.1f} ms "
          f"({speed['asks']} asks); cold `qa ask` median {speed['cold qa ask median s']:.2f} s ({args.cold_runs} runs)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
