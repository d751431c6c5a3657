"""Opening a local index of many documents: format 3 (documents.json parsed whole into DocInfo
objects, per-document hashes in the manifest) against format 4 (records decoded on demand,
doc_records.py), in one run.

    .venv/bin/python -m benchmarks.bench_doc_open [--documents 250000] [--old-ref main] [--work DIR]
    .venv/bin/python -m benchmarks.bench_doc_open --index ROOT   # a format-4 index kept by another benchmark

The documents are GENERATED news records shaped like real ones, richer than bench_scale_real's
made documents: doc_id and absolute path under an outlet's folder, a 6-12 word title, a byline
from 3,000 names (one in ten none), one of 20 outlets, a date over ten years, a URL, content and
file sha256, size, mtime, language, and the publication guess with its sources. Each document has
ONE short passage (a passage per document is required; a million passages through the engine take
37 minutes), with 16-dimensional vectors: the passage side is small and fixed, the document side
is that of a million-passage archive (249,879 documents at 1M passages).

The format-4 version is written with snapshot.write, the format-3 one from it with
migrate.write_format_3 (the old layout). Each is opened in a fresh process, three times (the
fastest reported): format 3 with the reader checked out of git at --old-ref (the branch base),
format 4 with this tree. Reported: wall time of LocalBackend(root) (imports excluded), anonymous
memory it added, then on the opened backend: one record by id, a date filter over every document as
the engine applies it (format 4: the fact columns), what opening a QA reads of every document to
compare it with the folder (format 4: base.summaries, the columns; format 3: the records), a listing
page as QA.find_documents makes it (every document sorted by title, 50 records), and every record
(values()). With --index, the documents and passages are those of an existing format-4
index (e.g. bench_scale_real --keep), copied to format 3 for the old reader. Page cache warm; the
machine is shared, so figures are indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_open import du, old_tree

ROOT = Path(__file__).resolve().parent.parent

OPEN = r"""
import json, sys, time
from pathlib import Path
import numpy as np
import faiss  # imports are not part of the open time
from qa.backends.local import LocalBackend
from qa.backends.base import Filter
from qa.backends import snapshot
import qa

def anon():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

root = Path(sys.argv[1])
before = anon()
t = time.perf_counter()
b = LocalBackend(root)
open_s = time.perf_counter() - t
after = anon()
assert b.problem == "", b.problem
docs = b.documents()
ids = list(docs)
t = time.perf_counter(); docs[ids[len(ids) // 2]]; one_ms = 1000 * (time.perf_counter() - t)
where = Filter(since="2020-01-01", until="2020-12-31")
try:
    from qa.filters import facts
except ImportError:
    facts = lambda d: d.values()
t = time.perf_counter(); kept = sum(1 for d in facts(docs) if where.allows(d)); filter_s = time.perf_counter() - t
try:
    from qa.backends.base import summaries
    brief = lambda d: [(s.doc_id, s.size, s.mtime_ns, s.content_hash, s.path) for s in summaries(d)]
except ImportError:
    brief = lambda d: [(x.doc_id, x.size, x.mtime_ns, x.content_hash, x.path) for x in d.values()]
t = time.perf_counter(); brief(docs); brief_s = time.perf_counter() - t
t = time.perf_counter()  # as QA.find_documents by title: every entry sorted, a page of 50 records
rows = list(docs.entries()) if hasattr(docs, "entries") else list(docs.values())
rows.sort(key=lambda d: (d.title.casefold(), d.doc_id))
page = [docs[d.doc_id] for d in rows[:50]]
listing_s = time.perf_counter() - t
t = time.perf_counter(); every = list(docs.values()); all_s = time.perf_counter() - t
print(json.dumps({"code": qa.__file__, "format": snapshot.FORMAT_VERSION, "open_s": open_s, "anon_mb": after - before,
                  "one_ms": one_ms, "filter_s": filter_s, "kept": kept, "brief_s": brief_s, "listing_s": listing_s, "all_s": all_s,
                  "documents": len(every), "passages": len(b)}))
"""

OUTLETS = [f"The {w} {k}" for w in ("Daily", "Evening", "Morning", "Weekly", "National") for k in
           ("Post", "Herald", "Courier", "Times")]
FIRST = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kemi", "Lars", "Maya",
         "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Xavier", "Yara", "Zoe"]


def generate(n: int, seed: int = 0):
    """(docs, chunks, vectors, sentence vectors): n news records, one short passage each."""
    from qa.types import Chunk, DocInfo, Publication

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}x{(i * 7919) % 997}" for i in range(20_000)]
    surnames = [f"{s}{t}" for s in ("Ald", "Bren", "Carr", "Dunn", "Ell", "Fitz", "Gor", "Hall", "Iver", "Jans",
                                    "Kell", "Lind", "Mor", "Nash", "Ost")
                for t in ("ridge", "son", "wood", "ley", "man", "ford", "berg", "ton")]
    names = [f"{f} {s}" for f in FIRST for s in surnames][:3000]
    days = np.datetime64("2015-01-01") + rng.integers(0, 3650, n)
    docs, chunks = [], []
    for k in range(n):
        outlet = OUTLETS[int(rng.integers(0, len(OUTLETS)))]
        folder = outlet.lower().replace(" ", "-")
        doc_id = f"{folder}/{k:07d}.txt"
        title = " ".join(vocab[w] for w in rng.integers(0, len(vocab), int(rng.integers(6, 13)))).capitalize()
        byline = None if rng.random() < 0.1 else f"By {names[int(rng.integers(0, len(names)))]}"
        date = str(days[k])
        digest, file_digest = "%064x" % int(rng.integers(0, 2**62)), "%064x" % int(rng.integers(0, 2**62))
        text = " ".join(vocab[w] for w in rng.integers(0, len(vocab), 8)).capitalize() + "."
        chars = int(rng.integers(1500, 6000))
        guess = Publication(date=date, outlet=outlet, author=byline,
                            sources=(("date", "document"), ("outlet", "document")) + ((("author", "document"),)
                                                                                      if byline else ()))
        docs.append(DocInfo(doc_id, f"/srv/archive/news/{doc_id}", title, byline, outlet, digest, chars, language="en",
                            file_sha256=file_digest, size=chars + 200, mtime_ns=1_700_000_000_000_000_000 + k * 997,
                            date=date, url=f"https://{folder}.example/{date}/{k}",
                            meta_sources=guess.sources, guess=guess))
        chunks.append(Chunk(doc_id, 0, len(text), text, ((0, len(text)),), (None,)))
    vecs = rng.standard_normal((n, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return docs, chunks, vecs, vecs.copy()


def open_in_fresh_process(root: Path, pythonpath: Path, repeat: int = 3) -> dict:
    runs = []
    for _ in range(repeat):
        env = dict(os.environ, PYTHONPATH=str(pythonpath), HF_HUB_OFFLINE="1")
        out = subprocess.run([sys.executable, "-c", OPEN, str(root)], env=env, cwd=pythonpath, check=True,
                             capture_output=True, text=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return min(runs, key=lambda r: r["open_s"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--documents", type=int, default=250_000)
    ap.add_argument("--old-ref", default="main")
    ap.add_argument("--work", default=None, help="folder for the indexes (default: a temporary one)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--index", default=None, help="an existing format-4 index folder (read only)")
    args = ap.parse_args()
    from qa.backends import migrate, snapshot
    from qa.backends.store import IndexStore
    from qa.types import Settings

    print("command:", " ".join([Path(sys.executable).name] + sys.argv))
    work = Path(args.work or tempfile.mkdtemp(prefix="qa-docopen-"))
    old = old_tree(args.old_ref, work / "old")
    try:
        three = work / "f3"
        if args.index:
            four = Path(args.index)
            v4 = IndexStore(four).current()
            print(f"format 4: {four}")
        else:
            t = time.perf_counter()
            docs, chunks, vecs, svecs = generate(args.documents)
            gen_s = time.perf_counter() - t
            four = work / "f4"
            t = time.perf_counter()
            store = IndexStore(four)
            with store.lock():
                tmp = store.new_version()
                snapshot.write(tmp, Settings(), docs, chunks, vecs, svecs)
                v4 = store.commit(tmp)
            write_s = time.perf_counter() - t
            del docs, chunks, vecs, svecs
            print(f"{args.documents:,} documents generated in {gen_s:.0f} s, format 4 written in {write_s:.0f} s")
        store3 = IndexStore(three)
        with store3.lock():
            tmp = store3.new_version()
            migrate.write_format_3(snapshot.Snapshot.load(v4, deep_at_open=0), tmp)
            v3 = store3.commit(tmp)
        sizes = {name: (v3 / name).stat().st_size / 2**20 for name in ("documents.json", "manifest.json")}
        sizes4 = {name: (v4 / name).stat().st_size / 2**20 for name in
                  ("doc_ids.json", "documents.jsonl", "doc_facts.json", "manifest.json")}
        print("format 3 files MiB:", {k: round(v, 1) for k, v in sizes.items()},
              "format 4:", {k: round(v, 1) for k, v in sizes4.items()})
        r3 = open_in_fresh_process(three, old, args.repeat)
        r4 = open_in_fresh_process(four, ROOT, args.repeat)
        assert r3["format"] == 3 and r4["format"] == 4 and str(old) in r3["code"], (r3, r4)
        assert r3["kept"] == r4["kept"] and r3["documents"] == r4["documents"]
        t = time.perf_counter()
        snapshot.check(v4)
        check_s = time.perf_counter() - t
        print(f"qa check of format 4: {check_s:.1f} s")
        print()
        print("| passages | documents | format | on disk MiB | open s | anon MiB added | one record ms "
              "| date filter over all s | folder comparison facts s | listing page s | every record s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for fmt, v, r in (("3 (old reader)", v3, r3), ("4", v4, r4)):
            print(f"| {r['passages']:,} | {r['documents']:,} | {fmt} | {du(v):,.0f} | {r['open_s']:.3f} | "
                  f"{r['anon_mb']:,.0f} | {r['one_ms']:.2f} | {r['filter_s']:.3f} | {r['brief_s']:.3f} | "
                  f"{r['listing_s']:.3f} | {r['all_s']:.2f} |")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
