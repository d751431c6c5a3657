"""The abstention model: its decision moves the right way with the evidence."""

import itertools

import numpy as np

from qa.answer import ABSTAIN_WEIGHTS, Evidence, answers


def _evidence(values, topic=None):
    return Evidence(*values, topic=topic)


def test_more_evidence_never_turns_an_answer_into_an_abstention():
    # Every signal is "more is better": stronger evidence must not make the engine decline.
    assert (ABSTAIN_WEIGHTS > 0).all()
    grid = [0.0, 0.3, 0.6, 0.9]
    for values in itertools.product(grid, repeat=3):
        base = np.array([values[0], values[1], values[2], values[1] * 0.8, values[0] * values[1], 0.0])
        if answers(_evidence(base)):
            for j in range(len(base)):
                stronger = base.copy()
                stronger[j] = min(1.0, stronger[j] + 0.1)
                assert answers(_evidence(stronger)), (base, j)


def test_unrelated_and_close_passages():
    # A passage about something else: low cosines, none of the question's terms.
    assert not answers(_evidence([0.1, 0.0, 0.05, 0.0, 0.0, 0.0]))
    # A sentence close in meaning that holds the question's terms and word pairs.
    assert answers(_evidence([0.7, 0.9, 0.6, 0.8, 0.6, 0.5]))


def test_a_statement_question_needs_its_topic():
    strong = [0.55, 0.9, 0.5, 0.8, 0.5, 0.3]
    assert answers(_evidence(strong, topic=0.5))
    # The asked person is found but not the topic, and no sentence is very close in meaning.
    assert not answers(_evidence(strong, topic=0.0))
