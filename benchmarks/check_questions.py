"""Validate a news question file (default benchmarks/news_train.json) and print its counts.

Checks the schema of news_dev.json, that every gold phrase occurs verbatim in its doc, that no doc
is one of news_dev.json's or news_extra.json's (so training and development articles stay apart),
at most two answerable questions per article, and notes gold phrases that sit in the article's lead.
Run: python -m benchmarks.check_questions [path]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from benchmarks.news import BBC, NEWS_DEV, ROOT

KINDS = ("quote", "fact", "number")


def article(name: str) -> str:
    raw = (BBC / name).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # one BBC file is Latin-1
        return raw.decode("latin-1")


def lead(text: str) -> str:
    """Headline and first paragraph: a gold phrase there makes the question too easy."""
    return "\n".join([line for line in text.splitlines() if line.strip()][:2])


def used_docs(paths: list[Path]) -> set[str]:
    out = set()
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        out |= {x["doc"] for x in data["answerable"] + data.get("conversations", [])}
    return out


def problems(data: dict, excluded: set[str]) -> tuple[list[str], list[str]]:
    errors, notes = [], []
    if data.get("corpus") != "bbc" or not data.get("about"):
        errors.append("missing 'about' or corpus != 'bbc'")
    checks = [(x.get("q", ""), x.get("gold"), x.get("doc"), x.get("kind")) for x in data["answerable"]]
    checks += [(" / ".join(c.get("turns", [])), c.get("gold_last"), c.get("doc"), "follow-up")
               for c in data["conversations"]]
    for q, golds, doc, kind in checks:
        if kind not in KINDS + ("follow-up",) or not q or not golds or not doc:
            errors.append(f"bad entry: {q!r}")
            continue
        if doc in excluded:
            errors.append(f"{doc} is a development article: {q!r}")
        if not (BBC / doc).exists():
            errors.append(f"no such article {doc}")
            continue
        text = article(doc)
        errors += [f"{doc}: gold {g!r} not in article" for g in golds if g not in text]
        notes += [f"{doc}: gold {g!r} is in the lead" for g in golds if g in lead(text)]
    for c in data["conversations"]:
        if len(c.get("turns", [])) < 2:
            errors.append(f"conversation with fewer than two turns: {c.get('turns')}")
    errors += [f"{d}: {n} answerable questions" for d, n in Counter(x["doc"] for x in data["answerable"]).items() if n > 2]
    errors += [f"unanswerable entry without q: {u}" for u in data["unanswerable"] if not u.get("q")]
    return errors, notes


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else ROOT / "benchmarks" / "news_train.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    errors, notes = problems(data, used_docs([NEWS_DEV, ROOT / "benchmarks" / "news_extra.json"]))
    for line in errors + notes:
        print(("ERROR " if line in errors else "note  ") + line)
    kinds = Counter(x["kind"] for x in data["answerable"])
    print(f"answerable {len(data['answerable'])} ({', '.join(f'{k} {kinds[k]}' for k in KINDS)}) "
          f"over {len({x['doc'] for x in data['answerable']})} articles; "
          f"unanswerable {len(data['unanswerable'])}; conversations {len(data['conversations'])}; "
          f"errors {len(errors)}; gold phrases in a lead {len(notes)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
