"""Fit the answer stage's passage and sentence weights on SQuAD and news together, cross-fitted by article.

    .venv/bin/python -m benchmarks.fit_ranker [--n 2500] [--news FILE ...] [--news-index DIR] [--news-weight 10]

For each sampled question (SQuAD, and the news question files over the BBC articles) the engine's
own retrieval gives candidates; a passage is positive when it contains a gold answer, a sentence
when it does. Listwise logistic regression on the features of qa/features.py, cross-fitted in five
folds by article (SQuAD articles and news articles alike), figures reported per corpus and news
kind, out of sample; the weights printed last are fitted on all sampled questions.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.common import squad_engine  # noqa: E402


def squad_items(n: int, work: Path, squad: Path, settings=None):
    """(engine, [(question, history, golds, article)]) for n SQuAD questions spread over the file."""
    bot, data, _ = squad_engine(work, squad, settings)
    qs = [(qa["question"], (), [a["text"] for a in qa["answers"]], ai)
          for ai, art in enumerate(data["data"]) for p in art["paragraphs"] for qa in p["qas"]]
    step = len(qs) / min(n, len(qs))
    return bot, [qs[int(i * step)] for i in range(min(n, len(qs)))]


def collect(bot, qs, depth: int = 30):
    """Features and labels of the engine's first `depth` candidates for each question.

    qs: (question, history, gold phrases, group); a passage is positive when it holds a gold
    phrase, a sentence likewise. Returns one row per question: {"group", "cands": [...]}.
    """
    from qa.features import analyse, evidence
    from qa.retrieve import formulate, retrieve
    from qa.textutil import normalise

    backend, embedder = bot.engine.backend, bot.engine.embedder
    rows = []
    queries = [formulate(q, list(h)) for q, h, _, _ in qs]
    qvecs = embedder.embed_passages(queries)  # one batch: much faster than one call per question
    for (question, history, golds, group), query, qvec in zip(qs, queries, qvecs):
        found = retrieve(backend, qvec, query)
        cands, index = found.candidates[:depth], found.fetched
        q = analyse(question, query, list(history), index, qvec)
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
        rows.append({"group": group, "cands": cand_rows})
    return rows


def fit(groups: list[tuple[np.ndarray, np.ndarray]], l2: float = 1e-2, weights=None, free=None, fixed=None) -> np.ndarray:
    """Listwise logistic (softmax) ranking: maximise the probability mass on positives per group.

    Features are standardised for the fit and the weights mapped back to raw units; a constant
    offset is irrelevant to a ranking, so there is no intercept. free/fixed: refit only the
    features where `free` is true, the others keep their weights in `fixed`.
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    m = groups[0][0].shape[1]
    free = np.ones(m, bool) if free is None else np.asarray(free, bool)
    fixed = np.zeros(m) if fixed is None else np.asarray(fixed, float)
    # The kept weights enter as one column (their score), whose scale is refitted with the rest.
    cols = [np.column_stack([X[:, free], X[:, ~free] @ fixed[~free]]) if (~free).any() else X for X, _ in groups]
    X_all = np.concatenate(cols)
    mu, sd = X_all.mean(0), X_all.std(0) + 1e-9
    zs = [((C - mu) / sd, y.astype(bool)) for C, (_, y) in zip(cols, groups)]
    gw = np.ones(len(zs)) if weights is None else np.asarray(weights, float)

    def loss(w):
        total, grad = 0.0, np.zeros_like(w)
        for (Z, y), g in zip(zs, gw):
            s = Z @ w
            lse_all, lse_pos = logsumexp(s), logsumexp(s[y])
            total += g * (lse_all - lse_pos)
            p_all = np.exp(s - lse_all)
            p_pos = np.where(y, np.exp(s - lse_pos), 0.0)
            grad += g * (Z.T @ (p_all - p_pos))
        n = gw.sum()
        return total / n + l2 * w @ w, grad / n + 2 * l2 * w

    w = minimize(loss, np.zeros(X_all.shape[1]), jac=True, method="L-BFGS-B").x / sd
    if not (~free).any():
        return w
    out = fixed * w[-1]
    out[free] = w[:-1]
    return out


def passage_data(rows):
    return [(np.array([c["f"] for c in r["cands"]]), np.array([c["y"] for c in r["cands"]]))
            for r in rows if any(c["y"] for c in r["cands"])]


def passage_weights(rows):
    return [r.get("weight", 1.0) for r in rows if any(c["y"] for c in r["cands"])]


def sentence_data(rows):
    return [(c["sf"], c["sy"]) for r in rows for c in r["cands"] if c["y"] and c["sy"].any() and len(c["sf"]) > 1]


def sentence_weights(rows):
    return [r.get("weight", 1.0) for r in rows for c in r["cands"] if c["y"] and c["sy"].any() and len(c["sf"]) > 1]


# Which weights fit_both refits (None: all); the others keep the engine's current weights.
FREE: dict[str, frozenset[str] | None] = {"passage": None, "sentence": None}


def fit_both(rows):
    """Passage and sentence weights fitted on rows (each question weighted by its row's weight)."""
    from qa.features import PASSAGE_FEATURES, PASSAGE_WEIGHTS, SENTENCE_FEATURES, SENTENCE_WEIGHTS

    def mask(names, which):
        return None if which is None else np.array([n in which for n in names])

    return (fit(passage_data(rows), weights=passage_weights(rows), free=mask(PASSAGE_FEATURES, FREE["passage"]),
                fixed=PASSAGE_WEIGHTS),
            fit(sentence_data(rows), weights=sentence_weights(rows), free=mask(SENTENCE_FEATURES, FREE["sentence"]),
                fixed=SENTENCE_WEIGHTS))


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
    n = max(len(rows), 1)
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


def _by_kind(rs, scores, sizes) -> None:
    """Print the figures of each news kind (scores and sizes: one entry per fold)."""
    for kind in sorted({r.get("kind", "") for r in rs} - {""}):
        sub = [r for r in rs if r["kind"] == kind]
        parts, n = scores(sub), sizes(sub)
        mean = {m: round(sum(p[m] * s for p, s in zip(parts, n)) / max(sum(n), 1), 3) for m in parts[0]}
        print(f"    {kind} ({sum(n)}): {mean}")


def main() -> None:
    from benchmarks.news import index_settings, joint_fit_arguments, news_engine, news_folds, news_items
    from qa.features import PASSAGE_FEATURES, PASSAGE_WEIGHTS, SENTENCE_FEATURES, SENTENCE_WEIGHTS

    ap = joint_fit_arguments(__doc__.splitlines()[0], 2500)
    ap.add_argument("--news-eval", nargs="*", default=[],
                    help="news question files only scored, never fitted on (e.g. the dev set)")
    ap.add_argument("--free-passage", nargs="*", help="refit only these passage weights (default: all)")
    ap.add_argument("--free-sentence", nargs="*", help="refit only these sentence weights (default: all)")
    ap.add_argument("--write", metavar="PROVENANCE", help="save the weights fitted on everything into qa/weights.json "
                    "with this provenance text")
    ap.add_argument("--ablation", action="store_true")
    ap.add_argument("--cache", help="keep the collected features in this file (pickle) and reuse them")
    args = ap.parse_args()
    k = args.folds
    FREE.update(passage=None if args.free_passage is None else frozenset(args.free_passage),
                sentence=None if args.free_sentence is None else frozenset(args.free_sentence))
    items = news_items([Path(p) for p in args.news])
    held_items = news_items([Path(p) for p in args.news_eval])
    folds = news_folds(items, k)
    if args.cache and Path(args.cache).exists():
        rows, news, held_news = pickle.loads(Path(args.cache).read_bytes())
    else:
        bot, qs = squad_items(args.n, Path(args.work), Path(args.squad), index_settings(args))
        rows = collect(bot, qs)
        news_bot = news_engine(Path(args.news_index), Path(args.news_docs), index_settings(args))
        news = collect(news_bot, [(x.question, x.history, x.golds, x.doc) for x in items])
        held_news = collect(news_bot, [(x.question, x.history, x.golds, x.doc) for x in held_items])
        if args.cache:
            Path(args.cache).write_bytes(pickle.dumps((rows, news, held_news)))
    for r in rows:
        r.update(corpus="squad", fold=r["group"] % k, weight=1.0)
    for r, x, f in zip(news, items, folds):
        r.update(corpus="news", fold=f, weight=args.news_weight, kind=x.kind, source=x.source, q=x.question)
    for r, x in zip(held_news, held_items):
        r.update(corpus="news", fold=-1, weight=0.0, kind=x.kind, source=x.source, q=x.question)
    everything = rows + news
    corpora = {"SQuAD": rows, **{name: [r for r in news if r["source"] == name] for name in sorted({x.source for x in items})}}
    evaluated = {name: [r for r in held_news if r["source"] == name] for name in sorted({x.source for x in held_items})}
    for name, rs in {**corpora, **evaluated}.items():
        print(f"{name}: {len(rs)} questions; current weights: {score(rs, PASSAGE_WEIGHTS, SENTENCE_WEIGHTS)}")
    # Cross-fitted: each fold (SQuAD by article, news by article) scored by weights fitted on the others.
    held: dict[int, tuple] = {}
    for f in range(k):
        held[f] = fit_both([r for r in everything if r["fold"] != f])
    for name, rs in corpora.items():
        parts = [score([r for r in rs if r["fold"] == f], *held[f]) for f in range(k)]
        sizes = [sum(r["fold"] == f for r in rs) for f in range(k)]
        mean = {m: round(sum(p[m] * s for p, s in zip(parts, sizes)) / max(sum(sizes), 1), 3) for m in parts[0]}
        print(f"{name}: held out (fit on other articles of both corpora) -> {mean}")
        _by_kind(rs, lambda sub: [score([r for r in sub if r["fold"] == f], *held[f]) for f in range(k)],
                 lambda sub: [sum(r["fold"] == f for r in sub) for f in range(k)])
    pw, sw = fit_both(everything)
    for name, rs in evaluated.items():
        print(f"{name}: never fitted on, scored with the weights fitted on everything else -> {score(rs, pw, sw)}")
        _by_kind(rs, lambda sub: [score(sub, pw, sw)], lambda sub: [len(sub)])
    if args.ablation:
        two = [[r for r in rows if r["group"] % 2 == f] for f in (0, 1)]
        steps = [("dense + BM25 (fitted blend)", ["dense", "bm25"]),
                 ("+ best-sentence cosine", ["sentence"]),
                 ("+ term coverage (passage, best sentence)", ["coverage", "sent_coverage"]),
                 ("+ question bigrams", ["bigrams"]),
                 ("+ ranks, answer type, title", ["dense_rank", "bm25_rank", "type_match", "title"]),
                 ("+ best (sentence and previous) coverage x cosine", ["window_cos"]),
                 ("+ term coverage weighted across the candidates", ["pool_coverage"]),
                 ("+ names as units, article evidence, lead, figure", ["names", "doc_names", "doc_coverage",
                                                                       "lead", "figure"])]
        print("\n| passage evidence (SQuAD) | hit@1 | hit@5 |\n|---|---|---|")
        for label, res in ablation(two, steps, passage=True):
            print(f"| {label} | {np.mean([r['hit@1'] for r in res]):.3f} | {np.mean([r['hit@5'] for r in res]):.3f} |")
    scale = lambda w: np.round(w / np.abs(w).max(), 3)  # noqa: E731  (ranking is scale-free)
    # In weights.json's form (feature name -> weight): paste with a provenance line.
    print('weights.json "passage" weights:', dict(zip(PASSAGE_FEATURES, scale(pw).tolist())))
    print('weights.json "sentence" weights:', dict(zip(SENTENCE_FEATURES, scale(sw).tolist())))
    for name, rs in corpora.items():
        print(f"{name}: in-sample with fitted weights: {score(rs, pw, sw)}")
    if args.write:
        _write(dict(zip(PASSAGE_FEATURES, scale(pw).tolist())), dict(zip(SENTENCE_FEATURES, scale(sw).tolist())),
               args.write)


def _write(passage: dict, sentence: dict, provenance: str) -> None:
    import json

    from qa.weights import WEIGHTS_FILE

    data = json.loads(WEIGHTS_FILE.read_text("utf-8"))
    for name, weights in (("passage", passage), ("sentence", sentence)):
        data[name] = {"weights": weights, "provenance": provenance}
    WEIGHTS_FILE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
