"""A folder read keeps its documents on disk (folder.DocumentSpool), and indexing reads them back
one embedding batch at a time (issue 13: memory flat as the corpus grows)."""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

import pytest

from benchmarks.stand_in import UnitEmbedder as Unit
from qa import QA
from qa.errors import DocumentsError
from qa import folder as folder_module
from qa.folder import DocumentSpool, read_folder
from qa.ingest import read_document
from qa.types import Block, Document, Publication


def _article(i: int, marker: str = "") -> str:
    return (f"Harbour Town Council Votes On Ferry Plan {i}\n\n"
            f"The council of harbour town {i} voted on Tuesday to extend the ferry service to the island{marker}.\n\n"
            f'"The crossing will be shorter for everyone," council chair Mira Solberg said after the vote {i}.\n')


def _write(docs: Path, n: int, marker: str = "") -> None:
    docs.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (docs / f"a{i:02d}.txt").write_text(_article(i, marker), encoding="utf-8")


def _reachable_strings(root) -> list[str]:
    """Every str reachable from `root` through object references (modules and classes not followed)."""
    seen, todo, found = set(), [root], []
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (type, type(os))):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            found.append(obj)
            continue
        todo.extend(gc.get_referents(obj))
    return found


def test_read_folder_holds_no_document_text(tmp_path):
    marker = " beside the lighthouse of Qwertyvale"
    _write(tmp_path / "docs", 6, marker)
    with read_folder(tmp_path / "docs", spool_dir=tmp_path) as folder:
        assert len(folder.documents) == 6
        assert not [s for s in _reachable_strings(folder) if "Qwertyvale" in s]
        # ... but gives every document back whole, as read_document reads it.
        for doc in folder.documents:
            assert "Qwertyvale" in doc.text
            assert doc == read_document(Path(doc.path), tmp_path / "docs")
        assert folder.documents.total_chars == sum(len(d.text) for d in folder.documents)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".read-")]  # an unnamed file


def test_spool_gives_back_every_field_exactly(tmp_path):
    text = "Caf\u00e9 \ud800 lone surrogate\r\nline two \u2028 and \"quotes\" \\ here\n"
    doc = Document("sub/x.pdf", "/abs/sub/x.pdf", text, (Block(0, 4), Block(5, 20)), "T\u00eftle", "A. Writer",
                   "Outlet", "hash1", "", (0, 12, 30), "en", "sha",
                   Publication("2024-01-02", "O", "A", "http://u", (("date", "pdf properties"),)))
    other = Document("a.txt", "/abs/a.txt", "plain", (Block(0, 5),), "A", content_hash="hash2")
    spool = DocumentSpool(tmp_path)
    spool.add(doc)
    spool.add(other)
    spool.sealed()
    assert spool.ids == ("a.txt", "sub/x.pdf") and list(spool) == [other, doc]
    assert spool.get("sub/x.pdf") == doc and spool.hashes() == {"a.txt": "hash2", "sub/x.pdf": "hash1"}
    spool.close()


def test_indexing_reads_each_document_back_when_embedding_and_drops_it(tmp_path, monkeypatch):
    """No more than the document being cut is alive: not the whole collection."""
    monkeypatch.setenv("QA_EMBED_BATCH", "2")
    _write(tmp_path / "docs", 12)
    alive: list[weakref.ref] = []
    most, reads = 0, []
    real_get = DocumentSpool.get

    def counting_get(self, doc_id):
        nonlocal most
        doc = real_get(self, doc_id)
        reads.append(doc_id)
        alive.append(weakref.ref(doc))
        most = max(most, sum(r() is not None for r in alive))
        return doc

    monkeypatch.setattr(DocumentSpool, "get", counting_get)
    bot = QA(tmp_path / "docs", tmp_path / "index", embedder=Unit(), progress=False)
    assert len(bot.documents()) == 12
    assert sorted(reads) == [f"a{i:02d}.txt" for i in range(12)]  # each read back once
    assert most == 1


def test_a_file_changed_after_its_read_is_indexed_as_read_then_updated(tmp_path, monkeypatch):
    """The index never pairs a text with another text's hash: a file edited between the folder
    read and the embedding is indexed as it was read (its spooled text, whose hash is recorded),
    with the size and time stat gave before the read, so the next refresh sees it changed."""
    docs = tmp_path / "docs"
    _write(docs, 3)
    edited = docs / "a01.txt"
    before = edited.read_text(encoding="utf-8")
    after = before.replace("ferry service", "night train service")
    real_read = folder_module.read_folder

    def read_then_edit(*args, **kwargs):
        found = real_read(*args, **kwargs)
        if "a01.txt" in found.documents:
            edited.write_text(after, encoding="utf-8")
            os.utime(edited, ns=(2_000_000_000_000_000_000,) * 2)
        return found

    monkeypatch.setattr(folder_module, "read_folder", read_then_edit)
    bot = QA(docs, tmp_path / "index", embedder=Unit(), progress=False)
    monkeypatch.setattr(folder_module, "read_folder", real_read)
    info = bot.document("a01.txt")
    as_read = read_document_text(before, tmp_path)
    assert info.content_hash == as_read.content_hash and info.chars == len(before)
    texts = [c.text for c in bot.engine.backend.passages_of("a01.txt").chunks]
    assert all(t in before for t in texts) and not any("night train" in t for t in texts)
    with pytest.raises(DocumentsError, match="changed since it was indexed"):
        bot.document_text("a01.txt")

    update = bot.refresh()
    assert update.changed == ("a01.txt",)
    assert bot.document("a01.txt").content_hash == read_document(edited, docs).content_hash
    assert bot.document_text("a01.txt") == after


def read_document_text(text: str, where: Path) -> Document:
    """The Document a file holding `text` reads as."""
    folder = where / "copy"
    folder.mkdir(exist_ok=True)
    (folder / "a01.txt").write_text(text, encoding="utf-8")
    return read_document(folder / "a01.txt", folder)
