"""Calibrate when the engine abstains, on SQuAD rather than on any seed question.

    .venv/bin/python benchmarks/calibrate_abstention.py [--n 1500]

Positives: SQuAD questions asked over all articles (their answer is there). Negatives: the same
questions asked with their own article excluded (the rest of the collection does not answer them).
Prints the evidence distributions, the current rule's answered / abstention rates, and the best
rule of the form `sentence >= a or (sentence >= b and coverage >= c)` keeping >= KEEP (99%) of positives,
and the best of the form `sentence + lam * coverage >= t` (the engine's, with a 0.25 sentence floor).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import squad_arguments, squad_engine  # noqa: E402


# Share of answerable questions a rule must answer: at most one in a hundred wrongly declined (the
# issue asks for >= 98% answered; every declined answerable question is also a hit@5 miss).
KEEP = 0.99


def main() -> None:
    args = squad_arguments(__doc__.splitlines()[0], 1500)

    from qa.answer import answers, evidence, rerank
    from qa.retrieve import formulate, retrieve

    bot, data, names = squad_engine(Path(args.work), Path(args.squad))
    index, embedder = bot._state
    owner = np.array([c.doc_id for c in index.chunks])

    qs = [(qa["question"], names[i]) for i, a in enumerate(data["data"]) for p in a["paragraphs"] for qa in p["qas"]]
    step = len(qs) / min(args.n, len(qs))
    qs = [qs[int(i * step)] for i in range(min(args.n, len(qs)))]
    pos, neg = [], []
    for q, doc in qs:
        query = formulate(q, [])
        qvec = embedder.embed_query(query)
        for allowed, out in ((None, pos), (owner != doc, neg)):
            cands = retrieve(index, qvec, query, allowed=allowed)
            ev = evidence(rerank(q, query, [], cands, index, qvec))
            out.append((ev.sentence, ev.dense, ev.coverage, answers(ev)))
    pos, neg = np.array(pos), np.array(neg)
    for name, arr in (("answerable", pos), ("unanswerable", neg)):
        pct = np.percentile(arr[:, :3], [5, 25, 50, 75, 95], axis=0).round(3)
        print(f"{name}: sentence/dense/coverage percentiles 5,25,50,75,95:\n{pct.T}")
    print(f"current rule: answered {pos[:, 3].mean():.3f} of answerable, abstained on {1 - neg[:, 3].mean():.3f} of unanswerable")
    best = None
    for a, b, c in itertools.product(np.arange(0.40, 0.80, 0.02), np.arange(0.10, 0.50, 0.02), np.arange(0.2, 0.9, 0.05)):
        ok = lambda m: (m[:, 0] >= a) | ((m[:, 0] >= b) & (m[:, 2] >= c))  # noqa: E731
        keep, reject = ok(pos).mean(), 1 - ok(neg).mean()
        if keep >= KEEP and (best is None or reject > best[0]):
            best = (reject, keep, a, b, c)
    if best:
        print(f"best rule: sentence >= {best[2]:.2f} or (sentence >= {best[3]:.2f} and coverage >= {best[4]:.2f}): "
              f"answered {best[1]:.3f}, abstained {best[0]:.3f}")
    best = None
    for lam, t in itertools.product(np.arange(0.0, 1.0, 0.05), np.arange(0.3, 1.0, 0.01)):
        ok = lambda m: (m[:, 0] >= 0.25) & (m[:, 0] + lam * m[:, 2] >= t)  # noqa: E731
        keep, reject = ok(pos).mean(), 1 - ok(neg).mean()
        if keep >= KEEP and (best is None or reject > best[0]):
            best = (reject, keep, lam, t)
    if best:
        print(f"best linear rule: sentence + {best[2]:.2f} * coverage >= {best[3]:.2f}: "
              f"answered {best[1]:.3f}, abstained {best[0]:.3f}")


if __name__ == "__main__":
    main()
