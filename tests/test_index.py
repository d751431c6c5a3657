"""Index building, saving, updating and staleness rules, with the real model and FAISS."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from qa import QA, DocumentsError, Settings
from qa.backends.snapshot import FORMAT_VERSION, Snapshot
from qa.backends.store import IndexStore

ARTICLE_A = """Harbour Council Approves New Ferry Route

The harbour council approved a new ferry route on Tuesday, linking the old port with the island of Vell.

"This route will cut the crossing time in half," council chair Mira Solberg said after the vote.

The first ferries are expected to sail in the spring, the council said.
"""

ARTICLE_B = """Orchard Growers Report Record Apple Harvest

Orchard growers in the valley reported a record apple harvest this autumn, citing a mild summer.

"We have never picked so many apples in a single season," grower Tomas Lind told reporters.
"""

ARTICLE_C = """Library Reopens After Two-Year Renovation

The city library reopened on Saturday after a two-year renovation that added a rooftop reading garden.
"""


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def small(tmp_path):
    docs = _write(tmp_path / "docs", {"a.txt": ARTICLE_A, "b.txt": ARTICLE_B})
    return docs, tmp_path / "index"


def test_build_then_load_unchanged(small):
    docs, index = small
    first = QA(docs, index)
    assert first.last_update.rebuilt and set(first.last_update.added) == {"a.txt", "b.txt"}
    second = QA(docs, index)
    assert not second.last_update.changed_anything
    assert set(second.last_update.unchanged) == {"a.txt", "b.txt"}
    # Opening an unchanged folder decides from the document columns: no record decoded.
    assert not second.engine.backend.documents()._cache
    ans = second.ask("How much will the ferry route cut the crossing time?")
    assert ans.answered and ans.passages[0].citation.doc_id == "a.txt"


def test_add_change_remove_are_detected(small):
    docs, index = small
    QA(docs, index)
    (docs / "c.txt").write_text(ARTICLE_C, encoding="utf-8")
    (docs / "b.txt").write_text(ARTICLE_B.replace("record", "modest"), encoding="utf-8")
    (docs / "a.txt").unlink()
    bot = QA(docs, index)
    u = bot.last_update
    assert u.added == ("c.txt",) and u.changed == ("b.txt",) and u.removed == ("a.txt",)
    assert not u.rebuilt
    assert {d.doc_id for d in bot.documents()} == {"b.txt", "c.txt"}
    ans = bot.ask("When did the library reopen?")
    assert ans.passages[0].citation.doc_id == "c.txt"
    assert all(p.citation.doc_id != "a.txt" for p in bot.ask("ferry route crossing time").passages)


def test_settings_change_rebuilds(small):
    docs, index = small
    QA(docs, index)
    bot = QA(docs, index, settings=Settings(max_passage_chars=300))
    assert bot.last_update.rebuilt and "settings" in bot.last_update.reason


def test_unchanged_documents_are_not_embedded_again(small):
    docs, index = small
    bot = QA(docs, index)
    previous = bot.engine.backend.passages_of("a.txt")
    embedded = []

    class Counting:
        """The session's embedder, counting what it is asked to embed (passed in, not patched)."""

        def __init__(self, inner):
            self.inner = inner

        def embed_passages(self, texts, progress=False):
            embedded.extend(texts)
            return self.inner.embed_passages(texts, progress)

        def embed_query(self, text):
            return self.inner.embed_query(text)

    (docs / "c.txt").write_text(ARTICLE_C, encoding="utf-8")
    bot = QA(docs, index, embedder=Counting(bot.engine.embedder))
    assert bot.last_update.added == ("c.txt",)
    assert embedded and all("library" in t.lower() or "Library" in t for t in embedded)
    kept = bot.engine.backend.passages_of("a.txt")
    assert kept.chunks == previous.chunks and np.array_equal(kept.vectors, previous.vectors)


def test_save_load_round_trip(small, tmp_path):
    docs, index = small
    idx = QA(docs, index).engine.backend.snapshot
    idx.save(tmp_path / "copy")
    loaded = Snapshot.load(tmp_path / "copy")
    assert list(loaded.chunks) == list(idx.chunks) and loaded.docs == idx.docs
    assert np.array_equal(loaded.vectors, idx.vectors)
    for name in ("ids", "start", "flags", "distinct", "names", "name_start", "name_words", "same", "same_start"):
        assert np.array_equal(getattr(loaded.lexicon, name), getattr(idx.lexicon, name))
    manifest = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    assert manifest["format"] == FORMAT_VERSION and manifest["model"] == Settings().model
    assert manifest["counts"]["documents"] == 2 and set(loaded.docs) == {"a.txt", "b.txt"}
    assert not list((tmp_path / "copy").rglob("*.pkl"))


@pytest.mark.parametrize("damage", ["truncate_vectors", "flip_vectors", "drop_manifest", "edit_manifest",
                                    "drop_passage_text", "garbage_current"])
def test_damaged_index_is_rebuilt_with_a_warning(small, damage, caplog):
    docs, index = small
    QA(docs, index)
    version = IndexStore(index).current()
    if damage == "truncate_vectors":
        data = (version / "vectors.npy").read_bytes()
        (version / "vectors.npy").write_bytes(data[: len(data) // 2])
    elif damage == "flip_vectors":
        data = bytearray((version / "vectors.npy").read_bytes())
        data[-10] ^= 0xFF
        (version / "vectors.npy").write_bytes(bytes(data))
    elif damage == "drop_manifest":
        (version / "manifest.json").unlink()
    elif damage == "edit_manifest":
        m = json.loads((version / "manifest.json").read_text())
        m["counts"]["passages"] += 3
        (version / "manifest.json").write_text(json.dumps(m))
    elif damage == "drop_passage_text":
        data = (version / "text.bin").read_bytes()
        (version / "text.bin").write_bytes(data[:-20])
    else:
        (index / "CURRENT").write_text("../../etc\n")
    with caplog.at_level(logging.WARNING, logger="qa"):
        bot = QA(docs, index)
    assert bot.last_update.rebuilt
    if damage != "garbage_current":
        assert any("damaged" in r.getMessage() for r in caplog.records)
    ans = bot.ask("What did the growers report about the apple harvest?")
    assert ans.answered and ans.passages[0].citation.doc_id == "b.txt"


def test_index_of_another_format_version_is_rebuilt(small, caplog):
    docs, index = small
    QA(docs, index)
    version = IndexStore(index).current()
    m = json.loads((version / "manifest.json").read_text())
    m["format"] = FORMAT_VERSION + 1  # written by a newer qa (the previous format is migrated instead)
    (version / "manifest.json").write_text(json.dumps(m))
    with caplog.at_level(logging.WARNING, logger="qa"):
        bot = QA(docs, index)
    assert bot.last_update.rebuilt and f"format {FORMAT_VERSION + 1}" in bot.last_update.reason
    assert any("another version of qa" in r.getMessage() for r in caplog.records)
    assert bot.ask("What did the growers report about the apple harvest?").answered


def test_sentence_terms_are_the_vocabulary_ids_of_each_sentence(small):
    from qa.lexicon import NUMBER
    from qa.textutil import terms

    docs, index = small
    idx = QA(docs, index).engine.backend.snapshot
    vocab = idx.bm25.vocab_dict
    row = 0
    for chunk in idx.chunks:
        for s, e in chunk.sentences:
            text = chunk.text[s - chunk.start:e - chunk.start]
            ids = idx.lexicon.ids[idx.lexicon.start[row]:idx.lexicon.start[row + 1]].tolist()
            assert ids == [vocab[t] for t in terms(text)], text
            if any(ch.isdigit() for ch in text):
                assert idx.lexicon.flags[row] & NUMBER, text
            row += 1
    assert row == len(idx.sent_vectors)


def test_sentence_flags_mark_numbers_dates_and_quotes():
    from qa.lexicon import DATE, NUMBER, QUOTE, build
    from qa.types import Chunk

    sentences = ["Three ships docked at the quay.", "Talks began in March.",
                 "He said: \u201cWe will not accept this ceasefire.\u201d", "Rain fell on the town."]
    text = " ".join(sentences)
    spans, pos = [], 0
    for sent in sentences:
        spans.append((pos, pos + len(sent)))
        pos += len(sent) + 1
    lex = build([Chunk("d", 0, len(text), text, tuple(spans))], {"ship": 0, "dock": 1})
    assert lex.flags.tolist() == [NUMBER, DATE, QUOTE, 0]
    assert lex.ids.tolist() == [0, 1] and lex.start.tolist() == [0, 2, 2, 2, 2]
    assert lex.distinct.tolist() == [2, 0, 0, 0]
    # Names: capitalised words not opening the sentence (a quote's first word counts), by their first word.
    assert lex.name_words == ("march", "we") and lex.name_start.tolist() == [0, 0, 1, 2, 2]


def _containment_pairs(passages: list[list[int]]) -> set[tuple[int, int]]:
    """Reference: passage pairs whose smaller 4-gram set is at least half inside the other's."""
    grams = [{tuple(p[i:i + 4]) for i in range(max(len(p) - 3, 1))} if p else set() for p in passages]
    return {(a, b) for a in range(len(passages)) for b in range(a + 1, len(passages))
            if grams[a] and grams[b] and len(grams[a] & grams[b]) >= 0.5 * min(len(grams[a]), len(grams[b]))}


def test_same_words_pairs_match_a_plain_set_computation():
    from qa.lexicon import same_words

    rng = np.random.default_rng(7)
    wire = rng.integers(0, 50, 40).tolist()
    passages = [rng.integers(0, 50, int(rng.integers(0, 60))).tolist() for _ in range(60)]
    passages += [wire, rng.integers(0, 50, 5).tolist() + wire[3:30], wire[10:14], wire[:8] + [99] * 9,
                 [], [1, 2], [1, 2]]
    ids = np.array([t for p in passages for t in p], np.int32)
    bounds = np.cumsum([0] + [len(p) for p in passages]).astype(np.int64)
    same, start = same_words(ids, bounds)
    found = {(a, int(b)) for a in range(len(passages)) for b in same[start[a]:start[a + 1]] if a < b}
    symmetric = {(int(b), a) for a in range(len(passages)) for b in same[start[a]:start[a + 1]] if a > b}
    expected = _containment_pairs(passages)
    assert found == symmetric == expected
    assert {(60, 61), (60, 62), (60, 63), (65, 66)} <= expected  # a copy, a quote, a partial copy, short twins


def test_same_words_by_buckets_on_disk_equal_same_words_in_memory(tmp_path):
    from qa.lexicon import same_words

    rng = np.random.default_rng(3)
    wire = rng.integers(0, 40, 50).tolist()
    passages = [rng.integers(0, 40, int(rng.integers(0, 50))).tolist() for _ in range(300)]
    passages += [wire[k:k + 30] for k in range(0, 20, 2)] + [[], [5], [5], [1, 2, 3], [1, 2, 3]]
    ids = np.array([t for p in passages for t in p], np.int32)
    bounds = np.cumsum([0] + [len(p) for p in passages]).astype(np.int64)
    whole = same_words(ids, bounds)
    assert len(whole[0]) > 20  # the copies are found
    for bucket in (1, 7, 500, 10**9):
        scratch = tmp_path / f"b{bucket}"
        scratch.mkdir()
        by_buckets = same_words(ids, bounds, scratch, bucket_grams=bucket)
        for a, b in zip(by_buckets, whole):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        assert not any(scratch.iterdir())  # the bucket files are removed


def test_half_written_version_is_ignored_and_collected(small):
    docs, index = small
    QA(docs, index)
    stale = index / ".tmp-deadbeef"
    stale.mkdir()
    (stale / "vectors.npy").write_bytes(b"partial")
    (docs / "c.txt").write_text(ARTICLE_C, encoding="utf-8")
    bot = QA(docs, index)
    assert bot.last_update.added == ("c.txt",)
    assert not stale.exists()
    assert len([p for p in index.iterdir() if p.name.startswith("v-")]) == 1


def test_empty_and_missing_folders_fail_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DocumentsError, match="no readable articles"):
        QA(tmp_path / "empty", tmp_path / "index")
    with pytest.raises(DocumentsError):
        QA(tmp_path / "missing", tmp_path / "index")


def test_folder_read_skips_files_whose_size_and_mtime_are_known(tmp_path):
    from qa.ingest import read_folder

    docs = _write(tmp_path / "docs", {"a.txt": ARTICLE_A, "b.txt": ARTICLE_B})
    (docs / "junk.txt").write_bytes(b"\x00\x01binary")
    first = read_folder(docs)
    assert {d.doc_id for d in first.documents} == {"a.txt", "b.txt"} and set(first.facts) == {"a.txt", "b.txt", "junk.txt"}
    again = read_folder(docs, known={"a.txt": first.facts["a.txt"], "junk.txt": first.facts["junk.txt"]})
    assert again.unchanged == ("a.txt", "junk.txt")  # not read: the binary file is not even looked at
    assert {d.doc_id for d in again.documents} == {"b.txt"} and not again.skipped
    (docs / "a.txt").write_text(ARTICLE_A + "\nA late paragraph about the ferry timetable.\n", encoding="utf-8")
    changed = read_folder(docs, known={"a.txt": first.facts["a.txt"]})
    assert "a.txt" in {d.doc_id for d in changed.documents} and not changed.unchanged


def test_opening_reads_only_changed_files_and_qa_index_reads_all(small):
    import os

    docs, index = small
    QA(docs, index)
    path = docs / "b.txt"
    st = path.stat()
    edited = ARTICLE_B.replace("record apple", "modest pears")  # same length
    assert len(edited) == len(ARTICLE_B)
    path.write_text(edited, encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as before: looks unchanged
    assert QA(docs, index).last_update.changed == ()
    assert QA(docs, index, full_scan=True).last_update.changed == ("b.txt",)
    path.write_text(ARTICLE_B + "\nMore apples.\n", encoding="utf-8")  # a real change shows on opening
    assert QA(docs, index).last_update.changed == ("b.txt",)


def test_a_moved_folder_keeps_its_vectors_and_cites_the_new_paths(small, tmp_path_factory):
    import shutil

    docs, index = small
    bot = QA(docs, index)
    vectors = bot.engine.backend.passages_of("a.txt").vectors
    moved = tmp_path_factory.mktemp("moved")
    shutil.copytree(docs, moved / "docs")
    shutil.copytree(index, moved / "index")
    bot2 = QA(moved / "docs", moved / "index")
    assert not bot2.last_update.changed_anything
    assert np.array_equal(bot2.engine.backend.passages_of("a.txt").vectors, vectors)
    ans = bot2.ask("What did the harbour council approve?")
    assert ans.passages and Path(ans.passages[0].citation.path).is_relative_to(moved.resolve())


def test_sentence_vector_setting_is_checked_and_rebuilds():
    with pytest.raises(ValueError):
        Settings(sentence_vectors="pooled")
    from qa.indexer import same_passages

    assert not same_passages(Settings(), Settings(sentence_vectors="in-passage"))
