"""Measure answer quality through the same API a user calls: `qa eval` and `qa.evaluate()`.

Two question formats:
- the seed format: {"answerable": [{"q", "gold": [[doc-prefix, phrase], ...]}], "unanswerable": [q],
  "conversations": [{"turns": [...], "gold_last": [...]}]};
- SQuAD v1.1 JSON: each article becomes one document (title line, then blank-line separated
  paragraphs) and each question's gold is any of its answer strings.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .textutil import normalise


@dataclass(frozen=True)
class Item:
    question: str
    gold: tuple[tuple[str, str], ...]   # (doc_id prefix or "", phrase); empty: unanswerable
    history: tuple[str, ...] = ()
    kind: str = ""                      # the question file's kind (news: quote, fact, number)


def load_questions(path: str | Path, docs_dir: Path | None, limit: int | None = None) -> tuple[list[Item], Path]:
    """Questions of a file, and the documents folder they are asked over (SQuAD: written out)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "data" in data:
        items, docs_dir = _squad(data, Path(path), docs_dir)
    else:
        items = [Item(x["q"], _gold(x["gold"]), (), x.get("kind", "")) for x in data.get("answerable", [])]
        items += [Item(q if isinstance(q, str) else q["q"], ()) for q in data.get("unanswerable", [])]
        items += [Item(c["turns"][-1], _gold(c["gold_last"]), tuple(c["turns"][:-1]), "follow-up")
                  for c in data.get("conversations", [])]
        # A file naming its corpus (news: "bbc") is asked over that folder beside it.
        corpus = data.get("corpus")
        docs_dir = docs_dir or (Path(path).parent / corpus if corpus else Path("seeds"))
    if limit and len(items) > limit:
        step = len(items) / limit  # evenly spread over the file, not its first articles
        items = [items[int(i * step)] for i in range(limit)]
    return items, docs_dir


def _gold(gold: list) -> tuple[tuple[str, str], ...]:
    """Gold phrases as (doc prefix, phrase): seed files pair each phrase with its article; news files
    list bare phrases, found in any article (the same story may be carried by several files)."""
    return tuple(("", g) if isinstance(g, str) else tuple(g) for g in gold)


def squad_documents(data: dict) -> dict[str, str]:
    """SQuAD articles as documents: file name -> text (title line, blank line, paragraphs)."""
    out = {}
    for i, article in enumerate(data["data"]):
        title = article["title"].replace("_", " ")
        body = "\n\n".join(p["context"].strip() for p in article["paragraphs"])
        out[f"{i:03d}_{article['title'][:40]}.txt"] = f"{title}\n\n{body}\n"
    return out


def _squad(data: dict, path: Path, docs_dir: Path | None) -> tuple[list[Item], Path]:
    docs = squad_documents(data)
    if docs_dir is None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        docs_dir = Path(".qa-eval") / f"{path.stem}-{digest}" / "docs"
    docs_dir.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        target = docs_dir / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    items = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                golds = tuple(("", a["text"]) for a in qa["answers"])
                items.append(Item(qa["question"], golds))
    return items, docs_dir


def _hit(doc_id: str, text: str, gold) -> bool:
    t = normalise(text)
    return any(doc_id.startswith(prefix) and normalise(phrase) in t for prefix, phrase in gold)


def evaluate(questions: str | Path, docs_dir: str | Path | None = None, index_dir: str | Path | None = None,
             limit: int | None = None, k: int = 10, qa=None, settings=None) -> dict:
    """Run every question through `QA.ask` and return the quality and latency figures.

    Args:
        questions: question file (seed format or SQuAD JSON).
        docs_dir: documents folder (SQuAD: written there if missing; default .qa-eval/...).
        index_dir: index folder (default: beside the documents).
        limit: evaluate at most this many questions, evenly sampled.
        k: passages asked for per question (MRR is computed at 10).
        qa: an existing QA object to use instead of opening one.
        settings: index Settings of the QA opened (default Settings when None; an index built
            with others is rebuilt).

    Returns:
        A dict with hit@1, recall@5, mrr@10, answer_in_highlight, answered, abstention,
        latency_ms_p50 / p95, and counts.
    """
    from .api import QA

    items, docs = load_questions(questions, Path(docs_dir) if docs_dir else None, limit)
    if qa is None:
        # The seeds' index is the project's own (embeddings/); any other folder's sits beside it.
        default = Path("embeddings") if docs == Path("seeds") else docs.parent / "index"
        index = Path(index_dir) if index_dir else default
        qa = QA(docs, index, settings)
    answerable = [x for x in items if x.gold]
    unanswerable = [x for x in items if not x.gold]
    outcomes, lat = [], []
    for item in items:
        t = time.perf_counter()
        ans = qa.ask(item.question, k=k, history=list(item.history))
        lat.append((time.perf_counter() - t) * 1000)
        outcomes.append(_outcome(item, ans))
    lat.sort()
    report = {"questions": len(items), "answerable": len(answerable), "unanswerable": len(unanswerable),
              **_figures([o for o in outcomes if o["gold"]]),
              "abstention": (round(sum(not o["answered"] for o in outcomes if not o["gold"]) / len(unanswerable), 4)
                             if unanswerable else None),
              "latency_ms_p50": round(_pct(lat, 50), 1), "latency_ms_p95": round(_pct(lat, 95), 1),
              "passages_indexed": qa.passage_count()}
    kinds = sorted({x.kind for x in answerable if x.kind})
    if len(kinds) > 1:
        report["by_kind"] = {kind: _figures([o for o, x in zip(outcomes, items) if x.gold and x.kind == kind])
                             for kind in kinds}
    return report


def _outcome(item: Item, ans) -> dict:
    """What one answer got right: the 1-based rank of the first passage holding the gold (None if
    none of the first 10), and whether the first passage's highlight holds it."""
    ranks = [i for i, p in enumerate(ans.passages[:10], 1) if _hit(p.citation.doc_id, p.text, item.gold)]
    first = ans.passages[0] if ans.passages else None
    return {"gold": bool(item.gold), "answered": ans.answered, "rank": ranks[0] if ranks else None,
            "highlight": bool(first and item.gold and _hit(first.citation.doc_id, first.highlight, item.gold))}


def _figures(outcomes: list[dict]) -> dict:
    """hit@1, recall@5, MRR@10, answer in highlight and share answered over answerable outcomes."""
    n = max(len(outcomes), 1)
    ranks = [o["rank"] for o in outcomes if o["rank"]]
    return {"hit@1": round(sum(r == 1 for r in ranks) / n, 4), "recall@5": round(sum(r <= 5 for r in ranks) / n, 4),
            "mrr@10": round(sum(1 / r for r in ranks) / n, 4),
            "answer_in_highlight": round(sum(o["highlight"] for o in outcomes) / n, 4),
            "answered": round(sum(o["answered"] for o in outcomes) / n, 4), "n": len(outcomes)}


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def format_report(r: dict) -> str:
    """The figures as an aligned text table."""
    rows = [(k, "-" if v is None else v) for k, v in r.items() if k != "by_kind"]
    rows += [(f"{kind}: {name}", v) for kind, figs in r.get("by_kind", {}).items() for name, v in figs.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
