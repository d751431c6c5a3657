"""The streaming BM25 builder writes the very files bm25s' own index-then-save writes."""

import random

import bm25s
import numpy as np

from qa.backends import bm25_build
from qa.backends.snapshot import BM25_FILES


def _texts(seed: int, passages: int, words: int) -> list[list[str]]:
    rng = random.Random(seed)
    vocabulary = [f"w{k}" for k in range(words)] + ["café", "naïve", "über", "ok"]
    out = []
    for _ in range(passages):
        n = rng.choice([1, 2, 5, 30, 120])  # short and long passages, many repeated terms
        out.append([rng.choice(vocabulary[:rng.randint(1, len(vocabulary))]) for _ in range(n)])
    out[3] = [bm25_build.EMPTY]  # a passage without terms, as snapshot.py marks it
    return out


def _saved(bm25, folder) -> dict[str, bytes]:
    bm25.save(str(folder), show_progress=False)
    return {name: (folder / name).read_bytes() for name in BM25_FILES}


def _streamed(corpus, folder):
    """The builder's saved files (bm25s loads them back)."""
    builder = bm25_build.StreamingBM25()
    for tokens in corpus:
        builder.add(iter(tokens))  # any iterable: the builder never needs the list again
    builder.save(folder)
    return folder


def test_same_files_as_bm25s(tmp_path):
    # 9,000 distinct terms: the vocabulary set is resized many times, so its order is tested.
    for seed, passages, words in ((0, 40, 12), (1, 800, 9000)):
        corpus = _texts(seed, passages, words)
        reference = bm25s.BM25()
        reference.index(corpus, show_progress=False)
        want = _saved(reference, tmp_path / f"bm25s-{seed}")
        folder = _streamed(corpus, tmp_path / f"streamed-{seed}")
        got = {name: (folder / name).read_bytes() for name in BM25_FILES}
        assert got == want


def test_scores_match_bm25s(tmp_path):
    corpus = _texts(2, 300, 500)
    reference = bm25s.BM25()
    reference.index(corpus, show_progress=False)
    streamed = bm25s.BM25.load(str(_streamed(corpus, tmp_path / "streamed")))
    assert streamed.vocab_dict == reference.vocab_dict
    assert list(streamed.vocab_dict) == list(reference.vocab_dict)
    for query in (["w1"], ["w3", "w7", "café"], ["ok", "w499"]):
        np.testing.assert_array_equal(streamed.get_scores(query), reference.get_scores(query))


def test_same_files_when_the_entries_span_many_blocks_and_buckets(tmp_path, monkeypatch):
    corpus = _texts(3, 200, 300)
    reference = bm25s.BM25()
    reference.index(corpus, show_progress=False)
    want = _saved(reference, tmp_path / "bm25s")
    for block in (7, 1000):  # blocks and buckets of the matrix smaller than the collection
        monkeypatch.setattr(bm25_build, "_BLOCK", block)
        folder = _streamed(corpus, tmp_path / f"streamed-{block}")
        assert {name: (folder / name).read_bytes() for name in BM25_FILES} == want
