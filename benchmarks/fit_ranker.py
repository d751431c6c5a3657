"""Fit the answer stage's passage and sentence weights on SQuAD, cross-fitted by article.

    .venv/bin/python benchmarks/fit_ranker.py [--n 2500]

For each sampled question the engine's own retrieval gives candidates; a passage is positive when
it contains a gold answer, a sentence when it does. Logistic regression on the features of
qa/features.py, fitted on half of the articles and scored on the other half (and the reverse), so
the printed figures are out-of-sample; the weights printed last are fitted on all sampled questions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import squad_arguments, squad_engine  # noqa: E402


def collect(n: int, work: Path, squad: Path, depth: int = 30):
    from qa.features import analyse, evidence
    from qa.retrieve import formulate, retrieve
    from qa.textutil import normalise

    bot, data, _ = squad_engine(work, squad)
    index, embedder = bot._state
    qs = [(qa["question"], [a["text"] for a in qa["answers"]], ai)
          for ai, art in enumerate(data["data"]) for p in art["paragraphs"] for qa in p["qas"]]
    step = len(qs) / min(n, len(qs))
    qs = [qs[int(i * step)] for i in range(min(n, len(qs)))]
    rows = []
    queries = [formulate(q, []) for q, _, _ in qs]
    qvecs = embedder.embed_passages(queries)  # one batch: much faster than one call per question
    for (question, golds, article), query, qvec in zip(qs, queries, qvecs):
        cands = retrieve(index, qvec, query)[:depth]
        q = analyse(question, query, [], index, qvec)
        golds = [normalise(g) for g in golds]
        cand_rows = []
        ev = evidence(q, cands, index)
        for i, c in enumerate(cands):
            chunk = index.chunks[c.chunk_id]
            sents = [normalise(chunk.text[s - chunk.start:e - chunk.start]) for s, e in chunk.sentences]
            cand_rows.append({
                "f": ev.passages[i], "y": any(g in normalise(chunk.text) for g in golds),
                "sf": ev.sentences[ev.offsets[i]:ev.offsets[i + 1]],
                "sy": np.array([any(g in s for g in golds) for s in sents]),
            })
        rows.append({"article": article, "cands": cand_rows})
    return rows


def fit(groups: list[tuple[np.ndarray, np.ndarray]], l2: float = 1e-2) -> np.ndarray:
    """Listwise logistic (softmax) ranking: maximise the probability mass on positives per group.

    Features are standardised for the fit and the weights mapped back to raw units; a constant
    offset is irrelevant to a ranking, so there is no intercept.
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    X_all = np.concatenate([X for X, _ in groups])
    mu, sd = X_all.mean(0), X_all.std(0) + 1e-9
    zs = [((X - mu) / sd, y.astype(bool)) for X, y in groups]

    def loss(w):
        total, grad = 0.0, np.zeros_like(w)
        for Z, y in zs:
            s = Z @ w
            lse_all, lse_pos = logsumexp(s), logsumexp(s[y])
            total += lse_all - lse_pos
            p_all = np.exp(s - lse_all)
            p_pos = np.where(y, np.exp(s - lse_pos), 0.0)
            grad += Z.T @ (p_all - p_pos)
        n = len(zs)
        return total / n + l2 * w @ w, grad / n + 2 * l2 * w

    w = minimize(loss, np.zeros(X_all.shape[1]), jac=True, method="L-BFGS-B").x
    return w / sd


def passage_data(rows):
    return [(np.array([c["f"] for c in r["cands"]]), np.array([c["y"] for c in r["cands"]]))
            for r in rows if any(c["y"] for c in r["cands"])]


def sentence_data(rows):
    return [(c["sf"], c["sy"]) for r in rows for c in r["cands"] if c["y"] and c["sy"].any() and len(c["sf"]) > 1]


def score(rows, pw: np.ndarray, sw: np.ndarray) -> dict:
    h1 = h5 = hl = 0
    for r in rows:
        if not r["cands"]:
            continue
        order = np.argsort([-(c["f"] @ pw) for c in r["cands"]], kind="stable")
        ys = [r["cands"][i]["y"] for i in order]
        h1 += ys[0]
        h5 += any(ys[:5])
        top = r["cands"][order[0]]
        if len(top["sf"]):
            hl += bool(top["sy"][int(np.argmax(top["sf"] @ sw))])
    n = len(rows)
    return {"hit@1": round(h1 / n, 3), "hit@5": round(h5 / n, 3), "highlight": round(hl / n, 3)}


def ablation(folds, steps, passage: bool):
    """Weights fitted on growing feature sets, each scored out of sample on both folds.

    Yields (label, [scores of fold 0, fold 1]); the other model keeps the engine's weights.
    """
    from qa.features import PASSAGE_FEATURES, PASSAGE_WEIGHTS, SENTENCE_FEATURES, SENTENCE_WEIGHTS

    features, data = (PASSAGE_FEATURES, passage_data) if passage else (SENTENCE_FEATURES, sentence_data)
    used: list[str] = []
    for label, names in steps:
        used += names
        mask = np.array([f in used for f in features])
        res = []
        for f in (0, 1):
            w = np.zeros(len(features))
            w[mask] = fit([(X[:, mask], y) for X, y in data(folds[1 - f])])
            res.append(score(folds[f], w, SENTENCE_WEIGHTS) if passage else score(folds[f], PASSAGE_WEIGHTS, w))
        yield label, res


def main() -> None:
    from qa.features import PASSAGE_FEATURES, PASSAGE_WEIGHTS, SENTENCE_FEATURES, SENTENCE_WEIGHTS

    args = squad_arguments(__doc__.splitlines()[0], 2500)
    rows = collect(args.n, Path(args.work), Path(args.squad))
    folds = [[r for r in rows if r["article"] % 2 == f] for f in (0, 1)]
    print(f"{len(rows)} questions; current weights: {score(rows, PASSAGE_WEIGHTS, SENTENCE_WEIGHTS)}")
    for f in (0, 1):
        train, test = folds[1 - f], folds[f]
        pw, sw = fit(passage_data(train)), fit(sentence_data(train))
        print(f"fold {f}: fitted on other articles -> {score(test, pw, sw)}; current weights -> "
              f"{score(test, PASSAGE_WEIGHTS, SENTENCE_WEIGHTS)}")
    # What each group of evidence buys: passage weights fitted on growing feature sets, each
    # scored out of sample (fit on one fold of articles, score the other, average the two).
    steps = [("dense + BM25 (fitted blend)", ["dense", "bm25"]),
             ("+ best-sentence cosine", ["sentence"]),
             ("+ term coverage (passage, best sentence)", ["coverage", "sent_coverage"]),
             ("+ question bigrams", ["bigrams"]),
             ("+ ranks, answer type, title", ["dense_rank", "bm25_rank", "type_match", "title"]),
             ("+ best (sentence and previous) coverage x cosine", ["window_cos"]),
             ("+ term coverage weighted across the candidates", ["pool_coverage"])]
    print("\n| passage evidence | hit@1 | hit@5 |\n|---|---|---|")
    for label, res in ablation(folds, steps, passage=True):
        print(f"| {label} | {np.mean([r['hit@1'] for r in res]):.3f} | {np.mean([r['hit@5'] for r in res]):.3f} |")
    # The same for the highlight: sentence weights fitted on growing feature sets.
    sentence_steps = [("cosine (within the passage: absolute and relative)", ["cos", "rel_cos"]),
                      ("+ term coverage (absolute, relative, neighbours)", ["coverage", "rel_coverage",
                                                                            "neighbour_coverage"]),
                      ("+ bigrams, answer type, novelty, length", ["bigrams", "type_match", "novelty", "length"]),
                      ("+ passage-local term weights", ["local_coverage"]),
                      ("+ coverage of the sentence with the one before it", ["window_coverage"])]
    print("\n| highlight evidence | highlight |\n|---|---|")
    for label, res in ablation(folds, sentence_steps, passage=False):
        print(f"| {label} | {np.mean([r['highlight'] for r in res]):.3f} |")
    pw, sw = fit(passage_data(rows)), fit(sentence_data(rows))
    scale = lambda w: np.round(w / np.abs(w).max(), 3)  # noqa: E731  (ranking is scale-free)
    print("PASSAGE_WEIGHTS =", dict(zip(PASSAGE_FEATURES, scale(pw).tolist())))
    print("SENTENCE_WEIGHTS =", dict(zip(SENTENCE_FEATURES, scale(sw).tolist())))
    print(f"in-sample with fitted weights: {score(rows, pw, sw)}")


if __name__ == "__main__":
    main()
