"""Serving a team: the JSON API, sign-in, limits and worker processes, on real `app.py` servers.

Servers are real processes on free ports; requests go to 127.0.0.1 only, in bounded loops. The
index is a copy of the session's seeds index (model included), so no server builds one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from probe import children

from qa.serve.guard import RateLimiter, authorized, session_value
from qa.serve.policy import PolicyError, decide, is_loopback, read_token

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "team-token-0123456789abcdef"
START_TIMEOUT = 120
QUESTION = "What did Lavrov say about ceasefires?"

HARBOUR = """Velmora harbour reopens after the storm

By Tessa Marlow

The harbour master of Velmora, Ilse Brandvik, said on Monday that the ferries to Oskarholm would sail again on Thursday.

Repairs to the northern pier will take three more weeks, she said.
"""
HARBOUR_QUESTION = "When will the ferries to Oskarholm sail again?"


# -- the pure parts ---------------------------------------------------------------------------------
def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


def test_policy_needs_a_token_beyond_loopback():
    assert decide("127.0.0.1", None).allow_changes is True
    with pytest.raises(PolicyError, match="token"):
        decide("0.0.0.0", None)
    team = decide("0.0.0.0", TOKEN)
    assert team.token == TOKEN and team.allow_changes is False  # uploads off unless asked for
    assert decide("0.0.0.0", TOKEN, allow_uploads=True).allow_changes is True
    assert decide("0.0.0.0", None, public=True).token is None


def test_token_comes_from_a_file_or_the_environment(tmp_path):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert read_token({}, str(f)) == TOKEN
    assert read_token({"QA_TOKEN_FILE": str(f)}, None) == TOKEN
    assert read_token({"QA_TOKEN": TOKEN}, None) == TOKEN
    assert read_token({}, None) is None
    with pytest.raises(PolicyError, match="at least"):
        read_token({"QA_TOKEN": "short"}, None)
    with pytest.raises(PolicyError, match="cannot read"):
        read_token({}, str(tmp_path / "missing"))


def test_bearer_token_and_cookie_are_checked():
    assert authorized({b"authorization": f"Bearer {TOKEN}".encode()}, TOKEN)
    assert not authorized({b"authorization": b"Bearer wrong-token-0123456789"}, TOKEN)
    assert authorized({b"cookie": f"a=b; qa_session={session_value(TOKEN)}".encode()}, TOKEN)
    assert not authorized({b"cookie": f"qa_session={TOKEN}".encode()}, TOKEN)  # the token itself is no cookie
    assert not authorized({}, TOKEN)


def test_rate_limiter_allows_a_burst_then_the_rate():
    now = [100.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # clients have their own buckets
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    assert RateLimiter(rate=0, burst=1).take("a") == 0.0  # 0: no limit


# -- real servers ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, base: Path, docs: Path, index: Path, *args: str, env: dict | None = None):
        self.port = _free_port()
        self.base, self.docs, self.index = base, docs, index
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = base / f"app-{self.port}.log"
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                    "PYTHONUNBUFFERED": "1", "GRADIO_TEMP_DIR": str(base / "gradio-tmp"), **(env or {})}
        for name in ("QA_HOST", "QA_PORT", "QA_DOCS", "QA_INDEX", "QA_WORKERS", "QA_RATE_LIMIT"):
            full_env.pop(name, None)
        for name in ("QA_TOKEN", "QA_TOKEN_FILE"):
            if not env or name not in env:
                full_env.pop(name, None)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(self.port),
                                          "--docs", str(docs), "--index", str(index), *args],
                                         cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)

    def wait(self) -> "Server":
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"app.py exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"app.py did not listen within {START_TIMEOUT} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def request(self, method: str, path: str, body=None, token: str | None = None, headers: dict | None = None,
                data: bytes | None = None) -> tuple[int, dict, bytes]:
        h = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if token:
            h["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def index_copy(seed_qa, seed_dirs, tmp_path_factory):
    """A function making (base, docs, index): fresh copies of the session's seeds docs and index."""
    docs0, index0 = seed_dirs

    def make(name: str):
        base = tmp_path_factory.mktemp(name)
        (base / "gradio-tmp").mkdir()
        shutil.copytree(docs0, base / "docs")
        shutil.copytree(index0, base / "index", symlinks=True)
        return base, base / "docs", base / "index"

    return make


@pytest.fixture(scope="module")
def team(index_copy):
    """A server listening beyond loopback with a token, two workers and a low rate limit."""
    base, docs, index = index_copy("team")
    token_file = base / "token"
    token_file.write_text(TOKEN)
    server = Server(base, docs, index, "--host", "0.0.0.0", "--workers", "2", "--rate-limit", "1",
                    "--token-file", str(token_file)).wait()
    yield server
    server.stop()


def test_beyond_loopback_without_a_token_refuses_to_start(index_copy):
    base, docs, index = index_copy("refuse")
    server = Server(base, docs, index, "--host", "0.0.0.0")
    try:
        code = server.proc.wait(timeout=60)
    finally:
        server.stop()
    out = server.log.read_text()
    assert code == 2
    assert "needs an access token" in out and "Traceback" not in out


def test_api_needs_the_token_beyond_loopback(team):
    status, headers, body = team.request("POST", "/v1/ask", {"question": QUESTION})
    assert status == 401 and json.loads(body)["status"] == 401
    assert headers.get("www-authenticate") == "Bearer"
    assert team.request("POST", "/v1/ask", {"question": QUESTION}, token="wrong-token-0123456789")[0] == 401
    assert team.request("GET", "/v1/documents")[0] == 401
    # Gradio's own question endpoint takes the same token.
    assert team.request("POST", "/gradio_api/call/ask", {"data": [QUESTION, 3, "[]", "[]"]})[0] == 401
    status, _, body = team.request("POST", "/gradio_api/call/ask", {"data": [QUESTION, 3, "[]", "[]"]}, token=TOKEN)
    assert status == 200 and "event_id" in json.loads(body)


def test_api_answers_with_the_engines_json(team, seed_qa):
    status, _, body = team.request("POST", "/v1/ask", {"question": QUESTION, "k": 3}, token=TOKEN)
    assert status == 200
    got = json.loads(body)
    want = seed_qa.ask(QUESTION, k=3).to_dict()
    assert [(p["citation"]["doc_id"], p["citation"]["start"], p["citation"]["end"]) for p in got["passages"]] == \
           [(p["citation"]["doc_id"], p["citation"]["start"], p["citation"]["end"]) for p in want["passages"]]
    assert got["answered"] == want["answered"] and got["passages"][0]["text"] == want["passages"][0]["text"]


def test_api_errors_are_json_with_the_right_status(team):
    for body, needle in (({"question": ""}, "empty"), ({"question": "x", "k": 0}, "k"),
                         ({"question": "x", "colour": "red"}, "colour"), ({"k": 3}, "question")):
        status, _, raw = team.request("POST", "/v1/ask", body, token=TOKEN)
        assert status == 400, (body, raw)
        assert needle in json.loads(raw)["error"]
    status, _, raw = team.request("POST", "/v1/ask", token=TOKEN, data=b"{not json",
                                  headers={"Content-Type": "application/json"})
    assert status == 400
    huge = json.dumps({"question": "a" * 200_000}).encode()
    status, _, raw = team.request("POST", "/v1/ask", token=TOKEN, data=huge, headers={"Content-Type": "application/json"})
    assert status == 413 and "too large" in json.loads(raw)["error"]


def test_documents_health_and_openapi(team):
    status, _, raw = team.request("GET", "/v1/documents?limit=2", token=TOKEN)
    listing = json.loads(raw)
    assert status == 200 and listing["total"] == 5 and len(listing["documents"]) == 2
    assert "path" not in listing["documents"][0]  # the server's file system is not shown
    status, _, raw = team.request("GET", "/v1/documents?q=lavrov%20interview&order=title", token=TOKEN)
    found = json.loads(raw)
    assert status == 200 and found["total"] == 5 and 1 <= found["matching"] < 5
    assert all("lavrov" in d["title"].lower() for d in found["documents"])
    assert team.request("GET", "/v1/documents?order=sideways", token=TOKEN)[0] == 400
    status, _, raw = team.request("GET", "/v1/health", token=TOKEN)
    health = json.loads(raw)
    assert status == 200 and health["backend"] == "local" and health["passages"] > 0 and health["workers"] == 2
    assert health["version"]
    status, _, raw = team.request("GET", "/v1/openapi.json", token=TOKEN)
    assert status == 200 and "/v1/ask" in json.loads(raw)["paths"]


def test_chat_sign_in_and_uploads_off_beyond_loopback(team):
    status, headers, _ = team.request("GET", "/", headers={"Accept": "text/html"})
    assert status == 200 and b"access token" in team.request("GET", "/signin")[2]  # redirected to sign in
    # A wrong token is refused; the right one sets a cookie that opens the chat.
    wrong = urllib.parse.urlencode({"token": "nope", "next": "/"}).encode()
    opener = urllib.request.build_opener(_NoRedirect)
    status, headers = _post_form(opener, team.url + "/signin", wrong)
    assert status == 303 and "failed" in headers["location"]
    right = urllib.parse.urlencode({"token": TOKEN, "next": "/"}).encode()
    status, headers = _post_form(opener, team.url + "/signin", right)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"].split(";")[0]
    assert TOKEN not in cookie
    status, _, raw = team.request("GET", "/config", headers={"Cookie": cookie})
    assert status == 200
    elem_ids = {c.get("props", {}).get("elem_id") for c in json.loads(raw)["components"]}
    assert "question" in elem_ids and "upload" not in elem_ids and "remove" not in elem_ids
    assert "changes-off" in elem_ids
    status, _, _ = team.request("POST", "/gradio_api/upload", token=TOKEN, data=b"x",
                                headers={"Content-Type": "application/octet-stream"})
    assert status == 403


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _post_form(opener, url: str, data: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}


def test_workers_take_up_a_new_index_under_load(index_copy):
    """While questions keep coming, `qa index` writes a new version: no request fails, every answer is
    the old version's or the new one's, and the workers answer from the new one without a restart."""
    base, docs, index = index_copy("reload")
    server = Server(base, docs, index, "--workers", "2", "--rate-limit", "0").wait()
    try:
        def ask(q):
            status, _, raw = server.request("POST", "/v1/ask", {"question": q, "k": 3})
            return status, json.loads(raw)

        def key(answer):
            return answer["answered"], tuple((p["citation"]["doc_id"], p["citation"]["start"]) for p in answer["passages"])

        old = {q: key(ask(q)[1]) for q in (QUESTION, HARBOUR_QUESTION)}
        assert not any(d.startswith("velmora") for _, ps in [old[HARBOUR_QUESTION]] for d, _ in ps)
        results, stop = [], threading.Event()

        def client():
            n = 0
            while not stop.is_set() and n < 400:  # bounded
                for q in (QUESTION, HARBOUR_QUESTION):
                    status, answer = ask(q)
                    results.append((q, status, key(answer) if status == 200 else answer))
                n += 1

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        (docs / "velmora.txt").write_text(HARBOUR, "utf-8")
        done = subprocess.run([sys.executable, "-m", "qa", "index", "--docs", str(docs), "--index", str(index)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, HF_HUB_OFFLINE="1"))
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 30
        new = None
        while time.monotonic() < deadline:
            status, answer = ask(HARBOUR_QUESTION)
            if status == 200 and answer["passages"] and answer["passages"][0]["citation"]["doc_id"] == "velmora.txt":
                new = key(answer)
                break
            time.sleep(0.3)
        time.sleep(1.5)  # every worker has looked for the new version by now
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert new is not None, "the new article was never cited"
        new_ceasefire = key(ask(QUESTION)[1])
        allowed = {QUESTION: {old[QUESTION], new_ceasefire}, HARBOUR_QUESTION: {old[HARBOUR_QUESTION], new}}
        failed = [r for r in results if r[1] != 200]
        assert not failed, failed[:3]
        assert all(r[2] in allowed[r[0]] for r in results)
        # Both workers now answer from the new version.
        assert all(key(ask(HARBOUR_QUESTION)[1]) == new for _ in range(6))
        assert json.loads(server.request("GET", "/v1/health")[2])["documents"] == 6
    finally:
        server.stop()


@pytest.mark.browser
def test_chat_in_a_browser_after_signing_in(team):
    """The real chat behind the sign-in page, in headless Chromium."""
    from playwright.sync_api import expect, sync_playwright

    from test_app import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's Chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(team.url + "/")
            expect(page).to_have_url(team.url + "/signin?next=/")
            page.fill("#token", "not-the-token-at-all")
            page.click("#signin")
            expect(page.get_by_text("Wrong token.")).to_be_visible()
            page.fill("#token", TOKEN)
            page.click("#signin")
            page.wait_for_selector("#question textarea", timeout=60_000)
            page.fill("#question textarea", QUESTION)
            page.click("#ask")
            reply = page.locator("#chat [data-testid=bot]").first
            expect(reply).to_contain_text("ceasefire", timeout=60_000)
            expect(page.locator("#upload")).to_have_count(0)  # uploads are off beyond loopback
        finally:
            browser.close()


# Last: it spends the team server's rate allowance.
def test_questions_beyond_the_rate_are_refused_with_429(team):
    codes, retry = [], None
    for _ in range(40):  # bounded: the burst is 20, the rate 1/s
        status, headers, _ = team.request("POST", "/v1/ask", {"question": "", "k": 1}, token=TOKEN)
        codes.append(status)
        if status == 429:
            retry = headers.get("retry-after")
            break
    assert 429 in codes and retry and int(retry) >= 1


def test_workers_exit_when_the_server_is_killed(index_copy):
    base, docs, index = index_copy("orphans")
    server = Server(base, docs, index, "--workers", "2").wait()
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:
            workers = children(server.proc.pid)
            time.sleep(0.2)
        assert len(workers) >= 2
        server.proc.kill()  # SIGKILL: the server cannot tell its workers
        server.proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.3)
        assert not any(_alive(w) for w in workers)
    finally:
        server.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
