"""The Documents tab over an archive of 2,000 generated articles, driven in headless Chromium.

The articles are one short paragraph each, dated and attributed by a manifest, so the index builds
in seconds; the query model is copied from the session's seeds index (no second export).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from probe import wait_until_up
from test_app import CHROMIUM, CHROMIUM_ARGS
from test_serve import Server

pytestmark = pytest.mark.browser

N_DOCS = 2000
OUTLETS = ("Harbour Herald", "Valley Times", "City Wire", "Coast Post")
TOPICS = ("ferry timetable", "orchard harvest", "library opening", "bridge repairs", "school meals")


def _date(i: int) -> str:
    return f"{2004 + i % 2}-{1 + i % 12:02d}-{1 + i % 28:02d}"


def _write_archive(docs: Path) -> None:
    docs.mkdir()
    rows = ["file,date,outlet,author"]
    for i in range(N_DOCS):
        topic = TOPICS[i % len(TOPICS)]
        name = f"article_{i:04d}.txt"
        (docs / name).write_text(f"Report {i:04d} on the {topic}\n\nThe council discussed the {topic} on day "
                                 f"{i} and agreed to review it again.\n", encoding="utf-8")
        rows.append(f"{name},{_date(i)},{OUTLETS[i % 4]},Writer {i % 7}")
    (docs / "qa-manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def archive(seed_qa, seed_dirs, tmp_path_factory):
    base = tmp_path_factory.mktemp("archive")
    docs, index = base / "docs", base / "index"
    _write_archive(docs)
    index.mkdir()
    (base / "gradio-tmp").mkdir()
    shutil.copytree(seed_dirs[1] / "model", index / "model")
    server = Server(base, docs, index)
    try:
        problem = wait_until_up(server.url + "/", server.proc, 600)
        if problem:
            pytest.fail(f"{problem}:\n{server.log.read_text(errors='replace')[-4000:]}")
        yield server.url + "/", docs
    finally:
        server.stop()


def test_documents_tab_searches_sorts_pages_and_removes(archive):
    from playwright.sync_api import expect, sync_playwright

    url, docs = archive
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's Chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector("#question textarea")
            page.get_by_role("tab", name="Documents").click()
            counts = page.locator("#doc-counts")
            expect(counts).to_contain_text("1–50 of 2,000 matching · 2,000 in the index")
            first = page.locator("#doc-table [data-testid=cell-0-0]")
            expect(first).to_have_text("Report 0000 on the ferry timetable")

            # Paging.
            page.click("#doc-next")
            expect(counts).to_contain_text("51–100 of 2,000 matching")
            expect(first).to_have_text("Report 0050 on the ferry timetable")
            page.click("#doc-prev")
            expect(counts).to_contain_text("1–50 of 2,000")

            # Search (words in any order, case ignored), then sort the matches by date.
            page.fill("#doc-search textarea", "BRIDGE report")
            expect(counts).to_contain_text("1–50 of 400 matching")
            page.click("#doc-order input")
            page.get_by_role("option", name="Newest first").click()
            newest = max(_date(i) for i in range(N_DOCS) if TOPICS[i % len(TOPICS)] == "bridge repairs")
            expect(page.locator("#doc-table [data-testid=cell-0-2]")).to_have_text(newest)
            # Filter by outlet.
            page.click("#doc-outlet input")
            page.get_by_role("option", name="Valley Times").click()
            expect(counts).to_contain_text("of 100 matching")
            expect(page.locator("#doc-table [data-testid=cell-0-1]")).to_have_text("Valley Times")

            # Remove a document found by search: its file goes and the index no longer has it.
            page.click("#doc-outlet input")
            page.get_by_role("option", name="All outlets").click()
            page.fill("#doc-search textarea", "report 1234")
            expect(counts).to_contain_text("1–1 of 1 matching")
            first.click()
            expect(page.locator("#remove-pick textarea")).to_have_value("article_1234.txt")
            page.click("#remove")
            expect(page.locator("#doc-status")).to_contain_text("Removed article_1234.txt", timeout=120_000)
            assert not (docs / "article_1234.txt").exists()
            expect(counts).to_contain_text("No document matches (1,999 in the index)")
            page.fill("#doc-search textarea", "")
            expect(counts).to_contain_text("1–50 of 1,999 matching · 1,999 in the index")
            assert not errors, errors
        finally:
            browser.close()
