"""The command line, in-process: thin over the API, errors as one line and a non-zero exit."""

import json

import pytest

from qa.cli import main


@pytest.fixture
def cli_dirs(seed_dirs, seed_qa):
    docs, index = seed_dirs  # seed_qa has already built this index
    return ["--docs", str(docs), "--index", str(index)]


def test_ask_prints_numbered_cited_passages(cli_dirs, capsys):
    assert main(["ask", "What did Lavrov tell NBC News?", "-k", "2", *cli_dirs]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[1] ")
    assert "[2] " in out
    assert "004_6ea698a1f7ec13dd.txt, characters " in out
    assert "» " in out


def test_ask_json_is_the_answer_dict(cli_dirs, capsys):
    assert main(["ask", "What did Lavrov say about ceasefires?", "--json", "-k", "3", *cli_dirs]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["answered"] is True and 1 <= len(d["passages"]) <= 3
    c = d["passages"][0]["citation"]
    assert set(c) >= {"doc_id", "title", "path", "start", "end"}


def test_follow_up_with_history(cli_dirs, capsys):
    assert main(["ask", "Whose troops would be unacceptable?", "--history",
                 "What did Lavrov say about security guarantees for Ukraine?", "--json", *cli_dirs]) == 0
    d = json.loads(capsys.readouterr().out)
    assert any("European troops" in p["text"] for p in d["passages"][:3])


def test_unanswerable_says_so(cli_dirs, capsys):
    assert main(["ask", "What is the capital of Australia?", *cli_dirs]) == 0
    assert "do not answer" in capsys.readouterr().out


@pytest.mark.parametrize("question", ["", "   ", "x" * 100_000])
def test_bad_question_is_one_line_and_exit_2(cli_dirs, capsys, question):
    assert main(["ask", question, *cli_dirs]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qa: error:")


@pytest.mark.parametrize("k", ["0", "-3", "1000000"])
def test_bad_k_is_exit_2(cli_dirs, capsys, k):
    assert main(["ask", "What did Lavrov say?", "-k", k, *cli_dirs]) == 2
    assert "k must be" in capsys.readouterr().err


def test_missing_docs_folder(tmp_path, capsys):
    assert main(["ask", "anything", "--docs", str(tmp_path / "nope"), "--index", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]


def test_index_reports_up_to_date(cli_dirs, capsys):
    assert main(["index", *cli_dirs]) == 0
    out = capsys.readouterr().out
    assert "index up to date: 5 documents" in out


def test_python_dash_m_works(seed_dirs, seed_qa):
    import subprocess
    import sys

    docs, index = seed_dirs
    r = subprocess.run([sys.executable, "-m", "qa", "ask", "What did Lavrov tell NBC News?", "--json",
                        "--docs", str(docs), "--index", str(index)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["answered"] is True


def test_a_cold_question_imports_only_what_answering_needs(seed_dirs, seed_qa):
    """`qa ask` on an up-to-date index: no model building (torch...), no BM25 building (bm25s,
    scipy), no ONNX editing (onnx), no document reading (qa.ingest and its parsers)."""
    import subprocess
    import sys

    docs, index = seed_dirs
    code = ("import json, runpy, sys\n"
            f"sys.argv = ['qa', 'ask', 'What did Lavrov tell NBC News?', '--docs', {str(docs)!r}, '--index', {str(index)!r}]\n"
            "try:\n    runpy.run_module('qa', run_name='__main__')\nexcept SystemExit as exc:\n    assert exc.code == 0\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stderr.strip().splitlines()[-1]))
    unwanted = {"torch", "transformers", "sentence_transformers", "bm25s", "scipy", "onnx", "qa.ingest", "qa.formats",
                "qa.chunk", "pypdf", "docx", "trafilatura", "charset_normalizer", "pysbd"}
    assert "onnxruntime" in loaded and not loaded & unwanted, sorted(loaded & unwanted)


def test_index_and_eval_take_the_sentence_vectors_setting(seed_dirs, seed_qa, tmp_path, capsys):
    docs, _ = seed_dirs
    index = tmp_path / "in-passage"
    args = ["--docs", str(docs), "--index", str(index), "--sentence-vectors", "in-passage"]
    assert main(["index", *args]) == 0
    assert "rebuilt the index" in capsys.readouterr().out
    version = (index / "CURRENT").read_text()
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps({"answerable": [{"q": "What did Lavrov tell NBC News?", "gold": ["NBC"]}]}))
    assert main(["eval", str(questions), *args]) == 0
    assert (index / "CURRENT").read_text() == version  # opened as built, not rebuilt
    assert main(["index", *args[:4]]) == 0  # the default setting is another index
    assert "rebuilt the index (model or settings changed)" in capsys.readouterr().out
