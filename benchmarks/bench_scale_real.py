"""A million passages searched with REAL questions: open time, memory, retrieval speed, ANN recall.

    .venv/bin/python -m benchmarks.bench_scale_real [--n 1000000] [--questions 500] \
        [--model ONNX_DIR] [--bbc BBC_INDEX] [--spread 1.0] [--work DIR]

Stored passages:
  * real: the SQuAD dev half's articles indexed by the engine itself (QA over their text files,
    chunked and embedded as always; built once under --work/squad and reused), plus, with --bbc, the
    passages of an existing BBC index read with the package's own reader (never written to);
  * made: the rest up to --n, fitted to the real passage vectors. The real vectors are split into
    --clusters spherical k-means clusters (FAISS); a made document picks a cluster with probability
    proportional to its size, and each of its passages is a draw from a Gaussian with that cluster's
    mean and sample covariance (mean + the members' residuals mixed by standard normal weights,
    divided by sqrt(members - 1)), the deviation scaled by --spread (1.0: as fitted; one value for
    all, never per question), then normalised. Such draws lie in the span of the cluster's members;
    --isotropic moves that share of the deviation's variance into full-rank noise. Sentence vectors:
    the passage vector plus isotropic noise sized so that their mean cosine to the passage equals
    the real one. Text: each made passage copies the sentence and word counts of a random real
    passage of its cluster and draws its words from that cluster's real word stream (words at their
    real frequencies, topic kept, so the lexical side sees realistic term statistics); documents
    hold --per-doc passages and records shaped like real ones (title, hashes, size, mtime).
The index is written through the local backend's writer (upsert per document, staged, commit), so
the files, the FAISS index (IVF above Settings.ann_threshold) and BM25 are the engine's own.

Questions: --questions SQuAD dev-half questions, evenly spread, embedded with the engine's query
embedder (the ONNX model in --model); never derived from stored vectors.

Measured in a fresh process (Python imports excluded): LocalBackend(root) open time (fastest of 3)
and resident memory from /proc/self/smaps_rollup (Rss, its Anonymous part, the file-backed rest:
pages of the mapped index files) after imports, after open and after all questions; per question,
retrieve() (dense + BM25 + fusion, the question's embedding excluded) and the engine's dense top 10.
In this process: exact FAISS flat inner-product search over the very vectors stored (float16 decoded),
recall@10 of the engine's dense top 10 against it, and the share of made passages in each exact top
10. Page cache warm (the files were just written); the 2 cores are shared, so times are indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import even_sample, gold_rank, shared_data

ROOT = Path(__file__).resolve().parent.parent
MADE = "made/"


# -- the real passages ------------------------------------------------------------------------------

def squad_index(work: Path, squad: Path, embedder) -> Path:
    """The SQuAD articles as text files under work/docs, indexed by the engine into work/index."""
    from qa import QA
    from qa.evaluation import squad_documents

    docs = work / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in squad_documents(json.loads(squad.read_text("utf-8"))).items():
        if not (docs / name).exists():
            (docs / name).write_text(text, encoding="utf-8")
    QA(docs, work / "index", embedder=embedder)
    return work / "index"


def real_batches(roots: list[Path]) -> list:
    """Every document's PassageBatch of the given local indexes, read only (format 3 expected: an
    older one would be migrated, i.e. written, so it is refused)."""
    from qa.backends import snapshot
    from qa.backends.local import LocalBackend
    from qa.backends.store import IndexStore

    out = []
    for root in roots:
        version = IndexStore(root).current()
        if version is None or snapshot.manifest_format(version) != snapshot.FORMAT_VERSION:
            raise SystemExit(f"{root}: no index in format {snapshot.FORMAT_VERSION}")
        backend = LocalBackend(root)
        out += [backend.passages_of(d) for d in backend.documents()]
    return out


# -- the made passages ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mixture:
    """Per-cluster Gaussians fitted to the real passage vectors, and the clusters' words."""

    means: np.ndarray                 # (clusters, dim)
    residuals: list[np.ndarray]       # per cluster: (members, dim) member minus mean
    weights: np.ndarray               # probability of each cluster (its share of the members)
    words: list[np.ndarray]           # per cluster: its real passages' word stream
    shapes: list[list[tuple[int, ...]]]  # per cluster: each member's words per sentence
    sentence_noise: float             # isotropic noise making the real passage-sentence cosine


HEADER = re.compile(r"[0-9a-f]+-[0-9a-f]+ ")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")


def fit(batches: list, clusters: int, seed: int = 0) -> Mixture:
    import faiss

    vecs = np.concatenate([b.vectors for b in batches]).astype(np.float32)
    km = faiss.Kmeans(vecs.shape[1], clusters, niter=25, seed=seed, spherical=True, verbose=False)
    km.train(vecs)
    _, assign = km.index.search(vecs, 1)
    assign = assign[:, 0]
    chunks = [c for b in batches for c in b.chunks]
    kept = [c for c in range(clusters) if (assign == c).sum() >= 2]  # a lone member has no spread
    means, residuals, words, shapes = [], [], [], []
    for c in kept:
        members = np.flatnonzero(assign == c)
        mean = vecs[members].mean(axis=0)
        means.append(mean)
        residuals.append(vecs[members] - mean)
        stream, shape = [], []
        for i in members.tolist():
            ch = chunks[i]
            per = tuple(len(WORD.findall(ch.text[s - ch.start:e - ch.start])) or 1 for s, e in ch.sentences)
            shape.append(per)
            stream += WORD.findall(ch.text)
        words.append(np.array(stream, dtype=object))
        shapes.append(shape)
    sizes = np.array([len(r) for r in residuals], np.float64)
    # Sentence vectors: unit passage vector + noise of norm s gives cosine ~ 1 / sqrt(1 + s^2).
    cos = []
    for b in batches:
        sv = np.asarray(b.sent_vectors, np.float32)
        k = 0
        for j, ch in enumerate(b.chunks):
            cos.extend((sv[k:k + len(ch.sentences)] @ np.asarray(b.vectors[j], np.float32)).tolist())
            k += len(ch.sentences)
    c = float(np.clip(np.mean(cos), 0.05, 0.999))
    return Mixture(np.array(means), residuals, sizes / sizes.sum(), words, shapes, float(np.sqrt(1 / c**2 - 1)))


def draw(mix: Mixture, cluster: int, n: int, spread: float, rng: np.random.Generator,
         isotropic: float = 0.0) -> np.ndarray:
    """n unit vectors from the cluster's Gaussian (its sample covariance, scaled by spread^2).

    The sample covariance of m members spans only m - 1 directions; `isotropic` moves that share of
    the deviation's variance into noise in every direction (same total variance, full rank)."""
    r = mix.residuals[cluster]
    z = rng.standard_normal((n, len(r))).astype(np.float32)
    v = mix.means[cluster] + spread * np.sqrt(1 - isotropic) * (z @ r) / np.sqrt(len(r) - 1)
    if isotropic:
        per_dim = float((r ** 2).sum()) / (len(r) - 1) / r.shape[1]
        v += spread * np.sqrt(isotropic * per_dim) * rng.standard_normal(v.shape).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def made_batch(mix: Mixture, k: int, per_doc: int, spread: float, rng: np.random.Generator,
               isotropic: float = 0.0):
    """Made document number k: its record, passages, vectors and sentence vectors."""
    from qa.backends.base import PassageBatch
    from qa.types import Chunk, DocInfo

    cluster = int(rng.choice(len(mix.weights), p=mix.weights))
    words, shapes = mix.words[cluster], mix.shapes[cluster]
    doc_id = f"{MADE}{k:07d}.txt"
    title = " ".join(words[rng.integers(0, len(words), 6)]).capitalize()
    chunks, pos = [], len(title) + 2
    for _ in range(per_doc):
        shape = shapes[int(rng.integers(0, len(shapes)))]
        picks = words[rng.integers(0, len(words), sum(shape))]
        sents, spans, at, start = [], [], 0, pos
        for w in shape:
            s = " ".join(picks[at:at + w]).capitalize() + "."
            at += w
            spans.append((pos, pos + len(s)))
            sents.append(s)
            pos += len(s) + 1
        text = " ".join(sents)
        chunks.append(Chunk(doc_id, start, start + len(text), text, tuple(spans), (None,) * len(spans)))
        pos = start + len(text) + 2  # paragraphs apart
    vecs = draw(mix, cluster, per_doc, spread, rng, isotropic)
    counts = [len(c.sentences) for c in chunks]
    sv = np.repeat(vecs, counts, axis=0)
    sv += mix.sentence_noise * rng.standard_normal(sv.shape).astype(np.float32) / np.sqrt(sv.shape[1])
    sv /= np.linalg.norm(sv, axis=1, keepdims=True)
    digest = "%064x" % int(rng.integers(0, 2**62))
    doc = DocInfo(doc_id, f"/made/{doc_id}", title, None, None, digest, pos, language="en",
                  file_sha256=digest, size=pos, mtime_ns=1_700_000_000_000_000_000 + k)
    return PassageBatch(doc, tuple(chunks), vecs, sv)


def build(root: Path, real: list, mix: Mixture, n: int, per_doc: int, spread: float, seed: int,
          isotropic: float = 0.0) -> None:
    """Real documents, then made ones up to n passages, through the local backend's writer."""
    from qa.backends.local import LocalBackend
    from qa.types import Settings

    rng = np.random.default_rng(seed)
    backend = LocalBackend(root, load=False)
    with backend.lock():
        writer = backend.writer(Settings(), fresh=True)
        for b in real:
            writer.upsert(b)
        left, k = n - sum(len(b.chunks) for b in real), 0
        while left > 0:
            b = made_batch(mix, k, min(per_doc, left), spread, rng, isotropic)
            writer.upsert(b)
            left, k = left - len(b.chunks), k + 1
        writer.commit()


# -- measuring in a fresh process -------------------------------------------------------------------

def memory() -> dict:
    """Resident memory (MiB): all, its anonymous part, and the file-backed rest (mapped files)."""
    rows = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        rows[key] = int(value.split()[0]) / 1024
    return {"rss": rows["Rss"], "anon": rows["Anonymous"], "file": rows["Rss"] - rows["Anonymous"]}


def mapped_files(under: Path) -> dict[str, float]:
    """Resident MiB of each file mapped from under `under` (pages of it in this process's memory)."""
    out: dict[str, float] = {}
    name = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if HEADER.match(line):  # a mapping starts: address range, permissions, offset, device, inode[, path]
            head = line.split(maxsplit=5)
            name = head[5] if len(head) == 6 and head[5].startswith(str(under)) else None
        elif name and line.startswith("Rss:"):
            key = Path(name).relative_to(under).as_posix().split("/", 1)[-1]  # without the version folder
            out[key] = out.get(key, 0.0) + int(line.split()[1]) / 1024
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def child(root: Path, questions: Path | None) -> None:
    """Open the index; with `questions`, run each; print the figures as JSON."""
    import faiss  # noqa: F401  (imports are not part of the open time)

    from qa.backends.local import LocalBackend
    from qa.retrieve import retrieve

    base = memory()
    t, c = time.perf_counter(), time.process_time()
    backend = LocalBackend(root)
    open_s, open_cpu_s = time.perf_counter() - t, time.process_time() - c
    assert backend.problem == "", backend.problem
    out = {"open_s": open_s, "open_cpu_s": open_cpu_s, "base": base, "opened": memory()}
    if questions is not None:
        qs = json.loads((questions / "questions.json").read_text("utf-8"))
        qvecs = np.load(questions / "qvecs.npy")
        ret_ms, ret_cpu_ms, dense_ms, ann, gold = [], [], [], [], []
        for q, v in zip(qs, qvecs):
            t, c = time.perf_counter(), time.process_time()
            found = retrieve(backend, v, q["question"])
            ret_ms.append(1000 * (time.perf_counter() - t))
            ret_cpu_ms.append(1000 * (time.process_time() - c))
            texts = [found.fetched.chunks[x.chunk_id].text for x in found.candidates[:10]]
            gold.append(gold_rank(texts, q["answers"]))
            t = time.perf_counter()
            hits = backend.search_dense(v, 10)
            dense_ms.append(1000 * (time.perf_counter() - t))
            ann.append([h.passage for h in hits])
        dense = backend.snapshot.dense
        out.update(after=memory(), mapped=mapped_files(root.resolve()), retrieve_ms=ret_ms,
                   retrieve_cpu_ms=ret_cpu_ms, dense_ms=dense_ms, ann=ann, gold=gold, passages=len(backend), documents=len(backend.documents()), index=type(dense).__name__,
                   nlist=getattr(dense, "nlist", None), nprobe=getattr(dense, "nprobe", None))
    print(json.dumps(out))


def measure(root: Path, questions: Path, repeat: int = 3) -> dict:
    """`repeat` fresh processes that only open, then one that opens and asks every question."""
    runs = [_child(root, None) for _ in range(repeat)] + [_child(root, questions)]
    r = runs[-1]
    r["opens"] = [(x["open_s"], x["open_cpu_s"]) for x in runs]
    return r


def _child(root: Path, questions: Path | None) -> dict:
    # cwd: `python -m` puts the working folder first on sys.path; this tree's package is meant.
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale_real", "--child", str(root), str(questions or "-")],
                         cwd=ROOT, check=True, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def exact_top10(version: Path, qvecs: np.ndarray) -> np.ndarray:
    """Exact inner-product top 10 over the stored (float16) vectors, decoded to float32."""
    import faiss

    stored = np.load(version / "vectors.npy", mmap_mode="r")
    flat = faiss.IndexFlatIP(stored.shape[1])
    for lo in range(0, len(stored), 100_000):
        flat.add(np.ascontiguousarray(stored[lo:lo + 100_000], dtype=np.float32))
    return flat.search(np.ascontiguousarray(qvecs, np.float32), 10)[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--squad", default=str(shared_data() / "squad-dev-half.json"))
    ap.add_argument("--bbc", default=None, help="a BBC index folder (format 3) whose passages are added, read only")
    ap.add_argument("--model", default=None, help="ONNX export of the model (default: QA exports one)")
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--spread", type=float, default=1.0)
    ap.add_argument("--isotropic", type=float, default=0.0,
                    help="share of the made vectors' deviation made isotropic (full rank), 0 to 1")
    ap.add_argument("--per-doc", type=int, default=4)
    ap.add_argument("--work", default=str(ROOT / ".qa-eval" / "scale-real"))
    ap.add_argument("--keep", action="store_true", help="keep the built index under --work")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes that only open (the fastest reported)")
    ap.add_argument("--reuse", action="store_true", help="measure the index kept by an earlier --keep run")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        child(Path(args.child[0]), None if args.child[1] == "-" else Path(args.child[1]))
        return
    from qa.backends.store import IndexStore
    from qa.embed import Embedder
    from qa.types import Settings

    from benchmarks.common import squad_questions

    print("command:", " ".join([Path(sys.executable).name, "-m", "benchmarks.bench_scale_real"] + sys.argv[1:]))
    work = Path(args.work)
    embedder = Embedder(Settings().model, onnx_dir=args.model) if args.model else None
    t = time.perf_counter()
    roots = [squad_index(work / "squad", Path(args.squad), embedder)] + ([Path(args.bbc)] if args.bbc else [])
    real = real_batches(roots)
    n_real = sum(len(b.chunks) for b in real)
    if embedder is None:
        embedder = Embedder(Settings().model, onnx_dir=work / "squad" / "index" / "model")
    data = json.loads(Path(args.squad).read_text("utf-8"))
    qs = [{"question": q, "answers": list(a)} for q, a, _ in squad_questions(data, args.questions)]
    qdir = work / "questions"
    qdir.mkdir(parents=True, exist_ok=True)
    qvecs = np.stack([embedder.embed_query(q["question"]) for q in qs]).astype(np.float32)
    np.save(qdir / "qvecs.npy", qvecs, allow_pickle=False)
    (qdir / "questions.json").write_text(json.dumps(qs), encoding="utf-8")
    print(f"real: {n_real:,} passages of {len(real):,} documents ({', '.join(map(str, roots))}); "
          f"{len(qs)} questions embedded; {time.perf_counter() - t:.0f} s")

    t = time.perf_counter()
    mix = fit(real, args.clusters)
    print(f"mixture: {len(mix.means)} clusters, sentence noise {mix.sentence_noise:.2f}, "
          f"fitted in {time.perf_counter() - t:.0f} s")
    root = work / (f"index-{args.n}-{args.spread}-{args.clusters}-{args.per_doc}"
                   + (f"-iso{args.isotropic}" if args.isotropic else ""))
    build_s = None
    if not (args.reuse and IndexStore(root).current()):
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        build(root, real, mix, args.n, args.per_doc, args.spread, seed=1, isotropic=args.isotropic)
        build_s = time.perf_counter() - t
    del real
    version = IndexStore(root).current()
    disk = sum(p.stat().st_size for p in version.rglob("*") if p.is_file()) / 2**30
    print(f"built {args.n:,} passages through the local writer in {build_s or 0:.0f} s; version {disk:.2f} GiB on disk")
    try:
        r = measure(root, qdir, args.repeat)
        ann = np.array(r["ann"])
        exact = exact_top10(version, qvecs)
        doc_ids = json.loads((version / "doc_ids.json").read_text("utf-8"))  # format 4
        made_doc = np.array([d.startswith(MADE) for d in doc_ids])
        p_doc = np.load(version / "p_doc.npy", mmap_mode="r")
        made_share = made_doc[p_doc[exact]].mean(axis=1)
        recall = np.array([len(set(a.tolist()) & set(e.tolist())) / 10 for a, e in zip(ann, exact)])
    finally:
        if not (args.keep or args.reuse):
            shutil.rmtree(root, ignore_errors=True)
    report(args, r, recall, made_share, n_real, build_s, disk)


def report(args, r: dict, recall: np.ndarray, made_share: np.ndarray, n_real: int, build_s: float, disk: float) -> None:
    pct = lambda xs, p: float(np.percentile(xs, p))  # noqa: E731
    gold = [g for g in r["gold"]]
    print(f"\n{r['passages']:,} passages ({n_real:,} real, {r['passages'] - n_real:,} made), {r['documents']:,} documents; "
          f"dense index {r['index']} (nlist {r['nlist']}, nprobe {r['nprobe']}); {len(recall)} SQuAD questions; "
          f"spread {args.spread}, isotropic share {args.isotropic}, {args.clusters} clusters, "
          f"{args.per_doc} passages per made document\n")
    print("| figure | value |")
    print("|---|---|")
    wall = sorted(w for w, _ in r["opens"])
    print(f"| open, LocalBackend(root), fresh process: fastest of {len(wall)} wall (all; CPU of each) | {wall[0]:.2f} s "
          f"({', '.join(f'{w:.2f}' for w, _ in r['opens'])}; CPU {', '.join(f'{c:.2f}' for _, c in r['opens'])}) |")
    for label, key in (("after open", "opened"), ("after the questions", "after")):
        m, b = r[key], r["base"]
        print(f"| resident memory added {label}: RSS (anonymous + file-backed) | {m['rss'] - b['rss']:,.0f} MiB "
              f"({m['anon'] - b['anon']:,.0f} + {m['file'] - b['file']:,.0f}) |")
    b = r["base"]
    print(f"| resident memory after imports, before open: RSS (anonymous + file-backed) | {b['rss']:,.0f} MiB "
          f"({b['anon']:,.0f} + {b['file']:,.0f}) |")
    top = ", ".join(f"{k} {v:,.0f}" for k, v in list(r["mapped"].items())[:6])
    print(f"| resident pages of the mapped index files after the questions, largest (MiB) | {top} |")
    print(f"| retrieve() dense + BM25 + fusion, p50 / p95 / first question | {pct(r['retrieve_ms'], 50):.1f} / "
          f"{pct(r['retrieve_ms'], 95):.1f} / {r['retrieve_ms'][0]:.1f} ms |")
    print(f"| retrieve() CPU time, p50 / p95 | {pct(r['retrieve_cpu_ms'], 50):.1f} / {pct(r['retrieve_cpu_ms'], 95):.1f} ms |")
    print(f"| engine dense top 10, p50 / p95 | {pct(r['dense_ms'], 50):.1f} / {pct(r['dense_ms'], 95):.1f} ms |")
    print(f"| dense recall@10 vs exact flat: mean (min; questions at 1.0) | {recall.mean():.3f} "
          f"({recall.min():.1f}; {(recall == 1).mean():.2f}) |")
    print(f"| made share of exact top 10: mean (questions with >= 0.5) | {made_share.mean():.3f} "
          f"({(made_share >= 0.5).mean():.2f}) |")
    print(f"| answer-bearing passage in retrieve() top 10 / at 1 | {np.mean([g is not None for g in gold]):.3f} / "
          f"{np.mean([g == 1 for g in gold]):.3f} |")
    built = f"{build_s:.0f} s" if build_s else "reused"
    print(f"| build through the local writer / version on disk | {built} / {disk:.2f} GiB |")


if __name__ == "__main__":
    main()
