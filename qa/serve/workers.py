"""Where questions run: in the server's own process, or in worker processes forked from it.

Workers are forked after the engine is imported and the index opened, so the imported code and the
memory-mapped index are shared with the server process; each worker loads its own query model (an
ONNX session does not survive a fork) and follows new index versions by itself (`QA.follow`).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial

from ..errors import QAError
from ..types import Answer

log = logging.getLogger("qa.serve")

_BOT = None  # the QA a forked worker inherits from the server process


class WorkersDown(QAError):
    """The worker processes stopped; they are being started again."""


class InProcess:
    """Questions run on threads of the server process."""

    def __init__(self, bot):
        self.bot = bot
        self.workers = 1

    def ask(self, **kwargs) -> Answer:
        return self.bot.ask(**kwargs)

    async def ask_async(self, **kwargs) -> Answer:
        return await asyncio.get_running_loop().run_in_executor(None, partial(self.bot.ask, **kwargs))

    def statements(self, **kwargs):
        return self.bot.statements(**kwargs)

    def close(self) -> None:
        pass


class WorkerPool:
    """Questions run in `workers` processes forked from this one.

    Args:
        bot: the opened QA; each worker asks its own inherited copy.
        workers: how many processes (2 or more).
    """

    def __init__(self, bot, workers: int):
        self.bot = bot
        self.workers = workers
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        global _BOT
        _BOT = self.bot
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        if _holds_connections(self.bot):
            # An index on a server: nothing to share, and its client (gRPC channel, threads) must not
            # cross a fork. Each worker starts afresh and opens its own connection.
            pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_open_worker,
                                       initargs=(str(self.bot.docs_dir), str(self.bot.index_location),
                                                 self.bot.settings, threads, os.getpid()))
        else:
            pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                       initializer=_start_worker, initargs=(threads,))
        # With fork, the first task forks every worker: do it now, before the server starts threads.
        pool.submit(os.getpid).result(timeout=120)
        return pool

    def ask(self, **kwargs) -> Answer:
        pool = self._pool
        try:
            return pool.submit(_ask, kwargs).result()
        except BrokenProcessPool:
            raise self._restart(pool) from None

    def statements(self, **kwargs):
        pool = self._pool
        try:
            return pool.submit(_statements, kwargs).result()
        except BrokenProcessPool:
            raise self._restart(pool) from None

    async def ask_async(self, **kwargs) -> Answer:
        pool = self._pool
        try:
            return await asyncio.wrap_future(pool.submit(_ask, kwargs))
        except BrokenProcessPool:
            raise self._restart(pool) from None

    def _restart(self, broken: ProcessPoolExecutor) -> WorkersDown:
        with self._lock:
            if self._pool is broken:  # the first question to see it restarts; the others just report
                log.error("a worker process died; starting the workers again")
                self._pool = self._start()
                broken.shutdown(wait=False, cancel_futures=True)
        return WorkersDown("a worker process stopped and the workers were restarted; ask again")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _holds_connections(bot) -> bool:
    from ..backends import is_server_location

    return is_server_location(getattr(bot, "index_location", ""))


def _open_worker(docs: str, index: str, settings, threads: int, parent: int) -> None:
    global _BOT
    from ..api import QA

    threading.Thread(target=_exit_with_parent, args=(parent,), name="qa-orphan-watch", daemon=True).start()
    _BOT = QA(docs, index, settings)
    _BOT.fresh_model(threads=threads)


def _start_worker(threads: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="qa-orphan-watch", daemon=True).start()
    _BOT.fresh_model(threads=threads)


def _exit_with_parent(parent: int) -> None:
    """A worker whose server process died (even by SIGKILL) exits instead of lingering."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _ask(kwargs: dict) -> Answer:
    return _BOT.ask(**kwargs)


def _statements(kwargs: dict):
    return _BOT.statements(**kwargs)


def asker_for(bot, workers: int):
    """The place questions run for `workers` processes (1: in this process)."""
    return InProcess(bot) if workers <= 1 else WorkerPool(bot, workers)
