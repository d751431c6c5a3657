"""The Milvus backend passes the backend contract against a real `milvus-lite server` process, and
keeps its promises: filters quote every value, a question costs at most 3 round trips, a server
that is down gives one clear error, and the answers match the local backend's on the seeds."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")

from backend_contract import ARTICLES, SETTINGS, BackendContract, batch_of, embed, fill  # noqa: E402
from probe import CountingClient, stop  # noqa: E402
from qa.backends import Filter, open_backend  # noqa: E402
from qa.backends.milvus import IndexServerError, MilvusBackend, like_contains, quote  # noqa: E402
from qa.textutil import terms  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
READY_WITHIN = 30.0  # seconds: a server start on two busy cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def milvus_lite() -> list[str]:
    exe = Path(sys.executable).with_name("milvus-lite")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "milvus_lite"]


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    """A `milvus-lite server` on a loopback port, once it answers (bounded wait)."""
    log = open(data_dir.parent / f"milvus-{port}.log", "w")
    proc = subprocess.Popen(milvus_lite() + ["server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_WITHIN
    from pymilvus import MilvusClient

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"milvus-lite server exited: see {log.name}")
        try:
            MilvusClient(f"http://127.0.0.1:{port}", timeout=2).list_collections()
            return proc
        except Exception:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"milvus-lite server not ready within {READY_WITHIN:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    stop(proc, 10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """URI of a fresh Milvus Lite server for this module, stopped at its end."""
    base = tmp_path_factory.mktemp("milvus")
    port = free_port()
    proc = start_server(base / "data", port)
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


def name_for(location) -> str:
    """A collection name per test location (tests share the module's server)."""
    return "t" + hashlib.sha1(str(location).encode()).hexdigest()[:12]


class TestMilvusBackend(BackendContract):
    @pytest.fixture
    def backend_factory(self, server):
        return lambda location: MilvusBackend(server, name=name_for(location))


def test_locations_select_the_backend(server, tmp_path):
    from qa.backends.local import LocalBackend

    assert isinstance(open_backend(tmp_path / "index"), LocalBackend)
    milvus = open_backend(server)
    assert isinstance(milvus, MilvusBackend) and milvus.settings is None
    milvus.close()


def test_quote_keeps_any_text_a_single_literal():
    assert quote('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert like_contains("50% of a_b") == '"%50\\\\% of a\\\\_b%"'


TRICKY = {  # names and text with quotes, backslashes, brackets and expression keywords
    'o"brien [or] 1==1.txt': 'A "quoted" title\n\nThe mayor said "or doc in [1, 2] == true" at the harbour.',
    "back\\slash's (in).txt": "Back\\slash story\n\nThe council's budget in 2024 covered the harbour.",
    "plain.txt": "Plain story\n\nThe harbour was quiet on Sunday.",
}


def test_filters_quote_names_metadata_and_phrases(server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    backend = MilvusBackend(server, name=name_for(tmp_path))
    writer = backend.writer(SETTINGS)
    for name, text in TRICKY.items():
        writer.upsert(batch_of(docs, name, text))
    backend = writer.commit()
    assert set(backend.documents()) == set(TRICKY)
    for name in TRICKY:
        only = Filter(sources=frozenset({name}))
        hits = backend.search_dense(embed("harbour"), 5, only) + backend.search_lexical(["harbour"], 5, only)
        assert hits and {backend.fetch([h.passage]).chunks[0].doc_id for h in hits} == {name}
    for phrase, doc in (('"or doc in [1, 2] == true"', 'o"brien [or] 1==1.txt'), ("council's budget in", "back\\slash's (in).txt")):
        from qa.textutil import normalise

        where = Filter(phrases=(normalise(phrase),))
        hits = backend.search_lexical(terms("harbour"), 5, where)
        assert [backend.fetch([h.passage]).chunks[0].doc_id for h in hits] == [doc]
    assert backend.search_lexical(["harbour"], 5, Filter(phrases=('" or 1 == 1 or "',))) == []
    backend.close()


def test_server_down_is_one_clear_error(tmp_path):
    port = free_port()  # nobody listens here
    start = time.monotonic()
    with pytest.raises(IndexServerError, match="index server"):
        MilvusBackend(f"http://127.0.0.1:{port}")
    assert time.monotonic() - start < 15


# -- the engine on Milvus ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def milvus_qa(server, seed_qa, seed_dirs):
    """The seeds indexed into the module's server, embedding with the session's model."""
    from qa import QA

    docs, _ = seed_dirs
    return QA(docs, server, embedder=seed_qa.engine.embedder)


def _shape(answer):
    """What must be identical between backends: passages, offsets, highlights, 'also reported by'."""
    return (answer.answered, [(p.citation.doc_id, p.citation.start, p.citation.end, p.highlight_start,
                               p.highlight_end, p.speaker, [(c.doc_id, c.start, c.end) for c in p.also_in])
                              for p in answer.passages])


def test_seed_answers_match_the_local_backend(milvus_qa, seed_qa, dev_questions):
    assert milvus_qa.passage_count() == seed_qa.passage_count()
    assert {d.doc_id: d.content_hash for d in milvus_qa.documents()} == \
        {d.doc_id: d.content_hash for d in seed_qa.documents()}
    for item in dev_questions["answerable"]:
        assert _shape(milvus_qa.ask(item["q"], k=5)) == _shape(seed_qa.ask(item["q"], k=5)), item["q"]
    for q in dev_questions["unanswerable"][:3]:
        assert _shape(milvus_qa.ask(q)) == _shape(seed_qa.ask(q)), q
    for conv in dev_questions["conversations"][:2]:
        *history, last = conv["turns"]
        assert _shape(milvus_qa.ask(last, history=history)) == _shape(seed_qa.ask(last, history=history))


def test_a_question_costs_two_steps_of_calls(milvus_qa, dev_questions, monkeypatch):
    import qa.backends.milvus.reader as milvus

    # The check "is this version still live?" runs beside a question's dense search and is reused for
    # FOLLOW_SECONDS; a long window keeps this count independent of how fast the machine is.
    monkeypatch.setattr(milvus, "FOLLOW_SECONDS", 600.0)
    backend = milvus_qa.engine.backend
    question = dev_questions["answerable"][0]["q"]
    milvus_qa.ask(question)  # the first question of a version also reads the document table
    with _wrapped_client(backend, CountingClient) as counter:
        milvus_qa.ask(dev_questions["answerable"][1]["q"])
    # Two steps by construction: the dense and the BM25 search side by side, with the question's
    # term statistics queried beside them (so 3 calls); then one query for the passages, their
    # neighbours and their documents. Terms and passages the first question brought are not asked
    # again, so either query may be left out. Counted as calls, not by timing: on two busy cores a
    # call issued beside another may start after it ends, which says nothing about the design.
    assert counter.calls.count("search") == 2 and counter.calls.count("query") <= 2, counter.calls
    assert set(counter.calls) <= {"search", "query"}, counter.calls
    # The asking thread makes the BM25 search, then (if needed) the fetch; the pool the others.
    assert _on_asking_thread(counter) in (["search"], ["search", "query"]), (counter.calls, counter.threads)
    assert milvus_qa.engine.backend is backend  # still current: no reopening


@contextmanager
def _wrapped_client(backend, wrap):
    """The backend's client wrapped by `wrap` (a class taking the client, keeping it as `_client`)
    for the block; yields the wrapper, and puts the client back however the block ends."""
    wrapper = backend.client = wrap(backend.client)
    try:
        yield wrapper
    finally:
        backend.client = wrapper._client


def _asked_with_counting(qa, question):
    """Ask, counting the server calls of qa's backend; returns (answer, counter)."""
    backend = qa.engine.backend
    with _wrapped_client(backend, CountingClient) as counter:
        answer = qa.ask(question)
        check = backend._check
        if check is not None:
            check.result(timeout=30)  # count the background check too, when it outlived the answer
    return answer, counter


def _on_asking_thread(counter) -> list[str]:
    here = threading.current_thread().name
    return [c for c, t in zip(counter.calls, counter.threads) if t == here]


def test_the_alias_check_rides_beside_the_dense_search(milvus_qa, dev_questions, monkeypatch):
    import qa.backends.milvus.reader as milvus

    question = dev_questions["answerable"][1]["q"]
    monkeypatch.setattr(milvus, "FOLLOW_SECONDS", 600.0)
    milvus_qa.ask(question)  # no check in flight from here; the document table and terms are known
    monkeypatch.setattr(milvus, "FOLLOW_SECONDS", 0.0)  # every question checks
    _, counter = _asked_with_counting(milvus_qa, question)
    # A check is two calls (the alias, then the version's meta row), made in the background: the
    # asking thread only searches (the BM25 search; the dense one is on the pool; the first ask
    # decoded the passages, so there is no fetch).
    assert _on_asking_thread(counter) == ["search"], (counter.calls, counter.threads)
    assert counter.calls.count("search") == 2, counter.calls
    checks = counter.calls.count("describe_alias")
    assert checks >= 1 and counter.calls.count("query") == checks, counter.calls
    assert milvus_qa.engine.backend.is_current()


def test_after_a_quiet_spell_the_question_does_not_wait_for_the_version_check(milvus_qa, dev_questions):
    """The check that is long out of date is not made before the question: it runs beside it."""
    backend = milvus_qa.engine.backend
    question = dev_questions["answerable"][3]["q"]
    milvus_qa.ask(question)
    if backend._check is not None:
        backend._check.result(timeout=30)  # no check of that question still in flight
    backend._seen = (time.monotonic() - 3600, backend._seen[1])  # an hour since the last check
    milvus_qa._checked = 0.0
    answer, counter = _asked_with_counting(milvus_qa, question)
    assert answer.answered
    assert "describe_alias" not in _on_asking_thread(counter), (counter.calls, counter.threads)
    assert len(_on_asking_thread(counter)) <= 3 and counter.calls.count("describe_alias") == 1, counter.calls
    assert time.monotonic() - backend._seen[0] < 60  # the check was made


class _Meeting:
    """Wraps a client: a search call waits (at most 30 s) until `parties` searches have been made,
    so searches made one after the other fail (the barrier breaks) and side by side ones pass."""

    def __init__(self, client, parties: int = 2):
        self._client, self.barrier, self.threads = client, threading.Barrier(parties, timeout=30), []

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if name != "search":
            return method

        def call(*args, **kwargs):
            self.threads.append((threading.current_thread().name, kwargs.get("anns_field")))
            self.barrier.wait()
            return method(*args, **kwargs)
        return call


def test_both_searches_of_a_question_are_in_flight_at_once(milvus_qa, dev_questions):
    backend = milvus_qa.engine.backend
    question = dev_questions["answerable"][4]["q"]
    alone = milvus_qa.ask(question)
    with _wrapped_client(backend, _Meeting) as meeting:
        together = milvus_qa.ask(question)
    assert not meeting.barrier.broken
    # The dense search ("vec") on the pool, the BM25 one ("sparse") on the asking thread.
    assert sorted(field for _, field in meeting.threads) == ["sparse", "vec"], meeting.threads
    assert len({thread for thread, _ in meeting.threads}) == 2, meeting.threads
    assert _shape(together) == _shape(alone)
    assert [p.score for p in together.passages] == [p.score for p in alone.passages]


class _FailingLexical:
    """Wraps a client: the BM25 search fails at once; the dense one takes a moment longer."""

    def __init__(self, client):
        self._client, self.dense_done = client, threading.Event()

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if name != "search":
            return method

        def call(*args, **kwargs):
            if kwargs.get("anns_field") == "sparse":
                raise RuntimeError("lexical search refused")
            time.sleep(0.5)
            try:
                return method(*args, **kwargs)
            finally:
                self.dense_done.set()
        return call


def test_a_failed_search_is_one_error_after_the_other_search_has_ended(milvus_qa):
    backend = milvus_qa.engine.backend
    with _wrapped_client(backend, _FailingLexical) as failing:
        with pytest.raises(IndexServerError, match="lexical search refused"):
            backend.search_both(milvus_qa.engine.embedder.embed_query("harbour"), ["harbour"], 5)
        assert failing.dense_done.is_set()  # nothing of the question still running


def test_a_question_asked_again_decodes_no_passage_again(milvus_qa, dev_questions, monkeypatch):
    import qa.backends.milvus.reader as milvus

    monkeypatch.setattr(milvus, "FOLLOW_SECONDS", 600.0)  # no version check in these counts
    backend = milvus_qa.engine.backend
    question = dev_questions["answerable"][2]["q"]
    first = milvus_qa.ask(question)
    with _wrapped_client(backend, CountingClient) as counter:
        again = milvus_qa.ask(question)
    # Its terms' statistics, its passages and its documents were read by the first ask: only the
    # two searches reach the server, and the answer is the same.
    assert counter.calls == ["search", "search"], counter.calls
    assert _shape(again) == _shape(first)


def test_memos_outlive_a_question_and_name_ids_cover_names_decoded_later():
    from types import SimpleNamespace

    from qa.backends.base import Fetched
    from qa.backends.milvus.reader import _Memos
    from qa.backends.milvus.schema import NameNumbers

    numbers = NameNumbers()
    memos = _Memos(numbers)
    first, second = (SimpleNamespace(cache=memos) for _ in range(2))
    computed = []

    def compute(value):
        computed.append(value)
        return value

    numbers.of(["paris"])
    assert Fetched.memo(first, ("figures", 7), lambda: compute("first figures")) == "first figures"
    assert Fetched.memo(first, "name ids", lambda: compute("first names")) == {"paris": 0}
    # The second question finds the passage's figures, and the names decoded since its first.
    numbers.of(["london", "paris"])
    assert Fetched.memo(second, ("figures", 7), lambda: compute("again")) == "first figures"
    assert Fetched.memo(second, "name ids", lambda: compute("second names")) == {"paris": 0, "london": 1}
    assert numbers.snapshot() == ("paris", "london")
    assert computed == ["first figures"]
    assert list(memos) == [("figures", 7)]
    memos.clear()  # (when over its bound)
    assert Fetched.memo(second, "name ids", lambda: compute("third names"))["london"] == 1


def test_passage_rows_of_both_formats_decode_alike(tmp_path):
    from qa import lexicon
    from qa.backends.milvus.schema import PACKED, NameNumbers, passage_chunk, stored_passage
    from qa.backends.milvus.writer import passage_rows

    # A copy of an article, so that passages have partners carrying the same words.
    batches = [batch_of(tmp_path, name) for name in ARTICLES]
    batches.append(batch_of(tmp_path, "copy.txt", ARTICLES["harbour.txt"]))
    chunks = [c for b in batches for c in b.chunks]
    indexed = [terms(c.text) for c in chunks]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(t for toks in indexed for t in toks))}
    lex = lexicon.build(chunks, vocab)
    nums = {b.doc.doc_id: i for i, b in enumerate(batches)}
    # Partner ids past 2**31: ids of an updated collection grow by a random gap per commit.
    rows = {fmt: list(passage_rows(batches, chunks, indexed, lex, nums, 2 ** 40, 5, fmt)) for fmt in (3, 4)}
    assert all(r["data"].startswith(PACKED) for r in rows[4]) and not any(":" in r["data"] for r in rows[3])
    dim = batches[0].vectors.shape[1]
    numbers = NameNumbers()
    for k, (old, new) in enumerate(zip(rows[3], rows[4])):
        a, b = stored_passage(old, dim, numbers), stored_passage(new, dim, numbers)
        assert a.chunk == b.chunk == passage_chunk(new["data"]) == passage_chunk(old["data"])
        assert a.same == b.same and a.added == b.added == 5
        first, last = sum(len(c.sentences) for c in chunks[:k]), sum(len(c.sentences) for c in chunks[:k + 1])
        row = slice(int(lex.name_start[first]), int(lex.name_start[last]))
        assert [numbers.words[i] for i in b.names] == [lex.name_words[i] for i in lex.names[row]]
        for field in ("vector", "sent_vectors", "terms", "per_sentence", "names"):
            x, y = getattr(a, field), getattr(b, field)
            assert x.dtype == y.dtype and np.array_equal(x, y), field
    decoded = [stored_passage(r, dim, numbers) for r in rows[4]]
    assert any(p.same for p in decoded) and any(len(p.names) for p in decoded)


def test_the_arena_gathers_what_the_decoded_passages_hold_in_any_order(tmp_path):
    from qa import lexicon
    from qa.backends.milvus.arena import Arena
    from qa.backends.milvus.schema import NameNumbers, stored_passage
    from qa.backends.milvus.writer import passage_rows

    batches = [batch_of(tmp_path, name) for name in ARTICLES]
    batches.append(batch_of(tmp_path, "copy.txt", ARTICLES["harbour.txt"]))  # partners ("same")
    chunks = [c for b in batches for c in b.chunks]
    indexed = [terms(c.text) for c in chunks]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(t for toks in indexed for t in toks))}
    nums = {b.doc.doc_id: i for i, b in enumerate(batches)}
    rows = list(passage_rows(batches, chunks, indexed, lexicon.build(chunks, vocab), nums, 100, 5, 4))
    dim = batches[0].vectors.shape[1]
    decoded = {int(r["pid"]): stored_passage(r, dim, NameNumbers()) for r in rows}
    arena = Arena(dim, limit=10_000, room=1)
    columns = arena.current()
    for pid, p in decoded.items():  # one at a time: the arrays grow several times
        columns.add(pid, p)
        columns.add(pid, p)  # a second decode of one passage (another thread's) is not kept twice
    assert len(arena) == len(decoded) > 8
    order = [int(x) for x in np.random.default_rng(0).permutation(list(decoded))]
    got = columns.gather(order)
    want = [decoded[pid] for pid in order]
    assert got.chunks == tuple(p.chunk for p in want)
    assert np.array_equal(got.vectors, np.concatenate([p.vector for p in want]))
    assert np.array_equal(got.sent_vectors, np.concatenate([p.sent_vectors for p in want]))
    assert np.array_equal(got.per_sentence, np.concatenate([p.per_sentence for p in want], axis=1))
    assert np.array_equal(got.sent_start, np.cumsum([0] + [p.per_sentence.shape[1] for p in want]))
    assert np.array_equal(got.terms, np.concatenate([p.terms for p in want]))
    assert np.array_equal(got.names, np.concatenate([p.names for p in want]))
    assert [got.same[a:b].tolist() for a, b in zip(got.same_start[:-1], got.same_start[1:])] == [
        list(p.same) for p in want]
    assert any(p.same for p in want) and got.added.tolist() == [5] * len(want)
    assert len(columns.gather([]).chunks) == 0
    arena.limit = 10
    assert len(arena.current()) == 0 and len(columns) == len(decoded)  # a question keeps its columns


def test_bm25_scores_follow_the_lucene_formula_per_query_term():
    import math
    from collections import Counter

    from qa.backends.milvus.schema import BM25_B, BM25_K1, bm25_scores

    df, passages, avgdl = {"a": 2, "b": 5, "gone": 0}, 10, 4.0
    counts = [(Counter(a=2, b=1), 4), (Counter(b=3), 8), (Counter(c=1), 1)]

    def term(t, f, length):
        idf = math.log(1 + (passages - df[t] + 0.5) / (df[t] + 0.5))
        return idf * f / (f + BM25_K1 * (1 - BM25_B + BM25_B * length / avgdl))

    # "a" asked twice counts twice; terms in no passage ("gone", "zz") count nothing.
    got = bm25_scores(["a", "b", "a", "gone", "zz"], counts, df, passages, avgdl)
    assert np.allclose(got, [2 * term("a", 2, 4) + term("b", 1, 4), term("b", 3, 8), 0.0], rtol=1e-12)
    assert bm25_scores(["zz"], counts, df, passages, avgdl).tolist() == [0.0, 0.0, 0.0]
    assert len(bm25_scores(["a"], [], df, passages, avgdl)) == 0


def test_sentence_vectors_are_stored_in_float16_and_older_float32_rows_still_read():
    from qa.backends.milvus.schema import b64, pack_vectors, unpack_vectors

    vectors = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    text = pack_vectors(vectors)
    assert text.startswith("f2:")
    assert np.array_equal(unpack_vectors(text, 8), vectors.astype(np.float16).astype(np.float32))
    older = "f4:" + b64(vectors)  # as rows were written before float16 was the rule
    assert np.array_equal(unpack_vectors(older, 8), vectors)


def test_cli_reports_a_server_that_is_down_in_one_line(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "QA_CACHE": str(tmp_path / "cache")}
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "qa", "ask", "--docs", str(ROOT / "seeds"), "--index",
                          f"http://127.0.0.1:{port}", "Who said what?"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "index server" in lines[0] and f"127.0.0.1:{port}" in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert time.monotonic() - start < 60


def test_a_server_killed_mid_session_fails_per_question_and_recovers(tmp_path, seed_qa, seed_dirs, dev_questions):
    from qa import QA
    from qa.errors import QAError

    docs, _ = seed_dirs
    port = free_port()
    proc = start_server(tmp_path / "data", port)
    try:
        bot = QA(docs, f"http://127.0.0.1:{port}", embedder=seed_qa.engine.embedder)
        question = dev_questions["answerable"][0]["q"]
        before = _shape(bot.ask(question))
        proc.kill()
        proc.wait(10)
        start = time.monotonic()
        with pytest.raises(QAError, match="index server"):
            bot.ask(question)
        assert time.monotonic() - start < 10
        proc = start_server(tmp_path / "data", port)  # the same data: the running engine carries on
        assert _shape(bot.ask(question)) == before
    finally:
        stop_server(proc)


def test_one_process_indexes_while_another_answers(server, seed_qa, tmp_path, dev_questions):
    """Two engines on one server (as two app workers; threads here): one adds articles and re-indexes
    twice while the other keeps answering, without an error and with the same answers; the other then
    follows the alias to the live version by itself."""
    import shutil
    import threading

    from qa import QA

    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "seeds", docs)
    uri = server
    writer_qa = QA(docs, uri, embedder=seed_qa.engine.embedder)
    reader_qa = QA(docs, uri, embedder=seed_qa.engine.embedder)
    question = dev_questions["answerable"][0]["q"]
    expected = _shape(reader_qa.ask(question))
    errors, answers, done = [], [], threading.Event()

    def serve():
        try:
            while not done.is_set():
                answers.append(_shape(reader_qa.ask(question)))
        except Exception as exc:  # reported below
            errors.append(exc)

    t = threading.Thread(target=serve)
    t.start()
    try:
        for i in range(2):  # two new versions while the reader serves its own
            (docs / f"extra{i}.txt").write_text(f"Extra story {i}\n\nThe zeppelin number {i} landed in Velmora.",
                                                encoding="utf-8")
            writer_qa.refresh()
    finally:
        done.set()
        t.join(60)
    assert not errors and answers and all(a == expected for a in answers)
    time.sleep(1.1)  # past FOLLOW_SECONDS: the reader's next question moves it to the live version
    ans = reader_qa.ask("Where did the zeppelin land?")
    assert ans.passages[0].citation.doc_id.startswith("extra")
    assert {"extra0.txt", "extra1.txt"} <= {d.doc_id for d in reader_qa.documents()}


def test_an_embedded_milvus_lite_file_keeps_the_index(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    path = tmp_path / "index.db"
    backend = open_backend(path)
    written = fill(backend, docs)
    hits = written.search_lexical(terms("cider apples"), 3)
    assert hits and "cider" in written.fetch([hits[0].passage]).chunks[0].text
    for b in (written, backend):
        b.close()
    again = open_backend(str(path))
    assert set(again.documents()) == set(ARTICLES) and again.search_lexical(terms("cider apples"), 3) == hits
    again.close()


def test_a_version_missing_its_parts_is_reported_not_served(server, tmp_path):
    from pymilvus import MilvusClient

    docs = tmp_path / "docs"
    docs.mkdir()
    name = name_for(tmp_path)
    writer = MilvusBackend(server, name=name).writer(SETTINGS)
    for article in ARTICLES:
        writer.upsert(batch_of(docs, article))
    live = writer.commit()
    assert live.stats().doc_freq('har"bour\\') is None  # a term is quoted, never pasted
    MilvusClient(server).drop_collection(live.collection + "_docs")
    again = MilvusBackend(server, name=name)
    assert again.settings is None and again.documents() == {} and "incomplete" in again.problem
    fresh = again.writer(SETTINGS, fresh=True)  # a rebuild replaces it
    fresh.upsert(batch_of(docs, "library.txt"))
    assert set(fresh.commit().documents()) == {"library.txt"}


def test_date_outlet_and_author_filters_match_the_local_backend(server, tmp_path):
    """Every kind of filter gives the same passages on both backends (they share Filter.allows)."""
    import dataclasses

    from qa.backends.local import LocalBackend

    docs = tmp_path / "docs"
    docs.mkdir()
    facts = {"harbour.txt": ("2024-03-01", "Velmora Post", "Ann O'Hara"),
             "orchard.txt": ("2024-05-09", 'The "Valley" Times', "Bo Li"),
             "library.txt": (None, "Velmora Post", None)}
    batches = []
    for name, (date, outlet, byline) in facts.items():
        b = batch_of(docs, name)
        batches.append(dataclasses.replace(b, doc=dataclasses.replace(b.doc, date=date, outlet=outlet, byline=byline)))
    backends = []
    for backend in (LocalBackend(tmp_path / "index"), MilvusBackend(server, name=name_for(tmp_path))):
        writer = backend.writer(SETTINGS)
        for b in batches:
            writer.upsert(b)
        backends.append(writer.commit())
    from qa.textutil import normalise

    filters = [Filter(since="2024-04-01"), Filter(until="2024-04-01"), Filter(outlets=frozenset({normalise('The "Valley" Times')})),
               Filter(authors=frozenset({"o'hara"})), Filter(since="2024-01-01", outlets=frozenset({"velmora post"})),
               Filter(outlets=frozenset({"velmora post"}))]  # two of three: written as "not in" the third
    for where in filters:
        # as sets: equal cosines of the toy vectors come in either order
        got = [{(b.fetch([h.passage]).chunks[0].doc_id, b.fetch([h.passage]).chunks[0].start)
                for h in b.search_dense(embed("harbour apple library"), 10, where)} for b in backends]
        assert got[0] == got[1] and got[0], where


WORKER = """
import json, pathlib, sys
from qa import QA
docs, uri, question, stop = sys.argv[1:5]
bot = QA(docs, uri)
print("ready", flush=True)
while not pathlib.Path(stop).exists():
    try:
        a = bot.ask(question)
        print(json.dumps([[bot.engine.backend.collection, bot.engine.backend.version], a.answered,
                          [(p.citation.doc_id, p.citation.start, p.citation.end) for p in a.passages]]), flush=True)
    except Exception as exc:
        print("ERROR " + repr(exc), flush=True)
"""


def test_two_processes_one_indexing_while_the_other_answers(server, seed_qa, seed_dirs, tmp_path, dev_questions):
    """A second process (as a second app worker, with its query model in the Milvus cache folder)
    answers while this one re-indexes twice: no error, the same answers, and it moves to the live
    version by itself."""
    import shutil

    from qa import QA
    from qa.backends.milvus import cache_dir

    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "seeds", docs)
    uri = server
    writer_qa = QA(docs, uri, embedder=seed_qa.engine.embedder)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "QA_CACHE": str(tmp_path / "cache")}
    model = cache_dir(uri).relative_to(cache_dir(uri).parent)
    shutil.copytree(seed_dirs[1] / "model", tmp_path / "cache" / model / "model")  # no second export
    stop = tmp_path / "stop"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(docs), uri, dev_questions["answerable"][0]["q"],
                               str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert worker.stdout.readline().strip() == "ready"
        first = worker.stdout.readline()  # it answers before anything changes
        for i in range(2):
            (docs / f"extra{i}.txt").write_text(f"Extra story {i}\n\nThe zeppelin number {i} landed in Velmora.",
                                                encoding="utf-8")
            writer_qa.refresh()
        time.sleep(2.5)  # past FOLLOW_SECONDS, while it keeps answering
        stop.touch()
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    lines = [first] + out.splitlines()
    assert not [x for x in lines if x.startswith("ERROR")], lines
    answers = [json.loads(x) for x in lines if x.strip()]
    assert len(answers) >= 2 and all(a[1:] == answers[0][1:] for a in answers)
    live = writer_qa.engine.backend
    assert answers[0][0] != answers[-1][0] == [live.collection, live.version]  # updated in place: a new version


# -- QA follows the live version (any backend; shown here on the local one, no server needed) -------
def test_a_qa_follows_another_process_commit_and_ignores_a_damaged_pointer(folder_qa, seed_qa):
    from qa import QA

    bot = folder_qa({"harbour.txt": ARTICLES["harbour.txt"], "library.txt": ARTICLES["library.txt"]}, "follow")
    other = QA(bot.docs_dir, bot.index_dir, embedder=seed_qa.engine.embedder)  # e.g. a second app worker
    (bot.docs_dir / "orchard.txt").write_text(ARTICLES["orchard.txt"], encoding="utf-8")
    other.refresh()
    ans = bot.ask("What happened to the price of cider apples?")
    assert ans.passages[0].citation.doc_id == "orchard.txt"  # the next question saw the new version
    (bot.index_dir / "CURRENT").write_text("v-nothing\n", encoding="utf-8")
    again = bot.ask("What happened to the price of cider apples?")
    assert [p.citation for p in again.passages] == [p.citation for p in ans.passages]


def test_the_app_reports_a_killed_server_per_question_and_recovers(tmp_path, seed_qa, seed_dirs, dev_questions):
    """`app.py --workers 2` on a Milvus server: a question asked while the server is down gets a
    503 with one clear message; once the server is back, the same app answers again by itself. An
    app started while the server is down exits with one line."""
    import json
    import os
    import urllib.error
    import urllib.request

    from test_serve import Server

    docs, index = seed_dirs
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {"QA_CACHE": str(tmp_path / "cache")}
    (tmp_path / "gradio-tmp").mkdir()
    down = Server(tmp_path, docs, uri, env=env)  # no server yet
    assert down.proc.wait(timeout=120) != 0
    log = down.log.read_text()
    assert "index server" in log and "Traceback" not in log
    proc = start_server(tmp_path / "data", port)
    app = None
    try:
        app = Server(tmp_path, docs, uri, "--workers", "2", "--rate-limit", "0", env=env).wait()

        def ask() -> tuple[int, dict]:
            req = urllib.request.Request(app.url + "/v1/ask", data=json.dumps({"question": question}).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        question = dev_questions["answerable"][0]["q"]
        deadline = time.monotonic() + 60
        status, before = ask()
        while status != 200 and time.monotonic() < deadline:  # the first start indexes the seeds
            time.sleep(1)
            status, before = ask()
        assert status == 200 and before["answered"]
        proc.kill()
        proc.wait(10)
        status, body = ask()
        assert status == 503 and "index server" in body["error"]
        proc = start_server(tmp_path / "data", port)
        deadline = time.monotonic() + 30
        status, after = ask()
        while status != 200 and time.monotonic() < deadline:
            time.sleep(1)
            status, after = ask()
        assert status == 200 and after == before
    finally:
        if app is not None:
            app.stop()
        stop_server(proc)


# -- updates in place --------------------------------------------------------------------------------
def _qa_on(server, docs, name, embedder, grace=None):
    """A QA over `docs` on its own index name on the module's server."""
    from qa import QA

    kwargs = {} if grace is None else {"grace": grace}
    return QA(docs, server, embedder=embedder, backend=MilvusBackend(server, name=name, **kwargs))


def test_a_reader_answers_from_another_process_commit_without_waiting_for_the_check(
        server, seed_qa, tmp_path):
    """Another writer commits; the reader's next question (its last check an hour old) is answered
    from the new version, and the check that found it was not made before the question."""
    import shutil

    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "seeds", docs)
    name = name_for(tmp_path)
    writer = _qa_on(server, docs, name, seed_qa.engine.embedder)
    reader = _qa_on(server, docs, name, seed_qa.engine.embedder)
    question = "Where did the zeppelin land?"
    assert not any(p.citation.doc_id == "extra.txt" for p in reader.ask(question).passages)
    (docs / "extra.txt").write_text("Zeppelin report\n\nThe zeppelin landed in Velmora on Tuesday, officials "
                                    "said.", encoding="utf-8")
    writer.refresh()
    old = reader.engine.backend
    if old._check is not None:
        old._check.result(timeout=30)
    old._seen = (time.monotonic() - 3600, old._seen[1])
    reader._checked = 0.0
    answer, counter = _asked_with_counting(reader, question)
    assert "describe_alias" not in _on_asking_thread(counter), (counter.calls, counter.threads)
    assert reader.engine.backend is not old and reader.engine.backend.version == writer.engine.backend.version
    assert answer.passages[0].citation.doc_id == "extra.txt"
    assert "Velmora" in answer.passages[0].text


def test_an_update_sends_only_the_changed_documents_passages_and_answers_as_a_rebuild(
        server, seed_qa, tmp_path, dev_questions):
    """Changing one article sends only its passages (in place: same collection, next version); after
    a change, a removal and an addition the answers, passages and offsets are those of a full
    rebuild of the same folder (written from the same passages and vectors)."""
    import shutil

    from qa import QA

    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "seeds", docs)
    bot = _qa_on(server, docs, name_for(tmp_path), seed_qa.engine.embedder)
    first = bot.engine.backend
    changed = sorted(docs.iterdir())[2]
    changed.write_text(changed.read_text(encoding="utf-8") + "\n\nThe zeppelin landed in Velmora on Tuesday, "
                       "officials said.\n", encoding="utf-8")
    with _wrapped_client(first, CountingClient) as counter:
        bot.refresh()
    live = bot.engine.backend
    assert (live.collection, live.version) == (first.collection, first.version + 1)
    sent = len(live.passages_of(changed.name).chunks)
    assert counter.rows.get(first.collection) == sent < first.stats().passages
    assert counter.rows.get(first.collection + "_docs") == 2  # the document's record and the version's
    assert "upsert" not in counter.calls and "create_collection" not in counter.calls

    def same_as_a_rebuild(where):
        # The rebuild is written from the same passages and vectors: the int8 model's vectors depend
        # a little on which passages share its batch, which is the indexer's business, not Milvus'.
        a = bot.engine.backend
        writer = MilvusBackend(server, name=name_for(tmp_path / where)).writer(a.settings, fresh=True)
        for doc_id in a.documents():
            writer.upsert(a.passages_of(doc_id))
        b = writer.commit()
        rebuilt = QA(docs, server, embedder=seed_qa.engine.embedder, backend=b)
        assert rebuilt.engine.backend is b  # nothing to update
        assert a.collection == first.collection and b.collection != a.collection
        assert a.documents() == b.documents() and a.stats().passages == b.stats().passages
        for t in ("zeppelin", "lavrov", "ceasefire", "velmora", "russia"):
            assert a.stats().doc_freq(t) == b.stats().doc_freq(t), t
        questions = [i["q"] for i in dev_questions["answerable"]] + dev_questions["unanswerable"][:3] + [
            "Where did the zeppelin land?"]
        for q in questions:
            assert _shape(bot.ask(q)) == _shape(rebuilt.ask(q)), q

    same_as_a_rebuild("rebuilt1")
    sorted(docs.iterdir())[4].unlink()
    (docs / "extra.txt").write_text("Extra story\n\nLavrov said the zeppelin talks in Velmora would resume "
                                    "after a ceasefire.", encoding="utf-8")
    bot.refresh()
    assert bot.engine.backend.version == first.version + 2
    same_as_a_rebuild("rebuilt2")


def _fetched(b):
    hits = b.search_dense(embed("harbour apple library"), 6) + b.search_lexical(terms("cider apples harbour"), 6)
    f = b.fetch([h.passage for h in hits])
    lex = f.lexicon
    return (f.ids.tolist(), f.chunks, f.vectors.tolist(), f.sent_vectors.tolist(), f.sent_chars.tolist(),
            f.previous.tolist(), f.is_lead.tolist(), lex.ids.tolist(), lex.start.tolist(), lex.flags.tolist(),
            lex.distinct.tolist(), [lex.name_words[w] for w in lex.names], lex.name_start.tolist(),
            lex.same.tolist(), {d: t.tolist() for d, t in f.doc_terms.items()}, f.doc_text)


def test_a_format_3_collection_is_served_and_updated_in_place_in_its_format(server, tmp_path, monkeypatch):
    """Collections written before format 4 (zlib + JSON `data`) need no rebuild: they answer as a
    format 4 one does, and an update in place adds rows in format 3 (older code can still read them)."""
    import qa.backends.milvus.writer as writer
    from qa.backends.milvus.schema import PACKED

    docs = tmp_path / "docs"
    docs.mkdir()
    new = fill(MilvusBackend(server, name=name_for(tmp_path / "new")), docs)
    monkeypatch.setattr(writer, "FORMAT", 3)  # as the code before format 4 wrote
    old = fill(MilvusBackend(server, name=name_for(tmp_path / "old")), docs)
    monkeypatch.undo()
    reader = MilvusBackend(server, name=name_for(tmp_path / "old"))
    assert (reader._meta["format"], new._meta["format"]) == (3, 4) and not reader.problem
    assert _fetched(reader) == _fetched(new)

    def formats(b):
        return {r["data"].startswith(PACKED) for r in b._scan(b.collection, b._visible(), ["data"])}

    assert formats(old) == {False} and formats(new) == {True}
    w = reader.writer(SETTINGS)
    w.upsert(batch_of(docs, "zeppelin.txt", "Zeppelin lands\n\nA zeppelin landed at the harbour of Velmora."))
    updated = w.commit()
    assert (updated.collection, updated.version) == (reader.collection, reader.version + 1)
    assert updated._meta["format"] == 3 and formats(updated) == {False}
    hits = updated.search_lexical(terms("zeppelin"), 3)
    assert [c.doc_id for c in updated.fetch([h.passage for h in hits]).chunks][:1] == ["zeppelin.txt"]


def test_a_reader_keeps_its_version_while_an_update_is_written(server, tmp_path):
    """A backend on version v answers exactly as before (documents, statistics, searches with their
    scores, fetched passages) during and after a commit that adds, replaces and removes documents
    in place; the new version serves the new state."""
    import threading

    docs = tmp_path / "docs"
    docs.mkdir()
    old = fill(MilvusBackend(server, name=name_for(tmp_path)), docs)

    def look(b):
        dense = b.search_dense(embed("harbour apple library"), 6)
        lexical = b.search_lexical(terms("cider apples harbour library"), 6)
        return (sorted(b.documents()), b.stats().passages, b.stats().doc_freq("harbour"), dense, lexical,
                [(c.doc_id, c.start, c.end) for c in b.fetch([h.passage for h in dense + lexical]).chunks])

    before = look(old)
    errors, seen, done = [], [], threading.Event()

    def read():
        try:
            while not done.is_set():
                seen.append(look(old))
        except Exception as exc:  # reported below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        writer = old.writer(SETTINGS)
        writer.upsert(batch_of(docs, "zeppelin.txt", "Zeppelin lands\n\nA zeppelin landed at the harbour of "
                                                     "Velmora, near the library."))
        writer.upsert(batch_of(docs, "library.txt", "Library closes\n\nThe Brackwater library closed."))
        writer.delete("orchard.txt")
        new = writer.commit()
    finally:
        done.set()
        reader.join(60)
    assert not errors and seen and all(s == before for s in seen)
    assert look(old) == before
    assert new.collection == old.collection and new.version == old.version + 1
    assert sorted(new.documents()) == ["harbour.txt", "library.txt", "zeppelin.txt"]
    assert new.search_lexical(terms("cider"), 5) == [] and old.search_lexical(terms("cider"), 5)
    assert new.stats().doc_freq("zeppelin") == 1 and old.stats().doc_freq("zeppelin") is None
    assert not old.is_current() and new.is_current()


def test_retired_rows_are_deleted_after_the_grace_period(server, tmp_path):
    """With no grace period, the rows of a document replaced by one commit are deleted by the next,
    and the version list forgets them once they are gone."""
    from pymilvus import MilvusClient

    docs = tmp_path / "docs"
    docs.mkdir()
    b1 = fill(MilvusBackend(server, name=name_for(tmp_path), grace=0.0), docs)
    b1.documents()
    old_num = b1._num["library.txt"]
    harvest = terms("harvest")[0]
    harvest_df = b1.stats().doc_freq(harvest)
    w = b1.writer(SETTINGS)
    w.upsert(batch_of(docs, "library.txt", "Library closes\n\nThe Brackwater library closed."))
    b2 = w.commit()
    raw = MilvusClient(server)
    assert raw.query(b2.collection, filter=f"doc == {old_num}", output_fields=["pid"])  # kept for readers of v1
    assert old_num in b2.hidden
    w = b2.writer(SETTINGS)
    w.delete("orchard.txt")
    b3 = w.commit()
    assert raw.query(b3.collection, filter=f"doc == {old_num}", output_fields=["pid"]) == []
    assert raw.query(b3.collection + "_docs", filter=f"doc == {old_num}", output_fields=["doc"]) == []
    w = b3.writer(SETTINGS)
    w.upsert(batch_of(docs, "orchard.txt"))
    b4 = w.commit()
    assert old_num not in b4.hidden and sorted(b4.documents()) == sorted(ARTICLES)
    assert "library closed" in " ".join(c.text for c in b4.passages_of("library.txt").chunks)
    # A term's statistics rows: the one of version 1 went when version 3 superseded it and no reader
    # could be on version 1 or 2 any more; 3's goes at the next commit that touches the term.
    rows = raw.query(b4.collection + "_terms", filter=f"term == {quote(harvest)}", output_fields=["ver", "df"])
    assert harvest_df and sorted((r["ver"], r["df"]) for r in rows) == [(b3.version, 0), (b4.version, harvest_df)]
    assert b4.stats().doc_freq(harvest) == harvest_df and b3.stats().doc_freq(harvest) is None
    raw.close()


class _FailingFlush:
    """A client whose flush fails (as a server that goes away mid-commit), otherwise the real one."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        if name == "flush":
            def fail(*args, **kwargs):
                raise RuntimeError("connection reset")
            return fail
        return getattr(self._client, name)


def test_an_update_that_fails_before_publishing_leaves_nothing_behind(server, tmp_path):
    from pymilvus import MilvusClient

    docs = tmp_path / "docs"
    docs.mkdir()
    b1 = fill(MilvusBackend(server, name=name_for(tmp_path)), docs)
    writer = b1.writer(SETTINGS)
    writer.upsert(batch_of(docs, "zeppelin.txt", "Zeppelin lands\n\nA zeppelin landed at the harbour."))
    with _wrapped_client(b1, _FailingFlush), pytest.raises(IndexServerError, match="flush"):
        writer.commit()
    raw = MilvusClient(server)
    for collection, expr in ((b1.collection, f"added > {b1.version}"), (b1.collection + "_docs", f"added > {b1.version}"),
                             (b1.collection + "_terms", f"ver > {b1.version}")):
        assert raw.query(collection, filter=expr, output_fields=["added" if "ver" not in expr else "ver"]) == [], collection
    raw.close()
    again = MilvusBackend(server, name=name_for(tmp_path))
    assert (again.collection, again.version) == (b1.collection, b1.version) and sorted(again.documents()) == sorted(ARTICLES)
    assert again.stats().doc_freq("zeppelin") is None


def test_a_backend_with_no_index_yet_is_current(server, tmp_path):
    """Nothing to follow before the first commit (the live state is "no index", as served)."""
    empty = MilvusBackend(server, name=name_for(tmp_path))
    assert empty.collection is None and empty.is_current()
    empty.close()


def test_a_rebuild_or_other_settings_write_a_new_collection(server, tmp_path):
    """Updates go in place only with the same settings; a rebuild, or a writer with other settings,
    writes new collections and switches the alias, and the old backend keeps serving its own."""
    import dataclasses

    docs = tmp_path / "docs"
    docs.mkdir()
    first = fill(MilvusBackend(server, name=name_for(tmp_path)), docs)
    writer = first.writer(SETTINGS, fresh=True)
    writer.upsert(batch_of(docs, "library.txt"))
    rebuilt = writer.commit()
    assert rebuilt.collection != first.collection and sorted(rebuilt.documents()) == ["library.txt"]
    assert writer.sent["passages"] == rebuilt.stats().passages
    other = dataclasses.replace(SETTINGS, ann_threshold=SETTINGS.ann_threshold + 1)
    writer = rebuilt.writer(other)
    writer.upsert(batch_of(docs, "harbour.txt"))
    changed = writer.commit()
    assert changed.collection not in (first.collection, rebuilt.collection) and changed.settings == other
    assert sorted(changed.documents()) == ["harbour.txt", "library.txt"] and changed.is_current()
    assert sorted(first.documents()) == sorted(ARTICLES) and first.search_lexical(terms("cider"), 3)


def test_a_writer_on_a_replaced_version_is_refused_and_harms_nothing(server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    old = fill(MilvusBackend(server, name=name_for(tmp_path)), docs)
    writer = old.writer(SETTINGS)
    writer.delete("library.txt")
    writer.upsert(batch_of(docs, "ferry.txt", "Ferry sails\n\nThe new ferry sailed to Brackwater."))
    live = writer.commit()
    ferry_df = live.stats().doc_freq("ferri")
    stale = old.writer(SETTINGS)  # e.g. a process that did not follow the live version
    stale.upsert(batch_of(docs, "zeppelin.txt", "Zeppelin lands\n\nA zeppelin landed at the harbour."))
    with pytest.raises(IndexServerError, match="meanwhile"):
        stale.commit()
    again = MilvusBackend(server, name=name_for(tmp_path))
    assert (again.collection, again.version) == (live.collection, live.version)
    assert sorted(again.documents()) == ["ferry.txt", "harbour.txt", "orchard.txt"]
    assert again.stats().doc_freq("zeppelin") is None and again.stats().doc_freq("ferri") == ferry_df > 1
    assert again.stats().passages == live.stats().passages == len(again._scan(again.collection, again._visible(), ["pid"]))
    assert again.search_lexical(terms("ferry"), 3)
