"""Load test of the web app: many concurrent clients on its `/ask` API, uploads through the UI meanwhile.

    .venv/bin/python -m benchmarks.load_test                  # starts app.py on a copy of seeds/
    .venv/bin/python -m benchmarks.load_test --url http://127.0.0.1:7860/ --uploads 0

Starts `app.py` on a free loopback port with a temporary copy of the documents (or attaches to a
running app given by --url, which must be a loopback address), then:

1. asks every distinct question once, one at a time: the sequential answers;
2. sends --questions questions (default 1,000) from --clients concurrent clients (default 50), each
   with its own gradio_client.Client, through the `/ask` endpoint, while --uploads made-up articles
   (default 3) are uploaded one by one through the page's upload widget in headless Chromium (the
   app exposes uploads only in its UI);
3. asks every distinct question once more, one at a time (the documents now include the uploads).

Every concurrent answer must equal the sequential answer to the same question (same passages: doc_id,
start, end, in order; same `answered`). The uploads are on topics no question is about; a question
whose two sequential answers differ anyway (the uploads changed its ranking) may match either one.
Prints throughput and latency percentiles; exits 1 on any error or mismatch. Bounded in count and
in time (--max-seconds), loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent

from tests.probe import wait_until_up  # noqa: E402
DEV_QUESTIONS = ROOT.parent / "shared" / "data" / "seed_questions_dev.json"
CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

QUESTIONS = [
    ("What did Lavrov say about ceasefires?", []),
    ("What did Lavrov tell NBC News?", []),
    ("What did Lavrov say about security guarantees for Ukraine?", []),
    ("Whose troops would be unacceptable?", ["What did Lavrov say about security guarantees for Ukraine?"]),
    ("What is the capital of Australia?", []),
    ("What did Lavrov say about the Olympic Games?", []),
    ("What did Zelensky say?", []),
    ("What does Russia want from the United States?", []),
    ("Who met in Alaska?", []),
    ("What did Trump say about the war?", []),
    ("what is the of", []),
    ("🙂 ?", []),
]

UPLOADS = [
    ("zorbland_bridge.txt", """Zorbland opens its harbour bridge

The new Zorbland harbour bridge was opened on Tuesday by harbour master Elsa Vantok, who cut a ribbon made of seaweed.

The Zorbland harbour bridge is exactly 4,417 metres long and is painted a colour the council calls "storm teal".
"""),
    ("quillmoor_choir.txt", """Quillmoor choir wins the valley singing cup

The Quillmoor village choir won the valley singing cup on Sunday with a nine-part arrangement of an old milling song.

Choir leader Bettan Oskarsdottir said the singers had rehearsed in the disused flour mill every evening since March.
"""),
    ("tarnby_glassworks.txt", """Tarnby glassworks reopens its furnace

The Tarnby glassworks relit its main furnace on Wednesday after a two-year pause, employing thirty-one glassblowers.

The works will make green bottles for the island's cider presses, manager Ilse Brandqvist said.
"""),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen | None, timeout: float, log: Path | None) -> None:
    problem = wait_until_up(url, proc, timeout)
    if problem:
        tail = log.read_text(errors="replace")[-3000:] if log else ""
        sys.exit(f"{problem}:\n{tail}" if tail else problem)


def _questions() -> list[tuple[str, list[str]]]:
    items = list(QUESTIONS)
    if DEV_QUESTIONS.exists():
        dev = json.loads(DEV_QUESTIONS.read_text(encoding="utf-8"))
        items += [(x["q"], []) for x in dev.get("answerable", [])]
        items += [(q, []) for q in dev.get("unanswerable", [])]
        for conv in dev.get("conversations", []):
            *history, last = conv["turns"]
            items.append((last, history))
    seen, unique = set(), []
    for q, h in items:
        if (q, tuple(h)) not in seen:
            seen.add((q, tuple(h)))
            unique.append((q, h))
    return unique


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, analytics_enabled=False)


def _ask(client, question: str, history: list[str], k: int, timeout: float) -> dict:
    job = client.submit(question, k, json.dumps(history), "[]", api_name="/ask")
    return json.loads(job.result(timeout=timeout))


def _key(answer: dict):
    return answer["answered"], tuple((p["citation"]["doc_id"], p["citation"]["start"], p["citation"]["end"])
                                     for p in answer["passages"])


def _sequential(url: str, items, k: int, timeout: float) -> dict:
    client = _client(url)
    return {(q, tuple(h)): _key(_ask(client, q, h, k, timeout)) for q, h in items}


def _uploader(url: str, docs: Path | None, files: list[tuple[str, str]], start: threading.Event,
              stop: threading.Event, spacing: float, report: dict) -> None:
    """Upload made-up articles one by one through the page, as a user would."""
    if not files:
        return
    if not CHROMIUM.exists():
        report["error"] = f"{CHROMIUM} not found: uploads skipped"
        return
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        report["error"] = "playwright not installed: uploads skipped"
        return
    start.wait()
    tmp = Path(tempfile.mkdtemp(prefix="qa-load-upload-"))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            try:
                page = browser.new_page()
                page.set_default_timeout(120_000)
                page.goto(url)
                page.wait_for_selector("#question textarea")
                page.get_by_role("tab", name="Documents").click()
                for name, text in files:
                    if stop.is_set():
                        break
                    path = tmp / name
                    path.write_text(text, encoding="utf-8")
                    t = time.perf_counter()
                    page.set_input_files("#upload input[type=file]", [str(path)])
                    expect(page.locator("#doc-status")).to_contain_text(f"Added {name}", timeout=180_000)
                    report.setdefault("seconds", []).append(time.perf_counter() - t)
                    if docs is not None and not (docs / name).exists():
                        report["error"] = f"{name} was reported added but is not in {docs}"
                    stop.wait(spacing)
            finally:
                browser.close()
    except Exception as exc:  # reported, and counted as a failure of the run
        report["error"] = f"upload failed: {type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def run(url: str, docs: Path | None, args) -> int:
    items = _questions()
    print(f"{len(items)} distinct questions; sequential answers first...", flush=True)
    t = time.perf_counter()
    before = _sequential(url, items, args.k, args.timeout)
    sequential_seconds = time.perf_counter() - t
    print(f"  {len(items)} sequential answers in {sequential_seconds:.1f} s "
          f"({sequential_seconds / len(items) * 1000:.0f} ms each)", flush=True)

    work: queue.Queue = queue.Queue()
    for i in range(args.questions):
        work.put(items[i % len(items)])
    results: list[tuple[tuple, tuple, float, float]] = []  # (item, key, latency, finished at)
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.max_seconds
    upload_start, stop = threading.Event(), threading.Event()
    upload_report: dict = {}
    uploads = UPLOADS[: args.uploads]

    def client_loop():
        try:
            client = _client(url)
        except Exception as exc:
            with lock:
                errors.append(f"client: {type(exc).__name__}: {exc}")
            return
        while time.monotonic() < deadline:
            try:
                q, h = work.get_nowait()
            except queue.Empty:
                return
            t0 = time.perf_counter()
            try:
                key = _key(_ask(client, q, h, args.k, args.timeout))
            except Exception as exc:
                with lock:
                    errors.append(f"{q!r}: {type(exc).__name__}: {exc}")
                continue
            t1 = time.perf_counter()
            with lock:
                results.append(((q, tuple(h)), key, t1 - t0, t1))
                if len(results) >= args.questions // 5:
                    upload_start.set()  # uploads begin once the load is well under way

    print(f"{args.questions} questions from {args.clients} concurrent clients, {len(uploads)} uploads meanwhile...",
          flush=True)
    uploader = threading.Thread(target=_uploader, args=(url, docs, uploads, upload_start, stop, args.upload_spacing,
                                                        upload_report), daemon=True)
    uploader.start()
    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(args.clients)]
    t_start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(0.0, deadline - time.monotonic()) + 5)
    t_load = time.perf_counter() - t_start
    upload_start.set()
    uploader.join(max(0.0, deadline - time.monotonic()) + 200)
    stop.set()

    print("sequential answers again, after the uploads...", flush=True)
    after = _sequential(url, items, args.k, args.timeout)
    unstable = {item for item in before if before[item] != after[item]}
    mismatches = [(item, key) for item, key, _, _ in results
                  if key != before[item] and not (item in unstable and key == after[item])]
    latencies = [lat for _, _, lat, _ in results]

    summary = {
        "url": url,
        "questions_sent": args.questions,
        "answered_ok": len(results),
        "errors": len(errors),
        "clients": args.clients,
        "distinct_questions": len(items),
        "seconds": round(t_load, 2),
        "throughput_qps": round(len(results) / t_load, 2) if t_load else 0,
        "latency_ms": {name: round(1000 * _percentile(latencies, p), 1)
                       for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))} if latencies else {},
        "latency_mean_ms": round(1000 * statistics.mean(latencies), 1) if latencies else None,
        "sequential_ms_per_question": round(sequential_seconds / len(items) * 1000, 1),
        "uploads_done": len(upload_report.get("seconds", [])),
        "upload_seconds": [round(s, 1) for s in upload_report.get("seconds", [])],
        "upload_error": upload_report.get("error"),
        "questions_whose_answer_the_uploads_changed": len(unstable),
        "mismatches_with_sequential": len(mismatches),
    }
    print(json.dumps(summary, indent=2))
    for e in errors[:10]:
        print("error:", e, file=sys.stderr)
    for item, key in mismatches[:10]:
        print(f"mismatch: {item[0]!r}: got {key}, sequential {before[item]}", file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    ok = (not errors and not mismatches and len(results) == args.questions
          and (not uploads or (summary["uploads_done"] == len(uploads) and not upload_report.get("error"))))
    print("OK" if ok else "FAILED", flush=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="attach to a running app (loopback only) instead of starting one")
    p.add_argument("--docs", default=str(ROOT / "seeds"), help="documents to copy for the started app")
    p.add_argument("--questions", type=int, default=1000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--uploads", type=int, default=3, choices=range(len(UPLOADS) + 1))
    p.add_argument("--upload-spacing", type=float, default=2.0, help="seconds between uploads")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds allowed for one answer")
    p.add_argument("--max-seconds", type=float, default=900.0, help="stop sending questions after this long")
    p.add_argument("--json-out", help="also write the summary here")
    args = p.parse_args(argv)
    if not 1 <= args.questions <= 100_000 or not 1 <= args.clients <= 500:
        p.error("--questions must be 1-100000 and --clients 1-500")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

    if args.url:
        host = urlsplit(args.url).hostname or ""
        if host not in LOOPBACK:
            p.error(f"--url must be a loopback address ({', '.join(sorted(LOOPBACK))}), not {host!r}")
        _wait_up(args.url, None, 30, None)
        return run(args.url, None, args)

    base = Path(tempfile.mkdtemp(prefix="qa-load-"))
    docs, index, log_path = base / "docs", base / "index", base / "app.log"
    shutil.copytree(args.docs, docs)
    (base / "gradio-tmp").mkdir()
    port = _free_port()
    env = dict(os.environ, GRADIO_TEMP_DIR=str(base / "gradio-tmp"), PYTHONUNBUFFERED="1")
    for name in ("QA_HOST", "QA_PORT", "QA_DOCS", "QA_INDEX", "QA_MAX_UPLOAD_MB"):
        env.pop(name, None)
    url = f"http://127.0.0.1:{port}/"
    print(f"starting app.py on {url} (documents copied to {docs})...", flush=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
                                 "--docs", str(docs), "--index", str(index)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        t = time.perf_counter()
        _wait_up(url, proc, 300, log_path)
        print(f"  up after {time.perf_counter() - t:.1f} s", flush=True)
        return run(url, docs, args)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
