"""The array-based features equal a plain per-passage computation from the sentences' text."""

import math
import re

import numpy as np
import pytest

from qa.features import PASSAGE_FEATURES, SENTENCE_FEATURES, analyse, evidence
from qa.retrieve import retrieve
from qa.textutil import terms

NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z'’\-]+(?:\s+[A-Z][a-z'’\-]+)*")


def _coverage(weights: dict, present: set) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in present) / total if total else 0.0


def _reference(q, index, chunk_id):
    """Sentence features of one passage, computed the slow, obvious way."""
    chunk = index.chunks[chunk_id]
    texts = [chunk.text[s - chunk.start:e - chunk.start] for s, e in chunk.sentences]
    seqs = [terms(x) for x in texts]
    sets = [set(x) for x in seqs]
    holding = {t: sum(t in s for s in sets) for t in q.terms}
    local = {t: w / max(holding[t], 1) for t, w in q.terms.items()}
    rows = []
    for j, s in enumerate(sets):
        window = s | sets[j - 1] if j else s
        names = [m.group(0) for m in NAME.finditer(texts[j])]
        rows.append({
            "coverage": _coverage(q.terms, s),
            "local_coverage": _coverage(local, s),
            "window_coverage": _coverage(local, window),
            "bigrams": len(q.bigrams & set(zip(seqs[j], seqs[j][1:]))) / max(len(q.bigrams), 1),
            "novelty": len(s - q.terms.keys()) / len(s) if s else 0.0,
            "length": math.log1p(len(texts[j])) / 6,
            "names": float(any(n.lower() not in q.words and n.split()[0].lower() not in q.words for n in names)),
        })
    whole = [t for x in seqs for t in x]
    passage = {"coverage": _coverage(q.terms, set(whole)), "terms": set(whole),
               "bigrams": len(q.bigrams & set(zip(whole, whole[1:]))) / max(len(q.bigrams), 1)}
    return rows, passage


@pytest.mark.parametrize("question", [
    "Who is blocking the peace talks according to the Russian foreign minister?",
    "When was the Budapest summit planned?",
    "How many troops are blocked near Pokrovsk?",
])
def test_batched_features_equal_a_per_passage_computation(seed_qa, question):
    engine = seed_qa.engine
    qvec = engine.embedder.embed_query(question)
    cands, index = retrieve(engine.backend, qvec, question)
    cands = cands[:20]
    q = analyse(question, question, [], index, qvec)
    ev = evidence(q, cands, index)
    col = {name: i for i, name in enumerate(SENTENCE_FEATURES)}
    pcol = {name: i for i, name in enumerate(PASSAGE_FEATURES)}
    assert ev.passages.shape == (len(cands), len(PASSAGE_FEATURES))
    refs = [_reference(q, index, cand.chunk_id) for cand in cands]
    # Pool coverage: each question term weighted by idf / number of the candidates holding it.
    holding = {t: sum(t in passage["terms"] for _, passage in refs) for t in q.terms}
    pool = {t: w / max(holding[t], 1) for t, w in q.terms.items()}
    assert sum(holding.values()) > 0
    for i, (cand, (rows, passage)) in enumerate(zip(cands, refs)):
        got = ev.sentences[ev.offsets[i]:ev.offsets[i + 1]]
        assert len(got) == len(rows)
        for name in ("coverage", "local_coverage", "window_coverage", "bigrams", "novelty", "length"):
            assert np.allclose(got[:, col[name]], [r[name] for r in rows]), (name, cand.chunk_id)
        if q.answer_type == "person":
            assert np.array_equal(got[:, col["type_match"]], [r["names"] for r in rows])
        assert np.isclose(ev.passages[i, pcol["coverage"]], passage["coverage"])
        assert np.isclose(ev.coverage[i], passage["coverage"])
        assert np.isclose(ev.passages[i, pcol["bigrams"]], passage["bigrams"])
        assert np.isclose(ev.passages[i, pcol["pool_coverage"]], _coverage(pool, passage["terms"]))
        assert np.isclose(ev.passages[i, pcol["sentence"]], got[:, col["cos"]].max(), atol=1e-6)
