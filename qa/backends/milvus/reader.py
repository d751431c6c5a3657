"""Reading one version of a Milvus index: documents, statistics, searches, fetches."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Future, wait
from itertools import chain
from typing import Iterable, Sequence

import numpy as np

from ... import lexicon as lexicon_mod
from ...errors import DocumentsError, QAError
from ...lexicon import Lexicon
from ...types import DocInfo, Settings
from ..base import EVERYTHING, Fetched, Filter, Hit, PassageBatch, Searches
from . import connection
from .arena import Arena, Gathered
from .connection import CALL_TIMEOUT, IndexServerError, short
from .schema import (CHARS, DISTINCT, FLAGS, NAME_COUNT, READABLE, TERM_COUNT, NameNumbers, bm25_scores,
                     doc_info, ints, like_contains, passage_chunk, quote, stored_passage, term_counts, unb64, unpack,
                     unpack_vectors, visible)

log = logging.getLogger("qa")

_MEMO_LIMIT = 200_000
_DOC_BLOBS = 2_000  # documents whose text and terms a process keeps between questions
# Decoded passages a process keeps between questions (arena.py): about 16 KB each with their
# vectors in float32 (a passage of six sentences), so some 80 MB, and the arrays' room to grow
# (address space: pages not yet written are not mapped in).
_PASSAGES = 5_000
# How old an answer to "which version is live?" may be when a question asks (the check itself runs
# beside each question's dense search, so following another process's commit costs no round trip).
FOLLOW_SECONDS = 1.0
# Rows a version no longer shows (a replaced collection, a retired document's passages) are deleted
# this long after: a process still serving an older version has followed the live one by then.
GRACE_SECONDS = 300.0
# Milvus ranks BM25 with statistics of every row it holds; the lexical search takes this many times
# k candidates from it and ranks them by the served version's own statistics.
_OVERFETCH = 2


# The answer stage's memos (Fetched.cache) are keyed by what means the same in every question of a
# version (a backend id, a document id) or by the backend's own name numbering, which never changes
# a number it gave: one dict serves every question, as the local backend's does.
_SHARED_LIMIT = 50_000


class _Memos(dict):
    """Fetched.cache of every question: a plain dict (lookups at C speed) that answers "name ids"
    from the backend's NameNumbers, which every question's names are numbered by. (The engine would
    otherwise build that map from the question's name words, and a map built from one question's
    words would miss the next one's.)"""

    def __init__(self, names: NameNumbers):
        super().__init__()
        self._names = names

    def __missing__(self, key):
        if key == "name ids":
            return self._names.ids
        raise KeyError(key)


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
        name: the alias naming the live collection (several indexes can share a server).
        collection: serve this collection's newest version instead of resolving the alias.
        load: resolve the live version now (False: start empty, e.g. for a rebuild).
        grace: seconds before rows no version shows any more are deleted (see GRACE_SECONDS).
    """

    def __init__(self, uri: str, name: str = "qa", collection: str | None = None, load: bool = True,
                 grace: float = GRACE_SECONDS):
        self.uri, self.name, self.grace = str(uri), name, grace
        self.problem = ""
        self.settings: Settings | None = None
        self.collection: str | None = None
        self.version = 0
        self.hidden: tuple[int, ...] = ()   # retired documents whose rows are still stored
        self._meta: dict = {}
        self._docs: dict[str, DocInfo] | None = None
        self._num: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._where: dict[int, tuple[int, int, int]] = {}   # pid -> (doc, lo, hi), learnt from calls
        self._terms: dict[str, tuple[int | None, int | None]] = {}
        self._doc_blobs: dict[int, tuple[str, np.ndarray]] = {}
        self._passages = Arena(0, _PASSAGES)  # of the version's dimension once bound
        self._term_counts: dict[int, tuple] = {}  # pid -> its term_counts, for re-ranking BM25 candidates
        self._names = NameNumbers()  # of the name words in self._passages
        self._memos = _Memos(self._names)  # the answer stage's memos, kept across questions
        self._pool = connection.POOL
        self._seen: tuple[float, tuple | None] | None = None  # (when, live (collection, version)) of the last check
        self._check: Future | None = None  # the version check in flight, if any
        self._check_lock = threading.Lock()
        self._stale = False  # set when a writer of this backend committed
        self._closed = False
        self.client = connection.acquire(self.uri)
        # What was live when this backend opened (even if unusable): a commit publishes only over
        # that, so two writers cannot both think they wrote the next version.
        self.opened_from = self._live()
        target = collection if collection is not None else (self.opened_from[0] if self.opened_from else None)
        if target is not None and (load or collection is not None):
            self._bind(target)
            if self.collection is not None:
                self.opened_from = (self.collection, self.version)

    # -- connection -------------------------------------------------------------------------------
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
                if attempt == 1 and args and "released" in short(exc):
                    self._load(args[0])
                    continue
                raise IndexServerError(f"the index server at {self.uri} failed ({method}): {short(exc)}") from None

    def _load(self, collection: str) -> None:
        try:
            self.client.load_collection(collection, timeout=CALL_TIMEOUT)
        except Exception as exc:
            raise IndexServerError(f"the index server at {self.uri} cannot load {collection}: {short(exc)}") from None

    def _missing(self, exc: IndexServerError) -> bool:
        return "does not exist" in str(exc) or "not found" in str(exc)

    def _live(self) -> tuple[str, int] | None:
        """(collection the alias names, its published version) now; None: no index yet. Two calls."""
        try:
            collection = self._rpc("describe_alias", self.name)["collection_name"]
        except IndexServerError as exc:
            if "does not exist" not in str(exc):
                raise
            collection = None
        live = None
        if collection is not None:
            try:
                rows = self._rpc("query", collection + "_docs", filter="doc < 0", output_fields=["doc"])
            except IndexServerError as exc:
                if not self._missing(exc):
                    raise
                rows = []
            live = (collection, max((-int(r["doc"]) for r in rows), default=0))
        self._seen = (time.monotonic(), live)
        return live

    def _bind(self, collection: str) -> None:
        """Serve the newest version published in `collection`."""
        try:
            rows = self._rpc("query", collection + "_docs", filter="doc < 0", output_fields=["doc", "info"])
        except IndexServerError as exc:
            if not self._missing(exc):
                raise
            rows = []
        if not rows:
            self.problem = "the index on the server is incomplete"
            log.warning("index %s at %s has no meta row: it is rebuilt", collection, self.uri)
            return
        meta = json.loads(min(rows, key=lambda r: int(r["doc"]))["info"])
        if meta.get("format") not in READABLE:
            self.problem = (f"index was written in format {meta.get('format')} by another version of qa; "
                            f"this one reads formats {', '.join(map(str, READABLE))}")
            log.warning("index %s at %s is rebuilt: %s", collection, self.uri, self.problem)
            return
        try:
            settings = Settings(**meta["settings"])
        except (TypeError, ValueError) as exc:  # settings of another version of qa
            self.problem = f"index settings are not this version's: {exc}"
            log.warning("index %s at %s is rebuilt: %s", collection, self.uri, self.problem)
            return
        self.collection, self._meta, self.settings = collection, meta, settings
        self.version = int(meta["version"])
        self._passages = Arena(int(meta.get("dim", 0)), _PASSAGES)
        self.hidden = tuple(sorted(int(d) for d in meta.get("retired", {})))

    def _visible(self) -> str:
        return visible(self.version, self.hidden)

    # -- versions ------------------------------------------------------------------------------------
    def is_current(self, ask: bool = True) -> bool:
        """Is this version still the live one?

        Answered from the last check when that is under FOLLOW_SECONDS old, or from a check in
        flight (it runs beside the dense search, so waiting for it adds no round trip). Otherwise
        asked now when `ask`; when not, answered from the last check while a new one starts in the
        background: a question never waits on the server for it (`QA` looks again after answering,
        and answers again from a newer version the check found).
        """
        if self._stale:
            return False
        seen = self._seen
        if seen is None or time.monotonic() - seen[0] > FOLLOW_SECONDS:
            check = self._check
            if check is not None and not check.done():
                check.result()  # _check_live never raises; its calls are bounded by CALL_TIMEOUT
            elif ask or seen is None:
                self._live()
            else:
                self._start_check()
            seen = self._seen if self._seen is not None else seen
            if seen is None:  # the check in flight failed and nothing is known: ask (errors surface)
                self._live()
                seen = self._seen
        return seen[1] == ((self.collection, self.version) if self.collection is not None else None)

    def _start_check(self) -> None:
        """Ask which version is live, in the background, unless a check is already in flight."""
        with self._check_lock:
            if self._check is None or self._check.done():
                self._check = self._pool.submit(self._check_live)

    def _check_live(self) -> None:
        try:
            self._live()
        except QAError as exc:  # the question itself reports a server that is down
            log.debug("alias check failed: %s", exc)

    def reopen(self) -> "MilvusBackend":
        return MilvusBackend(self.uri, self.name, grace=self.grace)

    def lock(self):
        """Held while planning and writing changes (see connection.writers_lock)."""
        self._seen = None  # under the lock, is_current() asks the server
        return connection.writers_lock(self.uri, self.name)

    def close(self) -> None:
        """Release this backend's share of the connection (closed when no backend uses it)."""
        if not self._closed:
            self._closed = True
            connection.release(self.uri)

    # -- documents and statistics ----------------------------------------------------------------------
    def documents(self) -> dict[str, DocInfo]:
        self._load_documents()
        return dict(self._docs)

    def _load_documents(self) -> None:
        if self._docs is not None:
            return
        docs, num = {}, {}
        if self.collection is not None:
            for row in self._scan(self.collection + "_docs", f"doc >= 0 and {self._visible()}", ["doc", "info"]):
                info = doc_info(json.loads(row["info"]))
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
        rows = term_rows(self._rpc, self.collection, wanted, self.version)
        if len(self._terms) > _MEMO_LIMIT:
            self._terms.clear()
        learnt = {t: (rows[t] if t in rows and rows[t][1] > 0 else (None, None)) for t in wanted}
        self._terms.update(learnt)
        return learnt

    # -- search -------------------------------------------------------------------------------------------
    def _expr(self, where: Filter) -> str | None:
        """The Milvus expression of a filter within this version (None lets nothing through)."""
        parts = [self._visible()]
        if (where.sources is not None or where.since is not None or where.until is not None
                or where.outlets is not None or where.authors is not None):
            self._load_documents()
            allowed = [self._num[d] for d, info in self._docs.items() if where.allows(info)]
            if not allowed:
                return None
            if len(allowed) < len(self._docs):
                left_out = sorted(set(self._num.values()) - set(allowed))
                parts.append(ints("doc", allowed) if len(allowed) <= len(left_out)
                             else f"not ({ints('doc', left_out)})")
        parts += [f"flat like {like_contains(p)}" for p in where.phrases]
        return " and ".join(f"({p})" for p in parts)

    def _search(self, data, field: str, k: int, where: Filter, metric: str, fields=()) -> tuple[list, list, list]:
        """(pids, scores, pymilvus' hits) of a search, best first; the hits' passages located."""
        expr = self._expr(where)
        if self.collection is None or expr is None or k <= 0:
            return [], [], []
        params = {"ef": max(4 * int(k), 128)} if metric == "IP" and not self._meta.get("exact", True) else {}
        res = self._rpc("search", self.collection, data=[data], anns_field=field, limit=int(k), filter=expr,
                        output_fields=["doc", "lo", "hi", *fields],
                        search_params={"metric_type": metric, "params": params})
        hits = res[0]
        # pymilvus' hits hold their ids and scores as columns; a hit's own lookups are Python code,
        # so only the hits of passages not located before are read.
        if hasattr(hits, "ids") and hasattr(hits, "distances"):
            pids, scores = list(map(int, hits.ids)), list(map(float, hits.distances))
        else:
            pids, scores = [int(hit["pid"]) for hit in hits], [float(hit["distance"]) for hit in hits]
        located = self._where
        if len(located) > _MEMO_LIMIT:
            located.clear()
        for i in [i for i, p in enumerate(pids) if p not in located]:
            e = _entity(hits, i)
            located[pids[i]] = (int(e["doc"]), int(e["lo"]), int(e["hi"]))
        return pids, scores, hits

    def search_dense(self, vector: np.ndarray, k: int, where: Filter = EVERYTHING) -> list[Hit]:
        vec = np.asarray(vector, np.float32).ravel().tolist()
        seen = self._seen
        if seen is None or time.monotonic() - seen[0] > FOLLOW_SECONDS / 2:
            self._start_check()  # beside the search: is_current() reads the answer
        pids, scores, _ = self._search(vec, "vec", k, where, "IP")
        return list(map(Hit, pids, scores))

    def search_lexical(self, terms: Sequence[str], k: int, where: Filter = EVERYTHING) -> list[Hit]:
        terms = [t for t in terms if t]
        if not terms or self.collection is None:
            return []
        # The question's term statistics come in parallel with the search (the features read them
        # too); the candidates are ranked by them, i.e. by this version's statistics.
        # (No hand-over to the pool when every term is known already.)
        unknown = [t for t in terms if t not in self._terms]
        stats = self._pool.submit(self._learn_terms, unknown) if unknown else None
        try:
            pids, _, hits = self._search(" ".join(terms), "sparse", _OVERFETCH * int(k), where, "BM25", ("lexical",))
        finally:
            if stats is not None:
                stats.result()
        df = {t: self._term(t)[1] for t in terms}
        passages = int(self._meta.get("passages", 0))
        avgdl = float(self._meta.get("tokens", 0)) / max(passages, 1)
        if len(self._term_counts) > _PASSAGES:
            self._term_counts.clear()
        known = self._term_counts  # a row never changes: its counts serve every later question
        counts = list(map(known.get, pids))
        for i, c in enumerate(counts):
            if c is None:
                counts[i] = known[pids[i]] = term_counts(_entity(hits, i)["lexical"])
        scores = bm25_scores(terms, counts, df, passages, avgdl)
        best = np.argsort(-scores, kind="stable")[:int(k)]  # stable: equal scores keep Milvus' order
        return [Hit(pids[i], float(scores[i])) for i in best.tolist() if scores[i] > 0]

    def search_both(self, vector: np.ndarray, terms: Sequence[str], k: int, where: Filter = EVERYTHING) -> Searches:
        """Both searches side by side: the dense one on the pool, the lexical one (with its term
        statistics beside it) on this thread, so the question waits for one step of calls, not two
        (for the slower search only, on a server that runs two at once), and decoding the first
        reply overlaps the wait for the other. (Not the other way round: the
        lexical search waits on the pool for its statistics, and a pool task that waits on the pool
        could wait for ever once every worker does.)"""
        if not where.is_empty:
            self._load_documents()  # once, before two threads build the filter's expression from it
        dense = self._pool.submit(self.search_dense, vector, k, where)
        try:
            lexical = self.search_lexical(terms, k, where)
        except BaseException:
            wait([dense])  # nothing of the question outlives it
            raise
        return Searches(dense.result(), lexical)

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
            for r in self._rpc("query", self.collection, filter=ints("pid", unknown),
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
        locs = [where[i] for i in ids]
        pid = np.array(ids, np.int64)
        bounds = np.array(locs, np.int64).reshape(-1, 3)
        prev = np.where(pid > bounds[:, 1], pid - 1, -1)
        nxt = np.where(pid + 1 < bounds[:, 2], pid + 1, -1)
        # The neighbours are of the same document: no call is needed to locate them later.
        learnt = {j: w for j, w in zip(chain(prev.tolist(), nxt.tolist()), chain(locs, locs)) if j >= 0}
        where.update(learnt)
        if len(self._where) > _MEMO_LIMIT:
            self._where.clear()
        self._where.update(learnt)
        return prev, nxt, where

    # -- fetching -----------------------------------------------------------------------------------------
    def fetch(self, ids: Iterable[int]) -> Fetched:
        """The passages, the one before each, and their documents' text and terms: one query for
        those this backend has not decoded yet (none when it has them all), when the passages came
        from a search of this backend."""
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
        # This question's own Columns and copies: another thread may replace the shared ones
        # meanwhile. A row never changes once written (an update adds rows under new ids), so a
        # decoded one serves every later question of this version.
        columns = self._passages.current()
        blobs = {doc: self._doc_blobs.get(doc) for doc, _, _ in where}
        known = columns.slot
        leads = {lo for doc, lo, hi in where if blobs[doc] is None}
        wanted = sorted({pid for pid in all_ids if pid not in known} | leads)
        if wanted:
            dim = int(self._meta.get("dim", 0))
            for r in self._rpc("query", self.collection, filter=ints("pid", wanted),
                               output_fields=["pid", "doc", "added", "data", "svec", "dblob"]):
                pid = int(r["pid"])
                if pid not in known and pid in local:
                    columns.add(pid, stored_passage(r, dim, self._names))
                if pid in leads:
                    blob = unpack(r["dblob"])
                    blobs[int(r["doc"])] = self._doc_blobs[int(r["doc"])] = (
                        blob["text"], unb64(blob["terms"], np.int32).astype(np.int64))
        missing = [pid for pid in all_ids if pid not in known] + [lo for doc, lo, _ in where if blobs[doc] is None]
        if missing:
            raise IndexServerError(f"no passage {missing[0]} in the index version {self.collection}")
        return self._assemble(all_ids, columns.gather(all_ids), where, previous, blobs)

    def _assemble(self, all_ids: list[int], got: Gathered, where: list, previous: np.ndarray,
                  blobs: dict) -> Fetched:
        n = len(all_ids)
        numbers = got.per_sentence.astype(np.int64)
        bounds = np.zeros((2, numbers.shape[1] + 1), np.int64)  # each sentence's first term, first name
        np.cumsum(numbers[[TERM_COUNT, NAME_COUNT]], axis=1, out=bounds[:, 1:])
        term_start, name_start = bounds
        same, same_start = got.same, got.same_start
        if n and (got.added != got.added[0]).any():
            # Written by several commits: each compared only the passages it wrote.
            same_lists = [same[a:b].tolist() for a, b in zip(same_start[:-1].tolist(), same_start[1:].tolist())]
            _same_across_commits(same_lists, all_ids, got.added.tolist(), got.terms, term_start[got.sent_start])
            same = np.array([p for s in same_lists for p in s], np.int64)
            same_start = np.zeros(n + 1, np.int64)
            np.cumsum([len(s) for s in same_lists], out=same_start[1:])
        # Names keep the backend's numbers (name_words: every name word it has decoded so far).
        lex = Lexicon(got.terms, term_start, numbers[FLAGS].astype(np.uint8), numbers[DISTINCT].astype(np.int32),
                      got.names, name_start, self._names.snapshot(), same, same_start)
        doc_nums = {doc for doc, _, _ in where}
        doc_ids = {self._ids[d] for d in doc_nums}
        if len(self._memos) > _SHARED_LIMIT:
            self._memos.clear()
        ids = np.array(all_ids, np.int64)
        return Fetched(
            ids=ids, chunks=got.chunks, docs={d: self._docs[d] for d in doc_ids},
            vectors=got.vectors, sent_vectors=got.sent_vectors,
            sent_start=got.sent_start, sent_chars=numbers[CHARS].copy(), lexicon=lex, stats=self.stats(),
            previous=previous, is_lead=ids == np.array([lo for _, lo, _ in where], np.int64),
            doc_terms={self._ids[d]: blobs[d][1] for d in doc_nums},
            doc_text={self._ids[d]: blobs[d][0] for d in doc_nums},
            cache=self._memos)

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
            chunks.append(passage_chunk(r["data"]))
        both = [unpack_vectors(r["svec"], dim) for r in rows]
        vectors = np.array([b[0] for b in both], np.float32).reshape(-1, dim)
        sents = np.concatenate([b[1:] for b in both]) if rows else np.zeros((0, dim), np.float32)
        return PassageBatch(info, tuple(chunks), vectors, sents)

    def all_batches(self, doc_ids: Iterable[str]):
        """PassageBatch of each of these stored documents, reading the passages in pages."""
        self._load_documents()
        wanted = {self._num[d] for d in doc_ids if d in self._num}
        if not wanted:
            return
        rows_by_doc: dict[int, list] = {}
        for r in self._scan(self.collection, self._visible(), ["pid", "doc", "data", "svec"]):
            if int(r["doc"]) in wanted:
                rows_by_doc.setdefault(int(r["doc"]), []).append(r)
        for num in sorted(rows_by_doc):
            yield self._batch(self._docs[self._ids[num]], rows_by_doc[num])

    # -- writing ---------------------------------------------------------------------------------------
    def writer(self, settings: Settings, fresh: bool = False):
        from .writer import MilvusWriter

        return MilvusWriter(self, settings, fresh)


def _entity(hits, i: int) -> dict:
    """The output fields of pymilvus' i-th hit (without its Hit's own Python lookups)."""
    return dict.__getitem__(hits[i], "entity")


def term_history(rpc, collection: str, terms: Sequence[str], version: int,
                 page: int = 1000) -> dict[str, list[tuple[int, str, int, int]]]:
    """Every row (version, key, term id, document frequency) of these terms up to `version`,
    oldest first; terms never indexed are left out."""
    out: dict[str, list[tuple[int, str, int, int]]] = {}
    terms = list(terms)
    for i in range(0, len(terms), page):
        part = terms[i:i + page]
        for r in rpc("query", collection + "_terms",
                     filter=f"term in [{', '.join(quote(t) for t in part)}] and ver <= {int(version)}",
                     output_fields=["key", "term", "ver", "tid", "df"]):
            out.setdefault(r["term"], []).append((int(r["ver"]), r["key"], int(r["tid"]), int(r["df"])))
    return {t: sorted(rows) for t, rows in out.items()}


def term_rows(rpc, collection: str, terms: Sequence[str], version: int) -> dict[str, tuple[int, int]]:
    """(term id, document frequency) of each of these terms as of `version` (its newest row up to
    then); terms never indexed are left out, a term no passage holds any more has frequency 0."""
    return {t: rows[-1][2:] for t, rows in term_history(rpc, collection, terms, version).items()}


def _same_across_commits(same: list[list[int]], ids: list[int], added: list[int], terms: np.ndarray,
                         bounds: np.ndarray) -> None:
    """Add to `same` (each passage's partners, backend ids) the pairs of these passages written by
    different commits: a commit compares only the passages it writes, so such pairs are compared
    here, among the passages a question fetched (without the index-wide stock-phrase rule, which
    needs counts over the whole collection)."""
    if len(set(added)) < 2:
        return
    partners, start = lexicon_mod.same_words(terms, bounds)
    for i in range(len(ids)):
        for j in partners[start[i]:start[i + 1]].tolist():
            if added[i] != added[j] and ids[j] not in same[i]:
                same[i].append(ids[j])
        same[i].sort()
