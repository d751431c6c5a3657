"""Tests of the ingest stage: noise removal on made-up and real pages, and folder reading."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.errors import DocumentsError
from qa.ingest import (
    SUPPORTED_SUFFIXES,
    Cleaned,
    Folder,
    Skipped,
    clean,
    read_document,
    read_folder,
)

SEEDS = Path(__file__).parent.parent / "seeds"
SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]]*$")


def texts(text: str, cleaned: Cleaned) -> list[str]:
    return [text[b.start : b.end] for b in cleaned.blocks]


def assert_well_formed(text: str, cleaned: Cleaned) -> None:
    """Blocks are stripped, ordered, non-overlapping verbatim spans."""
    previous_end = 0
    for b in cleaned.blocks:
        span = text[b.start : b.end]
        assert span and span == span.strip()
        assert b.start >= previous_end
        previous_end = b.end


def norm(s: str) -> str:
    return " ".join(s.translate(str.maketrans("“”‘’", "\"\"''")).casefold().split())


# -----------------------------------------------------------------------------------------------
# Made-up pages (different outlets and junk than the seeds)
# -----------------------------------------------------------------------------------------------

BODY = [
    "Dock workers in the port city of Valmora walked off the job on Tuesday, halting grain exports "
    "for the third time this year after wage talks with the port authority broke down.",
    "The union said about 4,000 workers had joined the strike, which it described as open-ended.",
    "“We will not accept this,” union leader Marta Kovacs told reporters outside the harbour gates.",
    "– The authority has refused every compromise we put on the table – she said at a press "
    "conference later in the day.",
    "Port officials said grain ships were already queuing offshore and warned that exporters could "
    "face heavy losses if the strike lasted more than a week.",
]

NOISY = "\n".join(
    [
        "Skip to content",
        "Menu",
        "The Northern Courier",
        "Home > World > Europe",
        "Harbour Strike Halts Grain Exports as Talks with Port Authority Collapse",
        "By Jane Doe",
        "Updated 5 min ago",
        "share_iconShare",
        "",
        "\n\n".join(BODY),
        "",
        "Harbour Strike Halts Grain Exports as Talks with Port Authority Collapse",
        "\n\n".join(BODY),  # the article printed twice
        "",
        "Related stories",
        "Champions League: late penalty sends holders through to the quarter-finals!",
        "Pop star announces surprise wedding on a Caribbean island.",
        "Is this the best smartphone camera of the year?",
        "Ten recipes for a cosy autumn evening...",
        "Subscribe to our newsletter",
        "12 Comments",
        "",
    ]
)
NOISY_JUNK = [
    "Skip to content", "Menu", "Home > World", "By Jane Doe", "Updated", "share_icon",
    "Related stories", "Champions League", "Pop star", "smartphone", "recipes", "Subscribe",
    "Comments",
]


def test_noisy_page_keeps_exactly_the_article():
    cleaned = clean(NOISY)
    assert_well_formed(NOISY, cleaned)
    assert texts(NOISY, cleaned) == BODY
    assert cleaned.title == "Harbour Strike Halts Grain Exports as Talks with Port Authority Collapse"
    assert cleaned.byline == "Jane Doe"
    assert cleaned.outlet == "The Northern Courier"
    kept = "\n".join(texts(NOISY, cleaned))
    for junk in NOISY_JUNK:
        assert junk not in kept


SECOND = """We use cookies to improve your experience. By continuing to browse you agree to our use of cookies.
World Politics Business Science Sport Culture
Deep-Sea Survey Finds Dozens of New Species off Island Chain
BY ROBERTO SILVA · 14 March 2024, 09:12
Scientists aboard a research vessel have identified more than 40 animal species previously unknown to science during a month-long survey of deep waters off the Azura islands.
Advertisement
The survey team used a remotely operated vehicle to collect samples from depths of up to 4,800 metres, the expedition leader said.
“Every dive brought something we had never seen before,” said marine biologist Hana Okafor.
Among the finds were a translucent sea cucumber, several crustaceans and a carnivorous sponge.
The species will now be formally described, a process that can take years.
Most Read
Why is everyone suddenly talking about this cheap holiday destination?
Celebrity chef opens third restaurant!
Ten mistakes that ruin your morning coffee...
Follow us on Facebook | Twitter | Instagram
© 2024 Example Media Group. All rights reserved.
"""


def test_second_noisy_page_nav_row_cookie_banner_and_most_read_list():
    cleaned = clean(SECOND)
    assert_well_formed(SECOND, cleaned)
    kept = texts(SECOND, cleaned)
    assert cleaned.title == "Deep-Sea Survey Finds Dozens of New Species off Island Chain"
    assert cleaned.byline == "ROBERTO SILVA"
    assert kept[0].startswith("Scientists aboard")
    assert kept[-1] == "The species will now be formally described, a process that can take years."
    assert len(kept) == 5  # "Advertisement" in the middle is gone, every body line is kept
    joined = "\n".join(kept)
    for junk in ("cookies", "Politics", "Advertisement", "Most Read", "holiday", "Celebrity",
                 "coffee", "Facebook", "rights reserved"):
        assert junk not in joined


WAR = """Frontline Shifts as Northern Offensive Enters Second Month

The northern army has pushed its offensive deeper into the Velm valley, according to military analysts, with heavy fighting reported around several towns.

Commanders on both sides have sent reinforcements to the region, where supply routes for thousands of troops run through narrow mountain passes.

“The valley decides this war,” a senior officer told state television.

The Army, meanwhile, is advancing to capture the towns of Orsk and Tival where more than 10,000 troops are blocked.

You may also like

Ten celebrities who quit social media this year?
Lottery winner plans to buy a football club!
How to keep your houseplants alive in winter...
"""


def test_on_topic_last_paragraph_is_kept_and_headline_list_trimmed():
    cleaned = clean(WAR)
    assert_well_formed(WAR, cleaned)
    kept = texts(WAR, cleaned)
    assert cleaned.title == "Frontline Shifts as Northern Offensive Enters Second Month"
    assert len(kept) == 4
    assert kept[-1].startswith("The Army, meanwhile, is advancing")
    assert kept[2] == "“The valley decides this war,” a senior officer told state television."


def test_clean_page_without_title_single_newlines():
    text = (
        "The central bank raised interest rates by a quarter point on Thursday, its third increase "
        "this year, and signalled that borrowing costs would stay high for longer than markets hoped.\n"
        "Governor Lena Park said inflation remained too high and further increases could not be ruled out.\n"
        "“We will do what it takes,” she said.\n"
        "Economists had expected the move.\n"
    )
    cleaned = clean(text)
    assert_well_formed(text, cleaned)
    assert cleaned.title is None and cleaned.byline is None and cleaned.outlet is None
    assert texts(text, cleaned) == text.strip().split("\n")


def test_blank_line_separated_page():
    paras = [
        "Rail Operators Agree Timetable for New Cross-Border Line",
        "Two national rail operators have agreed a timetable for the new line linking the capitals, "
        "with the first trains due to run in December.",
        "Tickets will go on sale in September, the operators said in a joint statement.",
        "The line cuts the journey time between the two cities to under three hours.",
    ]
    text = "\n\n".join(paras) + "\n"
    cleaned = clean(text)
    assert_well_formed(text, cleaned)
    assert cleaned.title == paras[0]
    assert texts(text, cleaned) == paras[1:]


WRAPPED = """Storm Batters Coastal Towns as Thousands Lose Power

Heavy rain and winds of up to 120 kilometres an hour battered the
coastal towns of the region overnight, leaving thousands of homes
without power and forcing the closure of several roads.

Emergency services said they had received more than 600 calls by
dawn. Most concerned fallen trees and flooded basements, a spokesman
said, adding that no one had been seriously hurt in the whole region.

"It was the worst night I can remember," said the owner of a small
bakery on the seafront, who was sweeping glass from the pavement as
Mayor Ilse Brandt toured the damaged streets with a group of officials
on Wednesday morning.
"""


def test_hard_wrapped_page_joins_lines_into_paragraphs():
    cleaned = clean(WRAPPED)
    assert_well_formed(WRAPPED, cleaned)
    kept = texts(WRAPPED, cleaned)
    assert cleaned.title == "Storm Batters Coastal Towns as Thousands Lose Power"
    assert len(kept) == 3
    assert kept[0].startswith("Heavy rain") and kept[0].endswith("several roads.")
    assert "\n" in kept[0]  # a verbatim span across the wrapped lines
    assert kept[2].startswith('"It was') and kept[2].endswith("Wednesday morning.")


def test_markdown_title_and_inner_headings():
    text = (
        "# Council Approves New Budget for Schools\n\n"
        "The city council approved a new budget for schools on Monday, raising\n"
        "spending on teachers by five percent over the next two years.\n\n"
        "## Reaction\n\n"
        "Parents welcomed the decision but said more money was needed for school buildings.\n"
    )
    cleaned = clean(text)
    assert_well_formed(text, cleaned)
    assert cleaned.title == "Council Approves New Budget for Schools"
    kept = texts(text, cleaned)
    assert len(kept) == 2
    assert not any(k.startswith("#") for k in kept)


def test_byline_at_bottom_and_repeated_title():
    text = (
        "Farmers Protest New Water Rules in Capital\n"
        "Farmers Protest New Water Rules in Capital\n"
        "Hundreds of farmers drove tractors into the capital on Friday to protest new rules limiting "
        "the water they may draw from rivers.\n"
        "The agriculture ministry said the rules were needed to protect drinking water supplies.\n"
        "By Staff and Agencies\n"
    )
    cleaned = clean(text)
    assert cleaned.title == "Farmers Protest New Water Rules in Capital"
    assert cleaned.byline == "Staff and Agencies"
    assert len(cleaned.blocks) == 2


def test_no_prose_means_no_blocks():
    assert clean("Menu\nHome\nShare\n0 Comments\n").blocks == ()
    assert clean("").blocks == ()


# -----------------------------------------------------------------------------------------------
# Real seed pages: structural assertions only
# -----------------------------------------------------------------------------------------------

SEED_FILES = sorted(SEEDS.glob("*.txt"))


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name)
def test_seed_pages_keep_only_prose(path: Path):
    text = path.read_text(encoding="utf-8")
    cleaned = clean(text)
    assert_well_formed(text, cleaned)
    kept = texts(text, cleaned)
    assert len(kept) >= 5
    assert len({norm(k) for k in kept}) == len(kept)  # no duplicates
    for k in kept:
        assert len(k.split()) >= 6, k
        assert SENTENCE_END.search(k), k
    assert cleaned.title is None or norm(cleaned.title) not in {norm(k) for k in kept}


def test_seed_headlines_are_found():
    expected = {
        "000_": "Lavrov: European Hardliners and Kiev Sabotage US-Russia Talks",
        "001_": "Lavrov accuses European Leaders of Undermining Progress made at Alaska Summit",
        "003_": "FM Lavrov emphasizes Russia’s national interests in potential Ukraine negotiations",
        "002_": None,  # these pages start with prose: no headline line
        "004_": None,
    }
    assert len(SEED_FILES) == 5
    for path in SEED_FILES:
        want = expected[path.name[:4]]
        assert clean(path.read_text(encoding="utf-8")).title == want, path.name


def test_seed_folder_reads_every_page():
    folder = read_folder(SEEDS)
    assert folder.skipped == ()
    assert [d.doc_id for d in folder.documents] == [p.name for p in SEED_FILES]
    for d in folder.documents:
        assert d.title.strip()
        assert len(d.title) <= 101


# -----------------------------------------------------------------------------------------------
# read_folder / read_document
# -----------------------------------------------------------------------------------------------

ARTICLE = (
    "Solar Farm Opens on Former Coal Site\n\n"
    "A solar farm built on the site of a former coal mine began supplying power to the grid on Monday, "
    "its operator said.\n\n"
    "The plant can power about 30,000 homes, according to the regional energy agency.\n"
)


def reasons(folder: Folder) -> dict[str, str]:
    return {Path(s.path).name: s.reason for s in folder.skipped}


def test_read_folder_skips_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    (tmp_path / "good.txt").write_text(ARTICLE, encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"Some text\x00\x01\x02 more text.")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 owners said prices had risen.".encode("latin-1"))
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("  \n\n ", encoding="utf-8")
    (tmp_path / "big.txt").write_text(ARTICLE * 20, encoding="utf-8")
    (tmp_path / "chrome.txt").write_text("Menu\nHome\nShare\n0 Comments\n", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text(ARTICLE, encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "inside.txt").write_text(ARTICLE, encoding="utf-8")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 not an article")
    (tmp_path / "slides.pptx").write_text(ARTICLE, encoding="utf-8")
    (tmp_path / "notes").write_text(ARTICLE, encoding="utf-8")
    with caplog.at_level(logging.DEBUG, logger="qa"):
        folder = read_folder(tmp_path, max_bytes=len(ARTICLE.encode()) * 2)
    assert any("slides.pptx" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    assert [d.doc_id for d in folder.documents] == ["good.txt", "latin1.txt"]
    latin1 = folder.documents[1]
    assert latin1.encoding == "cp1252" and latin1.text.startswith("Café owners")
    got = reasons(folder)
    assert got.pop("report.pdf").startswith("corrupt PDF")
    assert got == {
        "binary.txt": "not a text file (binary content)",
        "empty.md": "empty",
        "blank.txt": "empty",
        "big.txt": f"larger than {len(ARTICLE.encode()) * 2} bytes",
        "chrome.txt": "no article text found",
    }
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 6 and all(m.startswith("skipping ") for m in warned)


def test_default_size_limit_is_reported_in_megabytes(tmp_path: Path):
    big = tmp_path / "big.txt"
    with big.open("wb") as f:  # sparse: over the limit without writing 20 MB
        f.truncate(20_000_001)
    assert reasons(read_folder(tmp_path)) == {"big.txt": "larger than 20 MB"}


def test_document_fields_and_crlf_offsets(tmp_path: Path):
    raw = ARTICLE.replace("\n", "\r\n").encode("utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_bytes(raw)
    folder = read_folder(tmp_path)
    (d,) = folder.documents
    assert d.doc_id == "sub/a.md"
    assert d.path == str((tmp_path / "sub" / "a.md").resolve())
    on_disk = Path(d.path).read_text(encoding="utf-8")
    assert d.text == on_disk
    assert d.content_hash == hashlib.sha256(raw).hexdigest()
    assert d.title == "Solar Farm Opens on Former Coal Site"
    assert len(d.blocks) == 2
    for b in d.blocks:
        assert on_disk[b.start : b.end] == d.text[b.start : b.end] == d.block_text(b)
    assert d.block_text(d.blocks[1]).startswith("The plant")


def test_bom_is_kept_in_text_but_not_in_blocks(tmp_path: Path):
    body = "Officials said the bridge would reopen to traffic next week after repairs.\n"
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + body.encode())
    (d,) = read_folder(tmp_path).documents
    assert d.text == Path(d.path).read_text(encoding="utf-8") and d.text.startswith("\ufeff")
    assert d.block_text(d.blocks[0]) == body.strip()
    assert d.title == body.strip()


def test_fallback_title_is_first_sentence_cut_on_a_word(tmp_path: Path):
    first = (
        "Lawmakers in the northern province voted late on Wednesday to extend the emergency powers "
        "granted to the regional government during last spring's floods by another six months."
    )
    (tmp_path / "x.txt").write_text(first + " Opponents called it a power grab.\n", encoding="utf-8")
    (d,) = read_folder(tmp_path).documents
    assert d.title.endswith("…") and len(d.title) <= 101
    assert first.startswith(d.title[:-1])
    assert not d.title[:-1].endswith(" ")


def test_symlinks_outside_are_skipped_inside_are_followed(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(ARTICLE, encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "real.txt").write_text(ARTICLE, encoding="utf-8")
    (docs / "leak.txt").symlink_to(outside / "secret.txt")
    (docs / "leakdir").symlink_to(outside, target_is_directory=True)
    (docs / "alias.txt").symlink_to(docs / "real.txt")
    (docs / "loop").symlink_to(docs, target_is_directory=True)
    (docs / "sub").mkdir()
    (docs / "sub" / "b.txt").write_text(ARTICLE, encoding="utf-8")
    (docs / "subalias").symlink_to(docs / "sub", target_is_directory=True)
    folder = read_folder(docs)
    assert [d.doc_id for d in folder.documents] == [
        "alias.txt", "real.txt", "sub/b.txt", "subalias/b.txt",
    ]
    assert {d.path for d in folder.documents} == {
        str((docs / "real.txt").resolve()), str((docs / "sub" / "b.txt").resolve()),
    }
    assert reasons(folder) == {
        "leak.txt": "symbolic link leaves the folder",
        "leakdir": "symbolic link leaves the folder",
    }
    with pytest.raises(DocumentsError, match="leaves the folder"):
        read_document(docs / "leak.txt", docs)


def test_missing_or_non_directory_folder_raises(tmp_path: Path):
    with pytest.raises(DocumentsError, match="does not exist"):
        read_folder(tmp_path / "nope")
    (tmp_path / "file.txt").write_text(ARTICLE, encoding="utf-8")
    with pytest.raises(DocumentsError, match="not a directory"):
        read_folder(tmp_path / "file.txt")


def test_empty_folder_returns_empty_result(tmp_path: Path):
    folder = read_folder(tmp_path)
    assert (list(folder.documents), folder.skipped, folder.facts, folder.unchanged) == ([], (), {}, ())


def test_read_document_raises_clear_error(tmp_path: Path):
    (tmp_path / "b.txt").write_bytes(b"\x00\x00")
    with pytest.raises(DocumentsError, match=r"b\.txt: not a text file \(binary content\)"):
        read_document(tmp_path / "b.txt", tmp_path)
    with pytest.raises(DocumentsError, match="vanished"):
        read_document(tmp_path / "gone.txt", tmp_path)


def test_html_uses_extracted_text_and_metadata(tmp_path: Path):
    html = """<html><head><title>Ferry Service Resumes | Coastline Times</title>
<meta name="author" content="Jane Doe"><meta property="og:site_name" content="Coastline Times"></head>
<body><nav><a href="/">Home</a> <a href="/world">World</a></nav>
<article><h1>Ferry Service Resumes After Storm</h1>
<p>The ferry service between the mainland and the islands resumed on Saturday after a three-day
suspension caused by the storm, the operator said.</p>
<p>“Passengers should expect some delays while we clear the backlog,” a spokeswoman said.</p>
</article><footer>Subscribe to our newsletter for more stories like this.</footer></body></html>"""
    (tmp_path / "page.html").write_text(html, encoding="utf-8")
    (d,) = read_folder(tmp_path).documents
    assert d.byline == "Jane Doe" and d.outlet == "Coastline Times"
    assert "Ferry Service Resumes" in d.title
    kept = [d.block_text(b) for b in d.blocks]
    assert kept[0].startswith("The ferry service") and kept[-1].endswith("a spokeswoman said.")
    assert not any("Subscribe" in k or "Home" in k for k in kept)


def test_public_constants_and_records():
    assert SUPPORTED_SUFFIXES == (".txt", ".md", ".html", ".htm", ".pdf", ".docx")
    s = Skipped("a.txt", "empty")
    with pytest.raises(AttributeError):
        s.reason = "x"  # type: ignore[misc]
    assert os.fspath(Path(s.path)) == "a.txt"


def test_question_headline_and_sentence_starting_with_by():
    text = (
        "Will the Ceasefire Hold in the North?\n"
        "By Ana Lopez\n"
        "By Monday, the talks had collapsed and both sides accused each other of violating the truce.\n"
        "Diplomats said a new round of negotiations could start as early as next week in the capital.\n"
    )
    cleaned = clean(text)
    assert cleaned.title == "Will the Ceasefire Hold in the North?"
    assert cleaned.byline == "Ana Lopez"
    assert texts(text, cleaned)[0].startswith("By Monday, the talks")
    assert len(cleaned.blocks) == 2


def test_closing_lines_under_a_subheading_are_kept():
    text = """Budget Row Deepens Between Coalition Partners

The two coalition partners traded accusations on Thursday as talks on next year's budget stalled for a third week.

What happens next

Negotiators will meet again on Monday, a government spokesman said, adding that he expected a deal before the summer recess.

Key sticking points

The partners disagree over defence spending and a proposed tax on windfall profits.

A spokesperson for the opposition declined to comment.
"""
    cleaned = clean(text)
    kept = texts(text, cleaned)
    assert len(kept) == 4
    assert kept[-1] == "A spokesperson for the opposition declined to comment."
    assert not any("next" == k.split()[-1] for k in kept)


def test_reader_comments_after_the_article_are_trimmed():
    text = """Town Votes to Keep Its Last Cinema Open

Residents of the small town voted overwhelmingly on Sunday to fund the running costs of its last remaining cinema, which had been due to close in June.

The cinema, which opened in 1932, will be run by a volunteer trust.

3 Comments

Great news, I went there as a kid and still remember my first film there with my grandfather.
Finally some good news.
Who is going to pay for the heating though?
"""
    kept = texts(text, clean(text))
    assert len(kept) == 2
    assert kept[-1] == "The cinema, which opened in 1932, will be run by a volunteer trust."


LINES = st.sampled_from(
    ["", " ", "Menu", "By Jane Doe", "Share", "Home > News > World", "“Quote,” he said.",
     "A short sentence about the harbour strike and the port.", "Headline About the Strike Today",
     "the line goes on in lowercase after a wrap and keeps going on", "\ufeff", "\t  \u00a0",
     "Ten recipes for autumn...", "12 Comments", "# Heading", "- item", "x" * 120 + "."]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(LINES, max_size=30), st.sampled_from(["\n", "\n\n"]))
def test_clean_invariants_on_arbitrary_pages(lines: list[str], sep: str):
    text = sep.join(lines)
    cleaned = clean(text)
    assert_well_formed(text, cleaned)
    for b in cleaned.blocks:
        assert text[b.start] not in "\ufeff" and not text[b.start].isspace()
    assert cleaned.title is None or cleaned.title.strip()


def test_folder_listing_knows_every_parsed_suffix():
    from qa import folder, formats

    assert set(folder._EXTRACTED_SUFFIXES) == set(formats.SUFFIXES)
