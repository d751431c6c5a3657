"""Time outside the server per question, local against Milvus, without the embedding model's noise.

    .venv/bin/python benchmarks/bench_milvus_outside.py [--articles 8] [--n 200] [--rounds 2] [--split-cpus]
        [--local-threads] [--paired] [--searches]

A SQuAD subset (as bench_milvus.py) indexed into both backends (a `milvus-lite server` started on
loopback); each question's embedding is computed once beforehand and then served from memory, so
ask() is the backends' and the answer stage's own work. Per round, p50/p99/mean ms outside the
server (ask() less the union of the client calls' spans; local: all of ask()) for local, for Milvus
with its decoded passages kept (warm), and for Milvus with its memos cleared before every question
(cold: every passage seen for the first time); for each also the whole ask()'s p50/p99 ms ("ask");
for warm Milvus also the Milvus backend's own methods' time outside the server per question (the
asking thread's, less every client call's span in the method's time, whichever thread made it).
With --local-threads also local with its two searches made side by side on a one-thread pool, as
the Milvus backend makes them (local itself makes them in turn). With --paired also each question
asked four ways one right after the other, the order rotating (local in turn / threaded, warm
Milvus in turn / side by side), and the question-by-question differences: a comparison that the
machine's load drifting between runs does not blur. With --searches also warm Milvus' searches
alone (dense, BM25, in turn, side by side). With --split-cpus the server
runs on one CPU and the asking process on the others: on a 2-core machine a co-located server's
~20 ms of CPU a question otherwise pre-empts the asking thread and evicts its caches, which a
server on its own machine would not.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
_MEMOS = ("_passages", "_doc_blobs", "_term_counts", "_memos")  # cleared for "cold" (those present)
_METHODS = ("search_both", "search_dense", "search_lexical", "fetch", "_assemble")


class MemoEmbedder:
    """An embedder answering each query from memory after its first time."""

    def __init__(self, embedder):
        self._embedder, self._known = embedder, {}

    def __getattr__(self, name):
        return getattr(self._embedder, name)

    def embed_query(self, text):
        if text not in self._known:
            self._known[text] = self._embedder.embed_query(text)
        return self._known[text]


def both_backends(args, work: Path, uri: str):
    """(questions, local QA, Milvus QA) over the chosen SQuAD subset, sharing one MemoEmbedder
    that already knows every question's vector."""
    from bench_milvus import build, squad_subset
    from qa.backends.milvus import connection

    items = squad_subset(Path(args.squad), args.articles, args.n, work / "squad")
    local, _ = build(work / "squad", work / "index")
    embedder = MemoEmbedder(local.engine.embedder)
    try:
        milvus, _ = build(work / "squad", uri, embedder)
    except connection.IndexServerError:
        # pymilvus shares start_server's idle channel, which the server may have closed meanwhile
        # (GOAWAY "too_many_pings"): the failed handler is closed, a second try connects.
        milvus, _ = build(work / "squad", uri, embedder)
    for bot in (local, milvus):
        bot._engine = replace(bot.engine, embedder=embedder)
    for item in items:
        embedder.embed_query(item.question)
    return items, local, milvus


class Shadowed:
    """While in effect (a `with` block), a backend's search_both is `search_both` (shadowing the
    one it has on the instance or its class; restored after)."""

    def __init__(self, backend, search_both):
        self._backend, self._search_both = backend, search_both

    def __enter__(self):
        self._saved = self._backend.__dict__.get("search_both")
        self._backend.search_both = self._search_both

    def __exit__(self, *exc):
        if self._saved is None:
            del self._backend.search_both
        else:
            self._backend.search_both = self._saved


def in_turn(backend):
    """The two searches one after the other (as retrieve made them before search_both)."""
    from qa.backends import Searches

    return Shadowed(backend, lambda v, t, k, where: Searches(backend.search_dense(v, k, where),
                                                             backend.search_lexical(t, k, where)))


def threaded(backend):
    """The dense search on a one-thread pool beside the lexical one (the Milvus backend's way)."""
    from concurrent.futures import ThreadPoolExecutor

    from qa.backends import Searches

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-search")

    def search_both(v, t, k, where):
        dense = pool.submit(backend.search_dense, v, k, where)
        lexical = backend.search_lexical(t, k, where)
        return Searches(dense.result(), lexical)
    return Shadowed(backend, search_both)


def main() -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_milvus import pct, start_server, subset_arguments
    from bench_milvus_scale import union
    from tests.probe import CountingClient

    ap = subset_arguments(__doc__.split("\n\n")[0])
    ap.add_argument("--split-cpus", action="store_true",
                    help="run the server on the last CPU and this process (both backends' questions) on the "
                         "others, as if the server had a machine of its own")
    ap.add_argument("--local-threads", action="store_true",
                    help="also time local with its dense search handed to a thread beside the lexical one")
    ap.add_argument("--searches", action="store_true",
                    help="also time warm Milvus' searches alone: dense, BM25, both in turn, both side by side")
    ap.add_argument("--paired", action="store_true",
                    help="also ask each question four ways one after the other: local in turn and threaded, "
                         "Milvus in turn and side by side (needs a qa with Backend.search_both)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-outside-"))
    server_cpus = None
    if args.split_cpus:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("--split-cpus needs at least 2 CPUs")
        server_cpus = {cpus[-1]}
    proc, uri = start_server(work / "milvus-data", server_cpus)
    try:
        items, local, milvus = both_backends(args, work, uri)
        backend = milvus.engine.backend
        counter = backend.client = CountingClient(backend.client)
        spent: dict[str, float] = defaultdict(float)
        asking = threading.current_thread()

        def timed(name):
            method = getattr(backend, name)

            def call(*a, **kw):
                if threading.current_thread() is not asking:
                    return method(*a, **kw)
                first, start = len(counter.spans), time.perf_counter()
                try:
                    return method(*a, **kw)
                finally:
                    spent[name] += time.perf_counter() - start - union(counter.spans[first:])
            setattr(backend, name, call)

        for name in _METHODS:
            if hasattr(backend, name):
                timed(name)

        def run(bot, calls=None, cold=False):
            outside, whole = [], []
            for item in items:
                if cold:
                    for memo in _MEMOS:
                        getattr(backend, memo, {}).clear()
                if calls:
                    calls.reset()
                start = time.monotonic()
                bot.ask(item.question, k=10, history=list(item.history))
                took = time.monotonic() - start
                whole.append(took * 1000)
                outside.append((took - (union(calls.spans) if calls else 0.0)) * 1000)
            return {"p50": pct(outside, 0.5), "p99": pct(outside, 0.99), "mean": round(sum(outside) / len(outside), 2),
                    "ask_p50": pct(whole, 0.5), "ask_p99": pct(whole, 0.99)}

        def paired():
            """Each question asked in four ways one after the other (the order rotating): local with
            its searches in turn (its own way) and threaded; warm Milvus in turn and side by side
            (its own way). Per way p50/p99/mean outside and ask() p50; per comparison the median and
            mean of the question-by-question differences (ms)."""
            nothing = nullcontext()
            ways = [("local", local, None, nothing), ("local_threads", local, None, local_threads),
                    ("milvus_in_turn", milvus, counter, in_turn(backend)), ("milvus", milvus, counter, nothing)]
            outside, whole = defaultdict(list), defaultdict(list)
            for j, item in enumerate(items):
                for name, bot, calls, way in ways[j % 4:] + ways[:j % 4]:
                    with way:
                        if calls:
                            calls.reset()
                        start = time.monotonic()
                        bot.ask(item.question, k=10, history=list(item.history))
                        took = time.monotonic() - start
                    whole[name].append(took * 1000)
                    outside[name].append((took - (union(calls.spans) if calls else 0.0)) * 1000)
            out = {name: {"p50": pct(outside[name], 0.5), "p99": pct(outside[name], 0.99),
                          "mean": round(sum(outside[name]) / len(items), 2), "ask_p50": pct(whole[name], 0.5)}
                   for name, *_ in ways}
            for a, b in (("local_threads", "local"), ("milvus", "milvus_in_turn"), ("milvus", "local"),
                         ("milvus_in_turn", "local")):
                for what, xs in (("outside", outside), ("ask", whole)):
                    d = [x - y for x, y in zip(xs[a], xs[b])]
                    out[f"{a} - {b}, {what}"] = {"median": round(statistics.median(d), 2),
                                                 "mean": round(sum(d) / len(d), 2)}
            return out

        def searches():
            """Per question, ms p50/mean: the dense search alone, the BM25 search alone, both in turn,
            both by search_both (side by side): does the server serve two searches at once?"""
            from qa.attribution import lexical_query
            from qa.retrieve import POOL, formulate
            from qa.textutil import terms

            took = defaultdict(list)
            for item in items:
                query = formulate(item.question, list(item.history))
                vector, words = milvus.engine.embedder.embed_query(query), terms(lexical_query(query))
                t0 = time.perf_counter()
                backend.search_dense(vector, POOL)
                t1 = time.perf_counter()
                backend.search_lexical(words, POOL)
                t2 = time.perf_counter()
                backend.search_both(vector, words, POOL)
                t3 = time.perf_counter()
                for name, ms in (("dense", t1 - t0), ("bm25", t2 - t1), ("in_turn", t2 - t0), ("side_by_side", t3 - t2)):
                    took[name].append(ms * 1000)
            return {name: {"p50": pct(xs, 0.5), "mean": round(sum(xs) / len(xs), 2)} for name, xs in took.items()}

        local_threads = threaded(local.engine.backend) if args.local_threads or args.paired else None

        if server_cpus:  # only now: the builds above embed on every CPU
            os.sched_setaffinity(0, set(cpus[:-1]))
            import faiss  # its OpenMP team was sized for every CPU: on fewer it would wait on itself

            faiss.omp_set_num_threads(len(cpus) - 1)
        run(local), run(milvus, counter)  # warm both (the document table, the decoded passages)
        if local_threads is not None:
            with local_threads:
                run(local)  # and the pool's thread
        rounds = []
        for _ in range(args.rounds):
            row = {"local": run(local)}
            if args.local_threads:
                with local_threads:
                    row["local_threads"] = run(local)
            spent.clear()
            row["milvus_warm"] = run(milvus, counter)
            row["milvus_warm_methods_ms"] = {k: round(v / len(items) * 1000, 2) for k, v in spent.items()}
            row["milvus_cold"] = run(milvus, counter, cold=True)
            if args.paired:
                row["paired"] = paired()
            if args.searches:
                row["searches"] = searches()
            rounds.append(row)
        print(json.dumps({"passages": local.passage_count(), "questions": len(items), "rounds": rounds}, indent=1))
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
