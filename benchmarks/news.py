"""Shared set-up of the news benchmark scripts: the BBC questions and the engine over the BBC folder.

News question files (data/news_dev.json, and benchmarks/news_extra.json written for development)
list bare gold phrases; a passage answers when it holds one of them. Cross-validation groups
questions by their article, so no article is both fitted on and scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The shared data folder beside the repository (or beside the folder of worktrees).
SHARED = next((p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.exists()), ROOT.parent / "shared")
NEWS_DEV = SHARED / "data" / "news_dev.json"
BBC = SHARED / "data" / "bbc"


@dataclass(frozen=True)
class NewsItem:
    question: str
    golds: tuple[str, ...]     # empty: unanswerable
    history: tuple[str, ...]
    doc: str                   # the article the question was written from ("" if none)
    kind: str
    source: str                # which question file


def news_items(paths: list[Path]) -> list[NewsItem]:
    """Answerable questions and follow-ups of news question files (unanswerable ones left out)."""
    out = []
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        out += [NewsItem(x["q"], tuple(x["gold"]), (), x.get("doc", ""), x.get("kind", ""), Path(path).name)
                for x in data.get("answerable", [])]
        out += [NewsItem(c["turns"][-1], tuple(c["gold_last"]), tuple(c["turns"][:-1]), c.get("doc", ""),
                         "follow-up", Path(path).name) for c in data.get("conversations", [])]
    return out


def news_unanswerable(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        out += [q if isinstance(q, str) else q["q"] for q in data.get("unanswerable", [])]
    return out


def news_engine(index_dir: Path, docs: Path = BBC, settings=None):
    """A QA over the news articles (settings: default Settings when None; others rebuild the index)."""
    from qa import QA

    return QA(docs, index_dir, settings)


def add_sentence_vectors(ap) -> None:
    """--sentence-vectors: how the indexes are built (qa.types.Settings.sentence_vectors)."""
    from qa.types import SENTENCE_VECTORS, Settings

    ap.add_argument("--sentence-vectors", choices=SENTENCE_VECTORS, default=Settings().sentence_vectors,
                    help="index setting sentence_vectors of the indexes used (a different setting than an "
                         "index was built with rebuilds it; default: %(default)s)")


def index_settings(args):
    """The index Settings chosen by add_sentence_vectors' option."""
    from qa.types import Settings

    return Settings(sentence_vectors=args.sentence_vectors)


def news_folds(items: list[NewsItem], k: int) -> list[int]:
    """Fold of each question: its article's rank among the sorted articles, modulo k."""
    docs = sorted({x.doc for x in items})
    rank = {d: i for i, d in enumerate(docs)}
    return [rank[x.doc] % k for x in items]


def joint_fit_arguments(description: str, n: int):
    """The arguments both fitting scripts (fit_ranker, calibrate_abstention) take: the SQuAD sample,
    the news question files and index, the news weight and the folds. Returns the parser."""
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--squad", default=str(SHARED / "data" / "squad-dev-half.json"))
    ap.add_argument("--n", type=int, default=n)
    ap.add_argument("--work", default=str(ROOT / ".qa-eval" / "bench"))
    ap.add_argument("--news", nargs="*", default=[str(NEWS_DEV)], help="news question files")
    ap.add_argument("--news-index", default=str(ROOT / ".qa-eval" / "bbc-index"))
    ap.add_argument("--news-docs", default=str(BBC), help="the news articles (the BBC folder, or a part of it)")
    ap.add_argument("--news-weight", type=float, default=10.0,
                    help="weight of one news question against one SQuAD question in the fit")
    ap.add_argument("--folds", type=int, default=5)
    add_sentence_vectors(ap)
    return ap

