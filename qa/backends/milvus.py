"""The Milvus backend: passages and everything the engine reads about them, kept in a Milvus server.

App processes hold no index state of their own: passage text, offsets, sentence spans, speakers,
vectors, sentence vectors, the lexicon arrays, document records with their content hashes and the
term statistics all live in Milvus. What a process keeps are caches of an immutable version.

Layout. A version is three collections sharing one name stem `{name}__{tag}`:
    {stem}          passages: pid (the backend id), doc number, the doc's first/last pid, the
                    analysed text with a BM25 Function into a sparse field, the normalised text
                    (exact phrases), the passage vector (searched), and packed blobs (chunk + lexicon
                    rows; the passage vector again and the sentence vectors, as read back; on a
                    document's first passage also the document's text and terms, so one query
                    fetches both)
    {stem}_docs     one row per document (its DocInfo as JSON) and a meta row (doc = -1: settings,
                    counts, version)
    {stem}_terms    the vocabulary: term -> (term id, document frequency)
The alias `{name}` names the live passages collection. A commit writes a complete new version and
then switches the alias, so readers never see half an index; a backend resolves the alias once
and serves that version for its whole life (as LocalBackend serves one folder version); `QA`
moves a process to the live version between questions when `is_current()` says so. A replaced
version is dropped GRACE_SECONDS after it was replaced, once no process can still be on it.

Filters never paste user text: documents become integer doc numbers (the document table is cached
per version, and `Filter.allows` decides, as in the local backend); exact phrases enter a LIKE
pattern only through `quote` (Milvus Lite 3.2 rejects `filter_params` templating).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .. import lexicon as lexicon_mod
from ..errors import DocumentsError, QAError
from ..lexicon import Lexicon
from ..textutil import normalise, terms as analyse
from ..types import Chunk, DocInfo, Settings
from .base import EVERYTHING, Fetched, Filter, Hit, PassageBatch, PendingChanges

log = logging.getLogger("qa")

FORMAT = 2  # 2: the passage vector leads the packed sentence vectors
VARCHAR_MAX = 65_535          # Milvus' portable VARCHAR limit (bytes)
INSERT_BATCH = 256
CONNECT_TIMEOUT = 5.0         # seconds: a server that is down is reported quickly
CALL_TIMEOUT = 60.0
META = -1                     # the doc number of the meta row in {stem}_docs
_ANALYZER = {"tokenizer": "standard", "filter": ["lowercase"]}
# bm25s' defaults ("lucene"), so the lexical ranking follows the local backend's.
_BM25 = {"bm25_k1": 1.5, "bm25_b": 0.75}
_MEMO_LIMIT = 200_000
_DOC_BLOBS = 2_000  # documents whose text and terms a process keeps between questions
# How old an answer to "which version is live?" may be when a question asks (the check itself runs
# beside each question's dense search, so following another process's commit costs no round trip).
FOLLOW_SECONDS = 1.0
# A version replaced this long ago is dropped: a process still on it has followed the alias by then.
GRACE_SECONDS = 300.0


class IndexServerError(QAError):
    """The index server cannot be reached or refused a call."""


# One connection per URI in a process, shared by the backends of its successive versions (a
# process that follows many updates would otherwise keep a connection per version), with a count
# of the backends using it; and one small pool for the calls a question makes side by side.
_CLIENTS: dict[str, list] = {}
_CLIENTS_LOCK = threading.Lock()
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="milvus")


def cache_dir(location) -> Path:
    """A local folder for what a process derives for a Milvus index (the exported query model):
    under $QA_CACHE or ~/.cache/qa, keyed by the URI."""
    base = Path(os.environ.get("QA_CACHE") or Path.home() / ".cache" / "qa")
    where = str(location)
    if not where.startswith(("http://", "https://")):  # a Milvus Lite file: one key however it is spelt
        where = str(Path(where).resolve())
    key = hashlib.sha1(where.encode("utf-8")).hexdigest()[:16]
    return base / f"milvus-{key}"


# -- expressions ----------------------------------------------------------------------------------
def quote(value: str) -> str:
    """A Milvus string literal holding exactly `value`: the only way text enters an expression."""
    if not isinstance(value, str):
        raise TypeError("quote() takes text")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def like_contains(value: str) -> str:
    """A LIKE pattern literal matching text that contains `value`. % and _ are escaped; Milvus'
    LIKE has no escape for a backslash, so one matches any single character there."""
    pattern = "".join("_" if ch == "\\" else "\\" + ch if ch in "%_" else ch for ch in value)
    return quote("%" + pattern + "%")


def _ints(name: str, values) -> str:
    return f"{name} in [{', '.join(str(int(v)) for v in values)}]"


# -- packing ------------------------------------------------------------------------------------
def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")


def _unb64(text: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def _pack(obj) -> str:
    return base64.b64encode(zlib.compress(json.dumps(obj, ensure_ascii=False).encode("utf-8"), 6)).decode("ascii")


def _unpack(text: str):
    return json.loads(zlib.decompress(base64.b64decode(text)).decode("utf-8"))


def _pack_vectors(vectors: np.ndarray) -> str:
    """Sentence vectors as text: float32, or float16 when a long passage's would not fit."""
    text = "f4:" + _b64(np.asarray(vectors, np.float32))
    if len(text) > VARCHAR_MAX:
        text = "f2:" + _b64(np.asarray(vectors, np.float16))
    if len(text) > VARCHAR_MAX:
        raise QAError(f"a passage has too many sentences ({len(vectors)}) to store in Milvus")
    return text


def _unpack_vectors(text: str, dim: int) -> np.ndarray:
    kind, data = text[:3], text[3:]
    arr = _unb64(data, np.float16 if kind == "f2:" else np.float32).astype(np.float32)
    return arr.reshape(-1, dim)


def _doc_info(record: dict) -> DocInfo:
    return DocInfo(**record)


class _Stats:
    """Collection statistics of one version, read from {stem}_terms as questions need them."""

    def __init__(self, backend: "MilvusBackend", passages: int, vocab_size: int):
        self._backend, self.passages, self.vocab_size = backend, passages, vocab_size

    def term_id(self, term: str) -> int | None:
        return self._backend._term(term)[0]

    def doc_freq(self, term: str) -> int | None:
        return self._backend._term(term)[1]


class MilvusBackend:
    """Passages in a Milvus server (or an embedded Milvus Lite file), one version per backend.

    Args:
        uri: as pymilvus spells it: http://host:port, or a local path ending in .db.
        name: the alias naming the live version (several indexes can share a server).
        collection: serve this version's passages collection instead of resolving the alias.
        load: resolve the live version now (False: start empty, e.g. for a rebuild).
    """

    def __init__(self, uri: str, name: str = "qa", collection: str | None = None, load: bool = True):
        self.uri, self.name = str(uri), name
        self.problem = ""
        self.settings: Settings | None = None
        self.collection: str | None = None
        self.version = 0
        self._meta: dict = {}
        self._docs: dict[str, DocInfo] | None = None
        self._num: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._where: dict[int, tuple[int, int, int]] = {}   # pid -> (doc, lo, hi), learnt from calls
        self._terms: dict[str, tuple[int | None, int | None]] = {}
        self._doc_blobs: dict[int, tuple[str, np.ndarray]] = {}
        self._pool = _POOL
        self._seen: tuple[float, str | None] | None = None  # (when, live collection) of the last check
        self._stale = False  # set when a writer of this backend committed
        self.client = self._connect()
        # What the alias named when this backend opened (even if unusable): a commit switches the
        # alias only from there, so two writers cannot both think they wrote the next version.
        self.opened_from = collection if collection is not None else self._live()
        if self.opened_from is not None and (load or collection is not None):
            self._bind(self.opened_from)

    # -- connection -------------------------------------------------------------------------------
    def _connect(self):
        with _CLIENTS_LOCK:
            shared = _CLIENTS.get(self.uri)
            if shared is None:
                shared = _CLIENTS[self.uri] = [_new_client(self.uri), 0]
            shared[1] += 1
            self._closed = False
            return shared[0]

    def _rpc(self, method: str, *args, **kwargs):
        """One call to the server; any failure becomes one clear IndexServerError."""
        kwargs.setdefault("timeout", CALL_TIMEOUT)
        for attempt in (1, 2):
            try:
                return getattr(self.client, method)(*args, **kwargs)
            except QAError:
                raise
            except Exception as exc:
                # A restarted Milvus Lite server holds its collections released: load and retry once.
                if attempt == 1 and args and "released" in _short(exc):
                    self._load(args[0])
                    continue
                raise IndexServerError(f"the index server at {self.uri} failed ({method}): {_short(exc)}") from None

    def _load(self, collection: str) -> None:
        try:
            self.client.load_collection(collection, timeout=CALL_TIMEOUT)
        except Exception as exc:
            raise IndexServerError(f"the index server at {self.uri} cannot load {collection}: {_short(exc)}") from None

    def _live(self) -> str | None:
        """The passages collection the alias names now (None: no index yet); one call."""
        try:
            live = self._rpc("describe_alias", self.name)["collection_name"]
        except IndexServerError as exc:
            if "does not exist" not in str(exc):
                raise
            live = None
        self._seen = (time.monotonic(), live)
        return live

    def _bind(self, collection: str) -> None:
        try:
            rows = self._rpc("query", collection + "_docs", filter=f"doc == {META}", output_fields=["info"])
        except IndexServerError as exc:
            if "does not exist" not in str(exc):
                raise
            rows = []
        if not rows:
            self.problem = "the index on the server is incomplete"
            log.warning("index %s at %s has no meta row: it is rebuilt", collection, self.uri)
            return
        meta = json.loads(rows[0]["info"])
        if meta.get("format") != FORMAT:
            self.problem = (f"index was written in format {meta.get('format')} by another version of qa; "
                            f"this one reads format {FORMAT}")
            log.warning("index %s at %s is rebuilt: %s", collection, self.uri, self.problem)
            return
        try:
            settings = Settings(**meta["settings"])
        except (TypeError, ValueError) as exc:  # settings of another version of qa
            self.problem = f"index settings are not this version's: {exc}"
            log.warning("index %s at %s is rebuilt: %s", collection, self.uri, self.problem)
            return
        self.collection, self._meta, self.version, self.settings = collection, meta, int(meta["version"]), settings

    # -- versions ------------------------------------------------------------------------------------
    def is_current(self) -> bool:
        """Is this version still the live one? Answered from the check that ran beside the last
        dense search when that is under FOLLOW_SECONDS old, else asked now (one call)."""
        if self._stale:
            return False
        seen = self._seen
        if seen is None or time.monotonic() - seen[0] > FOLLOW_SECONDS:
            return self._live() == self.collection
        return seen[1] == self.collection

    def _check_live(self) -> None:
        try:
            self._live()
        except QAError as exc:  # the question itself reports a server that is down
            log.debug("alias check failed: %s", exc)

    def reopen(self) -> "MilvusBackend":
        return MilvusBackend(self.uri, self.name)

    @contextmanager
    def lock(self):
        """Serialise writers on this machine (a file lock keyed by the URI and name); a writer on
        another machine is caught at commit, which refuses to switch an alias that moved."""
        # In the machine's temporary folder, not the per-user cache: every process here shares it.
        key = hashlib.sha1(f"{cache_dir(self.uri).name}/{self.name}".encode("utf-8")).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / "qa-milvus-locks" / f"{key}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(path, "w")
        except OSError as exc:
            raise QAError(f"cannot create the index lock {str(path)!r}: {exc.strerror or exc}") from None
        with f:
            fcntl.flock(f, fcntl.LOCK_EX)
            self._seen = None  # under the lock, is_current() asks the server
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release this backend's share of the connection (closed when no backend uses it)."""
        with _CLIENTS_LOCK:
            shared = _CLIENTS.get(self.uri)
            if self._closed or shared is None:
                return
            self._closed = True
            shared[1] -= 1
            if shared[1] > 0:
                return
            del _CLIENTS[self.uri]
        try:
            shared[0].close()
        except Exception:  # closing a connection to a dead server is not an error worth raising
            pass

    # -- documents and statistics ----------------------------------------------------------------------
    def documents(self) -> dict[str, DocInfo]:
        self._load_documents()
        return dict(self._docs)

    def _load_documents(self) -> None:
        if self._docs is not None:
            return
        docs, num = {}, {}
        if self.collection is not None:
            for row in self._scan(self.collection + "_docs", "doc >= 0", ["doc", "info"]):
                info = _doc_info(json.loads(row["info"]))
                docs[info.doc_id], num[info.doc_id] = info, int(row["doc"])
        ordered = dict(sorted(docs.items(), key=lambda kv: num[kv[0]]))
        self._num, self._ids = num, {v: k for k, v in num.items()}
        self._docs = ordered

    def _scan(self, collection: str, expr: str, fields: list[str]) -> list[dict]:
        """Every row matching expr (several calls: the server caps one query's rows)."""
        out, last, page = [], None, 4096
        key = "doc" if collection.endswith("_docs") else "pid"
        while True:
            where = expr if last is None else f"({expr}) and {key} > {last}"
            rows = self._rpc("query", collection, filter=where, output_fields=list(dict.fromkeys([key] + fields)),
                             limit=page)
            rows = sorted(rows, key=lambda r: r[key])
            out += rows
            if len(rows) < page:
                return out
            last = rows[-1][key]

    def stats(self) -> _Stats:
        return _Stats(self, int(self._meta.get("passages", 0)), int(self._meta.get("vocab", 0)))

    def __len__(self) -> int:
        return int(self._meta.get("passages", 0))

    def _term(self, term: str) -> tuple[int | None, int | None]:
        known = self._terms.get(term)
        return known if known is not None else self._learn_terms([term]).get(term, (None, None))

    def _learn_terms(self, wanted: Sequence[str]) -> dict[str, tuple[int | None, int | None]]:
        """(term id, document frequency) of terms not yet known ((None, None): in no passage)."""
        wanted = [t for t in dict.fromkeys(wanted) if t not in self._terms]
        if not wanted or self.collection is None:
            return {}
        rows = self._rpc("query", self.collection + "_terms",
                         filter=f"term in [{', '.join(quote(t) for t in wanted)}]", output_fields=["term", "tid", "df"])
        if len(self._terms) > _MEMO_LIMIT:
            self._terms.clear()
        found = {r["term"]: (int(r["tid"]), int(r["df"])) for r in rows}
        learnt = {t: found.get(t, (None, None)) for t in wanted}
        self._terms.update(learnt)
        return learnt

    # -- search -------------------------------------------------------------------------------------------
    def _expr(self, where: Filter) -> str | None:
        """The Milvus expression of a filter ("" lets everything through; None lets nothing)."""
        if where.is_empty:
            return ""
        parts = []
        if (where.sources is not None or where.since is not None or where.until is not None
                or where.outlets is not None or where.authors is not None):
            self._load_documents()
            allowed = [self._num[d] for d, info in self._docs.items() if where.allows(info)]
            if not allowed:
                return None
            if len(allowed) < len(self._docs):
                left_out = sorted(set(self._num.values()) - set(allowed))
                parts.append(_ints("doc", allowed) if len(allowed) <= len(left_out)
                             else f"not ({_ints('doc', left_out)})")
        parts += [f"flat like {like_contains(p)}" for p in where.phrases]
        return " and ".join(f"({p})" for p in parts)

    def _search(self, data, field: str, k: int, where: Filter, metric: str) -> list[tuple[int, float]]:
        expr = self._expr(where)
        if self.collection is None or expr is None or k <= 0:
            return []
        params = {"ef": max(4 * int(k), 128)} if metric == "IP" and not self._meta.get("exact", True) else {}
        res = self._rpc("search", self.collection, data=[data], anns_field=field, limit=int(k), filter=expr,
                        output_fields=["doc", "lo", "hi"], search_params={"metric_type": metric, "params": params})
        out = []
        for hit in res[0]:
            e = hit["entity"]
            pid = int(hit.get("pid", hit.get("id")))
            self._remember(pid, int(e["doc"]), int(e["lo"]), int(e["hi"]))
            out.append((pid, float(hit["distance"])))
        return out

    def search_dense(self, vector: np.ndarray, k: int, where: Filter = EVERYTHING) -> list[Hit]:
        vec = np.asarray(vector, np.float32).ravel().tolist()
        seen = self._seen
        if seen is None or time.monotonic() - seen[0] > FOLLOW_SECONDS / 2:
            self._pool.submit(self._check_live)  # beside the search: is_current() reads the answer
        return [Hit(p, s) for p, s in self._search(vec, "vec", k, where, "IP")]

    def search_lexical(self, terms: Sequence[str], k: int, where: Filter = EVERYTHING) -> list[Hit]:
        terms = [t for t in terms if t]
        if not terms or self.collection is None:
            return []
        # The question's term statistics (features read them) come in parallel with the search.
        stats = self._pool.submit(self._learn_terms, terms)
        try:
            hits = self._search(" ".join(terms), "sparse", k, where, "BM25")
        finally:
            stats.result()
        # Milvus Lite reports BM25 as a negated distance, a server as the score: either way |d|.
        return [Hit(p, abs(s)) for p, s in hits if abs(s) > 0]

    def _remember(self, pid: int, doc: int, lo: int, hi: int) -> None:
        if len(self._where) > _MEMO_LIMIT:
            self._where.clear()
        self._where[pid] = (doc, lo, hi)

    def _locate(self, ids: Iterable[int]) -> dict[int, tuple[int, int, int]]:
        """(doc, lo, hi) of each passage: remembered from a search result, else asked (one query)."""
        ids = [int(i) for i in ids]
        found = {i: self._where.get(i) for i in ids}
        unknown = sorted(i for i, w in found.items() if w is None)
        if unknown and self.collection is not None:
            for r in self._rpc("query", self.collection, filter=_ints("pid", unknown),
                               output_fields=["pid", "doc", "lo", "hi"]):
                found[int(r["pid"])] = (int(r["doc"]), int(r["lo"]), int(r["hi"]))
                self._remember(int(r["pid"]), *found[int(r["pid"])])
        missing = [i for i, w in found.items() if w is None]
        if missing:
            raise IndexServerError(f"no passage {missing[0]} in the index version {self.collection}")
        return found

    def neighbours(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        return self._neighbours([int(i) for i in ids])[:2]

    def _neighbours(self, ids: list[int]):
        """(previous, next, locations of ids and their neighbours)."""
        where = self._locate(ids)
        prev, nxt = [], []
        for i in ids:
            doc, lo, hi = where[i]
            prev.append(i - 1 if i > lo else -1)
            nxt.append(i + 1 if i + 1 < hi else -1)
            for j in (prev[-1], nxt[-1]):  # of the same document: no call needed to locate them
                if j >= 0:
                    self._remember(j, doc, lo, hi)
                    where[j] = (doc, lo, hi)
        return np.array(prev, np.int64), np.array(nxt, np.int64), where

    # -- fetching -----------------------------------------------------------------------------------------
    def fetch(self, ids: Iterable[int]) -> Fetched:
        """The passages, the one before each, and their documents' text and terms: one query when
        the passages came from a search of this backend."""
        self._load_documents()
        asked = [int(i) for i in ids]
        prev, _, located = self._neighbours(asked)
        seen = set(asked)
        extra = [p for p in dict.fromkeys(prev.tolist()) if p >= 0 and p not in seen]
        all_ids = asked + extra
        local = {g: i for i, g in enumerate(all_ids)}
        previous = np.array([local.get(p, -1) for p in prev.tolist()] + [-1] * len(extra), np.int64)
        where = [located[i] for i in all_ids]
        if len(self._doc_blobs) > _DOC_BLOBS:
            self._doc_blobs.clear()
        # This question's own copy: another thread may clear the shared one meanwhile.
        blobs = {doc: self._doc_blobs.get(doc) for doc, _, _ in where}
        leads = {lo for doc, lo, hi in where if blobs[doc] is None}
        rows = {}
        if all_ids or leads:
            for r in self._rpc("query", self.collection, filter=_ints("pid", sorted(set(all_ids) | leads)),
                               output_fields=["pid", "doc", "data", "svec", "dblob"]):
                rows[int(r["pid"])] = r
        for pid in leads:
            r = rows[pid]
            blob = _unpack(r["dblob"])
            blobs[int(r["doc"])] = self._doc_blobs[int(r["doc"])] = (
                blob["text"], _unb64(blob["terms"], np.int32).astype(np.int64))
        return self._assemble(all_ids, rows, where, previous, blobs)

    def _assemble(self, all_ids: list[int], rows: dict, where: list, previous: np.ndarray, blobs: dict) -> Fetched:
        dim = int(self._meta.get("dim", 0))
        chunks, vecs, svecs = [], [], []
        term_ids, term_start, flags, distinct = [], [0], [], []
        names, name_start, name_words = [], [0], {}
        same, same_start = [], [0]
        for pid in all_ids:
            r = rows[pid]
            d = _unpack(r["data"])
            doc_id, start, end, text, sentences, speakers = d["c"]
            chunks.append(Chunk(doc_id, start, end, text, tuple(tuple(s) for s in sentences), tuple(speakers)))
            both = _unpack_vectors(r["svec"], dim)
            vecs.append(both[0])
            svecs.append(both[1:])
            ids = _unb64(d["t"], np.int32)
            pos = 0
            for n in d["ts"]:
                term_ids.append(ids[pos:pos + n])
                pos += n
                term_start.append(term_start[-1] + n)
            flags += d["f"]
            distinct += d["d"]
            for sentence_names in d["n"]:
                names += [name_words.setdefault(w, len(name_words)) for w in sentence_names]
                name_start.append(len(names))
            same += d["s"]
            same_start.append(len(same))
        n = len(all_ids)
        starts = np.zeros(n + 1, np.int64)
        np.cumsum([len(c.sentences) for c in chunks], out=starts[1:])
        lex = Lexicon(np.concatenate(term_ids).astype(np.int32) if term_ids else np.zeros(0, np.int32),
                      np.array(term_start, np.int64), np.array(flags, np.uint8), np.array(distinct, np.int32),
                      np.array(names, np.int32), np.array(name_start, np.int64), tuple(name_words),
                      np.array(same, np.int64), np.array(same_start, np.int64))
        doc_nums = {doc for doc, _, _ in where}
        doc_ids = {self._ids[d] for d in doc_nums}
        sent_chars = np.array([e - s for c in chunks for s, e in c.sentences], np.int64)
        return Fetched(
            ids=np.array(all_ids, np.int64), chunks=tuple(chunks), docs={d: self._docs[d] for d in doc_ids},
            vectors=np.array(vecs, np.float32).reshape(n, dim),
            sent_vectors=(np.concatenate(svecs) if svecs else np.zeros((0, dim), np.float32)),
            sent_start=starts, sent_chars=sent_chars, lexicon=lex, stats=self.stats(), previous=previous,
            is_lead=np.array([pid == lo for pid, (_, lo, _) in zip(all_ids, where)], bool),
            doc_terms={self._ids[d]: blobs[d][1] for d in doc_nums},
            doc_text={self._ids[d]: blobs[d][0] for d in doc_nums},
            # Per question: its lexicon numbers names locally, so memos of another question do not apply.
            cache={})

    def passages_of(self, doc_id: str) -> PassageBatch:
        self._load_documents()
        if doc_id not in self._num:
            raise DocumentsError(f"no document {doc_id!r} in the index")
        rows = self._rpc("query", self.collection, filter=f"doc == {self._num[doc_id]}",
                         output_fields=["pid", "data", "svec"])
        return self._batch(self._docs[doc_id], sorted(rows, key=lambda r: r["pid"]))

    def _batch(self, info: DocInfo, rows: list[dict]) -> PassageBatch:
        dim = int(self._meta["dim"])
        chunks = []
        for r in rows:
            doc_id, start, end, text, sentences, speakers = _unpack(r["data"])["c"]
            chunks.append(Chunk(doc_id, start, end, text, tuple(tuple(s) for s in sentences), tuple(speakers)))
        both = [_unpack_vectors(r["svec"], dim) for r in rows]
        vectors = np.array([b[0] for b in both], np.float32).reshape(-1, dim)
        sents = np.concatenate([b[1:] for b in both]) if rows else np.zeros((0, dim), np.float32)
        return PassageBatch(info, tuple(chunks), vectors, sents)

    def _all_batches(self, doc_ids: Iterable[str]):
        """PassageBatch of each of these stored documents, reading the passages in pages."""
        self._load_documents()
        wanted = {self._num[d] for d in doc_ids if d in self._num}
        if not wanted:
            return
        rows_by_doc: dict[int, list] = {}
        for r in self._scan(self.collection, "pid >= 0", ["pid", "doc", "data", "svec"]):
            if int(r["doc"]) in wanted:
                rows_by_doc.setdefault(int(r["doc"]), []).append(r)
        for num in sorted(rows_by_doc):
            yield self._batch(self._docs[self._ids[num]], rows_by_doc[num])

    # -- writing ---------------------------------------------------------------------------------------
    def writer(self, settings: Settings, fresh: bool = False) -> "MilvusWriter":
        return MilvusWriter(self, settings, fresh)


class MilvusWriter(PendingChanges):
    """Changes to a MilvusBackend, written as a new version (three collections) at commit."""

    def __init__(self, backend: MilvusBackend, settings: Settings, fresh: bool):
        super().__init__(backend.documents() if not fresh else ())
        self.backend, self.settings, self.fresh = backend, settings, fresh

    def commit(self) -> MilvusBackend:
        """Write the new version, then switch the alias to it; returns a backend serving it (this
        writer's backend keeps serving its version to questions under way)."""
        b = self.backend
        batches = list(b._all_batches(self._kept)) + list(self._new.values())
        batches = [x for x in batches if x.chunks]
        if not batches:
            raise DocumentsError("no passages to index: the documents have no article text")
        version = max(b.version, _newest_version(b)) + 1
        stem = f"{b.name}__{version:08d}_{int(time.time()):010d}_{uuid.uuid4().hex[:6]}"
        try:
            _write_version(b, stem, version, self.settings, batches)
            live = b._live()
            if live != b.opened_from:
                raise IndexServerError(f"another process changed the index at {b.uri} meanwhile; try again")
            if live is None:
                b._rpc("create_alias", stem, b.name)
            else:
                b._rpc("alter_alias", stem, b.name)
        except BaseException:
            _drop_version(b, stem)
            raise
        b._stale = True
        _drop_replaced(b, live=version)
        return MilvusBackend(b.uri, b.name, collection=stem)


def _newest_version(b: MilvusBackend) -> int:
    return max([v for _, v, _ in _versions(b)], default=0)


def _versions(b: MilvusBackend) -> list[tuple[str, int, int]]:
    """(stem, version, created: unix seconds) of each version's passages collection on the server."""
    out = []
    for c in b._rpc("list_collections"):
        parts = c[len(b.name) + 2:].split("_") if c.startswith(b.name + "__") else []
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() and len(parts[2]) == 6:
            out.append((c, int(parts[0]), int(parts[1])))
    return out


def _drop_version(b: MilvusBackend, stem: str) -> None:
    for suffix in ("", "_docs", "_terms"):
        try:
            if b.client.has_collection(stem + suffix):
                b.client.drop_collection(stem + suffix)
        except Exception as exc:  # leftovers are dropped by a later commit
            log.debug("could not drop %s: %s", stem + suffix, exc)


def _drop_replaced(b: MilvusBackend, live: int) -> None:
    """Drop versions that a newer one replaced over GRACE_SECONDS ago (a process still serving
    one follows the alias within FOLLOW_SECONDS), and half-written ones of failed commits."""
    try:
        versions = _versions(b)
        now = time.time()
        for stem, v, _ in versions:
            replaced_at = min([c for _, w, c in versions if w > v], default=None)
            if v != live and replaced_at is not None and now - replaced_at > GRACE_SECONDS:
                _drop_version(b, stem)
    except QAError as exc:
        log.warning("old index versions at %s were not dropped: %s", b.uri, exc)


def _schemas(dim: int):
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    p = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    p.add_field("pid", DataType.INT64, is_primary=True)
    p.add_field("doc", DataType.INT64)
    p.add_field("lo", DataType.INT64)
    p.add_field("hi", DataType.INT64)
    p.add_field("lexical", DataType.VARCHAR, max_length=VARCHAR_MAX, enable_analyzer=True, analyzer_params=_ANALYZER)
    p.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    p.add_field("flat", DataType.VARCHAR, max_length=VARCHAR_MAX)
    p.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    p.add_field("data", DataType.VARCHAR, max_length=VARCHAR_MAX)
    p.add_field("svec", DataType.VARCHAR, max_length=VARCHAR_MAX)
    p.add_field("dblob", DataType.VARCHAR, max_length=VARCHAR_MAX)
    p.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["lexical"],
                            output_field_names=["sparse"]))
    d = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    d.add_field("doc", DataType.INT64, is_primary=True)
    d.add_field("info", DataType.VARCHAR, max_length=VARCHAR_MAX)
    d.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field in every collection
    t = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    t.add_field("term", DataType.VARCHAR, max_length=VARCHAR_MAX, is_primary=True)
    t.add_field("tid", DataType.INT64)
    t.add_field("df", DataType.INT64)
    t.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)
    return p, d, t


def _write_version(b: MilvusBackend, stem: str, version: int, settings: Settings, batches: list[PassageBatch]) -> None:
    """Create a version's three collections and fill them (the alias is switched by the caller)."""
    chunks = [c for x in batches for c in x.chunks]
    docs = {x.doc.doc_id: x.doc for x in batches}
    dim = int(batches[0].vectors.shape[1])
    indexed = [analyse(settings.indexed_text(c.text, docs[c.doc_id].title)) for c in chunks]
    vocab: dict[str, int] = {}
    df: dict[str, int] = {}
    for toks in indexed:
        for t in dict.fromkeys(toks):
            vocab.setdefault(t, len(vocab))
            df[t] = df.get(t, 0) + 1
    lex = lexicon_mod.build(chunks, vocab)
    exact = len(chunks) <= settings.ann_threshold
    p_schema, d_schema, t_schema = _schemas(dim)
    ip = b.client.prepare_index_params()
    ip.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=dict(_BM25))
    if exact:  # as the local backend: exact search up to ann_threshold passages, then a graph
        ip.add_index(field_name="vec", index_type="FLAT", metric_type="IP")
    else:
        ip.add_index(field_name="vec", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200})
    jobs = [(stem, p_schema, ip)]
    for suffix, schema in (("_docs", d_schema), ("_terms", t_schema)):
        small = b.client.prepare_index_params()
        small.add_index(field_name="dummy", index_type="FLAT", metric_type="L2")
        jobs.append((stem + suffix, schema, small))
    # Together: pymilvus waits for each new index by polling every half second.
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for done in [pool.submit(b._rpc, "create_collection", name, schema=schema, index_params=index,
                                 consistency_level="Strong") for name, schema, index in jobs]:
            done.result()

    nums = {d: i for i, d in enumerate(docs)}
    meta = {"format": FORMAT, "version": version, "settings": asdict(settings), "passages": len(chunks),
            "vocab": len(vocab), "dim": dim, "model": settings.model, "exact": exact}
    doc_rows = [{"doc": META, "info": json.dumps(meta), "dummy": [0.0, 0.0]}]
    doc_rows += [{"doc": nums[d], "info": json.dumps(asdict(info), ensure_ascii=False), "dummy": [0.0, 0.0]}
                 for d, info in docs.items()]
    _insert(b, stem + "_docs", doc_rows)
    _insert(b, stem + "_terms", ({"term": t, "tid": i, "df": df[t], "dummy": [0.0, 0.0]} for t, i in vocab.items()))
    _insert(b, stem, _passage_rows(batches, chunks, indexed, lex, nums))
    b._rpc("flush", stem)


def _passage_rows(batches: list[PassageBatch], chunks: list[Chunk], indexed: list[list[str]], lex: Lexicon,
                  nums: dict[str, int]):
    pid, sent = 0, 0
    for x in batches:
        lo, hi = pid, pid + len(x.chunks)
        s0 = 0
        title = x.doc.title
        for j, c in enumerate(x.chunks):
            n = len(c.sentences)
            rows = np.arange(sent, sent + n)
            t = lex.ids[int(lex.start[sent]):int(lex.start[sent + n])]
            data = {"c": [c.doc_id, c.start, c.end, c.text, [list(s) for s in c.sentences], list(c.speakers)],
                    "t": _b64(t.astype(np.int32)), "ts": np.diff(lex.start[sent:sent + n + 1]).tolist(),
                    "f": lex.flags[rows].tolist(), "d": lex.distinct[rows].tolist(),
                    "n": [[lex.name_words[k] for k in lex.names[int(lex.name_start[r]):int(lex.name_start[r + 1])]]
                          for r in rows.tolist()],
                    "s": lex.same[int(lex.same_start[pid]):int(lex.same_start[pid + 1])].tolist()}
            dblob = ""
            if j == 0:  # the document's text and terms ride on its first passage (fetched with it)
                text = "\n".join([title] + [k.text for k in x.chunks])
                d_terms = np.unique(lex.ids[int(lex.start[sent]):int(lex.start[sent + sum(len(k.sentences) for k in x.chunks)])])
                dblob = _pack({"text": text, "terms": _b64(d_terms.astype(np.int32))})
            row = {"pid": pid, "doc": nums[c.doc_id], "lo": lo, "hi": hi, "lexical": " ".join(indexed[pid]),
                   "flat": normalise(c.text), "vec": np.asarray(x.vectors[j], np.float32).tolist(),
                   # The passage vector again, first: read back from text it costs less than from
                   # the vector field (pymilvus hands those out as lists of Python floats).
                   "data": _pack(data), "svec": _pack_vectors(np.vstack([x.vectors[j:j + 1], x.sent_vectors[s0:s0 + n]])),
                   "dblob": dblob}
            for field in ("lexical", "flat", "data", "dblob"):
                if len(row[field].encode("utf-8")) > VARCHAR_MAX:
                    raise QAError(f"{c.doc_id}: a passage is too large to store in Milvus ({field})")
            yield row
            pid, sent, s0 = pid + 1, sent + n, s0 + n


def _insert(b: MilvusBackend, collection: str, rows) -> None:
    page = []
    for row in rows:
        page.append(row)
        if len(page) >= INSERT_BATCH:
            b._rpc("insert", collection, page)
            page = []
    if page:
        b._rpc("insert", collection, page)


def _new_client(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError:  # the optional extra is not installed
        raise IndexServerError("a Milvus index needs pymilvus: pip install 'qa[milvus]'") from None
    _quiet_pymilvus()
    try:
        return MilvusClient(uri, timeout=CONNECT_TIMEOUT)
    except Exception as exc:
        raise IndexServerError(f"cannot reach the index server at {uri}: {_short(exc)}") from None


def _quiet_pymilvus() -> None:
    """pymilvus logs every failed call (and each reconnection attempt) with a traceback, through
    handlers it configures on import; its failures reach the user as one IndexServerError line."""
    for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _short(exc: Exception) -> str:
    """One line about a pymilvus or gRPC failure."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:300]
