"""The web app, driven for real: `python app.py` as a subprocess, headless Debian Chromium via Playwright.

Needs /usr/bin/chromium (`make test` installs it with apt-get). Never downloads a browser.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from probe import wait_until_up

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT = 180  # the first start builds the index
CITE = re.compile(r"(\S+\.(?:txt|md|html?)), characters (\d+)–(\d+)")

ZORBLAND = """Zorbland opens its harbour bridge

By Mira Quell

The new Zorbland harbour bridge was opened on Tuesday by harbour master Elsa Vantok, who cut a ribbon made of seaweed.

The Zorbland harbour bridge is exactly 4,417 metres long and is painted a colour the council calls "storm teal".

Engineers said the bridge took eleven years to build. Some residents wrote **bold** complaints and posted [link](http://example.com) flyers, and one sign read <script>window.__xss2=1</script> in large letters.
"""

# A second outlet repeating one sentence: the answer should say it is "also reported by" this one.
WIRE = """Harbour news from the wire

By Wire Staff

The Zorbland harbour bridge is exactly 4,417 metres long and is painted a colour the council calls "storm teal".

Officials expect heavy traffic on the first weekend.
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The real app on a private copy of seeds/: yields (url, docs_dir)."""
    base = tmp_path_factory.mktemp("webapp")
    docs, index, log_path = base / "docs", base / "index", base / "app.log"
    shutil.copytree(SEEDS, docs)
    (base / "gradio-tmp").mkdir()
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(base / "gradio-tmp"), PYTHONUNBUFFERED="1")
    for name in ("QA_HOST", "QA_PORT", "QA_DOCS", "QA_INDEX", "QA_MAX_UPLOAD_MB"):
        env.pop(name, None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--docs", str(docs),
                                 "--index", str(index)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        problem = wait_until_up(url, proc, START_TIMEOUT)
        if problem:
            pytest.fail(f"{problem}:\n{log_path.read_text(errors='replace')[-4000:]}")
        yield url, docs
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser_page(served):
    """One page for the module's tests; records every request the page makes."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's Chromium "
                    "(`apt-get install chromium`, or run `make test`, which installs it)")
    from playwright.sync_api import sync_playwright

    url, _ = served
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.on("request", lambda r: requests.append(r.url))
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_default_timeout(30_000)
            page.goto(url)
            page.wait_for_selector("#question textarea")
            yield page, requests, errors
        finally:
            browser.close()


# -- helpers -------------------------------------------------------------------------------------
def _bots(page):
    return page.locator("#chat [data-testid=bot]")


def _ask(page, question: str):
    """Type a question, press Ask, return the locator of the new reply."""
    from playwright.sync_api import expect

    before = _bots(page).count()
    page.fill("#question textarea", question)
    page.click("#ask")
    expect(_bots(page)).to_have_count(before + 1)
    return _bots(page).nth(before)


def _clear(page):
    from playwright.sync_api import expect

    page.click("#clear")
    expect(_bots(page)).to_have_count(0)


def _citations(reply) -> list[tuple[str, int, int]]:
    out = []
    for text in reply.locator(".qa-cite").all_inner_texts():
        m = CITE.search(text)
        assert m, f"no citation in {text!r}"
        out.append((m.group(1), int(m.group(2)), int(m.group(3))))
    return out


def _pick_citation(page, n: int) -> None:
    page.get_by_role("tab", name="Source").click()
    page.click("#citation-pick input")
    page.locator("[role=option]").nth(n).click()


def _squash(s: str) -> str:
    return " ".join(s.split())


def _assert_local(requests: list[str]) -> None:
    outside = sorted({u for u in requests if urlsplit(u).scheme not in ("data", "blob")
                      and urlsplit(u).hostname not in ("127.0.0.1", "localhost")})
    assert not outside, f"the page made requests outside 127.0.0.1: {outside}"


# -- tests ---------------------------------------------------------------------------------------
def test_api_endpoint_with_gradio_client(served):
    from gradio_client import Client

    url, _ = served
    client = Client(url, verbose=False)
    result = json.loads(client.predict("What did Lavrov say about ceasefires?", 5, "[]", api_name="/ask"))
    assert result["answered"] is True
    assert result["passages"] and result["passages"][0]["citation"]["doc_id"].startswith(("000", "002", "003"))
    assert set(result["passages"][0]) >= {"text", "highlight", "citation", "also_in", "score"}
    follow = json.loads(client.predict(
        "Whose troops would be unacceptable?", 3,
        json.dumps(["What did Lavrov say about security guarantees for Ukraine?"]), api_name="/ask"))
    assert any("European troops" in p["text"] for p in follow["passages"])
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", 5, "[]", api_name="/ask")


def test_chat_answers_with_highlight_citation_and_source(browser_page):
    page, requests, errors = browser_page
    ceasefire_docs = {p.name for p in SEEDS.iterdir() if "ceasefire" in p.read_text(encoding="utf-8").lower()}
    reply = _ask(page, "What did Lavrov say about ceasefires?")
    marks = reply.locator("mark")
    assert marks.count() >= 1 and marks.first.inner_text().strip()
    cites = _citations(reply)
    doc_id, start, end = cites[0]
    assert doc_id in ceasefire_docs, f"first citation {doc_id} is not an article about ceasefires"
    first_text = reply.locator(".qa-text").first.inner_text()
    # The citation's range is the passage, verbatim, in the article file.
    source = (SEEDS / doc_id).read_text(encoding="utf-8")
    assert _squash(source[start:end]) == _squash(first_text)
    assert _squash(marks.first.inner_text()) in _squash(first_text)

    # Source viewer: choose another citation, then the first; the article is shown with the passage marked.
    if len(cites) > 1:
        _pick_citation(page, 1)
        page.wait_for_function("(t) => document.querySelector('#source-viewer .qa-meta')?.innerText.includes(t)",
                               arg=f"characters {cites[1][1]}–{cites[1][2]}")
    _pick_citation(page, 0)
    page.wait_for_function("(t) => document.querySelector('#source-viewer .qa-meta')?.innerText.includes(t)",
                           arg=f"characters {start}–{end}")
    viewer = page.locator("#source-viewer")
    cited = viewer.locator("mark#qa-cited")
    assert _squash(cited.inner_text()) == _squash(first_text)
    assert len(_squash(viewer.locator(".qa-doc").inner_text())) >= len(_squash(source)) * 0.9
    assert viewer.locator("mark.qa-hl").count() == 1
    page.wait_for_timeout(300)
    box, mark = viewer.locator(".qa-doc").bounding_box(), cited.bounding_box()
    assert mark["y"] < box["y"] + box["height"] and mark["y"] + mark["height"] > box["y"], "cited passage not in view"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"))

    # Follow-up question: the earlier question is the history.
    _ask(page, "What did Lavrov say about security guarantees for Ukraine?")
    follow = _ask(page, "Whose troops would be unacceptable?")
    assert "European troops" in follow.inner_text()
    assert not errors, errors
    _assert_local(requests)


def test_questions_and_articles_are_shown_as_text(browser_page):
    page, requests, errors = browser_page
    _clear(page)
    question = ("What did Lavrov say? <script>window.__xss=1</script> <img src=x onerror=\"window.__xss=2\"> "
                "[link](http://example.com) **bold**")
    _ask(page, question)
    user = page.locator("#chat [data-testid=user]").last
    assert _squash(question) in _squash(user.inner_text())
    assert page.locator("#chat [data-testid=user] :is(a, img, script, strong, em)").count() == 0
    assert page.evaluate("window.__xss") is None

    empty = _ask(page, "   ")
    assert "type a question" in empty.inner_text()
    too_long = _ask(page, "why " * 25_000)
    assert "too long" in too_long.inner_text()
    assert not errors, errors
    _assert_local(requests)


def test_upload_ask_restrict_and_remove(browser_page, served, tmp_path):
    from playwright.sync_api import expect

    page, requests, errors = browser_page
    _, docs = served
    _clear(page)
    article, wire = tmp_path / "zorbland_bridge.txt", tmp_path / "zorbland_wire.txt"
    article.write_text(ZORBLAND, encoding="utf-8")
    wire.write_text(WIRE, encoding="utf-8")
    page.get_by_role("tab", name="Documents").click()
    page.set_input_files("#upload input[type=file]", [str(article), str(wire)])
    status = page.locator("#doc-status")
    expect(status).to_contain_text("Added zorbland_wire.txt", timeout=90_000)
    expect(status).to_contain_text("Added zorbland_bridge.txt")
    expect(page.locator("#doc-table")).to_contain_text("Zorbland opens its harbour bridge")
    assert (docs / "zorbland_bridge.txt").read_text(encoding="utf-8") == ZORBLAND
    assert not (SEEDS / "zorbland_bridge.txt").exists()

    # The engine's refusal (same name again) appears as a message.
    page.set_input_files("#upload input[type=file]", [str(article)])
    expect(status).to_contain_text("already exists", timeout=60_000)

    reply = _ask(page, "How long is the Zorbland harbour bridge?")
    assert _citations(reply)[0][0] in ("zorbland_bridge.txt", "zorbland_wire.txt")
    assert "4,417 metres" in reply.locator("mark").first.inner_text()
    also = reply.locator(".qa-passage").first.locator(".qa-also")
    expect(also).to_contain_text("Also reported by")
    expect(also).to_contain_text(re.compile(r"zorbland_(wire|bridge)\.txt, characters \d+–\d+"))

    # The uploaded article's markup-looking text is shown literally in the source viewer.
    page.get_by_role("tab", name="Source").click()
    page.click("#citation-pick input")
    page.get_by_role("option", name=re.compile("zorbland_bridge.txt")).first.click()
    viewer = page.locator("#source-viewer .qa-doc")
    expect(viewer).to_contain_text("<script>window.__xss2=1</script>")
    expect(viewer).to_contain_text("**bold** complaints and posted [link](http://example.com) flyers")
    assert viewer.locator("a, script, strong").count() == 0
    assert page.evaluate("window.__xss2") is None
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "source.png"))

    # Restricting the sources (a searchable list): only the chosen article may answer.
    page.get_by_role("tab", name="Settings").click()
    page.click("#sources input")
    page.keyboard.type("zorbland_bridge")
    page.get_by_role("option", name=re.compile("zorbland_bridge.txt")).click()
    page.keyboard.press("Escape")
    reply = _ask(page, "What did Lavrov say about ceasefires?")
    assert {c[0] for c in _citations(reply)} <= {"zorbland_bridge.txt"}
    page.locator("#sources .token-remove:not(.remove-all)").first.click()
    expect(page.locator("#sources .token")).to_have_count(0)

    # Remove them again, each found by searching and clicking its row: table, settings and folder follow.
    page.get_by_role("tab", name="Documents").click()
    for name in ("zorbland_bridge.txt", "zorbland_wire.txt"):
        page.fill("#doc-search textarea", name)
        expect(page.locator("#doc-counts")).to_contain_text("of 1 matching")
        page.locator("#doc-table [data-testid=cell-0-0]").click()
        expect(page.locator("#remove-pick textarea")).to_have_value(name)
        page.click("#remove")
        expect(status).to_contain_text(f"Removed {name}", timeout=90_000)
        assert not (docs / name).exists()
    page.fill("#doc-search textarea", "zorbland")
    expect(page.locator("#doc-counts")).to_contain_text("No document matches")
    page.fill("#doc-search textarea", "")
    page.get_by_role("tab", name="Settings").click()
    page.click("#sources input")
    page.keyboard.type("zorbland")
    expect(page.get_by_role("option", name=re.compile("zorbland"))).to_have_count(0)
    page.keyboard.press("Escape")
    assert not errors, errors
    _assert_local(requests)


def test_timeline_filters_and_downloads(browser_page, served):
    """The Timeline tab, the Settings filter row and both download buttons (runs last: it dates the
    seeds with a manifest)."""
    from playwright.sync_api import expect

    page, requests, errors = browser_page
    _, docs = served
    _clear(page)
    names = sorted(p.name for p in docs.glob("0*.txt"))
    (docs / "qa-manifest.csv").write_text("file,date,outlet\n" + "".join(
        f"{n},2025-08-{10 + i:02d},Outlet {'AB'[i % 2]}\n" for i, n in enumerate(names)), encoding="utf-8")
    # `qa index` in another process writes a new version; the app takes it up, and a page load shows it.
    done = subprocess.run([sys.executable, "-m", "qa", "index", "--docs", str(docs), "--index",
                           str(docs.parent / "index")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr
    page.reload()
    page.wait_for_selector("#question textarea")

    # The timeline of a person's statements, newest first, each with where it was first reported.
    page.get_by_role("tab", name="Timeline").click()
    page.fill("#tl-person textarea", "Lavrov")
    page.fill("#tl-about textarea", "ceasefire")
    page.click("#tl-show")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("statements by Lavrov on “ceasefire”, newest first", timeout=60_000)
    expect(timeline.locator(".qa-passage mark").first).to_be_visible()
    expect(timeline).to_contain_text("First reported:")
    with page.expect_download() as got:
        page.click("#tl-download")
    csv_text = Path(got.value.path()).read_text(encoding="utf-8")
    assert csv_text.startswith("rank,text,highlight,doc_id") and "What did Lavrov say about ceasefire?" in csv_text

    # The filter row: a date range no article falls in is said plainly; an outlet restricts the answer.
    page.get_by_role("tab", name="Settings").click()
    page.fill("#since textarea", "2030-01-01")
    reply = _ask(page, "What did Lavrov say about ceasefires?")
    expect(reply).to_contain_text("no article matches the filter")
    page.fill("#since textarea", "")
    page.click("#outlets input")
    page.get_by_role("option", name="Outlet B").click()
    page.keyboard.press("Escape")
    reply = _ask(page, "What did Lavrov say about ceasefires?")
    expect(reply).to_contain_text("Filtered by outlets: outlet b")
    outlet_b = {n for i, n in enumerate(names) if i % 2}
    assert {c[0] for c in _citations(reply)} <= outlet_b

    # The answer's download, in the chosen format.
    page.get_by_role("radio", name="JSON").check()
    with page.expect_download() as got:
        page.click("#download")
    data = json.loads(Path(got.value.path()).read_text(encoding="utf-8"))
    assert data and {r["doc_id"] for r in data} <= outlet_b and data[0]["question"].startswith("What did Lavrov")
    assert data[0]["date"].startswith("2025-08-") and data[0]["file_sha256"]
    assert not errors, errors
    _assert_local(requests)
