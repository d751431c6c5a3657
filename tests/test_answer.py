"""The abstention model: its decision moves the right way with the evidence."""

import itertools

import numpy as np

from qa.answer import ABSTAIN_WEIGHTS, SUPPORT_FEATURES, Support, answers


def _evidence(values, topic=None):
    # values: sentence, dense, coverage, sent_coverage, window, bigrams (names keep their defaults)
    fields = ("sentence", "dense", "coverage", "sent_coverage", "window", "bigrams")
    return Support(**dict(zip(fields, (float(v) for v in values))), topic=topic)


def test_more_evidence_never_turns_an_answer_into_an_abstention():
    # Every signal is "more is better": stronger evidence must not make the engine decline.
    assert (ABSTAIN_WEIGHTS > 0).all() and len(ABSTAIN_WEIGHTS) == len(SUPPORT_FEATURES)
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


def test_weights_are_looked_up_by_name(tmp_path):
    import json

    import pytest

    from qa.features import PASSAGE_FEATURES, PASSAGE_WEIGHTS
    from qa.weights import WEIGHTS_FILE, load

    models = load()
    assert dict(zip(PASSAGE_FEATURES, PASSAGE_WEIGHTS)) == dict(models["passage"].weights)
    assert models["abstain"].threshold is not None and all(m.provenance for m in models.values())
    # Reordering the saved mapping changes nothing; a renamed feature is an error, not a shifted vector.
    raw = json.loads(WEIGHTS_FILE.read_text("utf-8"))
    raw["passage"]["weights"] = dict(reversed(list(raw["passage"]["weights"].items())))
    (tmp_path / "w.json").write_text(json.dumps(raw))
    assert (load(tmp_path / "w.json")["passage"].vector(PASSAGE_FEATURES) == PASSAGE_WEIGHTS).all()
    raw["passage"]["weights"]["renamed"] = raw["passage"]["weights"].pop("lead")
    (tmp_path / "w.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="lead"):
        load(tmp_path / "w.json")["passage"].vector(PASSAGE_FEATURES)
