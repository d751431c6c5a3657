"""A phrase in double quotes is an exact-phrase search: only passages holding it answer."""

import pytest

from qa.textutil import quoted_phrases

ARTICLES = {
    "levy.txt": "Council backs drinks levy\n\nThe Marlow council voted on Tuesday for a tax on sugary drinks "
                "sold in its schools and leisure centres. Councillor Ada Brennan said the money would pay for "
                "free swimming lessons.\n\nShops will have six months to adjust their prices.",
    "shops.txt": "Shopkeepers fear sugary drinks tax\n\nSmall shopkeepers in Marlow warned that a sugary drinks tax "
                 "would drive customers to supermarkets outside the town.\n\nTheir association asked the council "
                 "to delay the vote until the summer.",
    "pool.txt": "Swimming pool reopens\n\nThe Marlow leisure centre pool reopened after repairs to its roof. "
                "Lessons for children start again next week.",
}


@pytest.fixture(scope="module")
def bot(folder_qa):
    return folder_qa(ARTICLES, "phrases")


def test_quoted_phrases_are_found_in_any_quote_style():
    assert quoted_phrases('Who backed the "tax on sugary drinks"?') == ("tax on sugary drinks",)
    assert quoted_phrases("Who backed the “Tax on  Sugary Drinks”?") == ("tax on sugary drinks",)
    assert quoted_phrases("What did the council's members say about Marlow's pool?") == ()


def test_only_passages_with_the_exact_phrase_answer(bot):
    plain = bot.ask("Who is against a tax on sugary drinks?", k=5)
    assert {p.citation.doc_id for p in plain.passages} >= {"levy.txt", "shops.txt"}  # both match loosely
    exact = bot.ask('Who is against a "tax on sugary drinks"?', k=5)
    assert exact.passages and {p.citation.doc_id for p in exact.passages} == {"levy.txt"}
    assert all("tax on sugary drinks" in p.text for p in exact.passages)


def test_case_spacing_and_curly_quotes_do_not_matter(bot):
    exact = bot.ask("Who is against a “Sugary  Drinks Tax”?", k=5)
    assert exact.passages and {p.citation.doc_id for p in exact.passages} == {"shops.txt"}


def test_a_phrase_no_passage_holds_is_said_plainly(bot):
    ans = bot.ask('Who proposed the "sugar levy on soft drinks"?', k=5)
    assert not ans.answered and not ans.passages
    assert "exact phrase" in ans.reason and "sugar levy on soft drinks" in ans.reason
