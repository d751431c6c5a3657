"""Publication facts and the filters on them: a manifest wins over guesses, dates and outlets
restrict both searches before top-k, and bad filters are one clear error."""

import datetime as dt
import json

import pytest

from qa import QA, BadQuestionError
from qa.cli import main as cli_main
from qa.metadata import iso_date, read_manifest

ARTICLES = {
    "a.txt": "Ministers back port deal\n\nBy Lena Hart\n\nThe transport minister Karl Osten said on Monday that the "
             "port deal would cut freight costs by a fifth.\n\nUnions asked for talks before the deal is signed.",
    "b.txt": "Port deal stalls\n\nBy Omar Reyes\n\nThe transport minister Karl Osten said the port deal was delayed "
             "until the spring because the unions had not agreed.\n\nShipping firms said they would wait.",
    "c.txt": "Port deal signed\n\nThe transport minister Karl Osten said the port deal was finally signed after "
             "the unions agreed to a pay rise.\n\nFreight firms welcomed the news.",
}
MANIFEST = ("file,date,outlet,author,url\n"
            "a.txt,2025-03-01,Harbour Post,Lena Hart,https://example.org/a\n"
            "b.txt,2025-06-15,Coast Daily,,\n")  # c.txt: not listed, so undated


@pytest.fixture(scope="module")
def bot(folder_qa):
    return folder_qa({**ARTICLES, "qa-manifest.csv": MANIFEST}, "filters")


@pytest.fixture(scope="module")
def folder(bot):
    return bot.docs_dir, bot.index_dir, bot.engine.embedder


def test_manifest_facts_win_and_say_where_they_came_from(bot):
    a = next(d for d in bot.documents() if d.doc_id == "a.txt")
    assert (a.date, a.outlet, a.byline, a.url) == ("2025-03-01", "Harbour Post", "Lena Hart", "https://example.org/a")
    assert dict(a.meta_sources)["date"] == "manifest"
    b = next(d for d in bot.documents() if d.doc_id == "b.txt")
    assert b.byline == "Omar Reyes" and dict(b.meta_sources)["author"] == "article text"  # the guess stays
    c = next(d for d in bot.documents() if d.doc_id == "c.txt")
    assert c.date is None  # never taken from the file's modification time


def test_date_and_outlet_filters_restrict_the_answers(bot):
    q = "What did Karl Osten say about the port deal?"
    assert {p.citation.doc_id for p in bot.ask(q, k=5).passages} == {"a.txt", "b.txt", "c.txt"}
    since = bot.ask(q, k=5, since="2025-05-01")
    assert {p.citation.doc_id for p in since.passages} == {"b.txt"}
    assert since.undated_left_out == 1 and ("since", "2025-05-01") in since.filters
    assert since.passages[0].citation.date == "2025-06-15"
    until = bot.ask(q, k=5, until=dt.date(2025, 3, 31))
    assert {p.citation.doc_id for p in until.passages} == {"a.txt"}
    assert {p.citation.doc_id for p in bot.ask(q, k=5, outlets=["coast  daily"]).passages} == {"b.txt"}
    assert {p.citation.doc_id for p in bot.ask(q, k=5, authors=["Lena Hart"]).passages} == {"a.txt"}


def test_a_filter_matching_nothing_says_so(bot):
    ans = bot.ask("What did Karl Osten say about the port deal?", since="2030-01-01")
    assert not ans.answered and not ans.passages and "no article matches the filter" in ans.reason


@pytest.mark.parametrize("kwargs, message", [
    ({"since": "March 2025"}, "YYYY-MM-DD"),
    ({"since": "2025-07-01", "until": "2025-01-01"}, "after"),
    ({"outlets": ["Daily Planet"]}, "unknown outlet"),
])
def test_bad_filters_are_one_clear_error(bot, kwargs, message):
    with pytest.raises(BadQuestionError, match=message):
        bot.ask("What did Karl Osten say?", **kwargs)


def test_a_changed_manifest_relabels_without_re_embedding(folder, bot):
    docs, index, embedder = folder
    vectors = bot.engine.backend.passages_of("c.txt").vectors
    (docs / "qa-manifest.csv").write_text(MANIFEST + "c.txt,2025-09-09,Harbour Post,,\n", encoding="utf-8")
    try:
        again = QA(docs, index, embedder=embedder)
        c = next(d for d in again.documents() if d.doc_id == "c.txt")
        assert c.date == "2025-09-09" and c.outlet == "Harbour Post"
        assert (again.engine.backend.passages_of("c.txt").vectors == vectors).all()
    finally:
        (docs / "qa-manifest.csv").write_text(MANIFEST, encoding="utf-8")


def test_cli_filters_and_json(folder, capsys):
    docs, index, _ = folder
    code = cli_main(["ask", "What did Karl Osten say about the port deal?", "--docs", str(docs), "--index", str(index),
                     "--since", "2025-05-01", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and {p["citation"]["doc_id"] for p in out["passages"]} == {"b.txt"}
    assert out["passages"][0]["citation"]["date"] == "2025-06-15" and out["undated_left_out"] == 1
    assert cli_main(["ask", "x", "--docs", str(docs), "--index", str(index), "--since", "soon"]) == 2


def test_manifest_reading_rules(tmp_path):
    assert iso_date("2025-03-01T10:00:00Z") == "2025-03-01" and iso_date("1 March 2025") is None
    (tmp_path / "qa-manifest.jsonl").write_text(
        '{"file": "x.txt", "date": "2025-01-02", "outlet": " Tass "}\nnot json\n{"file": "y.txt", "date": "soon"}\n',
        encoding="utf-8")
    rows = read_manifest(tmp_path)
    assert rows["x.txt"].date == "2025-01-02" and rows["x.txt"].outlet == "Tass"
    assert rows["y.txt"].date is None  # an invalid date is left out, not guessed
