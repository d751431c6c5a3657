"""The local backend and the Milvus backend side by side, in one run, on the same documents.

    .venv/bin/python benchmarks/bench_milvus.py [--squad ../shared/data/squad-dev-half.json]
        [--articles 6] [--n 200] [--uri http://127.0.0.1:19530] [--out result.json]

Without --uri a `milvus-lite server` is started on a free loopback port (a fresh data folder under
--work) and stopped at the end. Both engines embed with one model (loaded once). Reported for each
backend: on the seed dev questions and on a SQuAD subset (--articles articles evenly spread over the
file, --n of their questions), hit@1, hit@5, answer in the highlight and the share answered, ask()
latency p50/p99 in this process, the time outside the server per question (p50/p99; see
run_questions), and for Milvus the calls and round trips (sequential waves of calls) per question;
how many answers are identical (passages, offsets, highlights, "also reported by"); indexing: end
to end (cut, embed, write) and the backend's write alone (the same passages written to a fresh
collection), in passages per second.

    .venv/bin/python benchmarks/bench_milvus.py --update 300 [--bbc ../shared/data/bbc]

measures an update instead: a folder of the seeds and 300 BBC articles (evenly spread) indexed into
Milvus, one article changed, and the update in place (rows sent, seconds end to end) against writing
the same passages as a new collection (what every commit did before updates in place), and the
seed dev questions' ask() p50 and answers on both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.probe import CountingClient

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _args() -> argparse.Namespace:
    from common import shared_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--squad", default=str(shared_data() / "squad-dev-half.json"))
    ap.add_argument("--seeds", default=str(shared_data() / "seed_questions_dev.json"))
    ap.add_argument("--articles", type=int, default=6, help="SQuAD articles indexed (0: all)")
    ap.add_argument("--n", type=int, default=200, help="SQuAD questions asked (evenly spread)")
    ap.add_argument("--uri", default=None, help="a running Milvus (default: start a milvus-lite server)")
    ap.add_argument("--work", default=None, help="folder for documents, indexes and the server's data")
    ap.add_argument("--out", default=None, help="write the figures as JSON here too")
    ap.add_argument("--update", type=int, default=None, metavar="N",
                    help="measure an update of one article among the seeds and N BBC articles instead")
    ap.add_argument("--bbc", default=str(shared_data() / "bbc"))
    return ap.parse_args()


def subset_arguments(description: str) -> argparse.ArgumentParser:
    """The options of the benchmarks that time questions over a SQuAD subset in both backends."""
    from common import shared_data

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--squad", default=str(shared_data() / "squad-dev-half.json"))
    ap.add_argument("--articles", type=int, default=8)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    return ap


def start_server(data: Path, cpus: set[int] | None = None) -> tuple[subprocess.Popen, str]:
    """A milvus-lite server on a free loopback port; `cpus`: the only CPUs it may run on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("milvus-lite")
    proc = subprocess.Popen([str(exe), "server", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    from pymilvus import MilvusClient

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            MilvusClient(f"http://127.0.0.1:{port}", timeout=2).list_collections()
            return proc, f"http://127.0.0.1:{port}"
        except Exception:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("milvus-lite server not ready within 30 s")


def squad_subset(path: Path, articles: int, n: int, docs: Path):
    """The chosen SQuAD articles written as documents, and their questions (evenly spread)."""
    from common import even_sample
    from qa.evaluation import Item, squad_documents

    data = json.loads(path.read_text(encoding="utf-8"))
    keep = even_sample(list(range(len(data["data"]))), articles or None)
    data = {"data": [data["data"][i] for i in keep]}
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in squad_documents(data).items():
        (docs / name).write_text(text, encoding="utf-8")
    items = [Item(q["question"], tuple(("", a["text"]) for a in q["answers"]))
             for a in data["data"] for p in a["paragraphs"] for q in p["qas"]]
    return even_sample(items, n)


class TimedEmbedder:
    """An embedder whose embed_query time is summed (`seconds`): a question's time outside the
    server leaves the embedding out, as the same model embeds for both backends."""

    def __init__(self, embedder):
        self._embedder, self.seconds = embedder, 0.0

    def __getattr__(self, name):
        return getattr(self._embedder, name)

    def embed_query(self, text):
        t = time.monotonic()
        try:
            return self._embedder.embed_query(text)
        finally:
            self.seconds += time.monotonic() - t


class WireTimer:
    """Records the span of each gRPC call a MilvusClient makes (its stub: request built, response
    not yet turned into Python rows), so pymilvus' own encoding and decoding can be told apart from
    the wire and the server. Installed on the client's connection; `close` takes it off."""

    def __init__(self, client):
        self._handler = client._get_connection()
        self._stub, self.spans = self._handler._stub, []
        self._handler._stub = self

    def __getattr__(self, name):
        method = getattr(self._stub, name)

        def call(*args, **kwargs):
            start = time.monotonic()
            try:
                return method(*args, **kwargs)
            finally:
                self.spans.append((start, time.monotonic()))
        return call

    def close(self) -> None:
        self._handler._stub = self._stub


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))], 1)


def run_questions(bot, items, counter=None, wire=None) -> tuple[dict, list]:
    """Quality and latency of asking every item; the answers' shapes (for parity).

    Time outside the server, per question: the ask() time less the question's embedding, less
    the union of its client calls' spans (`counter`, pymilvus' work counted as the server's), and
    with `wire` also less the union of its gRPC calls' spans only (pymilvus' work counted as the
    app's). For the local backend both are its whole ask() after embedding."""
    from dataclasses import replace

    from benchmarks.bench_milvus_scale import union
    from qa.evaluation import _figures, _outcome

    bot._engine = replace(bot.engine, embedder=TimedEmbedder(bot.engine.embedder))
    outcomes, lat, shapes, calls, trips, own_trips, outside, outside_wire = [], [], [], [], [], [], [], []
    bot.ask(items[0].question, history=list(items[0].history))  # warm: the version's document table
    for item in items:
        if counter:
            counter.reset()
        if wire:
            wire.spans.clear()
        bot.engine.embedder.seconds = 0.0
        t = time.monotonic()
        ans = bot.ask(item.question, k=10, history=list(item.history))
        took = time.monotonic() - t
        lat.append(took * 1000)
        took -= bot.engine.embedder.seconds
        outside.append((took - (union(counter.spans) if counter else 0.0)) * 1000)
        outside_wire.append((took - (union(wire.spans) if wire else 0.0)) * 1000)
        if counter:
            calls.append(len(counter.calls))
            trips.append(counter.round_trips())
            own_trips.append(counter.round_trips(threading.current_thread().name))
        outcomes.append(_outcome(item, ans))
        shapes.append(shape(ans))
    bot._engine = replace(bot.engine, embedder=bot.engine.embedder._embedder)
    figs = _figures([o for o in outcomes if o["gold"]])
    out = {"hit@1": figs["hit@1"], "hit@5": figs["recall@5"], "highlight@1": figs["answer_in_highlight"],
           "answered": figs["answered"], "questions": len(items), "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
           "outside_server_p50_ms": pct(outside, 0.5), "outside_server_p99_ms": pct(outside, 0.99),
           "outside_server_incl_pymilvus_p50_ms": pct(outside_wire, 0.5),
           "outside_server_incl_pymilvus_p99_ms": pct(outside_wire, 0.99)}
    if counter:
        out["calls_per_question_max"] = max(calls)
        out["round_trips_per_question_max"] = max(trips)
        out["round_trips_per_question_mean"] = round(sum(trips) / len(trips), 2)
        # The asking thread's own calls: what the question waits for (the version check runs beside).
        out["asking_thread_round_trips_max"] = max(own_trips)
        out["asking_thread_round_trips_mean"] = round(sum(own_trips) / len(own_trips), 2)
    return out, shapes


def shape(ans):
    return (ans.answered, [(p.citation.doc_id, p.citation.start, p.citation.end, p.highlight_start, p.highlight_end,
                            [(c.doc_id, c.start, c.end) for c in p.also_in]) for p in ans.passages])


def build(docs: Path, index, embedder=None):
    from qa import QA

    t = time.perf_counter()
    bot = QA(docs, index, embedder=embedder, progress=False)
    return bot, time.perf_counter() - t


def write_speed(source, make_backend) -> float:
    """Passages per second for a backend to take the source's passages (no embedding)."""
    from qa.backends.base import PassageBatch

    batches: list[PassageBatch] = [source.passages_of(d) for d in source.documents()]
    n = sum(len(b.chunks) for b in batches)
    backend = make_backend()
    t = time.perf_counter()
    writer = backend.writer(source.settings, fresh=True)
    for b in batches:
        writer.upsert(b)
    writer.commit().close()
    return round(n / (time.perf_counter() - t), 1)


def main() -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    args = _args()
    from qa.backends.local import LocalBackend
    from qa.backends.milvus import MilvusBackend
    from qa.evaluation import load_questions

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-milvus-"))
    work.mkdir(parents=True, exist_ok=True)
    proc = None
    uri = args.uri
    if uri is None:
        proc, uri = start_server(work / "milvus-data")
    try:
        results: dict = {"uri": uri if args.uri else "milvus-lite server (loopback)"}
        if args.update is not None:
            results["update"] = update_figures(uri, work, Path(args.bbc), args.update, Path(args.seeds))
            print(json.dumps(results, indent=1))
            if args.out:
                Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")
            return 0
        sets = {}
        seed_items, _ = load_questions(args.seeds, ROOT / "seeds")
        seed_docs = work / "seeds"
        shutil.copytree(ROOT / "seeds", seed_docs, dirs_exist_ok=True)
        sets["seeds"] = (seed_docs, seed_items)
        sets["squad"] = (work / "squad", squad_subset(Path(args.squad), args.articles, args.n, work / "squad"))
        embedder = None  # the first engine exports and loads the model; the others share it
        for name, (docs, items) in sets.items():
            local, local_s = build(docs, work / f"{name}-index", embedder)
            embedder = local.engine.embedder
            milvus, milvus_s = build(docs, uri, embedder)  # the server is cleared between sets
            passages = local.passage_count()
            row = {"passages": passages,
                   "index_local_passages_per_s": round(passages / local_s, 1),
                   "index_milvus_passages_per_s": round(passages / milvus_s, 1)}
            row["local"], local_shapes = run_questions(local, items)
            backend = milvus.engine.backend
            wire = WireTimer(backend.client)
            counter = backend.client = CountingClient(backend.client)
            row["milvus"], milvus_shapes = run_questions(milvus, items, counter, wire)
            backend.client = counter._client
            wire.close()
            row["identical_answers"] = sum(a == b for a, b in zip(local_shapes, milvus_shapes))
            row["write_only_local_passages_per_s"] = write_speed(
                local.engine.backend, lambda: LocalBackend(work / f"{name}-copy", load=False))
            row["write_only_milvus_passages_per_s"] = write_speed(
                local.engine.backend, lambda: MilvusBackend(uri, name=f"copy_{name}", load=False))
            results[name] = row
            # The next set gets a server of its own names: drop this set's alias and collections.
            _clear(uri)
        print(json.dumps(results, indent=1))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    return 0


def update_figures(uri: str, work: Path, bbc: Path, articles: int, seeds_questions: Path) -> dict:
    """One changed article among the seeds and `articles` BBC articles: the update in place against
    writing every passage to a new collection (the commit before updates in place)."""
    from common import even_sample
    from qa import QA
    from qa.backends.milvus import MilvusBackend
    from qa.evaluation import load_questions

    docs = work / "update-docs"
    shutil.copytree(ROOT / "seeds", docs, dirs_exist_ok=True)
    for path in even_sample(sorted(bbc.glob("*.txt")), articles):
        shutil.copyfile(path, docs / path.name)
    t = time.perf_counter()
    bot = QA(docs, uri, progress=False, backend=MilvusBackend(uri, name="update"))
    first_s = time.perf_counter() - t
    before = bot.engine.backend
    changed = sorted(docs.glob("*.txt"))[len(list(docs.glob("*.txt"))) // 2]
    changed.write_text(changed.read_text(encoding="utf-8") + "\n\nThe zeppelin landed on Tuesday, officials said.\n",
                       encoding="utf-8")
    counter = before.client = CountingClient(before.client)
    t = time.perf_counter()
    bot.refresh()
    update_s = time.perf_counter() - t
    before.client = counter._client
    live = bot.engine.backend
    assert (live.collection, live.version) == (before.collection, before.version + 1), "not updated in place"
    batches = [live.passages_of(d) for d in live.documents()]
    full = MilvusBackend(uri, name="update_full", load=False)
    full_counter = full.client = CountingClient(full.client)
    t = time.perf_counter()
    writer = full.writer(live.settings, fresh=True)
    for b in batches:
        writer.upsert(b)
    rebuilt = writer.commit()
    full_s = time.perf_counter() - t
    items, _ = load_questions(seeds_questions, ROOT / "seeds")
    in_place, in_place_shapes = run_questions(bot, items)
    fresh, fresh_shapes = run_questions(QA(docs, uri, embedder=bot.engine.embedder, backend=rebuilt), items)
    return {"documents": len(batches), "passages": live.stats().passages,
            "changed_document_passages": len(live.passages_of(changed.name).chunks),
            "first_index_s": round(first_s, 1),
            "update_in_place": {"passage_rows_sent": counter.rows.get(live.collection, 0),
                                "rows_sent": sum(counter.rows.values()), "seconds_end_to_end": round(update_s, 2)},
            "whole_collection_write": {"passage_rows_sent": full_counter.rows.get(rebuilt.collection, 0),
                                       "rows_sent": sum(full_counter.rows.values()),
                                       "seconds_write_only": round(full_s, 2)},
            "seed_questions_p50_ms": {"in_place": in_place["p50_ms"], "new_collection": fresh["p50_ms"]},
            "seed_answers_identical": f"{sum(a == b for a, b in zip(in_place_shapes, fresh_shapes))} of {len(items)}"}


def _clear(uri: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    for alias in client.list_aliases().get("aliases", []):
        client.drop_alias(alias)
    for name in client.list_collections():
        client.drop_collection(name)


if __name__ == "__main__":
    raise SystemExit(main())
