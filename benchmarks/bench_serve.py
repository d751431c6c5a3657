"""Serving a team: questions/s and latency under concurrent clients, today's path against the new one.

    .venv/bin/python -m benchmarks.bench_serve [--docs seeds]
        [--questions-file F] [--questions 1000] [--clients 50] [--sessions 50] [--workers 2]

Copies the documents into a temporary folder, builds their index once with `qa index` (timed, not part
of any figure), then starts `app.py` on free loopback ports and measures, in one run:

1. today's path: the Gradio queue's `/ask` endpoint (`/gradio_api/call/ask`), one process;
2. the JSON API `POST /v1/ask`, one process;
3. the JSON API with --workers processes forked from the server;
4. the same while a new article is added and `qa index` writes a new index version mid-load.

Each sends --questions questions from --clients concurrent keep-alive connections (a lean asyncio
HTTP client, so the client takes little of the two cores). Questions are every question of a
development file (answerable, unanswerable, follow-ups with their history), cycled. Every answer is
compared with the answer to the same question asked alone before the load: it must be identical (the
whole JSON); in run 4, identical to the old version's or the new version's answer. The servers run
with `--rate-limit 0`: 50 clients from one address would otherwise share one client's limit.

After runs 2 and 3, the chat: --sessions browser-like sessions on the Gradio queue protocol (join +
event stream), each asking 5 questions 1 s apart; the time from sending a question to its answer.

Memory: resident, proportional and unique (USS: private pages) memory of the server and each worker,
from /proc/PID/smaps_rollup, after the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.probe import children, stop

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "data" / "seed_questions_dev.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(docs: Path, index: Path, workers: int, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "QA_TOKEN": ""}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--docs", str(docs), "--index", str(index),
                             "--port", str(port), "--workers", str(workers), "--rate-limit", "0"],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("app.py did not start in 10 minutes")


# -- a lean HTTP/1.1 keep-alive client ----------------------------------------------------------
class Conn:
    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None
                      ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked, close = None, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.lower() == "close":
                close = True
        if chunked:
            data = bytearray()
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data += await self.reader.readexactly(size)
                await self.reader.readexactly(2)
            data = bytes(data)
        elif length is not None:
            data = await self.reader.readexactly(length)
        else:
            data = await self.reader.read()
            close = True
        if close:
            self.close()
        return status, data

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


JSON = {"Content-Type": "application/json"}


async def ask_api(conn: Conn, q: str, history: list[str]) -> tuple[int, dict | None]:
    status, data = await conn.request("POST", "/v1/ask", json.dumps({"question": q, "k": 5, "history": history}).encode(), JSON)
    return status, json.loads(data) if status == 200 else None


async def ask_gradio(conn: Conn, q: str, history: list[str]) -> tuple[int, dict | None]:
    body = json.dumps({"data": [q, 5, json.dumps(history), "[]"]}).encode()
    status, data = await conn.request("POST", "/gradio_api/call/ask", body, JSON)
    if status != 200:
        return status, None
    event = json.loads(data)["event_id"]
    status, data = await conn.request("GET", f"/gradio_api/call/ask/{event}")
    for block in data.decode().split("\n\n"):
        if block.startswith("event: complete"):
            payload = block.split("data:", 1)[1].strip()
            return 200, json.loads(json.loads(payload)[0])
    return 500, None


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


async def load(port: int, asker, questions: list[tuple[str, list[str]]], n: int, clients: int, solo: dict,
               more=None) -> dict:
    """n questions from `clients` connections; or, with `more`, questions until more() is False."""
    todo = list(range(n)) if more is None else None
    count = 0
    lat, errors, mismatched = [], 0, 0

    async def client():
        nonlocal errors, mismatched
        conn = Conn(port)
        nonlocal count
        while (todo if more is None else more()):
            i = todo.pop() if more is None else count
            count += 1
            q, h = questions[i % len(questions)]
            t = time.perf_counter()
            try:
                status, answer = await asker(conn, q, h)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status, answer = 0, None
                conn.close()
            lat.append(time.perf_counter() - t)
            if status != 200:
                errors += 1
            elif answer not in solo[(q, tuple(h))]:
                mismatched += 1
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {"questions": count, "per_s": count / wall, "p50_ms": 1000 * pct(lat, 50), "p99_ms": 1000 * pct(lat, 99),
            "errors": errors, "mismatched": mismatched}


async def solo_answers(port: int, questions) -> dict:
    conn = Conn(port)
    out = {}
    for q, h in questions:
        status, answer = await ask_api(conn, q, h)
        assert status == 200, (q, status)
        out[(q, tuple(h))] = [answer]
    conn.close()
    return out


async def chat(port: int, questions, sessions: int, per_session: int = 5, gap: float = 1.0) -> dict:
    """Browser-like chat sessions on the Gradio queue protocol: join, then read the event stream."""
    status, data = await Conn(port).request("GET", "/config")
    config = json.loads(data)
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    dep = next(d for d in config["dependencies"] if d.get("targets") and ids.get(d["targets"][0][0]) == "ask")
    # The chat's inputs by element id, as a browser sends them (states are kept by the server).
    values = {"k": 5, "sources": [], "since": "", "until": "", "outlets": [], "export-format": "csv"}
    lat, errors = [], 0

    async def session(s: int):
        nonlocal errors
        await asyncio.sleep(random.random() * gap)  # people do not all press Enter in the same instant
        conn = Conn(port)
        hash_ = f"bench{s:04d}{random.randrange(10**8):08d}"
        for j in range(per_session):
            q = questions[(s * per_session + j) % len(questions)][0]
            t = time.perf_counter()
            body = json.dumps({"data": [values.get(ids.get(i), None) if ids.get(i) != "question" else q
                                        for i in dep["inputs"]], "fn_index": dep["id"],
                               "trigger_id": dep["targets"][0][0], "session_hash": hash_, "event_data": None})
            try:
                st, _ = await conn.request("POST", "/gradio_api/queue/join", body.encode(), JSON)
                stream = Conn(port)
                st2, events = await stream.request("GET", f"/gradio_api/queue/data?session_hash={hash_}")
                stream.close()
                compact = events.replace(b" ", b"")
                ok = st == 200 and st2 == 200 and b'"process_completed"' in compact and b'"success":true' in compact
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
                conn.close()
            lat.append(time.perf_counter() - t)
            errors += not ok
            await asyncio.sleep(gap)
        conn.close()

    await asyncio.gather(*(session(s) for s in range(sessions)))
    return {"answers": len(lat), "p50_ms": 1000 * pct(lat, 50), "p99_ms": 1000 * pct(lat, 99), "errors": errors}


def memory(pid: int) -> dict:
    """rss/pss/uss (MB) of a process, from smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) / 1024
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0), "uss": uss,
            "shared": fields.get("Shared_Clean", 0) + fields.get("Shared_Dirty", 0)}


def dev_questions(path: Path) -> list[tuple[str, list[str]]]:
    """Every question of a development file (answerable, unanswerable, follow-ups with their history)."""
    dev = json.loads(path.read_text("utf-8"))
    qs = [(x["q"], []) for x in dev["answerable"]] + [(x if isinstance(x, str) else x["q"], []) for x in dev["unanswerable"]]
    for conv in dev.get("conversations", []):
        turns = [t["q"] if isinstance(t, dict) else t for t in conv.get("turns", conv if isinstance(conv, list) else [])]
        for i, q in enumerate(turns):
            qs.append((q, turns[max(0, i - 3):i]))
    return qs


NEW_ARTICLE = """Velmora harbour reopens after the storm

By Tessa Marlow

The harbour master of Velmora said on Monday that the ferries to Oskarholm would sail again on Thursday.
"""


def build_index(docs: Path, index: Path) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "qa", "index", "--docs", str(docs), "--index", str(index)], check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


async def load_while_reindexing(port: int, docs: Path, index: Path, questions, n: int, clients: int, solo: dict):
    """The load, while a new article is added and `qa index` writes a new version; every answer must be
    the old version's or the new one's."""
    finished = []

    async def reindex():
        await asyncio.sleep(1.0)
        (docs / "zz_velmora_harbour.txt").write_text(NEW_ARTICLE, "utf-8")
        await asyncio.to_thread(build_index, docs, index)
        finished.append(time.perf_counter())

    def more() -> bool:  # until 2 s after the new version is committed (bounded by 10 minutes)
        return (not finished or time.perf_counter() < finished[0] + 2) and time.perf_counter() < t0 + 600

    t0 = time.perf_counter()
    job = asyncio.create_task(reindex())
    # During the load an answer may be the old or the new version's: allow both, checked afterwards.
    seen: dict = {}

    async def recording(conn, q, h):
        status, answer = await ask_api(conn, q, h)
        if status == 200:
            seen.setdefault((q, tuple(h)), []).append(answer)
        return status, answer

    anything = {k: _Anything() for k in solo}
    r = await load(port, recording, questions, n, clients, anything, more)
    await job
    await asyncio.sleep(2.0)  # the workers look for a new version every half second
    new = await solo_answers(port, questions)
    mixed = sum(1 for k, answers in seen.items() for a in answers if a not in solo[k] and a not in new[k])
    return {**r, "mismatched": mixed}


class _Anything(list):
    def __contains__(self, item):
        return True


def report(label: str, r: dict, mem: list[dict], chat_r: dict | None, sessions: int) -> None:
    print(f"{label:38s} {r['per_s']:7.1f} q/s  p50 {r['p50_ms']:6.0f} ms  p99 {r['p99_ms']:6.0f} ms  "
          f"errors {r['errors']}  differing {r['mismatched']}", flush=True)
    for i, m in enumerate(mem):
        who = "server" if i == 0 else f"worker {i}"
        print(f"    {who:9s} rss {m['rss']:6.0f} MB  pss {m['pss']:6.0f} MB  uss {m['uss']:6.0f} MB  "
              f"shared {m['shared']:6.0f} MB", flush=True)
    if chat_r:
        print(f"    chat: {sessions} sessions x 5 questions, 1 s apart: p50 {chat_r['p50_ms']:.0f} ms  "
              f"p99 {chat_r['p99_ms']:.0f} ms  errors {chat_r['errors']} of {chat_r['answers']}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", default=str(ROOT / "seeds"))
    ap.add_argument("--questions-file", default=str(DEV), help="development questions (default: the seeds')")
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default="1,2,3,4", help="which runs, by number (default all four)")
    args = ap.parse_args()
    questions = dev_questions(Path(args.questions_file))
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    docs, index = tmp / "docs", tmp / "index"
    shutil.copytree(args.docs, docs)
    print(f"docs {args.docs}; {len(questions)} distinct questions; {args.questions} per run from {args.clients} "
          f"clients; cores {os.cpu_count()}")
    print(f"index built first by `qa index` in {build_index(docs, index):.0f} s (not part of any figure)", flush=True)
    rows = []
    try:
        runs = (("today: Gradio /ask, 1 process", 1, ask_gradio),
                ("API /v1/ask, 1 process", 1, ask_api),
                (f"API /v1/ask, {args.workers} workers", args.workers, ask_api),
                (f"API, {args.workers} workers, re-indexing", args.workers, None))
        wanted = {int(x) for x in args.only.split(",") if x.strip()}
        for label, workers, asker in (r for n, r in enumerate(runs, start=1) if n in wanted):
            proc, port = start(docs, index, workers, tmp / f"log-{len(rows)}")
            try:
                solo = asyncio.run(solo_answers(port, questions))
                asyncio.run(load(port, asker or ask_api, questions, min(100, args.questions), args.clients, solo))
                if asker is None:
                    r = asyncio.run(load_while_reindexing(port, docs, index, questions, args.questions,
                                                          args.clients, solo))
                else:
                    r = asyncio.run(load(port, asker, questions, args.questions, args.clients, solo))
                mem = [memory(proc.pid)] + [memory(c) for c in children(proc.pid)]
                chat_r = asyncio.run(chat(port, questions, args.sessions)) if asker is ask_api else None
            finally:
                stop(proc)
            rows.append(r)
            report(label, r, mem, chat_r, args.sessions)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r["errors"] == 0 and r["mismatched"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
