"""News signals: names as units, the figure a number question asks for, questions asking for words,
and the features built on them over a small made-up archive."""

import numpy as np
import pytest

from qa.signals import (COUNT, MONEY, PERCENT, SCORE, asked_figure, asks_for_words, figure_kinds, focus_near,
                        name_found, names_share, question_focus, question_names, with_variants)


def test_question_names_are_units_without_the_question_word_or_possessive():
    assert question_names("What were Eurotunnel's total sales in 2004?") == ("Eurotunnel", "2004")
    assert question_names("How did the head of the Karachi Stock Exchange respond?") == ("Karachi Stock Exchange",)
    assert question_names("What did the Bank of England say?") == ("Bank of England",)
    assert question_names("Which side won between England and Australia?") == ("England", "Australia")
    assert question_names("how many people live there?") == ()


def test_names_match_as_units_with_possessives_and_surnames():
    assert name_found("Gazprom", "Gazprom's shares fell.") == 1.0
    assert name_found("Karachi Stock Exchange", "the Karachi Stock Exchange said") == 1.0
    # Only the surname: partial credit; the words scattered or in lower case: none.
    assert name_found("Matthew Taylor", "Mr Taylor said the calls broke the law.") == 0.5
    assert name_found("Stock Exchange", "stock prices rose on the exchange") == 0.0
    assert name_found("Labour", "the labour market") == 0.0
    assert name_found("Moya", "Moyano won") == 0.0
    # Spellings outlets use side by side are one name: Kiev/Kyiv; other names stay apart.
    assert names_share(("Kiev", "Gazprom"), "Gazprom cut supplies to Kyiv.") == 1.0
    assert name_found("Kyiv", "talks in Kiev's centre") == 1.0
    assert name_found("Kyiv", "Kyivstar shares") == 0.0
    assert names_share(("Moscow", "Gazprom"), "Gazprom cut supplies to Kyiv.") == 0.5
    assert names_share((), "anything") == 1.0


def test_variant_spellings_join_the_words_matched_literally():
    assert with_variants("What did Lavrov say about Kyiv?") == "What did Lavrov say about Kyiv? Kiev"
    assert with_variants("What did Lavrov say about Moscow?") == "What did Lavrov say about Moscow?"


def test_question_focus_is_the_thing_asked_about():
    assert question_focus("How many jobs is General Motors cutting in Europe?") == ("jobs",)
    assert question_focus("How much prize money did Moya give?") == ("prize", "money")
    assert question_focus("What share of UK mobile phones can go online?") == ("mobile", "phones")
    assert question_focus("Which two paparazzi photographers did she sue?") == ("paparazzi", "photographers")
    assert question_focus("Who is the chairman of the dairy firm?") == ("chairman",)
    # The verb, not a noun, says what is asked: no focus.
    assert question_focus("How much did Chelsea pay for Desailly?") == ()
    assert question_focus("What did Lavrov say about ceasefires?") == ()
    assert question_focus("What is the name of the podcast?") == ()


def test_focus_near_wants_the_answer_beside_the_focus_word():
    jobs = ("jobs",)
    assert focus_near(jobs, "The carmaker will cut 12,000 jobs in Europe.", True, frozenset()) == 1.0
    # The focus word without a figure near it, or a figure far from it: half.
    assert focus_near(jobs, "Unions said jobs were at risk across the region's many plants.", True, frozenset()) == 0.5
    assert focus_near(jobs, "In 2004, after a long and bitter dispute with unions, it kept all jobs.", True,
                      frozenset()) == 0.5
    assert focus_near(jobs, "Sales fell 12% in the year.", True, frozenset()) == 0.0
    # Not a number question: a name the question does not give, beside the focus word.
    chairman = ("chairman",)
    assert focus_near(chairman, "Police detained chairman Zheng Junhuai on Monday.", False, frozenset()) == 1.0
    assert focus_near(chairman, "The Yili chairman was detained.", False, frozenset({"yili"})) == 0.5


def test_figure_kinds():
    assert figure_kinds("Sales rose to £548m last year.") & MONEY
    assert figure_kinds("It paid 789m euros.") & MONEY
    assert figure_kinds("More than half (55%) were worried.") & PERCENT
    assert figure_kinds("Prices rose 3 per cent.") & PERCENT
    assert figure_kinds("Chelsea won 2-1 at home.") & SCORE
    assert figure_kinds("The firm will cut 12,000 jobs.") == COUNT
    assert figure_kinds("The chairman said the figures were rubbish.") == 0


def test_asked_figure_and_words():
    assert asked_figure("How much prize money did he give?") == MONEY
    assert asked_figure("What share of shoppers were worried?") == PERCENT
    assert asked_figure("What percentage of voters care?") == PERCENT
    assert asked_figure("What was the score in the final?") & SCORE
    assert asked_figure("How many jobs is the firm cutting?") == COUNT
    assert asks_for_words("How did the minister respond to the warnings?")
    assert asks_for_words("What reason did the director give for the closure?")
    assert not asks_for_words("How many jobs is the firm cutting?")


# Paragraphs over 400 characters, so that each is a passage of its own (short ones are joined).
LEAD = ("Rail firm Northline has reported a sharp rise in yearly sales as more passengers used its "
        "cross-border service in 2004, the company said on Tuesday. The operator, which runs trains "
        "between the two capitals, had struggled for years with heavy debts and falling traffic. "
        "Its shares rose in early trading after the figures were published, and analysts said the "
        "recovery looked firmer than many investors had expected at the start of the year.")
LATER = ("Total sales for the year reached £548m, up from £490m a year earlier. Northline said the "
         "figure beat its own forecast by a wide margin. Freight revenue was flat, while income from "
         "the shops and car parks at its stations grew more slowly than in previous years. The firm "
         "also said it had agreed new terms with its lenders, which will cut its interest bill.")
OTHER = ("Northline chief executive Anna Berg was upbeat about the results. \"We are delighted with the "
         "way passengers have returned to the line after a difficult period,\" she said. The firm would "
         "open two new stations next year and add later trains at weekends, she added. Unions welcomed "
         "the plans but warned that staff numbers on board had to rise with the number of passengers.")


@pytest.fixture(scope="module")
def tiny(folder_qa):
    return folder_qa({"northline.txt": f"Northline sales rise\n\n{LEAD}\n\n{LATER}\n\n{OTHER}\n",
                      "weather.txt": "Storms close roads\n\nHeavy storms closed roads across the north "
                                     "on Monday, police said.\n"}, "signals")


def _features(bot, question):
    from qa.features import PASSAGE_FEATURES, SENTENCE_FEATURES, analyse, evidence
    from qa.retrieve import retrieve

    backend, embedder = bot.engine.backend, bot.engine.embedder
    qvec = embedder.embed_query(question)
    cands, index = retrieve(backend, qvec, question)
    ev = evidence(analyse(question, question, [], index, qvec), cands, index)
    texts = [index.chunks[c.chunk_id].text for c in cands]
    pcol = {n: i for i, n in enumerate(PASSAGE_FEATURES)}
    scol = {n: i for i, n in enumerate(SENTENCE_FEATURES)}
    return ev, texts, pcol, scol


def test_article_features_and_figure(tiny):
    ev, texts, pcol, scol = _features(tiny, "What were Northline's total sales in 2004?")
    lead = next(i for i, t in enumerate(texts) if t.startswith("Rail firm"))
    later = next(i for i, t in enumerate(texts) if t.startswith("Total sales"))
    weather = next(i for i, t in enumerate(texts) if "storms" in t)
    assert ev.passages[lead, pcol["lead"]] == 1.0 and ev.passages[later, pcol["lead"]] == 0.0
    # The article holds both names (Northline, 2004): evidence for all its passages alike.
    assert ev.passages[later, pcol["doc_names"]] == 1.0 and ev.passages[weather, pcol["doc_names"]] == 0.0
    assert ev.passages[later, pcol["doc_coverage"]] == ev.passages[lead, pcol["doc_coverage"]] > 0
    # A money question: the passage with a sum has the figure, the lead (a year only) has not.
    assert ev.passages[later, pcol["figure"]] == 1.0 and ev.passages[lead, pcol["figure"]] == 0.0
    rows = ev.sentences[ev.offsets[later]:ev.offsets[later + 1]]
    assert rows[:, scol["figure"]].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_number_question_answered_by_the_figure_not_the_lead(tiny):
    ans = tiny.ask("What were Northline's total sales in 2004?", k=3)
    assert ans.answered
    assert "£548m" in ans.passages[0].text and "£548m" in ans.passages[0].highlight


def test_quote_question_highlights_the_quote(tiny):
    ans = tiny.ask("How did Northline's chief executive react to the passenger figures?", k=3)
    assert ans.answered
    assert "delighted" in ans.passages[0].highlight


def test_focus_feature_marks_the_figure_beside_what_is_counted(tiny):
    ev, texts, pcol, scol = _features(tiny, "How many new stations will Northline open?")
    other = next(i for i, t in enumerate(texts) if t.startswith("Northline chief"))
    lead = next(i for i, t in enumerate(texts) if t.startswith("Rail firm"))
    rows = ev.sentences[ev.offsets[other]:ev.offsets[other + 1]]
    # "two new stations": only the third sentence counts the stations.
    assert rows[:, scol["focus"]].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert ev.passages[other, pcol["focus"]] == 1.0 and ev.passages[lead, pcol["focus"]] == 0.0
    ans = tiny.ask("How many new stations will Northline open?", k=3)
    assert "two new stations" in ans.passages[0].highlight


def test_beyond_lead_credits_the_question_words_the_lead_lacks(tiny):
    # The lead tells the story (Northline, sales); "lenders" and "interest" are only in the later paragraph.
    ev, texts, pcol, _ = _features(tiny, "What did Northline agree with its lenders about its sales and interest bill?")
    lead = next(i for i, t in enumerate(texts) if t.startswith("Rail firm"))
    later = next(i for i, t in enumerate(texts) if t.startswith("Total sales"))
    other = next(i for i, t in enumerate(texts) if t.startswith("Northline chief"))
    assert ev.passages[lead, pcol["beyond_lead"]] == 0.0
    assert ev.passages[later, pcol["beyond_lead"]] > ev.passages[other, pcol["beyond_lead"]] >= 0.0
    weather = next(i for i, t in enumerate(texts) if "storms" in t)
    assert ev.passages[weather, pcol["beyond_lead"]] == 0.0  # its article's lead is not a candidate: no credit


REPORTED = ("Northline chief executive Anna Berg said she was pleased with the way the year had ended for the company. "
            "\"We are delighted that passengers came back to the line after a difficult period,\" she said. "
            "The firm will open two new stations next year and add later trains at weekends, it added.")


def test_highlight_of_reported_speech_takes_in_the_speakers_own_quote(folder_qa):
    from qa.answer import rerank
    from qa.retrieve import retrieve

    bot = folder_qa({"berg.txt": f"Northline results\n\n{REPORTED}\n"}, "reported")
    question = "How did Anna Berg react to the year's results?"
    qvec = bot.engine.embedder.embed_query(question)
    found = retrieve(bot.engine.backend, qvec, question)
    top = rerank(question, question, [], found.candidates, found.fetched, qvec)[0]
    # The reported sentence ("said she was pleased") scores best; her quote right after it joins the highlight.
    assert (top.best, top.last) == (0, 1)
    hl = bot.ask(question, k=1).passages[0].highlight
    assert hl.startswith("Northline chief executive") and hl.endswith("she said.")
    # Not for a question that does not ask for words.
    other = "How many new stations will Northline open?"
    qvec = bot.engine.embedder.embed_query(other)
    found = retrieve(bot.engine.backend, qvec, other)
    assert rerank(other, other, [], found.candidates, found.fetched, qvec)[0].last == -1


def test_answer_kind_is_decided_by_the_questions_own_wh_word():
    from qa.features import answer_kind

    # A later "when" or "who" opening a clause does not make a date or person question.
    assert answer_kind("How ill was the bassist when the band cut short their show?") == "other"
    assert answer_kind("What warning did the editor give customers who simply stay?") == "other"
    assert answer_kind("According to Andrew Marr, when was Blair expected to call the election?") == "date"
    assert answer_kind("How many jobs is the firm cutting?") == "number"
    assert answer_kind("Who directed the film?") == "person"
    assert answer_kind("What year did it open?") == "date"
    assert answer_kind("Name the firm.") == "other"


def test_quoted_words_counts_the_longest_quotation():
    from qa.answer import _quoted_words

    assert _quoted_words('Berg said she felt "great" about the year.') == 1
    assert _quoted_words('“We are delighted with the year,” she said.') == 6
    assert _quoted_words('He told BBC News: "I am extremely concerned that so many forgot') == 8  # runs on
    assert _quoted_words("No quotation here.") == 0
