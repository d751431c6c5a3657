"""bench_scale_real's made passages, fitted to made-up "real" ones: vectors from the right cluster with
its spread, text from that cluster's words, records the local writer accepts."""

import numpy as np

from benchmarks.bench_scale_real import draw, fit, made_batch
from qa.backends.base import PassageBatch
from qa.types import Chunk, DocInfo

DIM = 16


def _topic(name: str, axis: int, words: list[str], rng: np.random.Generator, docs: int = 30) -> list[PassageBatch]:
    """Documents of one passage each: vectors near a unit axis, text of the topic's words."""
    out = []
    for k in range(docs):
        doc_id = f"{name}{k}.txt"
        text = " ".join(rng.choice(words, 8)).capitalize() + ". " + " ".join(rng.choice(words, 5)).capitalize() + "."
        cut = text.index(". ") + 1
        chunk = Chunk(doc_id, 0, len(text), text, ((0, cut), (cut + 1, len(text))), (None, None))
        v = np.zeros(DIM, np.float32)
        v[axis] = 1
        v += 0.2 * rng.standard_normal(DIM).astype(np.float32)
        v /= np.linalg.norm(v)
        sv = np.stack([v, v])
        out.append(PassageBatch(DocInfo(doc_id, doc_id, name, None, None, "0" * 64, len(text)), (chunk,), v[None], sv))
    return out


def _mixture(seed: int = 0):
    rng = np.random.default_rng(seed)
    real = _topic("sport", 0, ["goal", "match", "striker"], rng) + _topic("money", 1, ["bank", "shares", "rate"], rng)
    return real, fit(real, clusters=2, seed=seed)


def test_draws_follow_their_cluster_and_spread_scales_the_deviation():
    real, mix = _mixture()
    vecs = np.concatenate([b.vectors for b in real])
    rng = np.random.default_rng(1)
    for c in range(2):
        axis = int(np.argmax(mix.means[c]))
        members = vecs[np.argmax(vecs, axis=1) == axis]
        near = draw(mix, c, 2000, 1.0, rng)
        assert np.allclose(np.linalg.norm(near, axis=1), 1, atol=1e-5)
        # as close to the cluster's own axis, and as far from the other, as its real members
        assert abs(near[:, axis].mean() - members[:, axis].mean()) < 0.03
        assert abs(near[:, 1 - axis].mean() - members[:, 1 - axis].mean()) < 0.05
        wide = draw(mix, c, 2000, 3.0, rng)
        spread_near = np.linalg.norm(near - near.mean(0), axis=1).mean()
        assert np.linalg.norm(wide - wide.mean(0), axis=1).mean() > 1.5 * spread_near


def test_made_documents_use_their_clusters_words_and_valid_spans():
    real, mix = _mixture()
    rng = np.random.default_rng(2)
    vocab = [{w.lower() for w in words} for words in mix.words]
    for k in range(20):
        batch = made_batch(mix, k, 3, 1.0, rng)
        assert batch.doc.doc_id == f"made/{k:07d}.txt" and len(batch.chunks) == 3
        cluster = int(np.argmax(batch.vectors.mean(0) @ mix.means.T))
        text = " ".join(c.text for c in batch.chunks).lower().replace(".", "")
        assert set(text.split()) <= vocab[cluster]
        for c in batch.chunks:
            assert c.end - c.start == len(c.text)
            for s, e in c.sentences:  # every sentence span lies inside the passage and ends a sentence
                assert c.start <= s < e <= c.end and c.text[e - c.start - 1] == "."
        assert len(batch.sent_vectors) == sum(len(c.sentences) for c in batch.chunks)
        assert batch.chunks[0].start > 0 and all(a.end < b.start for a, b in zip(batch.chunks, batch.chunks[1:]))


def test_sentence_noise_matches_the_real_sentence_cosine():
    real, mix = _mixture()
    assert mix.sentence_noise < 0.1  # the made-up sentences equal their passage: cosine 1, clipped at 0.999
    batch = made_batch(mix, 0, 4, 1.0, np.random.default_rng(3))
    cos = [float(sv @ batch.vectors[0]) for sv in batch.sent_vectors[:len(batch.chunks[0].sentences)]]
    assert min(cos) > 0.95


def test_isotropic_share_fills_the_directions_the_members_do_not_span():
    rng = np.random.default_rng(4)
    real = []
    for k in range(40):  # members vary along two directions only
        v = np.zeros(DIM, np.float32)
        v[0], v[1], v[2] = 1, *(0.3 * rng.standard_normal(2))
        v /= np.linalg.norm(v)
        text = "Goal match striker."
        chunk = Chunk(f"s{k}.txt", 0, len(text), text, ((0, len(text)),), (None,))
        real.append(PassageBatch(DocInfo(f"s{k}.txt", "p", "t", None, None, "0" * 64, 9), (chunk,), v[None], v[None]))
    mix = fit(real, clusters=1)
    span = draw(mix, 0, 3000, 1.0, np.random.default_rng(5))
    full = draw(mix, 0, 3000, 1.0, np.random.default_rng(5), isotropic=1.0)
    assert span[:, 3:].std(axis=0).max() < 1e-4       # nothing outside the members' span
    assert full[:, 3:].std(axis=0).min() > 0.05       # every direction gets some
    deviation = lambda d: np.linalg.norm(d - d.mean(0), axis=1).mean()  # noqa: E731
    assert abs(deviation(full) / deviation(span) - 1) < 0.2  # about the same total spread
