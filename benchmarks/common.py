"""Shared set-up of the SQuAD benchmark scripts: arguments, documents folder, the engine over it."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def squad_arguments(description: str, n: int) -> argparse.Namespace:
    """--squad FILE, --n QUESTIONS, --work DIR (documents and index, reused between runs)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--squad", default=str(ROOT.parent / "shared" / "data" / "squad-dev-half.json"))
    ap.add_argument("--n", type=int, default=n)
    ap.add_argument("--work", default=str(ROOT / ".qa-eval" / "bench"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return args


def squad_engine(work: Path, squad: Path):
    """The SQuAD articles written as documents under `work`, and a QA over them (built if needed).

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
    return QA(docs, Path(work) / "index"), data, list(documents)
