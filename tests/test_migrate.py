"""An index saved in a previous local format (2 or 3) opens by migrating to the current one: its
vectors are kept (nothing is embedded again) and it answers as before."""

import json
import logging

import numpy as np
import pytest

from qa import QA
from qa.errors import IndexFormatError
from qa.backends.migrate import write_format_2, write_format_3
from qa.backends.snapshot import FORMAT_VERSION, Snapshot, read_manifest
from qa.backends.store import IndexStore
from test_index import ARTICLE_A, ARTICLE_B, _write


class Counting:
    """An embedder that counts what it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.passages = inner, 0

    def embed_passages(self, texts, progress=False):
        self.passages += len(texts)
        return self.inner.embed_passages(texts, progress)

    def embed_query(self, text):
        return self.inner.embed_query(text)


@pytest.fixture
def old_index(tmp_path):
    """A folder whose live version is in format 2 (float32 vectors slightly off the float16 grid)."""
    docs = _write(tmp_path / "docs", {"a.txt": ARTICLE_A, "b.txt": ARTICLE_B})
    bot = QA(docs, tmp_path / "index")
    store = IndexStore(tmp_path / "index")
    snap = Snapshot.load(store.current())
    rng = np.random.default_rng(0)
    vectors = np.asarray(snap.vectors, np.float32) + rng.normal(0, 1e-5, snap.vectors.shape).astype(np.float32)
    with store.lock():
        tmp = store.new_version()
        write_format_2(snap, tmp, vectors=vectors)
        store.commit(tmp)
    return docs, tmp_path / "index", bot.engine.embedder, list(snap.chunks), vectors


def test_old_format_is_migrated_without_embedding(old_index, caplog):
    docs, index, embedder, chunks, vectors = old_index
    counting = Counting(embedder)
    with caplog.at_level(logging.WARNING, logger="qa"):
        bot = QA(docs, index, embedder=counting)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert not bot.last_update.rebuilt and not bot.last_update.changed_anything
    assert counting.passages == 0
    version = IndexStore(index).current()
    assert read_manifest(version)["format"] == FORMAT_VERSION
    snap = bot.engine.backend.snapshot
    assert list(snap.chunks) == chunks
    assert np.array_equal(snap.vectors, vectors.astype(np.float16))  # kept, stored as float16
    ans = bot.ask("How much will the ferry route cut the crossing time?")
    assert ans.answered and ans.passages[0].citation.doc_id == "a.txt"
    assert QA(docs, index, embedder=counting).last_update.changed_anything is False and counting.passages == 0


def test_damaged_old_format_is_rebuilt(old_index, caplog):
    docs, index, *_ = old_index
    version = IndexStore(index).current()
    data = bytearray((version / "chunks.jsonl").read_bytes())
    data[len(data) // 2] ^= 0x01
    (version / "chunks.jsonl").write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="qa"):
        bot = QA(docs, index)
    assert bot.last_update.rebuilt and "damaged" in bot.last_update.reason
    assert read_manifest(IndexStore(index).current())["format"] == FORMAT_VERSION


def test_migration_while_a_writer_holds_the_folder_serves_a_private_copy(old_index):
    """Reopening under a writer's lock (as QA.refresh does) must not wait for itself: the migrated
    copy is served from a private folder, removed at once, and the writer's commit is in the new
    format."""
    from qa.backends.local import LocalBackend

    _, index, _, chunks, _ = old_index
    store = IndexStore(index)
    old = store.current()
    with store.lock():
        backend = LocalBackend(index)
        assert backend.problem == "" and list(backend.snapshot.chunks) == chunks
        assert store.current() == old  # nothing committed under another process's lock
        assert not any(p.name.startswith(".migrating-") for p in index.iterdir())
        assert not backend.is_current()  # serves no live version: the writer's next commit replaces it
        writer = backend.writer(backend.settings)
        writer.upsert(backend.passages_of("a.txt"))
        committed = writer.commit()
    assert read_manifest(store.current())["format"] == FORMAT_VERSION
    assert sorted(committed.snapshot.chunks, key=lambda c: (c.doc_id, c.start)) == chunks  # kept first, then a.txt


QUESTIONS = ("How much will the ferry route cut the crossing time?",
             "What did the growers report about the apple harvest?", "When did the library reopen?")


def test_format_3_is_migrated_to_4_and_answers_identically(tmp_path, caplog):
    """3 -> 4 rewrites only the document records: every other file is kept byte for byte, nothing
    is embedded, and the answers are the very same."""
    from qa.backends.local import check

    docs = _write(tmp_path / "docs", {"a.txt": ARTICLE_A, "b.txt": ARTICLE_B})
    bot = QA(docs, tmp_path / "index")
    before = [bot.ask(q) for q in QUESTIONS]
    assert before[0].answered  # the ferry article; the others may abstain, identically after
    store = IndexStore(tmp_path / "index")
    new = Snapshot.load(store.current())
    records = dict(new.docs.items())
    with store.lock():
        tmp = store.new_version()
        write_format_3(new, tmp)
        old = store.commit(tmp)
    assert (old / "documents.json").is_file() and not (old / "doc_ids.json").exists()
    old_hashes = json.loads((old / "manifest.json").read_text())["files"]
    with pytest.raises(IndexFormatError, match="format 3"):
        check(tmp_path / "index")  # migrated when opened, checked then
    counting = Counting(bot.engine.embedder)
    with caplog.at_level(logging.WARNING, logger="qa"):
        again = QA(docs, tmp_path / "index", embedder=counting)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert counting.passages == 0 and not again.last_update.changed_anything
    version = IndexStore(tmp_path / "index").current()
    assert version != old and read_manifest(version)["format"] == FORMAT_VERSION == 4
    migrated = again.engine.backend.snapshot
    assert dict(migrated.docs.items()) == records and list(migrated.docs) == list(records)
    kept = json.loads((version / "manifest.json").read_text())["files"]
    assert {n: h for n, h in old_hashes.items() if n != "documents.json"}.items() <= kept.items()
    assert [again.ask(q) for q in QUESTIONS] == before
    check(tmp_path / "index")


def test_damaged_format_3_is_rebuilt(tmp_path, caplog):
    docs = _write(tmp_path / "docs", {"a.txt": ARTICLE_A, "b.txt": ARTICLE_B})
    QA(docs, tmp_path / "index")
    store = IndexStore(tmp_path / "index")
    with store.lock():
        tmp = store.new_version()
        write_format_3(Snapshot.load(store.current()), tmp)
        old = store.commit(tmp)
    data = bytearray((old / "documents.json").read_bytes())
    data[len(data) // 2] ^= 0x01
    (old / "documents.json").write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="qa"):
        bot = QA(docs, tmp_path / "index")
    assert bot.last_update.rebuilt and "damaged" in bot.last_update.reason
    assert read_manifest(IndexStore(tmp_path / "index").current())["format"] == FORMAT_VERSION
