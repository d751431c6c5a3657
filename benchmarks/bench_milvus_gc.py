"""Where warm Milvus' time outside the server goes, against local: garbage collection, waiting, CPU.

    .venv/bin/python benchmarks/bench_milvus_gc.py [--articles 8] [--n 200] [--rounds 2]

The set-up of bench_milvus_outside.py (a SQuAD subset in both backends, a `milvus-lite server` on
loopback, each question's embedding served from memory). Per question on the asking thread:
wall time outside the client calls' spans (local: all of ask()); its CPU time outside its own calls
(`time.thread_time`; the rest of the wall time is time the thread was runnable but not running:
waiting for the GIL or a core); the garbage collector's time, from `gc.callbacks`, split into
collections inside and outside the calls' spans, and how many of each generation; context switches
(`RUSAGE_THREAD`). Each round runs local and warm Milvus with the collector as Python starts it
("gc on"), disabled ("gc off") and with everything alive after warming frozen (`gc.freeze()`).
Also printed: the process' threads during the run and the GIL switch interval.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class TimedClient:
    """Wraps a client; records each call's wall span, the calling thread and its CPU time in the call."""

    def __init__(self, client):
        self._client = client
        self.reset()

    def reset(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self.cpu_of: dict[int, float] = {}
        self.faults_of: dict[int, int] = {}
        self.sys_of: dict[int, float] = {}

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(*args, **kwargs):
            ru, start, cpu = resource.getrusage(resource.RUSAGE_THREAD), time.monotonic(), time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.spans.append((start, time.monotonic()))
                me, now = threading.get_ident(), resource.getrusage(resource.RUSAGE_THREAD)
                self.cpu_of[me] = self.cpu_of.get(me, 0.0) + time.thread_time() - cpu
                self.faults_of[me] = self.faults_of.get(me, 0) + now.ru_minflt - ru.ru_minflt
                self.sys_of[me] = self.sys_of.get(me, 0.0) + now.ru_stime - ru.ru_stime
        return call


class Probe:
    """Nanoseconds on a CPU and waiting on a run queue (/proc/.../schedstat) of the calling thread,
    and on a CPU of the server's threads and of this process' other threads (gRPC's, the pool's)."""

    def __init__(self, server_pid: int):
        self.server = [p / "schedstat" for p in Path(f"/proc/{server_pid}/task").iterdir()]
        me = threading.get_native_id()
        self.mine = Path(f"/proc/self/task/{me}/schedstat")
        self.others = [p / "schedstat" for p in Path("/proc/self/task").iterdir() if int(p.name) != me]

    @staticmethod
    def _run(paths) -> int:
        total = 0
        for p in paths:
            try:
                total += int(p.read_text().split()[0])
            except OSError:
                pass
        return total

    def read(self) -> tuple[int, int, int, int]:
        run, wait, _ = map(int, self.mine.read_text().split())
        return run, wait, self._run(self.server), self._run(self.others)


class ProbedClient:
    """Wraps a client; on the asking thread, a Probe reading at each call's start and end."""

    def __init__(self, client, probe: Probe, asking: int):
        self._client, self._probe, self._asking = client, probe, asking
        self.marks: list[tuple[str, tuple]] = []

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(*args, **kwargs):
            if threading.get_ident() != self._asking:
                return method(*args, **kwargs)
            self.marks.append(("in", self._probe.read()))
            try:
                return method(*args, **kwargs)
            finally:
                self.marks.append(("out", self._probe.read()))
        return call


def sched_run(bot, items, probe: Probe, client: ProbedClient | None) -> dict:
    """Per question, ms spent outside the asking thread's calls: the thread running, waiting on a
    run queue, neither (sleeping: e.g. for the GIL); the server's and the other threads' CPU then;
    and the same inside the calls."""
    keys = ("run", "wait", "server", "others")
    sums = {f"{k}_{w}": 0.0 for k in (*keys, "sleep") for w in ("outside", "inside")}
    for item in items:
        marks = [("out", probe.read())]
        if client is not None:
            client.marks = marks
        start = time.monotonic()
        bot.ask(item.question, k=10, history=list(item.history))
        wall = time.monotonic() - start
        marks.append(("in", probe.read()))
        span = {"outside": [0] * 4, "inside": [0] * 4}
        for (kind, a), (_, b) in zip(marks, marks[1:]):
            part = span["outside" if kind == "out" else "inside"]
            for i in range(4):
                part[i] += b[i] - a[i]
        for where, vals in span.items():
            for k, v in zip(keys, vals):
                sums[f"{k}_{where}"] += v / 1e6
        sums["wall"] = sums.get("wall", 0.0) + wall * 1000
    n = len(items)
    return {k: round(v / n, 3) for k, v in sums.items() if not k.startswith("sleep")}


_BEFORE = ("none", "search", "sleep", "spin")


def before_run(local, backend, items) -> dict:
    """Each local question asked four times in a row (the order rotating between questions), after
    nothing, after Milvus' two searches for it ("search"), after sleeping as long as those took
    ("sleep": the thread off its core, others on it), after spinning as long on this thread
    ("spin"). The asking thread's CPU ms in ask() alone: mean, and the median of its difference
    from "none" question by question."""
    from qa.retrieve import POOL, lexical_query, terms

    cpu: dict[str, list[float]] = {k: [] for k in _BEFORE}
    for i, item in enumerate(items):
        t = time.monotonic()  # how long the searches take now (the sleep and the spin last as long)
        backend.search_dense(local.engine.embedder.embed_query(item.question), POOL)
        backend.search_lexical(terms(lexical_query(item.question)), POOL)
        took = time.monotonic() - t
        for kind in _BEFORE[i % 4:] + _BEFORE[:i % 4]:
            if kind == "search":
                backend.search_dense(local.engine.embedder.embed_query(item.question), POOL)
                backend.search_lexical(terms(lexical_query(item.question)), POOL)
            elif kind == "sleep":
                time.sleep(took)
            elif kind == "spin":
                end = time.monotonic() + took
                while time.monotonic() < end:
                    pass
            c = time.thread_time()
            local.ask(item.question, k=10, history=list(item.history))
            cpu[kind].append((time.thread_time() - c) * 1000)
    n = len(items)
    out = {}
    for k, v in cpu.items():
        diff = sorted(a - b for a, b in zip(v, cpu["none"]))
        out[k] = {"cpu_mean": round(sum(v) / n, 3), "minus_none_median": round(diff[n // 2], 3),
                  "minus_none_mean": round(sum(diff) / n, 3)}
    return out


def _own_wait() -> float:
    """Seconds the calling thread has spent runnable on a run queue (schedstat's second field)."""
    with open("/proc/thread-self/schedstat", "rb") as f:
        return int(f.read().split()[1]) / 1e9


class WaitClient(TimedClient):
    """A TimedClient that also adds up the calling thread's run-queue wait inside the calls."""

    keep = False  # hold every reply until reset(): its objects are then freed outside the measurement

    def reset(self) -> None:
        super().reset()
        self.wait_of: dict[int, float] = {}
        self.kept: list = []

    def __getattr__(self, name):
        call = super().__getattr__(name)

        def waited(*args, **kwargs):
            w = _own_wait()
            try:
                reply = call(*args, **kwargs)
                if self.keep:
                    self.kept.append(reply)
                return reply
            finally:
                me = threading.get_ident()
                self.wait_of[me] = self.wait_of.get(me, 0.0) + _own_wait() - w
        return waited


_STAGES = ("search_dense", "search_lexical", "neighbours", "fetch", "is_current", "documents", "stats")


def stage_timers(backend, client: TimedClient | None, into: dict[str, float]) -> None:
    """Wrap the backend's methods (_STAGES) so that each adds the asking thread's CPU seconds in it,
    less its client calls', to `into` (an inner call of a wrapped method counts in both)."""
    asking = threading.get_ident()
    for name in _STAGES:
        method = getattr(backend, name, None)
        if method is None:
            continue

        def timed(*a, _method=method, _name=name, **kw):
            if threading.get_ident() != asking:
                return _method(*a, **kw)
            inside = client.cpu_of.get(asking, 0.0) if client is not None else 0.0
            c = time.thread_time()
            try:
                return _method(*a, **kw)
            finally:
                spent = time.thread_time() - c
                if client is not None:
                    spent -= client.cpu_of.get(asking, 0.0) - inside
                into[_name] = into.get(_name, 0.0) + spent
        setattr(backend, name, timed)


def paired_run(local, milvus, client: WaitClient, items, gclog, keep: bool = False) -> dict:
    """Each question asked of local and of warm Milvus one after the other (which first alternates),
    so both see the same load. Per backend, ms outside the asking thread's calls: wall, on a CPU,
    waiting on a run queue, the rest (asleep: e.g. for the GIL), the collector's; and the median
    and mean of Milvus' minus local's, question by question. `keep`: the pymilvus replies are
    freed after the measurement (not in the asking thread's code that drops them)."""
    from bench_milvus_scale import union

    me = threading.get_ident()
    bot_of = {"local": local, "milvus": milvus}
    client.keep = keep
    rows = {"local": [], "milvus": []}
    stages: dict[str, dict[str, float]] = {"local": {}, "milvus": {}}
    stage_timers(local.engine.backend, None, stages["local"])
    stage_timers(milvus.engine.backend, client, stages["milvus"])
    for i, item in enumerate(items):
        for name in (("local", "milvus") if i % 2 == 0 else ("milvus", "local")):
            bot = local if name == "local" else milvus
            client.reset()
            first = len(gclog.events)
            w0, c0, t0 = _own_wait(), time.thread_time(), time.monotonic()
            bot.ask(item.question, k=10, history=list(item.history))
            t1, c1, w1 = time.monotonic(), time.thread_time(), _own_wait()
            spans = client.spans if name == "milvus" else []
            outside = t1 - t0 - union(spans)
            cpu = c1 - c0 - (client.cpu_of.get(me, 0.0) if name == "milvus" else 0.0)
            wait = w1 - w0 - (client.wait_of.get(me, 0.0) if name == "milvus" else 0.0)
            gcs = sum(e - s - overlap(s, e, spans) for s, e, _, t in gclog.events[first:] if t == me)
            rows[name].append([x * 1000 for x in (outside, cpu, wait, outside - cpu - wait, gcs)])
    out = {}
    keys = ("outside", "cpu", "runqueue", "rest", "gc")
    for name, r in rows.items():
        out[name] = {k: round(sum(x[j] for x in r) / len(r), 3) for j, k in enumerate(keys)}
        out[name]["outside_p50"] = round(sorted(x[0] for x in r)[len(r) // 2], 2)
    n = len(items)
    for j, k in enumerate(keys):
        d = sorted(m[j] - l[j] for m, l in zip(rows["milvus"], rows["local"]))
        out[f"excess_{k}"] = {"median": round(d[n // 2], 3), "mean": round(sum(d) / n, 3)}
    for name in ("local", "milvus"):
        out[name]["stages_cpu"] = {k: round(v / n * 1000, 3) for k, v in stages[name].items()}
        out[name]["rest_cpu"] = round(out[name]["cpu"] - sum(out[name]["stages_cpu"].values()), 3)
        for m in _STAGES:  # unwrap
            vars(bot_of[name].engine.backend).pop(m, None)
    return out


_CANARY = {i: i for i in range(4000)}
_CANARY_ARRAY = None  # numpy's, made when --canary runs (numpy is not imported for the other modes)


def _canary() -> float:
    """CPU seconds of a fixed piece of Python work (4,000 dict lookups, a 64 KB sum)."""
    c = time.thread_time()
    sum(map(_CANARY.__getitem__, range(4000)))
    _CANARY_ARRAY.sum()
    return time.thread_time() - c


class CanaryClient:
    """Wraps a client; on the asking thread, the canary's CPU just before and just after each call."""

    def __init__(self, client, asking: int):
        self._client, self._asking = client, asking
        self.before: list[float] = []
        self.after: list[float] = []

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(*args, **kwargs):
            if threading.get_ident() != self._asking:
                return method(*args, **kwargs)
            self.before.append(_canary())
            try:
                return method(*args, **kwargs)
            finally:
                self.after.append(_canary())
        return call


class GcLog:
    """Start and stop (monotonic) of every collection, with its generation and thread."""

    def __init__(self):
        self.events: list[tuple[float, float, int, int]] = []
        self._start: dict[int, float] = {}

    def __call__(self, phase: str, info: dict) -> None:
        me = threading.get_ident()
        if phase == "start":
            self._start[me] = time.monotonic()
        else:
            self.events.append((self._start.pop(me, time.monotonic()), time.monotonic(), info["generation"], me))


def overlap(a: float, b: float, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e in spans)


def _ticks(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds of a process (all its threads)."""
    return _ticks(Path(f"/proc/{pid}/stat").read_text())


def other_cpu() -> float:
    """CPU seconds of this process' threads other than the calling one (gRPC's, the pool's)."""
    me, total = threading.get_native_id(), 0.0
    for task in Path("/proc/self/task").iterdir():
        if int(task.name) != me:
            try:
                total += _ticks((task / "stat").read_text())
            except OSError:
                pass
    return total


def main() -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_milvus import pct, start_server, subset_arguments
    from bench_milvus_outside import both_backends
    from bench_milvus_scale import union

    ap = subset_arguments(__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="on,off,frozen", help="comma-separated: on, off, frozen")
    ap.add_argument("--sched", action="store_true",
                    help="instead: run queue, sleep and other threads' CPU outside the calls (schedstat)")
    ap.add_argument("--before", action="store_true",
                    help="instead: local questions after nothing, Milvus' searches, a sleep or a spin as long (before_run)")
    ap.add_argument("--paired", action="store_true",
                    help="instead: each question of local and of Milvus one after the other (paired_run)")
    ap.add_argument("--keep", action="store_true",
                    help="with --paired: also rounds freeing pymilvus' replies after the measurement")
    ap.add_argument("--profile", action="store_true", help="instead: cProfile of warm Milvus questions")
    ap.add_argument("--canary", action="store_true",
                    help="instead: CPU of a fixed piece of work just before and just after each call")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-gc-"))
    proc, uri = start_server(work / "milvus-data")
    gclog = GcLog()
    try:
        items, local, milvus = both_backends(args, work, uri)
        backend = milvus.engine.backend
        client = backend.client = TimedClient(backend.client)
        me = threading.get_ident()
        gc.callbacks.append(gclog)

        def run(bot, calls=None):
            rows = []
            other0, server0 = other_cpu(), proc_cpu(proc.pid)
            for item in items:
                if calls:
                    calls.reset()
                first = len(gclog.events)
                ru0, cpu0, start = resource.getrusage(resource.RUSAGE_THREAD), time.thread_time(), time.monotonic()
                bot.ask(item.question, k=10, history=list(item.history))
                end, cpu1, ru1 = time.monotonic(), time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD)
                spans = list(calls.spans) if calls else []
                inside = union(spans)
                mine = [(s, e, g) for s, e, g, t in gclog.events[first:] if t == me]
                gc_in = sum(overlap(s, e, spans) for s, e, _ in mine)
                gc_all = sum(e - s for s, e, _ in mine)
                rows.append({
                    "outside": (end - start - inside) * 1000,
                    "cpu_outside": (cpu1 - cpu0 - (calls.cpu_of.get(me, 0.0) if calls else 0.0)) * 1000,
                    "gc_outside": (gc_all - gc_in) * 1000, "gc_inside": gc_in * 1000,
                    "gens": [sum(1 for *_, g in mine if g == k) for k in range(3)],
                    "minflt_outside": ru1.ru_minflt - ru0.ru_minflt - (calls.faults_of.get(me, 0) if calls else 0),
                    "sys_outside": (ru1.ru_stime - ru0.ru_stime - (calls.sys_of.get(me, 0.0) if calls else 0.0)) * 1000,
                    "vcsw": ru1.ru_nvcsw - ru0.ru_nvcsw, "ivcsw": ru1.ru_nivcsw - ru0.ru_nivcsw,
                    "other_gc": sum(1 for *_, t in gclog.events[first:] if t != me)})
            out = [r["outside"] for r in rows]
            mean = lambda k: round(sum(r[k] for r in rows) / len(rows), 3)  # noqa: E731
            return {"p50": round(pct(out, 0.5), 2), "p99": round(pct(out, 0.99), 2), "mean": mean("outside"),
                    "cpu_outside_mean": mean("cpu_outside"), "cpu_outside_p50": round(pct([r["cpu_outside"] for r in rows], 0.5), 2),
                    "gc_outside_mean": mean("gc_outside"), "gc_inside_mean": mean("gc_inside"),
                    "gc_per_q": [round(sum(r["gens"][k] for r in rows) / len(rows), 3) for k in range(3)],
                    "minflt_outside_mean": mean("minflt_outside"), "sys_outside_mean": mean("sys_outside"),
                    "other_threads_cpu_ms_per_q": round((other_cpu() - other0) / len(rows) * 1000, 3),
                    "server_cpu_ms_per_q": round((proc_cpu(proc.pid) - server0) / len(rows) * 1000, 3),
                    "vcsw_mean": mean("vcsw"), "ivcsw_mean": mean("ivcsw"), "other_thread_gcs": sum(r["other_gc"] for r in rows)}

        run(local), run(milvus, client)  # warm both
        threads = sorted(t.name for t in threading.enumerate())
        native = {}
        for task in Path("/proc/self/task").iterdir():
            name = (task / "comm").read_text().strip()
            native[name] = native.get(name, 0) + 1
        print(json.dumps({"threads": threads, "native_threads": native, "switchinterval": sys.getswitchinterval(),
                          "gc_threshold": gc.get_threshold(), "gc_count_after_warm": gc.get_count(),
                          "objects_tracked": len(gc.get_objects())}), flush=True)
        if args.canary:
            import numpy as np
            global _CANARY_ARRAY
            _CANARY_ARRAY = np.ones(8192)
            canary = backend.client = CanaryClient(client._client, me)
            for rnd in range(args.rounds):
                canary.before.clear(), canary.after.clear()
                for item in items:
                    milvus.ask(item.question, k=10, history=list(item.history))
                d = sorted(a - b for a, b in zip(canary.after, canary.before))
                med = lambda v: sorted(v)[len(v) // 2] * 1e6  # noqa: E731
                print(json.dumps({"round": rnd + 1, "calls": len(d), "canary_before_us_median": round(med(canary.before), 1),
                                  "canary_after_us_median": round(med(canary.after), 1),
                                  "after_minus_before_us": {"median": round(d[len(d) // 2] * 1e6, 1),
                                                            "mean": round(sum(d) / len(d) * 1e6, 1)}}), flush=True)
            return 0
        if args.profile:
            import cProfile
            import pstats
            prof = cProfile.Profile()
            prof.enable()
            for item in items:
                milvus.ask(item.question, k=10, history=list(item.history))
            prof.disable()
            stats = pstats.Stats(prof)
            stats.sort_stats("cumulative").print_callees("search_lexical")
            stats.sort_stats("tottime").print_stats(25)
            return 0
        if args.paired:
            waiting = backend.client = WaitClient(client._client)
            for rnd in range(args.rounds):
                for keep in (False, True) if args.keep else (False,):
                    print(json.dumps({"round": rnd + 1, "keep": keep,
                                      **paired_run(local, milvus, waiting, items, gclog, keep)}), flush=True)
            return 0
        if args.before:
            for rnd in range(args.rounds):
                print(json.dumps({"round": rnd + 1, **before_run(local, backend, items)}), flush=True)
            return 0
        if args.sched:
            probe = Probe(proc.pid)
            probed = backend.client = ProbedClient(client, probe, me)
            for rnd in range(args.rounds):
                print(json.dumps({"round": rnd + 1, "local": sched_run(local, items, probe, None),
                                  "milvus_warm": sched_run(milvus, items, probe, probed)}), flush=True)
            return 0
        modes = args.modes.split(",")
        for rnd in range(args.rounds):
            for mode in modes:
                if mode == "off":
                    gc.disable()
                elif mode == "frozen":
                    gc.collect()
                    gc.freeze()
                row = {"round": rnd + 1, "mode": mode, "local": run(local), "milvus_warm": run(milvus, client)}
                gc.enable()
                gc.unfreeze()
                print(json.dumps(row), flush=True)
        print(json.dumps({"passages": local.passage_count(), "questions": len(items),
                          "threads_end": sorted(t.name for t in threading.enumerate())}))
    finally:
        gc.callbacks.remove(gclog) if gclog in gc.callbacks else None
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
