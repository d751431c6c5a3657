"""Only qa/backends knows how passages are stored: no other module imports the search libraries
or names the index's files."""

import ast
from pathlib import Path

QA_DIR = Path(__file__).resolve().parent.parent / "qa"
STORAGE_LIBRARIES = {"faiss", "bm25s", "pymilvus"}
INDEX_FILE_HINTS = (".npy", ".faiss", "manifest.json", "CURRENT", "chunks.jsonl", "documents.json",
                    "documents.jsonl", "doc_ids.json", "doc_facts.json")


def offences(paths) -> list[str]:
    """Imports of a search library and string constants naming an index file, in these files."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                names = []
            found += [f"{Path(path).name}: imports {n}" for n in names if n.split(".")[0] in STORAGE_LIBRARIES]
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found += [f"{Path(path).name}: names {node.value!r}" for hint in INDEX_FILE_HINTS
                          if node.value.endswith(hint)]
    return found


def test_no_module_outside_backends_imports_a_search_library_or_reads_index_files():
    outside = [p for p in QA_DIR.rglob("*.py") if "backends" not in p.relative_to(QA_DIR).parts]
    assert len(outside) > 5
    assert not offences(outside)


def test_the_scan_finds_offences(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import faiss\nfrom bm25s import BM25\nx = 'sentences.npy'\n", encoding="utf-8")
    assert len(offences([bad])) == 3
    assert offences([QA_DIR / "backends" / "snapshot.py"])  # where storage does live
