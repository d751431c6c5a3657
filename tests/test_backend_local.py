"""The local backend passes the backend contract, and damage to its files is caught at open."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_contract import SETTINGS, BackendContract
from qa.backends.local import LocalBackend, _distinct, _members, _top
from qa.backends.store import IndexStore


class TestLocalBackend(BackendContract):
    @pytest.fixture
    def backend_factory(self):
        return LocalBackend


def _build(tmp_path) -> None:
    """A local index of the contract's articles in tmp_path/index."""
    from backend_contract import fill

    docs = tmp_path / "docs"
    docs.mkdir()
    fill(LocalBackend(tmp_path / "index"), docs)


@pytest.mark.parametrize("damage", ["manifest", "vectors", "current"])
def test_damaged_files_are_reported_at_open_not_served(damage, tmp_path):
    _build(tmp_path)
    version = IndexStore(tmp_path / "index").current()
    if damage == "manifest":
        (version / "manifest.json").write_text("{not json", encoding="utf-8")
    elif damage == "vectors":  # caught by the manifest's file hashes
        data = bytearray((version / "vectors.npy").read_bytes())
        data[-5] ^= 0xFF
        (version / "vectors.npy").write_bytes(bytes(data))
    else:
        (tmp_path / "index" / "CURRENT").write_text("v-nothing\n", encoding="utf-8")
    reopened = LocalBackend(tmp_path / "index")
    assert reopened.settings is None and reopened.documents() == {}
    assert "damaged" in reopened.problem


def test_qa_check_verifies_a_sound_index_and_finds_byte_damage_open_may_skip(tmp_path, capsys):
    """Opening a large index skips the checksums of its large files (snapshot.DEEP_AT_OPEN_BYTES);
    `qa check` reads everything. Here the budget is 0, as for a large index."""
    from qa.backends.snapshot import Snapshot
    from qa.cli import main

    _build(tmp_path)
    assert main(["check", "--index", str(tmp_path / "index")]) == 0
    assert "is sound" in capsys.readouterr().out
    version = IndexStore(tmp_path / "index").current()
    data = bytearray((version / "sentences.npy").read_bytes())
    data[-3] ^= 0x01  # a value still finite: only the checksum tells
    (version / "sentences.npy").write_bytes(bytes(data))
    Snapshot.load(version, deep_at_open=0)  # not caught by the open-time checks of a large index
    assert main(["check", "--index", str(tmp_path / "index")]) == 1
    assert "sentences.npy does not match" in capsys.readouterr().err
    assert main(["check", "--index", str(tmp_path / "nothing")]) == 2


def test_document_records_round_trip_without_their_defaults():
    import json

    from qa.backends.doc_records import doc_row
    from qa.types import DocInfo, Publication

    full = DocInfo("a.txt", "/x/a.txt", "Title", "By A", "Outlet", "h" * 64, 100, encoding="latin-1", pages=(1, 50),
                   language="en", file_sha256="f" * 64, size=10, mtime_ns=5, date="2024-01-02", url="http://x",
                   meta_sources=(("date", "manifest"),),
                   guess=Publication(date="2024-01-01", sources=(("date", "document"),)))
    bare = DocInfo("b.txt", "b.txt", "Title", None, None, "h" * 64, 1)
    for doc in (full, bare):
        assert DocInfo(**json.loads(json.dumps(doc_row(doc)))) == doc
    assert set(doc_row(bare)) == {"doc_id", "path", "title", "byline", "outlet", "content_hash", "chars"}


@given(st.lists(st.integers(-5, 40), max_size=60))
def test_distinct_is_numpy_unique(values):
    ids = np.array(values, np.int32)
    got = _distinct(ids)
    assert got.dtype == np.int32 and np.array_equal(got, np.unique(ids))


@given(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 3.0]), max_size=50), st.integers(0, 12))
def test_top_is_the_best_positive_scores_with_ties_in_index_order(values, k):
    scores = np.array(values, np.float32)
    expected = sorted((i for i, s in enumerate(values) if s > 0), key=lambda i: (-values[i], i))[:k]
    assert _top(scores, k).tolist() == expected


@given(st.lists(st.integers(0, 30), max_size=40), st.lists(st.integers(0, 30), max_size=40))
def test_members_is_numpy_isin(values, members):
    values, members = np.array(values, np.int64), np.array(sorted(set(members)), np.int64)
    assert np.array_equal(_members(values, members), np.isin(values, members))


def test_lexical_search_ranks_the_same_whether_it_sorts_holders_or_all_scores(tmp_path):
    """search_lexical ranks only the passages holding a term unless they are half the collection;
    both ways give every positive BM25 score's passage, best first, ties by passage id."""
    from backend_contract import terms

    _build(tmp_path)
    backend = LocalBackend(tmp_path / "index")
    snap = backend._snap
    queries = [terms(q) for q in ("cider apples", "harbour library", "the town council said", "zeppelin")]
    holders = snap.bm25_holders
    for query in queries:
        scores = snap.bm25_scores_of_terms(query)
        expected = sorted(np.flatnonzero(scores > 0).tolist(), key=lambda i: (-scores[i], i))[:4]
        assert expected or query == ["zeppelin"]
        assert [h.passage for h in backend.search_lexical(query, 4)] == expected
        snap.bm25_holders = lambda tokens, most: None  # the pass over all scores
        try:
            assert [h.passage for h in backend.search_lexical(query, 4)] == expected
        finally:
            snap.bm25_holders = holders


def test_documents_mapping_behaves_as_the_dict_it_replaced(tmp_path):
    """documents() decodes records on demand, yet reads as a read-only dict in storage order."""
    import pytest as _pytest

    from qa.backends import doc_records

    _build(tmp_path)
    backend = LocalBackend(tmp_path / "index")
    docs, snap = backend.documents(), backend.snapshot
    stored = list(dict.fromkeys(c.doc_id for c in snap.chunks))  # storage order: as the passages lie
    assert list(docs) == stored and len(docs) == len(stored) and list(docs.keys()) == stored
    plain = {d: docs[d] for d in stored}
    assert docs == plain and dict(docs.items()) == plain and list(docs.values()) == list(plain.values())
    assert all(docs[d].doc_id == d and docs.get(d) is docs[d] for d in stored)  # the cache answers again
    assert docs.get("nothing.txt") is None and "nothing.txt" not in docs and stored[0] in docs
    with _pytest.raises(KeyError):
        docs["nothing.txt"]
    with _pytest.raises(TypeError):
        docs["x"] = docs[stored[0]]  # read-only
    assert [tuple(f) for f in docs.facts()] == [(d, plain[d].date, plain[d].outlet, plain[d].byline) for d in stored]
    assert docs.chars.tolist() == [plain[d].chars for d in stored]
    from qa.backends.base import DocSummary, as_guessed, summaries

    brief = list(summaries(docs))
    made = [DocSummary(x.doc_id, x.path, x.size, x.mtime_ns, x.content_hash, as_guessed(x)) for x in plain.values()]
    assert [s.path for s in brief] == [x.path for x in plain.values()]  # fill() stores folder/doc_id paths
    assert brief == made and list(summaries(plain)) == made  # the columns, and the fallback from records
    assert [tuple(e) for e in docs.entries()] == [(d, plain[d].title, plain[d].date, plain[d].outlet, plain[d].byline)
                                                  for d in stored]
    # a fresh open decodes nothing until asked, and then only what is asked for; nor does a filtered search
    from qa.backends.base import Filter

    fresh = LocalBackend(tmp_path / "index")
    again = fresh.documents()
    assert isinstance(again, doc_records.Documents) and not again._cache
    fresh.search_lexical(["harbour"], 3, Filter(since="1900-01-01", outlets=frozenset({"x"}), authors=frozenset({"y"})))
    list(summaries(again)), list(again.entries())
    assert not again._cache
    again.get(stored[-1])
    assert list(again._cache) == [len(stored) - 1]


def test_many_decodes_what_is_asked_also_past_the_cache_bound(tmp_path, monkeypatch):
    """Documents.many (a question's documents at once) gives the records one by one lookup gives,
    with some of them kept decoded already and when they overflow the cache."""
    from qa.backends import doc_records

    _build(tmp_path)
    plain = dict(LocalBackend(tmp_path / "index").documents().items())
    ids = list(plain)
    assert len(ids) >= 3
    monkeypatch.setattr(doc_records, "CACHE", 2)
    docs = LocalBackend(tmp_path / "index").documents()
    docs.get(ids[-1])
    assert docs.many(ids[-2:]) == {d: plain[d] for d in ids[-2:]}  # one kept, one decoded
    assert docs.many(reversed(ids)) == {d: plain[d] for d in reversed(ids)}  # more than the cache holds
    assert docs.many([]) == {}


def test_document_entries_list_every_document_without_decoding_a_record(folder_qa):
    """What the app's document and outlet pickers show comes from the columns (250,000 records
    decoded took ~8 s at each start), and says what the records say."""
    from qa.backends import doc_records

    bot = folder_qa({"b.txt": "Ferry news\n\nThe ferry sails at noon on Monday from the harbour.\n",
                     "a.txt": "Orchard news\n\nThe orchard harvest began early this year, growers said.\n",
                     "qa-manifest.csv": "file,date,outlet,author\na.txt,2005-03-01,Valley Times,Ann Lee\n"})
    docs = bot._current().backend.documents()
    assert isinstance(docs, doc_records.Documents) and not docs._cache
    entries = bot.document_entries()
    assert not docs._cache  # nothing decoded
    assert [tuple(e) for e in entries] == [(d.doc_id, d.title, d.date, d.outlet, d.byline) for d in bot.documents()]
    assert [e.doc_id for e in entries] == ["a.txt", "b.txt"] and entries[0].outlet == "Valley Times"


@pytest.mark.parametrize("rows", [0, 1, 5000])  # 5000: more than one slice (npyfile.SLICE_ROWS)
def test_exact_dense_file_is_what_faiss_writes(rows, tmp_path):
    """dense.faiss, written slice by slice, has the bytes faiss.write_index writes for the index
    FAISS builds in memory from the same float16 rows (zeros and subnormal halves included)."""
    import faiss

    from qa.backends import npyfile, snapshot

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((rows, 384)).astype(np.float16)
    if rows:
        vectors[0, :3] = (0, np.float16(3e-6), -np.float16(6e-8))  # subnormal float16 values
    assert snapshot._flat_header(384, rows) is not None  # written here, not by the fallback to FAISS
    npyfile.write(tmp_path / "v.npy", np.float16, vectors.shape, [vectors])
    snapshot._write_dense(tmp_path / "streamed.faiss", npyfile.NpyRows(tmp_path / "v.npy"), SETTINGS)
    built = faiss.IndexScalarQuantizer(384, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    if rows:
        built.add(vectors.astype(np.float32))
    faiss.write_index(built, str(tmp_path / "built.faiss"))
    assert (tmp_path / "streamed.faiss").read_bytes() == (tmp_path / "built.faiss").read_bytes()


def test_passages_walk_their_documents_in_storage_order():
    """snapshot._with_documents numbers each passage's document by walking both lists (no table):
    a document without passages keeps its row; passages out of document order, or of a document
    not given, are refused."""
    from qa.backends import snapshot
    from qa.errors import IndexCorruptError
    from qa.types import Chunk, DocInfo

    docs = [DocInfo(d, d, d.upper(), None, None, "h" * 64, 10) for d in ("a", "b", "c", "d")]

    def chunks(ids):
        return [Chunk(d, 0, 1, "x", ((0, 1),)) for d in ids]

    walked = [(k, doc.title, c.doc_id) for k, doc, c in snapshot._with_documents(chunks("aacdd"), docs)]
    assert walked == [(0, "A", "a"), (0, "A", "a"), (2, "C", "c"), (3, "D", "d"), (3, "D", "d")]
    for bad in ("aba", "ba", "ae"):
        with pytest.raises(IndexCorruptError):
            list(snapshot._with_documents(chunks(bad), docs))
