"""The benchmark helpers shared by bench_quality, bench_news and calibrate_abstention, on made-up data."""

import sys
from pathlib import Path

import numpy as np


from benchmarks.common import even_sample, gold_rank, near_duplicates, peer_rankings  # noqa: E402

STORY = ("The harbour council voted on Tuesday to close the old ferry pier after engineers found deep cracks "
         "in its supports, and the mayor said repairs would cost more than a new pier.")


def test_near_duplicates_finds_re_edited_copies_and_same_titles():
    docs = {
        "a.txt": ("Ferry pier to close", STORY),
        "b.txt": ("Council shuts pier", STORY + " Local traders fear the loss of summer visitors."),
        "c.txt": ("Ferry pier to close", "A different text entirely about a school play and its cast of pupils."),
        "d.txt": ("Rain expected", "Forecasters expect heavy rain across the north with winds reaching gale force."),
    }
    copies = near_duplicates(docs)
    assert copies["a.txt"] == {"b.txt", "c.txt"}  # b by shared 5-grams, c by the same title
    assert copies["b.txt"] == {"a.txt"}
    assert "d.txt" not in copies


def test_near_duplicates_needs_half_of_the_shorter_text():
    words = STORY.split()
    half_copy = " ".join(words[: len(words) // 3]) + " and then something else was said by nobody in particular today"
    assert near_duplicates({"a.txt": ("One", STORY), "b.txt": ("Two", half_copy)}) == {}


def test_gold_rank_normalises_and_stops_at_depth():
    texts = ["Nothing here.", "The mayor said “repairs would cost”  more.", "Repairs would cost a lot."]
    assert gold_rank(texts, ['repairs would cost']) == 2
    assert gold_rank(texts, ["said \u201cRepairs  would"]) == 2  # case, quotes and spaces ignored
    assert gold_rank(texts, ["repairs would COST"], depth=1) is None
    assert gold_rank(texts, ["absent phrase"]) is None


def test_even_sample_spreads_over_the_list():
    assert even_sample(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert even_sample([1, 2], 5) == [1, 2]


def test_peer_rankings_rank_the_matching_passage_first():
    passages = ["The ferry pier will close after cracks were found.", "Heavy rain is expected in the north.",
                "Pupils staged a school play about pirates."]
    vecs = np.eye(3, 4, dtype=np.float32)
    ranked = peer_rankings(passages, vecs, ["When will it rain in the north?"], vecs[[1]], depth=3)
    assert set(ranked) == {"BM25 (bm25s)", "dense (FAISS flat)", "RRF of both (k=60)"}
    for rows in ranked.values():
        assert rows[0][0] == 1
    assert ranked["BM25 (bm25s)"][0] == [1]  # passages holding no query term are not listed
