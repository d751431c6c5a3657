"""Exports carry every passage's provenance, and `qa verify` catches a quotation that no longer
stands in its source."""

import csv
import io
import json

import pytest

from qa.cli import main as cli_main
from qa.export import render, verify

ARTICLES = {
    "ferry.txt": "Ferry route approved\n\nThe harbour council approved a ferry route to the island of Vell on "
                 "Tuesday. \"This route will cut the crossing time in half,\" council chair Mira Solberg said.\n\n"
                 "The first ferries sail in spring.",
    # cp1252 on disk: offsets must still verify in the detected encoding
    "café.txt": "Café reopens\n\nThe harbour café reopened on Friday after repairs costing €40,000, its owner "
                "Jonas Brink said. \"We missed our regulars,\" Brink said.\n\nThe ferry crowd is back.",
}


@pytest.fixture(scope="module")
def bot(folder_qa):
    return folder_qa({"ferry.txt": ARTICLES["ferry.txt"], "café.txt": ARTICLES["café.txt"].encode("cp1252"),
                      "qa-manifest.csv": "file,date,outlet,url\nferry.txt,2025-04-01,Vell Gazette,https://example.org/f\n"},
                     "export")


def test_csv_json_and_markdown_carry_provenance(bot):
    ans = bot.ask("How much did the café repairs cost?", k=2, since=None)
    data = json.loads(render(ans, "json"))
    assert data and data[0]["doc_id"] == "café.txt" and data[0]["encoding"] == "cp1252"
    assert len(data[0]["file_sha256"]) == 64 and data[0]["question"] == ans.question
    table = list(csv.DictReader(io.StringIO(render(ans, "csv"))))
    assert table[0]["text"] == data[0]["text"] and table[0]["start"] == str(data[0]["start"])
    dated = bot.ask("What will the ferry route do to the crossing time?", k=1, outlets=["Vell Gazette"])
    md = render(dated, "md")
    assert "Vell Gazette" in md and "2025-04-01" in md and "outlets: vell gazette" in md
    assert "Answering sentence:" in md


def test_verify_confirms_and_then_catches_an_edited_source(bot, tmp_path, capsys):
    ans = bot.ask("How much did the café repairs cost?", k=2)
    export = tmp_path / "answer.csv"
    export.write_text(render(ans, "csv"), encoding="utf-8")
    assert all(c.ok and not c.reason for c in verify(export))
    assert cli_main(["verify", str(export)]) == 0
    path = bot.docs_dir / "café.txt"
    original = path.read_bytes()
    try:
        path.write_bytes(original.replace("€40,000".encode("cp1252"), "€45,000".encode("cp1252")))
        checks = verify(export)
        assert not all(c.ok for c in checks)
        assert any("no longer the quotation" in c.reason for c in checks if not c.ok)
        assert cli_main(["verify", str(export)]) == 1
        assert "FAILED" in capsys.readouterr().out
    finally:
        path.write_bytes(original)


def test_cli_format_flag(bot, capsys):
    code = cli_main(["ask", "Who chairs the council?", "--docs", str(bot.docs_dir), "--index", str(bot.index_dir),
                     "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and isinstance(out, list) and {"file_sha256", "start", "end", "question"} <= set(out[0])
