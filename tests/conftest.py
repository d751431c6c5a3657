import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"
DEV_QUESTIONS = SHARED / "data" / "seed_questions_dev.json"


@pytest.fixture(scope="session")
def dev_questions() -> dict:
    if not DEV_QUESTIONS.exists():
        pytest.skip(f"{DEV_QUESTIONS} not found (../shared must sit beside the checkout)")
    return json.loads(DEV_QUESTIONS.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def seed_dirs(tmp_path_factory):
    """A private copy of seeds/ and an index folder for it, shared by the session's tests."""
    base = tmp_path_factory.mktemp("seedqa")
    docs = base / "docs"
    shutil.copytree(SEEDS, docs)
    return docs, base / "index"


@pytest.fixture(scope="session")
def seed_qa(seed_dirs):
    from qa import QA

    docs, index = seed_dirs
    return QA(docs, index)


@pytest.fixture(scope="session")
def folder_qa(seed_qa, tmp_path_factory):
    """Make a QA over small made-up files (name -> text or bytes), embedding with the session's
    real model passed in (no second model export)."""
    from qa import QA

    def make(files: dict, name: str = "articles"):
        base = tmp_path_factory.mktemp(name)
        docs = base / "docs"
        docs.mkdir()
        for file, content in files.items():
            (docs / file).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return QA(docs, base / "index", embedder=seed_qa.engine.embedder)

    return make
