"""Command line: `qa ask "question"`, `qa said PERSON`, `qa index`, `qa check`, `qa eval`. Thin over the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import textwrap

from .errors import BadQuestionError, DocumentsError, QAError

# Terminal control characters (ANSI escapes...) in article text are shown as U+FFFD, never sent raw.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit status 2, like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"qa: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qa", description="Answer questions from a folder of news articles "
                                "with verbatim, cited passages.")
    sub = p.add_subparsers(dest="command", required=True)

    def filters(sp):
        sp.add_argument("--since", metavar="YYYY-MM-DD", help="only articles published on or after this date")
        sp.add_argument("--until", metavar="YYYY-MM-DD", help="only articles published on or before this date")
        sp.add_argument("--outlet", action="append", default=[], help="only articles of this outlet (repeatable)")
        sp.add_argument("--author", action="append", default=[], help="only articles by this author (repeatable)")

    def export(sp):
        sp.add_argument("--format", choices=("csv", "json", "md"), default=None,
                        help="print an export with provenance instead of text (qa verify re-checks csv/json)")

    def common(sp):
        sp.add_argument("--docs", default=os.environ.get("QA_DOCS", "seeds"),
                        help="documents folder (default: $QA_DOCS or ./seeds)")
        sp.add_argument("--index", default=os.environ.get("QA_INDEX", "embeddings"),
                        help="index folder, or a Milvus URI: http://host:port or a Milvus Lite file *.db "
                             "(default: $QA_INDEX or ./embeddings)")
        sp.add_argument("--json", action="store_true", help="print JSON instead of text")

    ask = sub.add_parser("ask", help="answer one question")
    ask.add_argument("question")
    ask.add_argument("-k", type=int, default=5, help="passages to show (1-50, default 5)")
    ask.add_argument("--history", action="append", default=[], metavar="QUESTION",
                     help="an earlier question of the conversation (repeatable, oldest first)")
    filters(ask)
    export(ask)
    common(ask)

    said = sub.add_parser("said", help="a person's statements over time")
    said.add_argument("person")
    said.add_argument("--about", default=None, help="the subject (default: everything)")
    said.add_argument("--oldest", action="store_true", help="oldest first (default: newest first)")
    filters(said)
    export(said)
    common(said)

    ver = sub.add_parser("verify", help="re-check every quotation of an export against its source files")
    ver.add_argument("export", help="a CSV or JSON file written by --format csv/json")

    def sentence_vectors(sp):
        from .types import SENTENCE_VECTORS, Settings

        sp.add_argument("--sentence-vectors", choices=SENTENCE_VECTORS, default=Settings().sentence_vectors,
                        help="how sentence vectors are made: embedded on their own, or pooled from their passage's "
                             "token embeddings (faster to index); an index built otherwise is rebuilt "
                             "(default: %(default)s)")

    idx = sub.add_parser("index", help="build or update the index and report what changed")
    common(idx)
    sentence_vectors(idx)

    chk = sub.add_parser("check", help="verify the saved index completely (every checksum and value)")
    chk.add_argument("--index", default=os.environ.get("QA_INDEX", "embeddings"),
                     help="index folder (default: $QA_INDEX or ./embeddings)")

    ev = sub.add_parser("eval", help="measure answer quality on a question file")
    ev.add_argument("questions", help="question file (seed_questions format or SQuAD JSON)")
    ev.add_argument("--limit", type=int, default=None, help="evaluate at most this many questions")
    # Not $QA_DOCS/seeds: a SQuAD file writes its articles into the documents folder, which must not
    # be the user's own (by default .qa-eval/<file>/docs; seed questions use seeds/ or their corpus).
    ev.add_argument("--docs", default=None, help="documents folder (default: chosen by the question file)")
    ev.add_argument("--index", default=None, help="index folder (default: beside the documents)")
    ev.add_argument("--json", action="store_true", help="print JSON instead of text")
    sentence_vectors(ev)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)  # libraries that set their own loggers to DEBUG (bm25s) stay quiet
    handler.setFormatter(logging.Formatter("qa: warning: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    try:
        if args.command == "ask":
            return _ask(args)
        if args.command == "index":
            return _index(args)
        if args.command == "said":
            return _said(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "check":
            return _check(args)
        return _eval(args)
    except (BadQuestionError, DocumentsError) as exc:
        print(f"qa: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except QAError as exc:
        print(f"qa: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # an unreadable question file, an unwritable index folder, a closed pipe...
        print(f"qa: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if os.environ.get("QA_DEBUG"):
            raise
        print(f"qa: error: unexpected {type(exc).__name__}: {_one_line(exc)} (set QA_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(_UNPRINTABLE.sub("\ufffd", str(exc)).split())


def _shown(text: str) -> str:
    return _UNPRINTABLE.sub("\ufffd", text)


def _ask(args) -> int:
    from .api import QA

    answer = QA(args.docs, args.index).ask(args.question, k=args.k, history=args.history, since=args.since,
                                           until=args.until, outlets=args.outlet, authors=args.author)
    if _printed_as_data(answer, args):
        return 0
    if answer.filters:
        print(_shown("Filtered by " + "; ".join(f"{n}: {v}" for n, v in answer.filters)
                     + (f" ({answer.undated_left_out} undated articles left out)" if answer.undated_left_out else "")))
    if not answer.answered:
        print(f"The articles do not answer this question: {answer.reason}.")
        return 0
    for i, p in enumerate(answer.passages, start=1):
        c = p.citation
        source = " — ".join(x for x in (c.title, c.outlet, c.date) if x)
        print(_shown(f"[{i}] {source}"))
        page = f", page {c.page}" if c.page else ""
        print(_shown(f"    {c.doc_id}{page}, characters {c.start}–{c.end}   (score {p.score:.3f})"))
        print(_shown(textwrap.indent(textwrap.fill(p.text, 100), "    ")))
        print(_shown(textwrap.indent(textwrap.fill(f"» {p.highlight}", 100), "    ")))
        if p.speaker:
            print(_shown(f"    speaker: {p.speaker}"))
        for other in p.also_in:
            print(_shown(f"    also reported by: {other.title} ({other.doc_id}, characters {other.start}–{other.end})"))
        print()
    return 0


def _printed_as_data(result, args) -> bool:
    """Print an export (--format) or the record's JSON (--json) if asked; True if printed."""
    if args.format:
        from .export import render

        print(render(result, args.format), end="")
    elif args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    return bool(args.format or args.json)


def _said(args) -> int:
    from .api import QA

    found = QA(args.docs, args.index).statements(args.person, about=args.about,
                                                 order="oldest" if args.oldest else "newest", since=args.since,
                                                 until=args.until, outlets=args.outlet, authors=args.author)
    if _printed_as_data(found, args):
        return 0
    if not found.statements:
        print(_shown(f"No statements found: {found.reason}."))
        return 0
    for i, st in enumerate(found.statements, start=1):
        p, first = st.passage, st.first_reported
        when = first.date or "undated"
        print(_shown(f"[{i}] {when} — {first.outlet or first.title}   ({first.doc_id}, characters {first.start}–{first.end})"))
        print(_shown(textwrap.indent(textwrap.fill(f"» {p.highlight}", 100), "    ")))
        for other in (p.citation, *p.also_in):
            if other != first:
                print(_shown(f"    also reported by: {other.outlet or other.title} ({other.date or 'undated'}, {other.doc_id})"))
        print()
    return 0


def _verify(args) -> int:
    from .export import verify

    checks = verify(args.export)
    for c in checks:
        if not c.ok or c.reason:
            print(_shown(f"[{c.rank}] {c.doc_id}: {'ok' if c.ok else 'FAILED'}{': ' + c.reason if c.reason else ''}"))
    bad = sum(not c.ok for c in checks)
    print(f"{len(checks) - bad} of {len(checks)} quotations still stand in their sources")
    return 1 if bad else 0


def _check(args) -> int:
    """Opening a large index checks only what costs nothing per passage; this reads it all.
    Damage exits 1 with the reason (the next `qa index` rebuilds)."""
    from .backends.local import check

    print(check(args.index))
    return 0


def _index(args) -> int:
    from dataclasses import asdict

    from .api import QA
    from .types import Settings

    settings = Settings(sentence_vectors=args.sentence_vectors)
    update = QA(args.docs, args.index, settings, progress=sys.stderr.isatty(), full_scan=True).last_update
    if args.json:
        print(json.dumps(asdict(update), indent=2))
        return 0
    if update.rebuilt:
        print(f"rebuilt the index ({update.reason}): {len(update.added)} documents")
    elif not update.changed_anything:
        print(f"index up to date: {len(update.unchanged)} documents")
    for label, names in (("added", update.added if not update.rebuilt else ()), ("changed", update.changed),
                         ("removed", update.removed)):
        for name in names:
            print(f"{label}: {name}")
    for skipped in update.skipped:
        print(f"skipped: {skipped.path}: {skipped.reason}")
    print(f"{update.passages} passages indexed" + (f"; {len(update.skipped)} files skipped (reasons above)"
                                                   if update.skipped else ""))
    return 0


def _eval(args) -> int:
    from .evaluation import evaluate, format_report
    from .types import Settings

    report = evaluate(args.questions, docs_dir=args.docs, index_dir=args.index, limit=args.limit,
                      settings=Settings(sentence_vectors=args.sentence_vectors))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
