"""Reliability and security: bad questions, bad documents, damaged indexes, concurrency and uploads.

Every case must end in a clear error (BadQuestionError / DocumentsError, one line and exit 2 on the
command line) or a sensible answer; never a traceback, a wrong answer or a file outside the folders.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from qa import QA, Answer, BadQuestionError, DocumentsError, IndexCorruptError, QAError
from qa.cli import main as cli_main
from qa.backends.local import LocalBackend
from qa.backends.snapshot import Snapshot, _all_finite, _file_hash, check
from qa.backends.store import IndexStore

ROOT = Path(__file__).resolve().parent.parent

FERRY = """Harbour Council Approves New Ferry Route

The harbour council of Port Alder approved a new ferry route on Tuesday, linking the old port with the island of Vell.

"This route will cut the crossing time in half," council chair Mira Solberg said after the vote.

The first ferries are expected to sail in the spring, the council said.
"""

ORCHARD = """Orchard Growers Report Record Apple Harvest

Orchard growers in the Lindvale valley reported a record apple harvest this autumn, citing a mild summer.

"We have never picked so many apples in a single season," grower Tomas Lind told reporters.
"""

LIBRARY = """Library Reopens After Two-Year Renovation

The Brackwater city library reopened on Saturday after a two-year renovation that added a rooftop reading garden.

Librarian Ada Wren said the garden would host poetry readings every Thursday evening.
"""

SECRET = "QX7731ZEBRA"
SECRET_ARTICLE = f"""Vault Code Revealed

The vault code of the Farrow bank is {SECRET}, the bank manager Otto Farrow told staff on Monday.

"Nobody outside this room may know the vault code {SECRET}," he said.
"""

ANSI = """Signal Tower Repaired

Engineers repaired the Kestrel Point signal tower on Friday \x1b[31mafter\x1b[0m a storm\x07 knocked out its lamp.

The tower keeper Hanna Voss said the lamp would shine again from Saturday night.
"""


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _verbatim(bot: QA, ans: Answer) -> None:
    """Every passage is the exact text of its file at the cited characters."""
    for p in ans.passages:
        c = p.citation
        assert bot.document_text(c.doc_id)[c.start:c.end] == p.text
        encoding = bot.engine.backend.documents()[c.doc_id].encoding  # the file's own, as detected
        assert Path(c.path).read_text(encoding=encoding)[c.start:c.end] == p.text


@pytest.fixture(scope="session")
def model_cache(seed_qa, tmp_path_factory):
    """A copy of the session's exported query model (None if this version exports none)."""
    src = seed_qa.index_dir / "model"
    if not (src / "embed_config.json").exists():
        return None
    dst = tmp_path_factory.mktemp("onnx-cache") / "model"
    shutil.copytree(src, dst)
    return dst


@contextmanager
def cached_export(model_cache):
    """export_onnx replaced by a copy of an export of the same model: saves ~7 s per fresh index.

    These tests are about indexes and documents, not about exporting (tests/test_embed.py is).
    """
    from qa import model_export

    if model_cache is None:
        yield
        return

    def copy(model, out_dir, quantize=False):
        shutil.copytree(model_cache, out_dir, copy_function=os.link)  # the model files are never written to

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_export, "export_onnx", copy)
        yield


# ---------------------------------------------------------------------------------------------
# Bad questions
# ---------------------------------------------------------------------------------------------

def test_bad_question_error_is_a_qa_error():
    assert issubclass(BadQuestionError, QAError) and issubclass(DocumentsError, QAError)


@pytest.mark.parametrize("question", ["", "   \t\n  ", "\x00\x01\x1b\x7f", "\ud800", "x" * 2001, "why " * 25_000,
                                      None, 42, b"What did Lavrov say?", ["What did Lavrov say?"]],
                         ids=["empty", "whitespace", "only-control", "only-surrogate", "2001-chars", "100k-chars",
                              "none", "int", "bytes", "list"])
def test_bad_questions_raise_bad_question_error(seed_qa, question):
    with pytest.raises(BadQuestionError):
        seed_qa.ask(question)


def test_huge_question_is_refused_at_once(seed_qa):
    for n in (100_000, 10_000_000):
        t = time.perf_counter()
        with pytest.raises(BadQuestionError, match="too long"):
            seed_qa.ask("x" * n)
        assert time.perf_counter() - t < 1.0
    t = time.perf_counter()
    seed_qa.ask("What did Lavrov say? " * 95)  # the longest accepted question is cheap too
    assert time.perf_counter() - t < 1.0


ODD_QUESTIONS = {
    "control-chars": "What did\x00 Lavrov\x07 say \x1b[31mabout ceasefires?",
    "lone-surrogate": "What did Lavrov say\ud800 about ceasefires?",
    "zero-width": "What did La\u200bvrov say about cease\u200dfires?",
    "emoji": "🙂🔥🇺🇦 ?",
    "emoji-in-words": "What did Lavrov 🗣️ say about ceasefires 🕊️?",
    "arabic": "ماذا قال لافروف عن وقف إطلاق النار؟",
    "hebrew": "מה אמר לברוב על הפסקת אש?",
    "chinese": "拉夫罗夫对停火说了什么？",
    "cyrillic": "Что сказал Лавров о перемирии?",
    "mixed-rtl-ltr": "What did Lavrov \u202eyas\u202c about ceasefires?",
    "combining": "e\u0301\u0301\u0301" * 100,
    "stopwords": "what is the of",
    "one-stopword": "the",
    "punctuation": "?!.,;:",
    "html": "<script>alert(1)</script> What did Lavrov say?",
    "markdown-link": "[click](http://example.com) What did Lavrov say about ceasefires?",
    "newlines": "What did\n\nLavrov\r\nsay\tabout ceasefires?",
}


@pytest.mark.parametrize("question", list(ODD_QUESTIONS.values()), ids=list(ODD_QUESTIONS))
def test_odd_questions_get_a_sensible_answer(seed_qa, question):
    ans = seed_qa.ask(question, k=3)
    assert isinstance(ans, Answer)
    assert ans.answered == bool(ans.passages) and len(ans.passages) <= 3
    assert ans.answered or ans.reason
    _verbatim(seed_qa, ans)
    json.dumps(ans.to_dict())


def test_stopwords_only_question_does_not_answer(seed_qa):
    assert not seed_qa.ask("what is the of").answered


def test_control_characters_are_ignored(seed_qa):
    clean = seed_qa.ask("What did Lavrov say about ceasefires?")
    dirty = seed_qa.ask("What\x00 did\x07 Lavrov say\x1b about\x7f ceasefires?\ud800")
    assert [p.citation for p in dirty.passages] == [p.citation for p in clean.passages]


@pytest.mark.parametrize("k", [0, -1, -10**9, 51, 10**6, 2.5, float("nan"), "3", None, True, [3]])
def test_bad_k_is_refused(seed_qa, k):
    with pytest.raises(BadQuestionError, match="k must be"):
        seed_qa.ask("What did Lavrov say?", k=k)


def test_integer_like_k_is_accepted(seed_qa):
    assert len(seed_qa.ask("What did Lavrov say about ceasefires?", k=np.int64(2)).passages) <= 2


@pytest.mark.parametrize("kwargs", [{"history": "What did Lavrov say?"}, {"history": [1, 2]},
                                    {"history": {"q": 1}}, {"history": ["x" * 3000]},
                                    {"sources": "000_265f6dd0fc854307.txt"}, {"sources": [1]},
                                    {"sources": ["no-such-file.txt"]}, {"sources": ["../../etc/passwd"]}])
def test_bad_history_or_sources_are_refused(seed_qa, kwargs):
    with pytest.raises(BadQuestionError):
        seed_qa.ask("What did he say?", **kwargs)


@pytest.fixture
def cli_dirs(seed_dirs, seed_qa):
    docs, index = seed_dirs
    return ["--docs", str(docs), "--index", str(index)]


@pytest.mark.parametrize("question", [ODD_QUESTIONS[k] for k in ("control-chars", "emoji", "arabic", "hebrew",
                                                                 "chinese", "cyrillic", "stopwords")])
def test_cli_odd_questions_answer_or_abstain(cli_dirs, capsys, question):
    assert cli_main(["ask", question.replace("\x00", ""), "-k", "2", *cli_dirs]) == 0
    out, err = capsys.readouterr()
    assert out and "Traceback" not in out + err


@pytest.mark.parametrize("args", [["-k", "abc"], ["-k", "2.5"], ["-k", ""], ["--bogus"], ["-k"]])
def test_cli_usage_errors_are_one_line_and_exit_2(cli_dirs, capsys, args):
    with pytest.raises(SystemExit) as exc:
        cli_main(["ask", "What did Lavrov say?", *args, *cli_dirs])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qa: error:"), err


@pytest.mark.parametrize("question", ["\x07\x1b\x7f", "\t \n", "why " * 25_000])
def test_cli_bad_questions_are_one_line_and_exit_2(cli_dirs, capsys, question):
    assert cli_main(["ask", question, *cli_dirs]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qa: error:"), err


def test_cli_unusable_index_folder_is_one_line(seed_dirs, tmp_path, capsys):
    docs, _ = seed_dirs
    (tmp_path / "a-file").write_text("not a folder")
    assert cli_main(["ask", "What did Lavrov say?", "--docs", str(docs), "--index", str(tmp_path / "a-file")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qa: error:") and "a-file" in err[0]


def test_cli_missing_question_file_is_one_line(cli_dirs, tmp_path, capsys):
    assert cli_main(["eval", str(tmp_path / "missing.json"), *cli_dirs]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qa: error:")


def test_cli_index_prints_only_what_changed(small_copy, model_cache):
    import subprocess
    import sys

    docs, index = small_copy
    (docs / "tower.txt").write_text(ANSI, encoding="utf-8")
    (docs / "binary.txt").write_bytes(b"\x00\x01 not text")
    r = subprocess.run([sys.executable, "-m", "qa", "index", "--docs", str(docs), "--index", str(index)],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert r.returncode == 0, r.stderr
    assert "added: tower.txt" in r.stdout and "skipped:" in r.stdout
    # One warning line per skipped file, no library chatter, no traceback.
    assert r.stderr.strip().splitlines() == [
        f"qa: warning: skipping {docs / 'binary.txt'}: not a text file (binary content)"], r.stderr


# ---------------------------------------------------------------------------------------------
# Bad documents
# ---------------------------------------------------------------------------------------------

class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory, model_cache):
    """A folder of good articles mixed with every kind of bad file, indexed once: (bot, docs, warnings, outside)."""
    from qa import ingest

    base = tmp_path_factory.mktemp("badfolder")
    outside = _write(base / "outside", {"secret.txt": SECRET_ARTICLE})
    docs = _write(base / "docs", {"ferry.txt": FERRY, "orchard.txt": ORCHARD, "orchard-copy.txt": ORCHARD,
                                  "tower.txt": ANSI, "vanish.txt": LIBRARY})
    (docs / "binary.txt").write_bytes(b"Some text\x00\x01\x02\xff more text. " * 50)
    (docs / "latin1.txt").write_bytes(("Caf\xe9 owners in Brackwater said prices had risen sharply this year. " * 5)
                                      .encode("latin-1"))
    (docs / "empty.txt").write_bytes(b"")
    (docs / "blank.md").write_text("   \n\n\t\n", encoding="utf-8")
    with open(docs / "huge.txt", "wb") as f:  # sparse: 50 MB on paper, nothing written
        f.truncate(50_000_000)
    (docs / "leak.txt").symlink_to(outside / "secret.txt")
    (docs / "leakdir").symlink_to(outside, target_is_directory=True)
    (docs / "dangling.txt").symlink_to(base / "nowhere.txt")
    (docs / "report.pdf").write_bytes(b"%PDF-1.4 " + SECRET.encode())

    original = ingest.read_document

    def racing_read(path, root, *args, **kwargs):  # the file is deleted after listing, before reading
        if Path(path).name == "vanish.txt":
            Path(path).unlink(missing_ok=True)
        return original(path, root, *args, **kwargs)

    handler = _Records()
    logger = logging.getLogger("qa")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with pytest.MonkeyPatch.context() as mp, cached_export(model_cache):
            mp.setattr(ingest, "read_document", racing_read)
            bot = QA(docs, base / "index")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    warnings = [r.getMessage() for r in handler.records if r.levelno >= logging.WARNING]
    return bot, docs, warnings, outside


def test_bad_files_are_skipped_with_a_warning_naming_them(bad_folder):
    bot, _, warnings, _ = bad_folder
    # latin1.txt is read in its own encoding (Windows-1252), report.pdf is no PDF.
    assert {d.doc_id for d in bot.documents()} == {"ferry.txt", "orchard.txt", "orchard-copy.txt", "tower.txt",
                                                   "latin1.txt"}
    skipped = {Path(p.path).name for p in bot.last_update.skipped}
    expected = {"binary.txt", "report.pdf", "empty.txt", "blank.md", "huge.txt", "leak.txt", "leakdir",
                "dangling.txt", "vanish.txt"}
    assert skipped == expected
    for name in expected:
        assert any(name in w for w in warnings), (name, warnings)
    assert any("huge.txt" in w and "larger than 20 MB" in w for w in warnings)
    assert any("vanish.txt" in w and "vanished" in w for w in warnings)
    assert any("leak.txt" in w and "leaves the folder" in w for w in warnings)


def test_the_rest_is_indexed_and_answers(bad_folder):
    bot, *_ = bad_folder
    ans = bot.ask("How much will the new ferry route cut the crossing time?")
    assert ans.answered and ans.passages[0].citation.doc_id == "ferry.txt"
    _verbatim(bot, ans)


def test_nothing_outside_the_folder_is_read(bad_folder):
    bot, docs, _, outside = bad_folder
    index = bot.engine.backend.snapshot
    assert all(SECRET not in c.text for c in index.chunks)
    assert all(Path(d.path).resolve().is_relative_to(docs.resolve()) for d in index.docs.values())
    for q in ("What is the vault code of the Farrow bank?", f"Who knows the vault code {SECRET}?",
              "What did Otto Farrow tell staff?"):
        ans = bot.ask(q, k=10)
        assert all(SECRET not in p.text and "Farrow" not in p.text for p in ans.passages)
    with pytest.raises(DocumentsError):
        bot.document_text("leak.txt")


def test_oversized_file_is_not_read_whole(tmp_path):
    from qa.ingest import read_folder

    folder = tmp_path / "big"
    folder.mkdir()
    with open(folder / "huge.txt", "wb") as f:
        f.truncate(50_000_000)
    tracemalloc.start()
    try:
        t = time.perf_counter()
        result = read_folder(folder)
        elapsed = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [s.reason for s in result.skipped] == ["larger than 20 MB"]
    assert peak < 2_000_000 and elapsed < 1.0  # reading 20+ MB would show in both


def test_same_text_in_two_files_is_one_passage_also_in_the_other(bad_folder):
    bot, *_ = bad_folder
    ans = bot.ask("What did the orchard growers report about the apple harvest?")
    assert ans.answered
    top = ans.passages[0]
    assert {top.citation.doc_id} | {o.doc_id for o in top.also_in} == {"orchard.txt", "orchard-copy.txt"}
    assert [p.text for p in ans.passages].count(top.text) == 1  # shown once, not once per file
    _verbatim(bot, ans)


WIRE = ("The port authority said on Monday that the new ferry route would cut the crossing time from "
        "ninety minutes to forty, and that tickets would go on sale in April. \u201cThis changes daily life "
        "on the islands,\u201d harbour master Ines Varga said, adding that two larger vessels had been leased.")


def test_wire_paragraph_carried_by_two_outlets_is_one_passage_also_reported_by_the_other(tmp_path, model_cache):
    """Syndicated text: each outlet adds its own lead, the wire paragraph is the same words."""
    docs = _write(tmp_path / "docs", {
        "coast-herald.txt": f"Ferry Route Approved\n\nBy Coast Herald staff\n\n{WIRE}\n\n"
                            "Local traders welcomed the decision at a meeting in the town hall.\n",
        "island-news.txt": f"Faster Crossing Planned\n\nIsland News\n\nGood news for commuters this week. {WIRE}\n\n"
                           "The council will review timetables in the summer.\n",
        "orchard.txt": ORCHARD,
    })
    with cached_export(model_cache):
        bot = QA(docs, tmp_path / "index")
    ans = bot.ask("How much will the new ferry route cut the crossing time?", k=5)
    assert ans.answered
    top = ans.passages[0]
    outlets = {top.citation.doc_id} | {o.doc_id for o in top.also_in}
    assert outlets == {"coast-herald.txt", "island-news.txt"}, (top.text, top.also_in)
    assert sum("forty" in p.text for p in ans.passages) == 1  # the wire text is shown once
    _verbatim(bot, ans)


def test_terminal_escapes_in_articles_are_not_printed_raw(bad_folder, capsys):
    bot, docs, *_ = bad_folder
    ans = bot.ask("When did engineers repair the Kestrel Point signal tower?")
    assert ans.answered and ans.passages[0].citation.doc_id == "tower.txt"
    assert "\x1b" in ans.passages[0].text  # verbatim in the API...
    assert cli_main(["ask", "When did engineers repair the Kestrel Point signal tower?", "-k", "1",
                     "--docs", str(docs), "--index", str(bot.index_dir)]) == 0
    out = capsys.readouterr().out
    assert "Kestrel Point" in out and "\x1b" not in out and "\x07" not in out  # ...but not to the terminal


def test_changed_file_is_not_shown_with_stale_offsets(bad_folder):
    bot, docs, *_ = bad_folder
    path = docs / "ferry.txt"
    try:
        path.write_text("Breaking: " + FERRY, encoding="utf-8")
        with pytest.raises(DocumentsError, match="changed since it was indexed"):
            bot.document_text("ferry.txt")
    finally:
        path.write_text(FERRY, encoding="utf-8")
    assert bot.document_text("ferry.txt") == FERRY


# ---------------------------------------------------------------------------------------------
# Damaged index: detected at load, rebuilt with a warning, never a wrong answer
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_built(tmp_path_factory, model_cache):
    base = tmp_path_factory.mktemp("smallbuilt")
    docs = _write(base / "docs", {"ferry.txt": FERRY, "orchard.txt": ORCHARD, "library.txt": LIBRARY})
    with cached_export(model_cache):
        QA(docs, base / "index")
    return docs, base / "index"


def _link_model_copy_rest(src, dst):
    """Hard-link the (large, never rewritten) model files, copy everything tests may damage."""
    if "/model/" in str(src):
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


@pytest.fixture
def small_copy(small_built, tmp_path):
    docs, index = small_built
    shutil.copytree(docs, tmp_path / "docs")
    shutil.copytree(index, tmp_path / "index", copy_function=_link_model_copy_rest)
    return tmp_path / "docs", tmp_path / "index"


def _rehash(version: Path) -> None:
    """Rewrite the manifest's file hashes so only the deeper checks can catch the damage."""
    m = json.loads((version / "manifest.json").read_text())
    m["files"] = {name: _file_hash(version / name) for name in m["files"] if (version / name).exists()}
    m["sizes"] = {name: (version / name).stat().st_size for name in m["files"]}
    (version / "manifest.json").write_text(json.dumps(m))


def _edit_manifest(version: Path, edit) -> None:
    m = json.loads((version / "manifest.json").read_text())
    edit(m)
    (version / "manifest.json").write_text(json.dumps(m))


def _other_bm25(v: Path) -> None:
    import bm25s

    other = bm25s.BM25()
    other.index([["ferri", "rout"], ["appl"]], show_progress=False)
    shutil.rmtree(v / "bm25")
    other.save(str(v / "bm25"))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_record(v: Path) -> None:
    """Another title of the same length in the first document record (the offsets still fit)."""
    data = (v / "documents.jsonl").read_bytes()
    at = data.index(b'"title":"') + len(b'"title":"')
    (v / "documents.jsonl").write_bytes(data[:at] + (b"Q" if data[at:at + 1] != b"Q" else b"R") + data[at + 1:])


def _edit_column(v: Path, file: str, edit) -> None:
    """Change a stored array in place (same shape), then rehash: only the value checks can tell."""
    a = np.load(v / file).copy()
    edit(a)
    np.save(v / file, a)
    _rehash(v)


DAMAGE = {
    # counts that disagree, with the manifest's hash updated so only the count check can catch it
    "vectors-one-row-short": lambda v: (np.save(v / "vectors.npy", np.load(v / "vectors.npy")[:-1]), _rehash(v)),
    "sentence-vectors-one-row-short": lambda v: (np.save(v / "sentences.npy", np.load(v / "sentences.npy")[:-1]),
                                                 _rehash(v)),
    "vectors-wrong-width": lambda v: (np.save(v / "vectors.npy", np.load(v / "vectors.npy")[:, :-1]), _rehash(v)),
    "vectors-nan": lambda v: (np.save(v / "vectors.npy", np.full_like(np.load(v / "vectors.npy"), np.nan)),
                              _rehash(v)),
    "bm25-byte-flipped": lambda v: _flip_byte(v / "bm25" / "data.csc.index.npy"),
    "bm25-file-missing": lambda v: (v / "bm25" / "indptr.csc.index.npy").unlink(),
    "bm25-garbage-rehashed": lambda v: ((v / "bm25" / "vocab.index.json").write_text('{"ferri": '), _rehash(v)),
    "bm25-doc-count-rehashed": lambda v: (
        (v / "bm25" / "params.index.json").write_text(
            json.dumps(dict(json.loads((v / "bm25" / "params.index.json").read_text()), num_docs=2))), _rehash(v)),
    "bm25-of-another-index": lambda v: (_other_bm25(v), _rehash(v)),
    "passage-offsets-rehashed": lambda v: _edit_column(v, "p_span.npy", lambda a: a.__setitem__((0, 0), a[0, 0] + 3)),
    "sentence-terms-out-of-vocabulary-rehashed": lambda v: (
        np.save(v / "sent_terms.npy", np.load(v / "sent_terms.npy") + np.int32(10**6)), _rehash(v)),
    "sentence-flags-one-short-rehashed": lambda v: (
        np.save(v / "sent_flags.npy", np.load(v / "sent_flags.npy")[:-1]), _rehash(v)),
    "sentence-terms-file-missing": lambda v: (v / "sent_term_start.npy").unlink(),
    "name-words-not-a-list-rehashed": lambda v: ((v / "name_words.json").write_text('{"a": 1}'), _rehash(v)),
    "same-words-offsets-one-short-rehashed": lambda v: (
        np.save(v / "same_words_start.npy", np.load(v / "same_words_start.npy")[:-1]), _rehash(v)),
    "passage-of-unknown-document": lambda v: _edit_column(v, "p_doc.npy", lambda a: a.__setitem__(-1, 99)),
    "passages-out-of-document-order": lambda v: _edit_column(v, "p_doc.npy", lambda a: a.__setitem__(0, a[-1])),
    "sentence-outside-its-passage": lambda v: _edit_column(v, "s_span.npy", lambda a: a.__setitem__((0, 1), 10**6)),
    "speaker-not-stored": lambda v: _edit_column(v, "s_speaker.npy", lambda a: a.__setitem__(0, 10**6)),
    "text-not-utf8-rehashed": lambda v: ((v / "text.bin").write_bytes(b"\xff" + (v / "text.bin").read_bytes()[1:]),
                                         _rehash(v)),
    "text-offsets-end-short": lambda v: _edit_column(v, "p_text.npy", lambda a: a.__setitem__(-1, a[-1] - 1)),
    # byte damage with the manifest left alone: found by the checksums
    "vectors-byte-flipped": lambda v: _flip_byte(v / "vectors.npy"),
    "text-byte-flipped": lambda v: _flip_byte(v / "text.bin"),
    "dense-index-byte-flipped": lambda v: _flip_byte(v / "dense.faiss"),
    "documents-byte-flipped": lambda v: _flip_byte(v / "documents.jsonl"),
    "doc-ids-byte-flipped": lambda v: _flip_byte(v / "doc_ids.json"),
    "document-record-edited-rehashed": lambda v: (_edit_record(v), _rehash(v)),
    "doc-id-twice-rehashed": lambda v: ((v / "doc_ids.json").write_text(
        json.dumps([json.loads((v / "doc_ids.json").read_text())[0]] * 2
                   + json.loads((v / "doc_ids.json").read_text())[2:])), _rehash(v)),
    "doc-titles-byte-flipped": lambda v: _flip_byte(v / "doc_titles.json"),
    "doc-titles-one-short-rehashed": lambda v: ((v / "doc_titles.json").write_text(
        json.dumps(json.loads((v / "doc_titles.json").read_text())[1:])), _rehash(v)),
    "doc-facts-not-a-map-rehashed": lambda v: ((v / "doc_facts.json").write_text("[]"), _rehash(v)),
    "document-fact-not-stored": lambda v: _edit_column(v, "doc_facts.npy", lambda a: a.__setitem__((0, 1), -2)),
    "document-offsets-end-short": lambda v: _edit_column(v, "doc_offsets.npy", lambda a: a.__setitem__(-1, a[-1] - 1)),
    "text-truncated": lambda v: (v / "text.bin").write_bytes((v / "text.bin").read_bytes()[:-7]),
    "manifest-files-not-a-map": lambda v: _edit_manifest(v, lambda m: m.update(files=["vectors.npy"])),
    "manifest-counts-not-counts": lambda v: _edit_manifest(v, lambda m: m["counts"].update(documents="3")),
    "manifest-names-a-file-outside": lambda v: _edit_manifest(
        v, lambda m: m["files"].update({"../../../../../../etc/hostname": "0" * 64})),
    "current-names-missing-version": lambda v: (v.parent / "CURRENT").write_text("v-000000000000\n"),
    "current-empty": lambda v: (v.parent / "CURRENT").write_text(""),
    "version-folder-deleted": lambda v: shutil.rmtree(v),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_is_detected_at_load_with_a_warning(small_copy, damage, caplog):
    _, index = small_copy
    DAMAGE[damage](IndexStore(index).current())
    current = IndexStore(index).current()
    if current is not None:  # detected by the loader itself, whatever opens the index
        with pytest.raises(IndexCorruptError):
            Snapshot.load(current)
    with caplog.at_level(logging.WARNING, logger="qa"):
        assert LocalBackend(index).settings is None  # so QA rebuilds (below, for a sample)
    assert any("damaged" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_float16_values_are_told_finite_from_their_bits():
    rows = np.zeros((70_000, 4), np.float16)  # more than one slice
    assert _all_finite(rows) and _all_finite(rows[:0])
    assert _all_finite(np.array([[65504, -65504, 6e-8, -0.0]], np.float16))  # largest, tiniest, signed zero
    for bad in (np.inf, -np.inf, np.nan):
        damaged = rows.copy()
        damaged[69_999, 3] = bad
        assert not _all_finite(damaged)
        assert not _all_finite(damaged.astype(np.float32))


# The rebuild path is the same for every kind of damage: the named cases and one of each family.
REBUILT = ["vectors-one-row-short", "vectors-wrong-width", "bm25-byte-flipped", "bm25-doc-count-rehashed",
           "passage-offsets-rehashed", "manifest-names-a-file-outside", "current-names-missing-version"]

# Where each damage is caught. A small version (all files <= snapshot.DEEP_AT_OPEN_BYTES, as the
# seeds and the BBC corpus) gets every check at open: the test above. A larger one gets only the
# checks that cost nothing per passage at open (manifest, file sizes, JSON checksums, array
# headers and end points, FAISS/BM25 sizes); these kinds of damage are then found by `qa check`
# (the checksums of the large files and the value checks), not at open:
CAUGHT_BY_CHECK_WHEN_LARGE = {
    "vectors-nan", "bm25-byte-flipped", "sentence-terms-out-of-vocabulary-rehashed", "passage-offsets-rehashed",
    "sentence-outside-its-passage", "speaker-not-stored",
    "text-not-utf8-rehashed", "vectors-byte-flipped", "text-byte-flipped", "dense-index-byte-flipped",
    "documents-byte-flipped", "document-record-edited-rehashed", "doc-titles-one-short-rehashed",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_where_damage_is_caught_in_a_large_index(small_copy, damage):
    """With the open-time budget at 0 (as for a large index): caught at open, or else by `qa check`."""
    _, index = small_copy
    DAMAGE[damage](IndexStore(index).current())
    current = IndexStore(index).current()
    if current is None:  # CURRENT itself is damaged: nothing to open
        assert damage.startswith("current-") or damage == "version-folder-deleted"
        return
    try:
        Snapshot.load(current, deep_at_open=0)
        caught = "check"
    except IndexCorruptError:
        caught = "open"
    assert caught == ("check" if damage in CAUGHT_BY_CHECK_WHEN_LARGE else "open")
    if caught == "check":
        with pytest.raises(IndexCorruptError):
            check(current)
        assert cli_main(["check", "--index", str(index)]) == 1


@pytest.mark.parametrize("damage", REBUILT)
def test_damaged_index_is_rebuilt_and_answers_right(small_copy, damage, caplog, model_cache):
    docs, index = small_copy
    DAMAGE[damage](IndexStore(index).current())
    with caplog.at_level(logging.WARNING, logger="qa"), cached_export(model_cache):
        bot = QA(docs, index)
    assert bot.last_update.rebuilt and "damaged" in bot.last_update.reason
    assert any("damaged" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for question, doc_id in (("How much will the ferry route cut the crossing time?", "ferry.txt"),
                             ("What did the growers report about the apple harvest?", "orchard.txt"),
                             ("When did the Brackwater city library reopen?", "library.txt")):
        ans = bot.ask(question)
        assert ans.answered and ans.passages[0].citation.doc_id == doc_id, (question, ans.reason)
        _verbatim(bot, ans)
    Snapshot.load(IndexStore(index).current())  # the rebuilt version is sound
    assert QA(docs, index).last_update.changed_anything is False


def test_damaged_query_model_is_detected_and_exported_again(small_copy, caplog, model_cache):
    docs, index = small_copy
    model = index / "model"
    if not (model / "embed_config.json").exists():
        pytest.skip("this version saves no query model beside the index")
    onnx = next(model.glob("*.onnx"))
    data = onnx.read_bytes()
    onnx.unlink()  # a new file: the original is hard-linked to other copies
    onnx.write_bytes(data[:4096])
    with caplog.at_level(logging.WARNING, logger="qa"), cached_export(model_cache):
        bot = QA(docs, index)
    assert "model" in bot.last_update.reason  # exported again; the stored vectors stay valid
    assert any("damaged" in r.getMessage() for r in caplog.records)
    ans = bot.ask("When did the Brackwater city library reopen?")
    assert ans.answered and ans.passages[0].citation.doc_id == "library.txt"
    reopened = QA(docs, index)  # the repaired version is used as is
    assert not reopened.last_update.changed_anything
    assert reopened.ask("When did the Brackwater city library reopen?").passages == ans.passages


def test_query_model_saved_whole_gets_its_weights_apart_at_open_and_answers_the_same(small_copy):
    import onnx

    docs, index = small_copy
    model = index / "model"
    question = "When did the Brackwater city library reopen?"
    before = QA(docs, index).ask(question)
    # The layout of exports made before the weights were kept apart. New files throughout: the
    # originals are hard-linked to other copies (which onnx also refuses to read weights from).
    shutil.copytree(model, index.parent / "model-copy")
    whole = onnx.load(str(index.parent / "model-copy" / "model.onnx"))
    config = json.loads((model / "embed_config.json").read_text())
    for name in ("model.onnx", "model.onnx.data", "embed_config.json"):
        (model / name).unlink()
    onnx.save_model(whole, str(model / "model.onnx"))
    (model / "embed_config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "weights"}))
    bot = QA(docs, index)
    assert not bot.last_update.changed_anything and not bot.last_update.reason
    assert json.loads((model / "embed_config.json").read_text())["weights"] == "model.onnx.data"
    assert (model / "model.onnx").stat().st_size < 1_000_000
    assert bot.ask(question).passages == before.passages
    assert QA(docs, index).ask(question).passages == before.passages


# ---------------------------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------------------------

QUESTIONS = [
    "What did Lavrov say about ceasefires?",
    "What did Lavrov tell NBC News?",
    "What did Lavrov say about security guarantees for Ukraine?",
    "Whose troops would be unacceptable?",
    "What is the capital of Australia?",
    "What did Lavrov say about the Olympic Games?",
    "What did Zelensky say?",
    "What does Russia want from the United States?",
    "Who met in Alaska?",
    "What did Trump say about the war?",
]


def _key(ans: Answer):
    return ans.answered, [(p.citation.doc_id, p.citation.start, p.citation.end,
                           tuple((o.doc_id, o.start, o.end) for o in p.also_in)) for p in ans.passages]


def test_threads_asking_one_qa_get_the_sequential_answers(seed_qa, dev_questions):
    questions = QUESTIONS + [x["q"] for x in dev_questions["answerable"]] + list(dev_questions["unanswerable"])
    questions = questions[:20]
    expected = {q: _key(seed_qa.ask(q)) for q in questions}

    def worker(offset: int):
        got = []
        for i in range(20):
            q = questions[(offset + i) % len(questions)]
            got.append((q, _key(seed_qa.ask(q))))
        return got

    with ThreadPoolExecutor(8) as pool:
        results = [f.result() for f in [pool.submit(worker, n * 3) for n in range(8)]]
    mismatches = [q for got in results for q, key in got if key != expected[q]]
    assert sum(len(g) for g in results) == 160 and not mismatches, mismatches


def test_asking_while_documents_change_never_fails(small_copy, model_cache):
    docs, index = small_copy
    with cached_export(model_cache):
        bot = QA(docs, index)
        stable = "How much will the ferry route cut the crossing time?"
        expected = _key(bot.ask(stable))
        stop = threading.Event()
        seen: list = []
        failures: list[BaseException] = []

        def asker():
            while not stop.is_set():
                try:
                    ans = bot.ask(stable)
                    seen.append(ans.passages[0].citation.doc_id if ans.answered else None)
                    bot.ask("When did the Brackwater city library reopen?", k=2)
                    time.sleep(0.02)  # leave the 2 cores some room for the updates
                except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                    failures.append(exc)

        threads = [threading.Thread(target=asker) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            bot.add_file("tower.txt", ANSI.encode())
            bot.remove_document("library.txt")
            bot.add_file("library2.txt", LIBRARY.encode())
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert not failures, failures
    assert seen and set(seen) == {"ferry.txt"}
    # The top passage is untouched by the changes (lower ranks may now come from the new articles).
    assert _key(bot.ask(stable))[1][0] == expected[1][0]
    assert {d.doc_id for d in bot.documents()} == {"ferry.txt", "orchard.txt", "tower.txt", "library2.txt"}


def test_two_uploads_of_one_name_at_once_keep_one_whole_file(small_copy, model_cache):
    docs, index = small_copy
    with cached_export(model_cache):
        bot = QA(docs, index)
        barrier = threading.Barrier(2)
        outcomes = []

        def upload(text):
            barrier.wait()
            try:
                bot.add_file("race.txt", text.encode())
                outcomes.append("ok")
            except DocumentsError as exc:
                outcomes.append(str(exc))

        threads = [threading.Thread(target=upload, args=(t,)) for t in (ANSI, SECRET_ARTICLE)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(outcomes) == 2 and outcomes.count("ok") == 1, outcomes
    assert any("already exists" in o for o in outcomes)
    assert (docs / "race.txt").read_text(encoding="utf-8") in (ANSI, SECRET_ARTICLE)
    assert not [p for p in docs.iterdir() if p.name.startswith(".upload")]


# ---------------------------------------------------------------------------------------------
# Web safety: uploads and the listening address
# ---------------------------------------------------------------------------------------------

def _tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): (p.read_bytes() if p.is_file() and not p.is_symlink() else b"")
            for p in sorted(path.rglob("*"))}


BAD_NAMES = ["../evil.txt", "..", "...txt", "a..b.txt", "sub/../../evil.txt", "/tmp/evil.txt", "/etc/evil.txt",
             "C:\\evil.txt", "..\\evil.txt", "sub/evil.txt", ".hidden.txt", ".txt", "evil.exe", "evil.txt.exe",
             "evil.doc", "noext", "", "   ", "line\nbreak.txt", "nul\x00.txt", "tab\tname.txt",
             "x" * 300 + ".txt", "ferry.txt", "dangling.txt"]


def test_unsafe_uploads_are_refused_and_nothing_is_written(small_copy, model_cache, tmp_path):
    docs, index = small_copy
    (docs / "dangling.txt").symlink_to(tmp_path / "outside-target.txt")  # an existing name, even if dangling
    with cached_export(model_cache):
        bot = QA(docs, index)
    before, before_parent = _tree(docs), sorted(p.name for p in tmp_path.iterdir())
    for name in BAD_NAMES:
        with pytest.raises(DocumentsError) as exc:
            bot.add_file(name, LIBRARY.encode())
        assert str(exc.value)
    with pytest.raises(DocumentsError, match="too large"):
        bot.add_file("big.txt", b"x" * 1001, max_bytes=1000)
    with pytest.raises(DocumentsError):
        bot.add_file(None, b"text")  # type: ignore[arg-type]
    assert _tree(docs) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == before_parent
    assert not (tmp_path / "outside-target.txt").exists() and not Path("/tmp/evil.txt").exists()
    assert (docs / "ferry.txt").read_text(encoding="utf-8") == FERRY
    with cached_export(model_cache):  # a good upload under the limit still works
        update = bot.add_file("fine.txt", SECRET_ARTICLE.encode(), max_bytes=len(SECRET_ARTICLE.encode()))
    assert update.added == ("fine.txt",)
    assert bot.ask("What is the vault code of the Farrow bank?").passages[0].citation.doc_id == "fine.txt"


def test_the_only_document_cannot_be_removed(tmp_path, model_cache):
    docs = _write(tmp_path / "docs", {"ferry.txt": FERRY})
    with cached_export(model_cache):
        bot = QA(docs, tmp_path / "index")
    with pytest.raises(DocumentsError, match="only document"):
        bot.remove_document("ferry.txt")
    assert (docs / "ferry.txt").exists() and bot.ask("How much will the ferry route cut the crossing time?").answered


def _load_app_module():
    spec = importlib.util.spec_from_file_location("qa_web_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_web_app_listens_on_loopback_by_default(seed_dirs, seed_qa, monkeypatch):
    for name in ("QA_HOST", "QA_PORT", "QA_DOCS", "QA_INDEX", "QA_MAX_UPLOAD_MB"):
        monkeypatch.delenv(name, raising=False)
    app = _load_app_module()
    assert app._parser().parse_args([]).host == "127.0.0.1"
    launched = {}

    def fake_serve(bot, asker, policy, host, port, max_bytes):  # the real main(), up to opening the port
        launched.update(host=host, port=port, policy=policy)

    monkeypatch.setattr(app, "serve", fake_serve)
    docs, index = seed_dirs
    assert app.main(["--docs", str(docs), "--index", str(index), "--port", "1"]) == 0
    assert launched["host"] == "127.0.0.1" and launched["policy"].token is None
    assert launched["policy"].allow_changes is True


def test_a_damaged_document_record_in_a_large_index_raises_when_decoded(small_copy):
    """Above the open-time budget the records file is not hashed at open; a damaged record is then
    refused when read (its checksum), never served, and the rest still are."""
    _, index = small_copy
    version = IndexStore(index).current()
    _edit_record(version)
    _rehash(version)
    snap = Snapshot.load(version, deep_at_open=0)
    first, *others = list(snap.docs)
    with pytest.raises(IndexCorruptError, match="record"):
        snap.docs[first]
    assert [snap.docs[d].doc_id for d in others] == others
    with pytest.raises(IndexCorruptError):
        check(version)
