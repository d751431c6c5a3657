"""What every backend must do: one suite, run against each backend (as Haystack's document-store
test mixins). A backend's test module subclasses `BackendContract` and provides the fixture
`backend_factory`: a callable (location) -> a new Backend opened on that location.

Passages come from small made-up articles cut by the real pipeline (ingest, chunk, attribution);
vectors from a tiny bag-of-words hashing embedder, so the suite needs no model and the expected
nearest passage is known.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest

from qa.backends import Filter
from qa.backends.base import Backend, PassageBatch
from qa.indexer import doc_info, passages
from qa.ingest import read_document
from qa.textutil import terms
from qa.types import Settings

DIM = 64
SETTINGS = Settings(min_passage_chars=0, joined_max_chars=0)

ARTICLES = {
    "harbour.txt": "Harbour ferries return\n\nThe harbour authority of Velmora said on Monday that ferries "
                   "would sail again after the storm.\n\nA spokesman for the port said repairs to the pier "
                   "would take three weeks.\n\nFishermen welcomed the news and the harbour cafe reopened.",
    "orchard.txt": "Orchard harvest grows\n\nGrowers in the Tamsin valley reported a record apple harvest this "
                   "autumn.\n\nThe cooperative said prices for cider apples fell by a tenth.\n\nPear trees "
                   "suffered from late frost in the upper valley.",
    "library.txt": "Library reopens\n\nThe Brackwater city library reopened in March after a two-year "
                   "renovation.\n\nThe librarian said visitors could borrow ebooks from the new terminals.",
}


def embed(text: str) -> np.ndarray:
    """Unit bag-of-words vector: texts sharing words point the same way."""
    v = np.zeros(DIM, np.float32)
    for t in terms(text):
        v[int.from_bytes(hashlib.blake2b(t.encode(), digest_size=4).digest(), "little") % DIM] += 1
    n = np.linalg.norm(v)
    return v / n if n else v


def fill(backend: Backend, folder) -> Backend:
    """The backend with the three ARTICLES written to `folder` and committed; returns the new one."""
    writer = backend.writer(SETTINGS)
    for name in ARTICLES:
        writer.upsert(batch_of(folder, name))
    return writer.commit()


def batch_of(folder, name: str, text: str | None = None) -> PassageBatch:
    """A document's PassageBatch, written to `folder/name` first (text defaults to ARTICLES[name])."""
    path = folder / name
    path.write_text(text if text is not None else ARTICLES[name], encoding="utf-8")
    doc = read_document(path, folder)
    chunks = passages(doc, SETTINGS)
    vectors = np.array([embed(c.text) for c in chunks], np.float32).reshape(-1, DIM)
    sents = np.array([embed(c.text[s - c.start:e - c.start]) for c in chunks for s, e in c.sentences],
                     np.float32).reshape(-1, DIM)
    return PassageBatch(doc_info(doc), chunks, vectors, sents)


class BackendContract:
    """The conformance suite. Subclasses provide the `backend_factory` fixture."""

    @pytest.fixture
    def filled(self, backend_factory, tmp_path):
        """(backend with the three articles, location, documents folder)."""
        docs = tmp_path / "docs"
        docs.mkdir()
        location = tmp_path / "index"
        backend = fill(backend_factory(location), docs)
        yield backend, location, docs
        backend.close()

    def _doc_of(self, backend: Backend, hit) -> str:
        return backend.fetch([hit.passage]).chunks[0].doc_id

    def test_is_a_backend(self, filled):
        assert isinstance(filled[0], Backend)

    def test_empty_backend_has_nothing(self, backend_factory, tmp_path):
        backend = backend_factory(tmp_path / "empty")
        assert backend.settings is None and backend.documents() == {}
        assert backend.search_dense(embed("harbour"), 5) == []
        assert backend.search_lexical(["harbour"], 5) == []

    def test_upsert_stores_documents_with_hashes(self, filled):
        backend = filled[0]
        docs = backend.documents()
        assert set(docs) == set(ARTICLES)
        assert all(len(d.content_hash) == 64 for d in docs.values())
        assert backend.settings == SETTINGS
        assert backend.stats().passages == sum(len(backend.passages_of(d).chunks) for d in ARTICLES)

    def test_dense_search_finds_the_nearest_passage(self, filled):
        backend = filled[0]
        target = backend.passages_of("orchard.txt").chunks[1]
        hits = backend.search_dense(embed(target.text), 3)
        assert len(hits) == 3 and hits[0].score >= hits[1].score >= hits[2].score
        assert backend.fetch([hits[0].passage]).chunks[0] == target

    def test_dense_scores_use_the_vectors_as_stored_in_float16(self, filled):
        """Every backend stores passage vectors at float16 precision and scores a question against
        those, so two backends rank the same passages alike (float32 rounding aside)."""
        backend = filled[0]
        question = embed("harbour apples library cider pier")
        hits = backend.search_dense(question, backend.stats().passages)
        chunks = backend.fetch([h.passage for h in hits]).chunks
        stored = np.array([embed(c.text) for c in chunks], np.float32).astype(np.float16).astype(np.float64)
        expected = stored @ question.astype(np.float64)
        got = np.array([h.score for h in hits])
        assert len(hits) == backend.stats().passages
        assert np.abs(got - expected).max() < 2e-6, np.abs(got - expected).max()

    def test_lexical_search_ranks_by_bm25(self, filled):
        backend = filled[0]
        hits = backend.search_lexical(terms("cider apples"), 5)
        assert hits and all(h.score > 0 for h in hits)
        assert "cider" in backend.fetch([hits[0].passage]).chunks[0].text
        assert backend.search_lexical(terms("zeppelin"), 5) == []

    def test_filters_apply_inside_the_search_before_top_k(self, filled):
        backend = filled[0]
        only = Filter(sources=frozenset({"library.txt"}))
        # The question is about the harbour: unfiltered, the library would be crowded out of the top 2.
        dense = backend.search_dense(embed("harbour ferries pier port"), 2, only)
        lexical = backend.search_lexical(terms("harbour library"), 2, only)
        assert dense and lexical
        assert {self._doc_of(backend, h) for h in dense + lexical} == {"library.txt"}
        assert len(dense) == min(2, len(backend.passages_of("library.txt").chunks))
        assert backend.search_dense(embed("harbour"), 2, Filter(sources=frozenset())) == []

    def test_both_searches_in_one_call_return_what_each_search_returns(self, filled, backend_factory, tmp_path):
        backend = filled[0]
        question, words = embed("harbour ferries cider apples"), terms("harbour cider apples library")
        for where in (Filter(), Filter(sources=frozenset({"library.txt", "orchard.txt"})), Filter(phrases=("cider",))):
            both = backend.search_both(question, words, 3, where)
            assert both.dense and both.lexical
            assert both == (backend.search_dense(question, 3, where), backend.search_lexical(words, 3, where)), where
        assert backend.search_both(question, [], 3) == (backend.search_dense(question, 3), [])
        empty = backend_factory(tmp_path / "empty")
        assert empty.search_both(question, words, 3) == ([], [])
        empty.close()

    def test_fetch_returns_passages_in_order_with_their_context(self, filled):
        backend = filled[0]
        lo = backend.passages_of("harbour.txt")
        hits = backend.search_dense(embed(lo.chunks[-1].text), 1)
        got = backend.fetch([hits[0].passage])
        assert got.chunks[0] == lo.chunks[-1]
        assert len(got.sent_start) >= 2 and got.sent_start[1] == len(lo.chunks[-1].sentences)
        assert got.sent_vectors.shape[1] == got.vectors.shape[1] == DIM
        prev = got.previous[0]
        assert prev >= 1 and got.chunks[prev] == lo.chunks[-2]  # the passage before it came along
        assert got.docs["harbour.txt"].title

    def test_neighbours_stay_within_a_document(self, filled):
        backend = filled[0]
        chunks = backend.passages_of("library.txt").chunks
        first = backend.search_dense(embed(chunks[0].text), 1)[0].passage
        prev, nxt = backend.neighbours([first])
        assert prev[0] == -1 or backend.fetch([prev[0]]).chunks[0].doc_id == "library.txt"
        if len(chunks) > 1:
            assert backend.fetch([nxt[0]]).chunks[0] == chunks[1]

    def test_statistics_count_passages_holding_a_term(self, filled):
        backend = filled[0]
        stats = backend.stats()
        # the title is indexed with each passage (Settings.title_in_embedding)
        holding = sum(("harbour" in terms(SETTINGS.indexed_text(c.text, backend.documents()[d].title)))
                      for d in ARTICLES for c in backend.passages_of(d).chunks)
        assert stats.doc_freq("harbour") == holding
        assert stats.doc_freq("zeppelin") is None and stats.term_id("zeppelin") is None
        assert 0 <= stats.term_id("harbour") < stats.vocab_size

    def test_replace_and_delete_by_document(self, filled):
        backend, _, docs = filled
        writer = backend.writer(SETTINGS)
        writer.upsert(batch_of(docs, "library.txt", "Library closes\n\nThe Brackwater library closed for "
                                                    "good after a zeppelin landed on its roof."))
        writer.delete("orchard.txt")
        new = writer.commit()
        assert set(new.documents()) == {"harbour.txt", "library.txt"}
        hits = new.search_lexical(terms("zeppelin"), 5)
        assert hits and self._doc_of(new, hits[0]) == "library.txt"
        assert new.search_lexical(terms("cider"), 5) == []  # the deleted document's passages are gone
        kept = new.passages_of("harbour.txt")
        assert kept.chunks == backend.passages_of("harbour.txt").chunks
        assert np.array_equal(kept.vectors, backend.passages_of("harbour.txt").vectors)

    def test_readers_keep_their_version_during_a_write(self, filled):
        backend, _, docs = filled
        before = backend.search_lexical(terms("cider apples"), 3)
        errors = []

        def read():
            try:
                for _ in range(20):
                    hits = backend.search_lexical(terms("cider apples"), 3)
                    assert hits == before
                    assert backend.fetch([h.passage for h in hits]).chunks
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(3)]
        for t in threads:
            t.start()
        writer = backend.writer(SETTINGS)
        writer.delete("orchard.txt")
        new = writer.commit()
        for t in threads:
            t.join(30)
        assert not errors
        assert new.search_lexical(terms("cider apples"), 3) == []
        assert backend.search_lexical(terms("cider apples"), 3) == before

    def test_persists_across_reopen(self, filled, backend_factory):
        backend, location, _ = filled
        again = backend_factory(location)
        assert again.documents() == backend.documents()
        q = embed("apple harvest growers")
        assert again.search_dense(q, 3) == backend.search_dense(q, 3)
        assert again.search_lexical(terms("apple harvest"), 3) == backend.search_lexical(terms("apple harvest"), 3)
        again.close()

    def test_reopen_serves_the_live_version(self, filled):
        backend = filled[0]
        writer = backend.writer(SETTINGS)
        writer.delete("library.txt")
        writer.commit()  # e.g. by another process: this backend still serves the old version
        assert not backend.is_current() and "library.txt" in backend.documents()
        live = backend.reopen()
        assert live.is_current() and set(live.documents()) == set(ARTICLES) - {"library.txt"}

    def test_abort_changes_nothing(self, filled, backend_factory):
        backend, location, docs = filled
        writer = backend.writer(SETTINGS)
        writer.delete("orchard.txt")
        writer.abort()
        assert set(backend_factory(location).documents()) == set(ARTICLES)

    def test_fetch_carries_what_the_article_as_a_whole_says(self, filled):
        backend = filled[0]
        chunks = backend.passages_of("orchard.txt").chunks
        last = backend.search_dense(embed(chunks[-1].text), 1)[0].passage
        got = backend.fetch([last])
        assert got.chunks[0] == chunks[-1]
        assert not got.is_lead[0] and got.is_lead[got.previous[0]] == (len(chunks) == 2)
        text = got.doc_text["orchard.txt"]
        assert all(c.text in text for c in chunks) and backend.documents()["orchard.txt"].title in text
        expected = sorted({backend.stats().term_id(t) for c in chunks for t in terms(c.text)} - {None})
        assert got.doc_terms["orchard.txt"].tolist() == expected
