"""A person's statements over time: only that person's, in date order, a copied report shown once
with the earliest outlet marked as first reported; spelling variants of the name are one person."""

import json

import pytest

from qa import BadQuestionError
from qa.cli import main as cli_main

WIRE = ("Foreign Minister Anna Korsak said on Friday that the ceasefire along the river must hold through the "
        "winter. \"A ceasefire that collapses every month is no ceasefire at all,\" Korsak told reporters in Lidan.")
ARTICLES = {
    "first.txt": "Korsak insists on river ceasefire\n\n" + WIRE + "\n\nTalks resume next week in the capital.",
    "copy.txt": "Minister: truce must hold\n\n" + WIRE + "\n\nThe opposition called the plan naive.",
    "later.txt": "Korsak says truce talks failed\n\nForeign Minister Anna Korsak said the ceasefire talks had "
                 "failed because the rebels refused to withdraw their artillery. \"We offered a ceasefire and got "
                 "shelling in return,\" Korsak said.\n\nThe army was put on alert.",
    "other.txt": "Rebel leader rejects truce\n\nRebel commander Piet Vos said the ceasefire was a trap. \"This "
                 "ceasefire only helps the capital rearm,\" Vos said.\n\nHis fighters stayed in the hills.",
}
MANIFEST = ("file,date,outlet\nfirst.txt,2025-01-10,Lidan Herald\ncopy.txt,2025-01-12,Valley Times\n"
            "later.txt,2025-02-20,Lidan Herald\nother.txt,2025-01-15,Valley Times\n")


@pytest.fixture(scope="module")
def bot(folder_qa):
    return folder_qa({**ARTICLES, "qa-manifest.csv": MANIFEST}, "timeline")


def test_statements_are_the_persons_own_in_date_order(bot):
    found = bot.statements("Anna Korsak", about="the ceasefire")
    docs = [s.passage.citation.doc_id for s in found.statements]
    assert docs and "other.txt" not in docs  # Vos's statements are not Korsak's
    dates = [s.first_reported.date for s in found.statements]
    assert dates == sorted(dates, reverse=True)  # newest first
    assert docs[0] == "later.txt"
    oldest = bot.statements("Anna Korsak", about="the ceasefire", order="oldest")
    assert [s.first_reported.date for s in oldest.statements] == sorted(dates)


def test_copied_words_appear_once_first_reported_by_the_earliest_outlet(bot):
    found = bot.statements("Anna Korsak", about="the ceasefire", order="oldest")
    wire = [s for s in found.statements if "collapses every month" in s.passage.text]
    assert len(wire) == 1
    st = wire[0]
    assert {st.passage.citation.doc_id, *(c.doc_id for c in st.passage.also_in)} == {"first.txt", "copy.txt"}
    assert st.first_reported.doc_id == "first.txt" and st.first_reported.outlet == "Lidan Herald"


def test_a_variant_spelling_finds_the_same_person(bot):
    a = bot.statements("Anna Korsak", about="the ceasefire")
    b = bot.statements("Ana Korsak", about="the ceasefire")
    assert [s.passage.citation for s in a.statements] == [s.passage.citation for s in b.statements]


def test_filters_and_errors(bot):
    found = bot.statements("Anna Korsak", about="the ceasefire", since="2025-02-01")
    assert [s.passage.citation.doc_id for s in found.statements] == ["later.txt"]
    assert not bot.statements("Marta Quill", about="the ceasefire").statements
    with pytest.raises(BadQuestionError):
        bot.statements("  ")
    with pytest.raises(BadQuestionError):
        bot.statements("Anna Korsak", order="sideways")


def test_cli_said(bot, capsys):
    code = cli_main(["said", "Anna Korsak", "--about", "the ceasefire", "--oldest", "--docs", str(bot.docs_dir),
                     "--index", str(bot.index_dir), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["statements"][0]["first_reported"]["date"] == "2025-01-10"
