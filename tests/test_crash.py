"""Crash safety: `qa index` killed with SIGKILL at random moments never leaves an unusable index.

Each run changes the documents, starts an indexing process, kills it with SIGKILL after a seeded
random delay spread over the whole duration of an unkilled run, then checks that the saved index
loads cleanly and is either the old one or the new one (never a mixture), and that the next start
answers correctly about the changed document.

Two kinds of process are killed:
- 20 runs forked from a warm parent that has already imported numpy, FAISS, bm25s, ONNX Runtime and
  the rest of `qa` (nothing run, no threads started before the fork): each is a fresh process
  running the real `qa index` command (`qa.cli.main`) from start to end, so the random delays land
  in the indexing work rather than in imports, and the test stays fast whatever the import cost;
- up to 9 runs of `python -m qa index` in a new interpreter, killed at random moments of their whole
  run (imports included) and once as soon as the new version's folder appears.
"""

from __future__ import annotations

import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qa import QA
from qa.backends.snapshot import Snapshot
from qa.ingest import read_folder
from qa.backends.store import IndexStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RUNS = 20
SEED = 20240611

# The warm parent: imports everything `qa index` needs and loads the model, then forks one indexing
# process per request ("index DOCS INDEX") and reports "pid N", then "done STATUS SECONDS". The only
# instrumentation: a process creates the empty file MARKS/<pid> when it starts writing a new version.
FORK_SERVER = r"""
import os, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
import faiss, bm25s, numpy  # noqa: F401
import qa.api, qa.backends.store, qa.backends.local, qa.indexer, qa.ingest, qa.chunk, qa.attribution, qa.answer, qa.retrieve, qa.cli
MARKS = sys.argv[1]
_new_version = qa.backends.store.IndexStore.new_version
def _marked(self):
    open(os.path.join(MARKS, str(os.getpid())), "w").close()
    return _new_version(self)
qa.backends.store.IndexStore.new_version = _marked
from qa.textutil import _segmenter
_segmenter()
for name in ("onnxruntime", "tokenizers", "trafilatura"):  # what indexing imports lazily (no threads started)
    try:
        __import__(name)
    except ImportError:
        pass
print("ready", flush=True)
for line in sys.stdin:
    cmd, docs, index = line.split("\t")
    index = index.rstrip("\n")
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            code = qa.cli.main(["index", "--docs", docs, "--index", index])
        except BaseException:
            code = 99
        os._exit(code)
    print(f"pid {pid}", flush=True)
    _, status = os.waitpid(pid, 0)
    print(f"done {status} {time.perf_counter() - start:.3f}", flush=True)
"""

BASE = {
    "ferry.txt": """Harbour Council Approves New Ferry Route

The harbour council of Port Alder approved a new ferry route on Tuesday, linking the old port with the island of Vell.

"This route will cut the crossing time in half," council chair Mira Solberg said after the vote.
""",
    "orchard.txt": """Orchard Growers Report Record Apple Harvest

Orchard growers in the Lindvale valley reported a record apple harvest this autumn, citing a mild summer.

"We have never picked so many apples in a single season," grower Tomas Lind told reporters.
""",
    "library.txt": """Library Reopens After Two-Year Renovation

The Brackwater city library reopened on Saturday after a two-year renovation that added a rooftop reading garden.
""",
}

QUESTION = "What was the winning ticket number in the Harbourtown lottery?"


def _news(number: int) -> str:
    return f"""Harbourtown Lottery Draw

The winning ticket number in the Harbourtown lottery was {number}, the lottery office said on Friday.

Nobody has yet claimed the prize, which the office said was the largest in its history.
"""


def _extra(i: int) -> str:
    return f"""Glassworks Number {i} Opens in Tarnby

Glassworks number {i} opened in the town of Tarnby on Monday, employing {i * 7 + 11} glassblowers.
"""


class _ForkServer:
    def __init__(self, tmp: Path):
        env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
        self.log = open(tmp / "fork-server.log", "wb")
        self.marks = tmp / "marks"
        self.marks.mkdir()
        self.proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER, str(self.marks)], cwd=ROOT, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._next(180) == "ready"

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def _next(self, timeout: float) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the fork server said nothing for {timeout} s")

    def run(self, docs: Path, index: Path, kill_after: float | None, once_writing: bool = False) -> tuple[bool, float]:
        """One `qa index` process, killed with SIGKILL `kill_after` s after it starts (or, with
        `once_writing`, after it starts writing a new version). Returns (killed, seconds)."""
        self.proc.stdin.write(f"index\t{docs}\t{index}\n")
        self.proc.stdin.flush()
        pid = int(self._next(60).split()[1])
        started = time.perf_counter()
        killed = False
        if once_writing:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (self.marks / str(pid)).exists() and _alive(pid):
                time.sleep(0.001)
            started = time.perf_counter()
        if kill_after is not None:
            time.sleep(max(0.0, kill_after - (time.perf_counter() - started)))
            try:
                os.kill(pid, signal.SIGKILL)
                killed = True
            except ProcessLookupError:  # already finished
                pass
        _, status, seconds = self._next(120).split()
        status = int(status)
        was_killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert was_killed or (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0), status
        return killed and was_killed, float(seconds)

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _saved_documents(index: Path) -> dict[str, str]:
    """The live version's documents and hashes, after checking it loads cleanly."""
    version = IndexStore(index).current()
    assert version is not None, f"no live version: {sorted(p.name for p in index.iterdir())}"
    snap = Snapshot.load(version)  # raises IndexCorruptError on any damage
    return {d: info.content_hash for d, info in snap.docs.items()}


def _phase(index: Path, committed: bool) -> str:
    """Where a killed run stopped, from what it left in the index folder."""
    live = IndexStore(index).current()
    names = [p.name for p in index.iterdir()]
    if any(n.startswith(".tmp-") for n in names):
        return "writing the new version"
    if any(n.startswith("v-") and n != live.name for n in names):
        return "collecting the old version" if committed else "between rename and switch"
    return "after commit" if committed else "before writing"


def _folder_hashes(docs: Path) -> dict[str, str]:
    return {d.doc_id: d.content_hash for d in read_folder(docs).documents}


def _check_answers(docs: Path, index: Path, number: int, extras: list[int]) -> None:
    bot = QA(docs, index)
    ans = bot.ask(QUESTION)
    assert ans.answered, ans.reason
    top = ans.passages[0]
    assert top.citation.doc_id == "news.txt" and str(number) in top.text, top.text
    assert bot.document_text("news.txt")[top.citation.start:top.citation.end] == top.text
    assert {f"extra{i}.txt" for i in extras} <= {d.doc_id for d in bot.documents()}
    assert _saved_documents(index) == _folder_hashes(docs)


@pytest.fixture
def crash_dirs(tmp_path, seed_qa):
    """A small corpus indexed once in-process (the query model copied from the session's index)."""
    from qa import model_export

    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in {**BASE, "news.txt": _news(100000)}.items():
        (docs / name).write_text(text, encoding="utf-8")
    model = seed_qa.index_dir / "model"
    with pytest.MonkeyPatch.context() as mp:
        if (model / "embed_config.json").exists():
            mp.setattr(model_export, "export_onnx", lambda name, out, quantize=False: shutil.copytree(model, out))
        QA(docs, tmp_path / "index")
    return docs, tmp_path / "index"


def test_sigkill_at_random_moments_leaves_old_or_new_index(crash_dirs, tmp_path):
    docs, index = crash_dirs
    rng = random.Random(SEED)
    server = _ForkServer(tmp_path)
    outcomes = {"old": 0, "new": 0, "finished": 0}
    phases: dict[str, int] = {}
    extras: list[int] = []
    try:
        # One unkilled run sets the time scale of the kills.
        number = 200000
        (docs / "news.txt").write_text(_news(number), encoding="utf-8")
        killed, duration = server.run(docs, index, None)
        assert not killed
        _check_answers(docs, index, number, extras)
        delays = []
        for run in range(RUNS):
            old = _saved_documents(index)
            number = rng.randrange(100000, 999999)
            (docs / "news.txt").write_text(_news(number), encoding="utf-8")
            if run % 3 == 0:
                (docs / f"extra{run}.txt").write_text(_extra(run), encoding="utf-8")
                extras.append(run)
            new = _folder_hashes(docs)
            # Mostly uniform over the whole run; every 4th run aimed at the short write-and-commit phase.
            once_writing = run % 4 == 3
            delay = rng.uniform(0, 0.3) if once_writing else rng.uniform(0, 1.2 * duration)
            delays.append(delay)
            killed, _ = server.run(docs, index, delay, once_writing)
            saved = _saved_documents(index)  # loads cleanly: old or new, never a mixture
            assert saved in (old, new), run
            outcomes["finished" if not killed else "new" if saved == new else "old"] += 1
            if killed:
                phase = _phase(index, saved == new)
                phases[phase] = phases.get(phase, 0) + 1
            _check_answers(docs, index, number, extras)  # the next start answers about the change
    finally:
        server.close()
    print(f"\n{RUNS} runs, unkilled duration {duration:.2f} s, kill delays {min(delays):.3f}-{max(delays):.2f} s: "
          f"{outcomes['old']} killed with the old index live, {outcomes['new']} killed after the new one was "
          f"committed, {outcomes['finished']} finished before the kill; killed {phases}")
    assert sum(outcomes.values()) == RUNS and outcomes["old"] >= 1


def _cold_index(docs: Path, index: Path, kill_after: float | None, once_writing: bool = False) -> tuple[bool, float]:
    """`python -m qa index` in a new interpreter, killed with SIGKILL `kill_after` s after its start (or,
    with `once_writing`, as soon as a new version's folder appears). Returns (killed, seconds)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "qa", "index", "--docs", str(docs), "--index", str(index)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if once_writing:
        deadline = time.monotonic() + 120
        while (time.monotonic() < deadline and proc.poll() is None
               and not any(p.name.startswith(".tmp-") for p in index.iterdir())):
            time.sleep(0.001)
    elif kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            pass
    killed = (kill_after is not None or once_writing) and proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    code = proc.wait(timeout=180)
    if killed and code == 0:  # it finished between the check and the signal
        killed = False
    assert code == (-signal.SIGKILL if killed else 0), code
    return killed, time.perf_counter() - started


def test_sigkill_of_cold_qa_index_processes(crash_dirs):
    """The real command line, each run in a new interpreter, killed at random moments of its whole run
    (imports included), and once as soon as it starts writing."""
    docs, index = crash_dirs
    rng = random.Random(SEED + 1)
    (docs / "news.txt").write_text(_news(300000), encoding="utf-8")
    killed, duration = _cold_index(docs, index, None)
    _check_answers(docs, index, 300000, [])
    runs = 8 if duration < 5 else 2  # keep the suite fast should a cold start ever get slow again
    kills = 0
    for run in range(runs + 1):
        old = _saved_documents(index)
        number = rng.randrange(100000, 999999)
        (docs / "news.txt").write_text(_news(number), encoding="utf-8")
        new = _folder_hashes(docs)
        once_writing = run == runs
        killed, _ = _cold_index(docs, index, None if once_writing else rng.uniform(0, 1.2 * duration), once_writing)
        kills += killed
        assert _saved_documents(index) in (old, new), run
        _check_answers(docs, index, number, [])
        assert not [p for p in index.iterdir() if p.name.startswith(".tmp-")]  # collected by the next commit
    print(f"\ncold `python -m qa index`: unkilled run {duration:.2f} s, {kills} of {runs + 1} runs killed")
    assert kills >= 1
