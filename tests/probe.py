"""Wait until a local web app answers: shared by the browser tests and the load and speed benchmarks."""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.error
import urllib.request


def wait_until_up(url: str, proc: subprocess.Popen | None = None, timeout: float = 300) -> str | None:
    """Poll `url` until it answers 200.

    Returns:
        None once it answers; otherwise why not (the process exited, or the time ran out), for
        the caller to report in its own way.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            return f"the app exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return None
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            return f"{url} did not answer within {timeout:.0f} s"
        time.sleep(0.5)


def children(pid: int) -> list[int]:
    """The process ids whose parent is `pid` (Linux /proc)."""
    from pathlib import Path

    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return sorted(out)


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a server process: SIGTERM, then SIGKILL if it has not exited within `timeout` s."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


class CountingClient:
    """Wraps a client (e.g. a MilvusClient) and records each call's name and time span, so tests and
    benchmarks can count calls and round trips (calls overlapping in time are one round trip), and
    the rows sent by insert and upsert calls, per collection (`rows`), and the thread that made
    each call (`threads`)."""

    def __init__(self, client):
        self._client = client
        self.reset()

    def reset(self) -> None:
        self.calls: list[str] = []
        self.spans: list[tuple[float, float]] = []
        self.threads: list[str] = []
        self.rows: dict[str, int] = {}

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(*args, **kwargs):
            start = time.monotonic()
            try:
                return method(*args, **kwargs)
            finally:
                self.calls.append(name)
                self.spans.append((start, time.monotonic()))
                self.threads.append(threading.current_thread().name)
                if name in ("insert", "upsert"):
                    collection = args[0] if args else kwargs.get("collection_name")
                    data = args[1] if len(args) > 1 else kwargs.get("data", ())
                    self.rows[collection] = self.rows.get(collection, 0) + len(data)
        return call

    def round_trips(self, thread: str | None = None) -> int:
        """Sequential waves of calls; with `thread`, of that thread's calls only (its own path)."""
        spans = sorted(s for s, t in zip(self.spans, self.threads) if thread is None or t == thread)
        trips, end = 0, -1.0
        for s, e in spans:
            trips, end = (trips + 1, e) if s >= end else (trips, max(end, e))
        return trips
