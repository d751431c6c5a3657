"""Who says what: attribution rules, and "what did X say about Y" beating plain retrieval."""

import numpy as np
import pytest

from qa.textutil import terms
from qa.attribution import attribute, lexical_query, speaker_matches, speaker_question

# Made-up articles in which several people speak about the same topics; the passage that mentions
# a topic most is never the asked person's statement, so plain retrieval tends to pick the wrong one.
PORT = """Harbour Tariff Row Deepens

Mayor Elena Brandt defended the new port tariffs on Monday: the tariffs on ferries, the tariffs on containers and the tariffs on fishing boats, which Jonas Weller has opposed for months.

"These charges will drive the ferries away from our town," Weller said after the vote.

Harbour master Petra Olsen noted that container traffic had already fallen by a fifth this year.
"""

FARM = """Drought Forces Water Limits in Valley Farms

The district extended the water limits for valley farms on Monday, with limits on irrigation, limits on livestock troughs and limits on garden hoses, despite pleas from farmer Ana Ruiz.

"We will lose the whole harvest if the pumps stay off," Ruiz told reporters.

District engineer Karl Hume explained that reservoir levels were at their lowest since 1976.
"""

QUESTIONS = [
    ("What did Jonas Weller say about the tariffs?", "port.txt", "drive the ferries away"),
    ("What did Ana Ruiz say about the water limits?", "farm.txt", "lose the whole harvest"),
]


def test_speaker_question_parsing():
    assert speaker_question("What did Lavrov say about ceasefires?") == ("Lavrov", "ceasefires")
    assert speaker_question("What did Sergei Lavrov tell NBC News?") == ("Sergei Lavrov", "NBC News")
    person, topic = speaker_question("What are Europeans trying to hide, according to Lavrov?")
    assert person == "Lavrov" and "Europeans" in topic
    assert speaker_question("What is the capital of Australia?") == (None, "What is the capital of Australia?")
    assert lexical_query("What did Lavrov say about ceasefires?") == "Lavrov ceasefires"


def test_attribution_quotes_reported_speech_and_pronouns():
    sents = [
        "Opposition leader Jonas Weller rejected the plan.",
        '"These charges will drive the ferries away from our town," he said.',
        "The council met on Monday.",
        "According to Petra Olsen, traffic fell.",
        "“We will not accept it.",
        "It is unfair,” said Ana Ruiz.",
    ]
    who = attribute(sents, [0, 0, 1, 2, 3, 3])
    assert speaker_matches(who[0], "Weller")
    assert speaker_matches(who[1], "Jonas Weller")  # "he said" refers back to the named speaker
    assert who[2] is None
    assert speaker_matches(who[3], "Olsen")
    assert speaker_matches(who[4], "Ruiz") and speaker_matches(who[5], "Ruiz")  # a quote spanning sentences
    assert not speaker_matches("Jonas Weller", "Ana Ruiz")


@pytest.fixture(scope="module")
def statements_qa(tmp_path_factory):
    from qa import QA

    base = tmp_path_factory.mktemp("statements")
    docs = base / "docs"
    docs.mkdir()
    (docs / "port.txt").write_text(PORT, encoding="utf-8")
    (docs / "farm.txt").write_text(FARM, encoding="utf-8")
    return QA(docs, base / "index", settings=_one_paragraph_passages())


def _one_paragraph_passages():
    from qa import Settings

    # One paragraph per passage, so the test tells statements apart rather than paragraphs joined.
    return Settings(min_passage_chars=0)


def test_engine_ranks_the_asked_persons_statement_first(statements_qa):
    for question, doc, phrase in QUESTIONS:
        top = statements_qa.ask(question, k=3).passages[0]
        assert top.citation.doc_id == doc and phrase in top.text, (question, top.text)
        assert phrase in top.highlight, (question, top.highlight)


def test_plain_retrieval_does_worse_on_statement_questions(statements_qa):
    """BM25 alone and dense alone (same index, same model) against the engine on the same questions."""
    backend, embedder = statements_qa.engine.backend, statements_qa.engine.embedder
    plain = {"bm25": 0, "dense": 0}
    engine = 0
    for question, _, phrase in QUESTIONS:
        bm25_top = backend.search_lexical(terms(question), 1)[0].passage
        dense_top = backend.search_dense(embedder.embed_query(question), 1)[0].passage
        plain["bm25"] += phrase in backend.fetch([bm25_top]).chunks[0].text
        plain["dense"] += phrase in backend.fetch([dense_top]).chunks[0].text
        engine += phrase in statements_qa.ask(question, k=1).passages[0].text
    assert engine == len(QUESTIONS)
    assert max(plain.values()) < engine, plain
