"""Writing a Milvus index: a commit either updates the live collection in place, sending only the
added and changed documents (an incremental commit), or writes a new collection and switches the
alias to it (a full rebuild: the first index, `fresh`, or settings that changed).

An incremental commit of version v+1 inserts the new documents' rows tagged `added = v+1` (under
new doc numbers and passage ids: nothing stored is rewritten), the term statistics that changed
as new per-version rows, and then publishes v+1 with one insert: its meta row, which also lists
the documents retired by then. A reader of version v resolves v once and filters every call to
`added <= v` minus v's retired documents, so it never sees half an update, and keeps its answers
while v+1 is written. Rows no reader can see any more are deleted by a later commit: a version is
out of use once its successor was published over `grace` seconds ago (a reader still on it has
followed the live one by then), and with it the rows of documents retired before and the term rows
superseded before (the latter when a commit touches the term again).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import numpy as np

from ... import lexicon as lexicon_mod
from ...errors import DocumentsError, QAError
from ...lexicon import Lexicon
from ...textutil import normalise, terms as analyse
from ...types import Chunk, Settings
from ..base import PassageBatch, PendingChanges
from .connection import IndexServerError
from .reader import MilvusBackend, term_history
from .schema import (FORMAT, INSERT_BATCH, VARCHAR_MAX, b64, ints, meta_doc, pack, pack_passage, pack_vectors,
                     schemas, quote, term_row, tokens_of)

log = logging.getLogger("qa")

# Retired documents a version may list (its meta row must fit one text field); an update that would
# list more is written as a full rebuild.
MAX_RETIRED = 2_000
# A commit numbers its passages and documents from a random point past the last ones, so that the
# rows of a writer on another machine that loses the race to publish never share ids with the
# winner's and can be deleted alone.
ID_GAP = 2 ** 30


class MilvusWriter(PendingChanges):
    """Changes to a MilvusBackend, written at commit in place (incremental) or as a new collection.

    `sent` counts the rows each commit sent to the server, by collection kind."""

    def __init__(self, backend: MilvusBackend, settings: Settings, fresh: bool):
        super().__init__(backend.documents() if not fresh else ())
        self.backend, self.settings, self.fresh = backend, settings, fresh
        self.sent: Counter = Counter()

    def commit(self) -> MilvusBackend:
        """Make the changes visible at once; returns a backend serving the new version (this
        writer's backend keeps serving its version to questions under way)."""
        b = self.backend
        if not self.fresh and b.collection is not None and b.settings == self.settings:
            done = self._commit_in_place()
            if done is not None:
                return done
        return self._commit_new_collection()

    # -- in place -------------------------------------------------------------------------------------
    def _commit_in_place(self) -> MilvusBackend | None:
        """Version b.version + 1 in the live collection (None: too many retired documents to list)."""
        b, rpc, stem = self.backend, self.backend._rpc, self.backend.collection
        stored = b.documents()
        retiring = [b._num[d] for d in stored if d not in self._kept]
        new = [x for x in self._new.values() if x.chunks]
        if not self._kept and not new:
            raise DocumentsError("no passages to index: the documents have no article text")
        if not retiring and not new:
            return MilvusBackend(b.uri, b.name, collection=stem, grace=b.grace)
        _refuse_if_moved(b)  # (before deleting what a failed commit left: rows past b.version)
        meta, v, now, commit = dict(b._meta), b.version + 1, time.time(), uuid.uuid4().hex[:8]
        _delete_unpublished(b, b.version)
        history = {int(k): float(t) for k, t in meta.get("history", {}).items()}
        history[v] = now
        in_use = _oldest_in_use(history, now, b.grace)
        history = {k: t for k, t in history.items() if k >= in_use}
        # Documents retired by an earlier commit that no reader can still be on before: deleted
        # after this commit publishes; those already deleted leave the list.
        retired = {int(d): int(r) for d, r in meta.get("retired", {}).items()}
        purge = [d for d, r in retired.items() if r <= in_use]
        for d in _gone(b, purge):
            del retired[d]
        if len(retired) + len(retiring) > MAX_RETIRED:
            return None
        # The statistics change by the passages that go and the passages that come.
        minus, gone_tokens, gone_passages = _going(b, retiring)
        chunks = [c for x in new for c in x.chunks]
        titles = {x.doc.doc_id: x.doc.title for x in new}
        indexed = [analyse(self.settings.indexed_text(c.text, titles[c.doc_id])) for c in chunks]
        plus = Counter(t for toks in indexed for t in set(toks))
        affected = list(dict.fromkeys([t for toks in indexed for t in toks] + sorted(minus)))
        history_of = term_history(rpc, stem, affected, b.version)
        stale = _superseded(history_of, in_use)
        vocab, changed, next_id = _term_changes(affected, history_of, plus, minus, int(meta["vocab"]), v, commit)
        lex = lexicon_mod.build(chunks, vocab)
        pid0 = int(meta["next_pid"]) + random.randrange(ID_GAP)
        doc0 = int(meta["next_doc"]) + random.randrange(ID_GAP)
        nums = {x.doc.doc_id: doc0 + i for i, x in enumerate(new)}
        retired.update({d: v for d in retiring})
        meta.update(version=v, passages=int(meta["passages"]) - gone_passages + len(chunks),
                    tokens=int(meta["tokens"]) - gone_tokens + sum(len(tokens_of(" ".join(t))) for t in indexed),
                    vocab=next_id, next_pid=pid0 + len(chunks), next_doc=doc0 + len(new),
                    retired={str(d): r for d, r in retired.items()}, history={str(k): t for k, t in history.items()})
        meta_row = {"doc": meta_doc(v), "added": v, "info": json.dumps(meta), "dummy": [0.0, 0.0]}
        if len(meta_row["info"]) > VARCHAR_MAX:
            return None
        try:
            self.sent["docs"] += _insert(b, stem + "_docs", _doc_rows(new, nums, v))
            self.sent["terms"] += _insert(b, stem + "_terms", changed)
            self.sent["passages"] += _insert(b, stem, passage_rows(new, chunks, indexed, lex, nums, pid0, v,
                                                                   int(meta["format"])))
            rpc("flush", stem)
            _refuse_if_moved(b)
            rpc("insert", stem + "_docs", [meta_row])  # the version is published: one row, all or nothing
        except BaseException:
            _delete_own(b, v, list(nums.values()), commit)
            raise
        b._stale = True
        _purge(b, [d for d in purge if d in retired], stale, v)
        return MilvusBackend(b.uri, b.name, collection=stem, grace=b.grace)

    # -- a new collection ---------------------------------------------------------------------------
    def _commit_new_collection(self) -> MilvusBackend:
        """Write a new collection, then switch the alias to it."""
        b = self.backend
        batches = list(b.all_batches(self._kept)) + list(self._new.values())
        batches = [x for x in batches if x.chunks]
        if not batches:
            raise DocumentsError("no passages to index: the documents have no article text")
        version = max(b.version, _newest_version(b)) + 1
        stem = f"{b.name}__{version:08d}_{int(time.time()):010d}_{uuid.uuid4().hex[:6]}"
        try:
            self.sent.update(write_collection(b, stem, version, self.settings, batches))
            live = b._live()
            if live != b.opened_from:
                raise IndexServerError(f"another process changed the index at {b.uri} meanwhile; try again")
            if live is None:
                b._rpc("create_alias", stem, b.name)
            else:
                b._rpc("alter_alias", stem, b.name)
        except BaseException:
            _drop_collection(b, stem)
            raise
        b._stale = True
        _drop_replaced(b, live=stem)
        return MilvusBackend(b.uri, b.name, collection=stem, grace=b.grace)


def _refuse_if_moved(b: MilvusBackend) -> None:
    """An update in place builds on the version b serves: refuse if another is live now."""
    if b._live() != (b.collection, b.version):
        raise IndexServerError(f"another process changed the index at {b.uri} meanwhile; try again")


def _going(b: MilvusBackend, docs: list[int]) -> tuple[Counter, int, int]:
    """(passages holding each term, tokens, passages) of the stored passages of these documents."""
    holding, tokens, passages = Counter(), 0, 0
    if docs:
        for r in b._scan(b.collection, ints("doc", docs), ["lexical"]):
            holding.update(set(r["lexical"].split(" ")) - {""})
            tokens, passages = tokens + len(tokens_of(r["lexical"])), passages + 1
    return holding, tokens, passages


def _term_changes(affected: list[str], history_of: dict, plus: Counter, minus: Counter, next_id: int,
                  version: int, commit: str) -> tuple[dict[str, int], list[dict], int]:
    """(term ids of the affected terms, the term rows to write for `version`, the next free term id):
    a known term keeps its id, a new one takes the next; a row only where the frequency changed."""
    vocab, rows = {}, []
    for t in affected:
        tid, df = history_of[t][-1][2:] if t in history_of else (None, 0)
        if tid is None:
            tid, next_id = next_id, next_id + 1
        vocab[t] = tid
        if t not in history_of or plus[t] != minus[t]:
            rows.append(term_row(t, version, tid, df + plus[t] - minus[t], commit))
    return vocab, rows, next_id


def _delete_unpublished(b: MilvusBackend, version: int) -> None:
    """Delete rows written for versions after `version` by a commit that died before publishing
    (one that fails cleanly deletes its own rows: _delete_own)."""
    stem = b.collection
    for collection, expr in ((stem, f"added > {version}"), (stem + "_docs", f"doc >= 0 and added > {version}"),
                             (stem + "_terms", f"ver > {version}")):
        b._rpc("delete", collection, filter=expr)


def _delete_own(b: MilvusBackend, version: int, docs: list[int], commit: str) -> None:
    """Delete the rows a commit that failed to publish wrote (and only those: see ID_GAP)."""
    stem = b.collection
    try:
        if docs:
            b._rpc("delete", stem, filter=f"added == {int(version)} and {ints('doc', docs)}")
            b._rpc("delete", stem + "_docs", filter=ints("doc", docs))
        b._rpc("delete", stem + "_terms", filter=f"ver == {int(version)} and key like {quote('%' + chr(9) + commit)}")
    except QAError as exc:
        log.warning("unpublished rows at %s were not deleted (the next commit does): %s", b.uri, exc)


def _gone(b: MilvusBackend, docs: list[int]) -> list[int]:
    """Which of these retired documents have no rows left (their numbers can leave the list)."""
    if not docs:
        return []
    left = {int(r["doc"]) for r in b._rpc("query", b.collection, filter=ints("doc", docs), output_fields=["doc"])}
    left |= {int(r["doc"]) for r in b._rpc("query", b.collection + "_docs", filter=ints("doc", docs),
                                            output_fields=["doc"])}
    return [d for d in docs if d not in left]


def _oldest_in_use(history: dict[int, float], now: float, grace: float) -> int:
    """The oldest version a reader may still be on: the live one, or one replaced less than
    `grace` seconds ago (history: publication time of recent versions, the live one included)."""
    versions = sorted(history)
    for older, newer in zip(versions, versions[1:]):
        if now - history[newer] < grace:
            return older
    return versions[-1]


def _superseded(history_of: dict[str, list[tuple[int, str, int, int]]], in_use: int) -> list[str]:
    """Keys of term rows no reader can see: older than the row a reader of `in_use` sees."""
    stale = []
    for rows in history_of.values():
        seen = [ver for ver, _, _, _ in rows if ver <= in_use]
        if seen:
            stale += [key for ver, key, _, _ in rows if ver < max(seen)]
    return stale


def _purge(b: MilvusBackend, docs: list[int], term_keys: list[str], live: int) -> None:
    """Delete the rows no reader can see any more: of retired documents (passages first: a document
    row without passages would be worse than passages without a document), superseded term rows,
    older meta rows."""
    try:
        if docs:
            b._rpc("delete", b.collection, filter=ints("doc", docs))
            b._rpc("delete", b.collection + "_docs", filter=ints("doc", docs))
        for i in range(0, len(term_keys), 1000):
            b._rpc("delete", b.collection + "_terms",
                   filter=f"key in [{', '.join(quote(k) for k in term_keys[i:i + 1000])}]")
        # A reader keeps its version's meta in memory; a new one binds to the newest row.
        b._rpc("delete", b.collection + "_docs", filter=f"doc < 0 and doc > {meta_doc(live)}")
    except QAError as exc:
        log.warning("retired rows at %s were not deleted (the next commit does): %s", b.uri, exc)


# -- collections ----------------------------------------------------------------------------------
def _newest_version(b: MilvusBackend) -> int:
    return max([v for _, v, _ in _collections(b)], default=0)


def _collections(b: MilvusBackend) -> list[tuple[str, int, int]]:
    """(stem, version it was created at, created: unix seconds) of each passages collection."""
    out = []
    for c in b._rpc("list_collections"):
        parts = c[len(b.name) + 2:].split("_") if c.startswith(b.name + "__") else []
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() and len(parts[2]) == 6:
            out.append((c, int(parts[0]), int(parts[1])))
    return out


def _drop_collection(b: MilvusBackend, stem: str) -> None:
    for suffix in ("", "_docs", "_terms"):
        try:
            if b.client.has_collection(stem + suffix):
                b.client.drop_collection(stem + suffix)
        except Exception as exc:  # leftovers are dropped by a later commit
            log.debug("could not drop %s: %s", stem + suffix, exc)


def _drop_replaced(b: MilvusBackend, live: str) -> None:
    """Drop collections that a newer one replaced over grace seconds ago (a process still serving
    one follows the alias within FOLLOW_SECONDS), and half-written ones of failed commits."""
    try:
        found = _collections(b)
        now = time.time()
        for stem, v, _ in found:
            replaced_at = min([c for _, w, c in found if w > v], default=None)
            if stem != live and replaced_at is not None and now - replaced_at > b.grace:
                _drop_collection(b, stem)
    except QAError as exc:
        log.warning("old index versions at %s were not dropped: %s", b.uri, exc)


def write_collection(b: MilvusBackend, stem: str, version: int, settings: Settings,
                     batches: list[PassageBatch]) -> Counter:
    """Create a collection's three parts and fill them (the alias is switched by the caller);
    returns the rows sent by kind."""
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
    p_schema, d_schema, t_schema = schemas(dim)
    ip = b.client.prepare_index_params()
    ip.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                 params={"bm25_k1": 1.5, "bm25_b": 0.75})
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
            "tokens": sum(len(tokens_of(" ".join(t))) for t in indexed), "vocab": len(vocab), "dim": dim,
            "model": settings.model, "exact": exact, "next_pid": len(chunks), "next_doc": len(docs),
            "retired": {}, "history": {str(version): time.time()}}
    sent = Counter()
    sent["docs"] = _insert(b, stem + "_docs", [{"doc": meta_doc(version), "added": version, "info": json.dumps(meta),
                                                "dummy": [0.0, 0.0]}])
    sent["docs"] += _insert(b, stem + "_docs", _doc_rows(batches, nums, version))
    sent["terms"] = _insert(b, stem + "_terms", (term_row(t, version, i, df[t]) for t, i in vocab.items()))
    sent["passages"] = _insert(b, stem, passage_rows(batches, chunks, indexed, lex, nums, 0, version, FORMAT))
    b._rpc("flush", stem)
    return sent


def _doc_rows(batches: list[PassageBatch], nums: dict[str, int], version: int):
    return [{"doc": nums[x.doc.doc_id], "added": version, "info": json.dumps(asdict(x.doc), ensure_ascii=False),
             "dummy": [0.0, 0.0]} for x in batches]


def passage_rows(batches: list[PassageBatch], chunks: list[Chunk], indexed: list[list[str]], lex: Lexicon,
                 nums: dict[str, int], pid0: int, version: int, fmt: int = FORMAT):
    """The rows of these documents' passages, numbered from pid0 (`lex` and `indexed` cover
    exactly `chunks`, in order), in format `fmt`: a collection's rows keep the format it was
    created in, so a process running older code can still read it after an update in place."""
    k, sent = 0, 0  # passage and sentence number within `chunks`
    for x in batches:
        lo, hi = pid0 + k, pid0 + k + len(x.chunks)
        s0 = 0
        title = x.doc.title
        for j, c in enumerate(x.chunks):
            n = len(c.sentences)
            rows = np.arange(sent, sent + n)
            t = lex.ids[int(lex.start[sent]):int(lex.start[sent + n])]
            counts = np.diff(lex.start[sent:sent + n + 1])
            names = [[lex.name_words[w] for w in lex.names[int(lex.name_start[r]):int(lex.name_start[r + 1])]]
                     for r in rows.tolist()]
            same = lex.same[int(lex.same_start[k]):int(lex.same_start[k + 1])] + pid0
            data = pack_passage(c, t, counts, lex.flags[rows], lex.distinct[rows], names, same) if fmt >= 4 else ""
            # Format 3 where it was the collection's, or where the text uncompressed exceeds a
            # field (the reader tells the two apart row by row).
            if not data or len(data.encode("utf-8")) > VARCHAR_MAX:
                data = pack({"c": [c.doc_id, c.start, c.end, c.text, [list(s) for s in c.sentences], list(c.speakers)],
                             "t": b64(t.astype(np.int32)), "ts": counts.tolist(), "f": lex.flags[rows].tolist(),
                             "d": lex.distinct[rows].tolist(), "n": names, "s": same.tolist()})
            dblob = ""
            if j == 0:  # the document's text and terms ride on its first passage (fetched with it)
                text = "\n".join([title] + [p.text for p in x.chunks])
                last = sent + sum(len(p.sentences) for p in x.chunks)
                d_terms = np.unique(lex.ids[int(lex.start[sent]):int(lex.start[last])])
                dblob = pack({"text": text, "terms": b64(d_terms.astype(np.int32))})
            row = {"pid": pid0 + k, "doc": nums[c.doc_id], "lo": lo, "hi": hi, "added": version,
                   "lexical": " ".join(indexed[k]), "flat": normalise(c.text),
                   # Rounded to float16 as the local backend stores them: the same dense scores.
                   "vec": np.asarray(x.vectors[j], np.float16).astype(np.float32).tolist(),
                   # The passage vector again, first: read back from text it costs less than from
                   # the vector field (pymilvus hands those out as lists of Python floats).
                   "data": data, "svec": pack_vectors(np.vstack([x.vectors[j:j + 1], x.sent_vectors[s0:s0 + n]])),
                   "dblob": dblob}
            for field in ("lexical", "flat", "data", "dblob"):
                if len(row[field].encode("utf-8")) > VARCHAR_MAX:
                    raise QAError(f"{c.doc_id}: a passage is too large to store in Milvus ({field})")
            yield row
            k, sent, s0 = k + 1, sent + n, s0 + n


def _insert(b: MilvusBackend, collection: str, rows) -> int:
    """Send rows in pages; returns how many."""
    page, count = [], 0
    for row in rows:
        page.append(row)
        if len(page) >= INSERT_BATCH:
            b._rpc("insert", collection, page)
            count, page = count + len(page), []
    if page:
        b._rpc("insert", collection, page)
        count += len(page)
    return count
