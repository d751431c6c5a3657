"""Resuming a killed indexing run from its staged batches (qa/backends/staging.py).

A real `qa index` process is killed with SIGKILL once it has staged a batch; the next run embeds
only what was not staged, the old version answers meanwhile, and the result answers as an
uninterrupted build does. Damaged, stale and foreign staged batches are never used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qa import QA, Settings
from qa.backends.local import LocalBackend
from qa.backends.snapshot import Snapshot
from qa.backends.staging import STAGING, Staging
from qa.backends.store import IndexStore

ROOT = Path(__file__).resolve().parent.parent

BASE = {
    "ferry.txt": """Harbour Council Approves New Ferry Route

The harbour council of Port Alder approved a new ferry route on Tuesday, linking the old port with the island of Vell.

"This route will cut the crossing time in half," council chair Mira Solberg said after the vote.
""",
    "library.txt": """Library Reopens After Two-Year Renovation

The Brackwater city library reopened on Saturday after a two-year renovation that added a rooftop reading garden.
""",
}
NEW = 24  # new documents of one passage each: with batches of 2 passages, 12 batches


NAMES = ("Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Gorse", "Hazel", "Ivy", "Juniper", "Larch", "Maple",
         "Nettle", "Oak", "Pine", "Quince", "Rowan", "Sorrel", "Thyme", "Umber", "Vetch", "Willow", "Yarrow", "Zinnia")


def _title(i: int) -> str:
    return f"The {NAMES[i]} Glassworks Opens in Tarnby"


def _new(i: int, workers: int | None = None) -> str:
    return f"""{_title(i)}

The {NAMES[i]} glassworks opened in the town of Tarnby on Monday, employing {workers or i * 7 + 11} glassblowers.
"""


def _question(i: int) -> str:
    return f"How many glassblowers does the {NAMES[i]} glassworks employ?"


class CountingEmbedder:
    """The session's embedder, noting the title of every passage it embeds (a passage's embedded
    text starts with its document's title and a newline; a sentence's does not)."""

    def __init__(self, inner, titles: set[str], fail_at_call: int | None = None):
        self.inner, self.titles, self.fail_at_call = inner, titles, fail_at_call
        self.calls = 0
        self.embedded: list[str] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_passages(self, texts, progress=False):
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise RuntimeError("embedding failed (made up)")
        self.embedded += [t.split("\n", 1)[0] for t in texts if t.split("\n", 1)[0] in self.titles]
        return self.inner.embed_passages(texts, progress)


def _write(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def _staged_titles(index: Path) -> dict[str, str]:
    """doc_id -> title of every document in a sound staged segment."""
    return {p.doc.doc_id: p.doc.title for p in Staging(index, Settings()).found()}


def _segments(index: Path) -> list[Path]:
    return sorted(index.glob(f"{STAGING}/*/seg-*"))


def _live_documents(index: Path) -> set[str]:
    return set(Snapshot.load(IndexStore(index).current()).docs)


def _answers(bot: QA, questions: list[str]) -> list[list[tuple[str, int, int, float]]]:
    out = []
    for q in questions:
        ans = bot.ask(q)
        out.append([(p.citation.doc_id, p.citation.start, p.citation.end, p.score) for p in ans.passages])
    return out


@pytest.fixture
def embed_in_twos(monkeypatch):
    """Batches of 2 passages: a run of 24 documents has 12 batches to be killed between."""
    monkeypatch.setenv("QA_EMBED_BATCH", "2")


@pytest.mark.slow
def test_killed_qa_index_resumes_from_staged_batches(tmp_path, seed_qa, embed_in_twos):
    docs, index = tmp_path / "docs", tmp_path / "index"
    _write(docs, BASE)
    embedder = seed_qa.engine.embedder
    old_bot = QA(docs, index, embedder=embedder)  # the old version, serving questions all along
    QA(docs, tmp_path / "whole", embedder=embedder)  # the same old version, to be updated unkilled
    shutil.copytree(seed_qa.index_dir / "model", index / "model")  # the subprocess needs no export
    _write(docs, {f"glass{i:02d}.txt": _new(i) for i in range(NEW)})
    titles = {_title(i) for i in range(NEW)}

    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "qa", "index", "--docs", str(docs), "--index", str(index)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not _segments(index) and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, proc.stderr.read().decode()

    # Killed between its batches: some staged, not committed.
    staged = _staged_titles(index)
    assert 1 <= len(staged) < NEW, len(staged)
    assert _live_documents(index) == set(BASE)
    # (b) The index stays usable: a fresh open serves the old version, and the running QA answers.
    fresh = LocalBackend(index)
    assert fresh.problem == "" and set(fresh.documents()) == set(BASE)
    ans = old_bot.ask("How much will the ferry route cut the crossing time?")
    assert ans.answered and ans.passages[0].citation.doc_id == "ferry.txt"

    # The next run embeds exactly the documents that were not staged (the batch in flight at the
    # kill among them): nothing staged is embedded again.
    counting = CountingEmbedder(embedder, titles)
    resumed = QA(docs, index, embedder=counting)
    assert set(counting.embedded) == titles - set(staged.values())
    assert len(counting.embedded) == NEW - len(staged)
    assert _live_documents(index) == set(BASE) | {f"glass{i:02d}.txt" for i in range(NEW)}
    assert not (index / STAGING).exists()  # committed: the staging area is removed

    # (c) The same answers as the same update run uninterrupted.
    whole = QA(docs, tmp_path / "whole", embedder=embedder)
    questions = [_question(3), _question(20), f"When did the {NAMES[11]} glassworks open?",
                 "When did the library reopen?"]
    got, want = _answers(resumed, questions), _answers(whole, questions)
    for g, w in zip(got, want):
        assert [x[:3] for x in g] == [x[:3] for x in w]
        assert np.allclose([x[3] for x in g], [x[3] for x in w], atol=1e-3)
    print(f"\nkilled with {len(staged)} of {NEW} documents staged; the rerun embedded {len(counting.embedded)}")


def test_damaged_stale_and_foreign_staged_batches_are_not_used(tmp_path, seed_qa, embed_in_twos):
    docs, index = tmp_path / "docs", tmp_path / "index"
    _write(docs, BASE)
    embedder = seed_qa.engine.embedder
    QA(docs, index, embedder=embedder)
    n = 10
    _write(docs, {f"glass{i:02d}.txt": _new(i) for i in range(n)})
    titles = {_title(i) for i in range(n)}
    # A run that fails at its 5th embedding (of 5 batches of 2) leaves 4 staged batches and
    # commits nothing.
    with pytest.raises(RuntimeError):
        QA(docs, index, embedder=CountingEmbedder(embedder, titles, fail_at_call=5))
    segments = _segments(index)
    assert len(segments) == 4 and _live_documents(index) == set(BASE)
    by_segment = [{d["doc"]["title"] for d in json.loads((s / "batch.json").read_text())["documents"]}
                  for s in segments]
    # Batches of other settings: a folder of another key, and a segment under this key whose
    # record names other settings (its hash rewritten to match). Both would be adopted if the
    # settings were not checked: they hold documents whose own segments are damaged or removed.
    other = Staging(index, Settings(max_passage_chars=300))
    shutil.copytree(segments[0], other.dir / segments[0].name)
    relabelled = segments[3].parent / "seg-99999999999999999999-other"
    shutil.copytree(segments[3], relabelled)
    record = json.loads((relabelled / "batch.json").read_text("utf-8"))
    record["settings"]["max_passage_chars"] = 300
    (relabelled / "batch.json").write_text(json.dumps(record), encoding="utf-8")
    (relabelled / "batch.sha256").write_text(_sha256(relabelled / "batch.json"), encoding="ascii")
    shutil.rmtree(segments[3])
    # Damage: a truncated vector file; a changed passage text that still parses (a wrong number
    # would be a wrong answer).
    with open(segments[0] / "vectors.npy", "r+b") as f:
        f.truncate(200)
    batch = segments[1] / "batch.json"
    number = next(str(i * 7 + 11) for i in range(n) if _title(i) in by_segment[1])
    batch.write_text(batch.read_text("utf-8").replace(f"employing {number} ", "employing 999 "), encoding="utf-8")
    # A document changed since it was staged.
    changed = min(i for i in range(n) if _title(i) in by_segment[2])
    _write(docs, {f"glass{changed:02d}.txt": _new(changed, workers=4242)})

    counting = CountingEmbedder(embedder, titles)
    bot = QA(docs, index, embedder=counting)
    adopted = by_segment[2] - {_title(changed)}
    assert len(adopted) == 1 and set(counting.embedded) == titles - adopted
    assert len(counting.embedded) == n - 1
    assert not (index / STAGING).exists()
    for i in range(n):
        workers = 4242 if i == changed else i * 7 + 11
        ans = bot.ask(_question(i))
        top = ans.passages[0]
        assert top.citation.doc_id == f"glass{i:02d}.txt" and f"employing {workers} " in top.text, top.text
        assert bot.document_text(top.citation.doc_id)[top.citation.start:top.citation.end] == top.text


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
