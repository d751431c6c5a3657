"""The ONNX embedding path against sentence-transformers, on the real packaged model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa import embed  # noqa: E402
from qa import model_export  # noqa: E402
from qa.embed import DEFAULT_MODEL, Embedder  # noqa: E402
from qa.model_export import export_onnx  # noqa: E402
from qa.errors import ModelError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

LONG = " ".join(
    f"Sentence {i} of a long news article about the harbour authority, its budget and the strike."
    for i in range(60)
)  # ~1,000 tokens: must be cut at max_seq_length like sentence-transformers does

TEXTS = [
    "Who won the Super Bowl in 2016?",
    "The Denver Broncos defeated the Carolina Panthers 24–10 to earn their third Super Bowl title.",
    "",
    " ",
    "\n\t ",
    "?",
    "a",
    "  leading and trailing spaces  ",
    "ÉMOJI 🎉🔥🚀 naïve café résumé — “quotes” and ‘apostrophes’",
    "שלום עולם, זהו מבחן של טקסט מימין לשמאל",
    "مرحبا بالعالم، هذا اختبار للنص من اليمين إلى اليسار",
    "中文新闻：北京时间今天上午，国家统计局发布了最新数据。",
    "日本語のニュース記事とEnglish mixed together 123",
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ and zero\u200bwidth\u200bspaces",
    "ALL CAPS HEADLINE: MARKETS TUMBLE AS RATES RISE",
    "Numbers 3.14159, 1,000,000 and dates 2024-05-01 12:30 UTC",
    "https://example.com/news/article?id=42&ref=rss <b>html</b> &amp; entities",
    "Line one.\nLine two.\n\nParagraph two with a tab\tinside.",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopic",
    LONG,
    "x" * 3000,
]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(axis=-1)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "minilm"
    export_onnx(DEFAULT_MODEL, out)
    return out


@pytest.fixture(scope="module")
def st_model():
    return embed._st_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def st_vectors(st_model) -> np.ndarray:
    return st_model.encode(TEXTS, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)


def test_export_writes_complete_folder(onnx_dir: Path):
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["embed_config.json", "model.onnx", "model.onnx.data",
                                                         "tokenizer.json"]
    cfg = json.loads((onnx_dir / "embed_config.json").read_text())
    assert cfg["model"] == DEFAULT_MODEL
    # The weights apart from the graph: ONNX Runtime maps them instead of parsing them at each load.
    assert cfg["weights"] == "model.onnx.data" and (onnx_dir / "model.onnx").stat().st_size < 1_000_000
    assert cfg["precision"] == "fp32"
    assert cfg["max_seq_length"] == 256  # from sentence_bert_config.json, not tokenizer.json's 128
    assert cfg["pooling"] == "mean" and cfg["normalize"] is True and cfg["dim"] == 384
    # no temporary folders left beside it
    assert [p.name for p in onnx_dir.parent.iterdir()] == [onnx_dir.name]


def test_pipeline_read_from_model_files():
    pipe = embed.read_st_pipeline(embed.model_path(DEFAULT_MODEL))
    assert pipe.pop("transformer_dir") == embed.model_path(DEFAULT_MODEL)
    assert pipe == {"max_seq_length": 256, "do_lower_case": False, "pooling": "mean", "normalize": True, "dim": 384}


def test_onnx_matches_sentence_transformers(onnx_dir: Path, st_vectors: np.ndarray):
    emb = Embedder(onnx_dir=onnx_dir)
    assert emb.dim == 384 and emb.precision == "fp32" and emb.model == DEFAULT_MODEL
    got = emb.embed_passages(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = _cos(got, st_vectors)
    worst = int(np.argmin(cos))
    assert cos.min() >= 0.999, (cos.min(), TEXTS[worst][:60])
    for i in (0, 2, 9, len(TEXTS) - 2):
        q = emb.embed_query(TEXTS[i])
        assert q.shape == (384,) and q.dtype == np.float32
        assert _cos(q, st_vectors[i]) >= 0.999


def test_long_text_truncated_like_sentence_transformers(onnx_dir: Path, st_model):
    emb = Embedder(onnx_dir=onnx_dir)
    ids = emb._onnx.tokenize([LONG])[0]
    st_ids = st_model.preprocess([LONG])["input_ids"][0].tolist()
    assert len(ids) == 256 and ids == st_ids
    # Only the first 256 tokens count: a different tail gives the same vector.
    other_tail = LONG + " Completely different ending about football and weather." * 30
    a, b = emb.embed_passages([LONG, other_tail])
    assert float(a @ b) > 0.99999


def test_passage_order_preserved_with_length_sorting(onnx_dir: Path, monkeypatch):
    emb = Embedder(onnx_dir=onnx_dir)
    rng = np.random.default_rng(0)
    texts = [TEXTS[i] for i in rng.permutation(len(TEXTS))] + ["short", LONG[:500], "mid " * 40]
    one_by_one = np.stack([emb.embed_query(t) for t in texts])
    monkeypatch.setattr(emb, "batch_size", 4)  # several batches, each padded differently
    batched = emb.embed_passages(texts, progress=True)
    np.testing.assert_allclose(batched, one_by_one, atol=2e-5)
    monkeypatch.setattr(embed, "_SORT_WINDOW", 7)  # several sort windows too
    np.testing.assert_allclose(emb.embed_passages(texts), one_by_one, atol=2e-5)


def test_empty_input(onnx_dir: Path):
    out = Embedder(onnx_dir=onnx_dir).embed_passages([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_query_path_imports_no_torch(onnx_dir: Path):
    code = (
        "import sys, json\n"
        "from qa.embed import Embedder\n"
        "mods_after_import = sorted(m for m in ('torch', 'transformers', 'sentence_transformers',"
        " 'onnxruntime', 'tokenizers') if m in sys.modules)\n"
        f"v = Embedder(onnx_dir={str(onnx_dir)!r}).embed_query('x')\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print(json.dumps({'shape': list(v.shape), 'heavy': heavy, 'at_import': mods_after_import}))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"shape": [384], "heavy": [], "at_import": []}


def test_wrong_model_or_incomplete_folder_refused(onnx_dir: Path, tmp_path: Path):
    with pytest.raises(ModelError):
        Embedder("some/other-model", onnx_dir=onnx_dir)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "model.onnx").write_bytes(b"\0" * 10)
    with pytest.raises(ModelError):
        Embedder(onnx_dir=partial)
    with pytest.raises(ModelError):
        Embedder(onnx_dir=tmp_path / "missing")


def test_failed_export_leaves_nothing_and_keeps_old(onnx_dir: Path, tmp_path: Path, monkeypatch):
    def crash(model, tmp, quantize, fuse):  # the child dies half-way through writing
        (tmp / "model.onnx").write_bytes(b"half written")
        raise RuntimeError("boom")

    monkeypatch.setattr(model_export, "_export_in_child", crash)
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        export_onnx(DEFAULT_MODEL, fresh)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temp folder

    # A failed re-export over a good one leaves the good one untouched.
    before = {p.name: p.stat().st_size for p in onnx_dir.iterdir()}
    with pytest.raises(RuntimeError):
        export_onnx(DEFAULT_MODEL, onnx_dir)
    assert {p.name: p.stat().st_size for p in onnx_dir.iterdir()} == before
    assert [p.name for p in onnx_dir.parent.iterdir()] == [onnx_dir.name]


def _whole_export(onnx_dir: Path, out: Path) -> Path:
    """A copy of an export as made before its weights were kept apart: all inside model.onnx."""
    import onnx

    out.mkdir()
    onnx.save_model(onnx.load(str(onnx_dir / "model.onnx")), str(out / "model.onnx"))
    shutil.copyfile(onnx_dir / "tokenizer.json", out / "tokenizer.json")
    cfg = json.loads((onnx_dir / "embed_config.json").read_text())
    del cfg["weights"]
    (out / "embed_config.json").write_text(json.dumps(cfg))
    return out


def test_weights_of_an_older_export_are_split_once_with_the_same_vectors(onnx_dir: Path, tmp_path: Path):
    old = _whole_export(onnx_dir, tmp_path / "old")
    assert (old / "model.onnx").stat().st_size > 50_000_000
    before = Embedder(onnx_dir=old).embed_passages(TEXTS)
    assert model_export.split_weights(old) is True
    assert sorted(p.name for p in old.iterdir()) == ["embed_config.json", "model.onnx", "model.onnx.data",
                                                    "tokenizer.json"]
    assert (old / "model.onnx").stat().st_size < 1_000_000
    np.testing.assert_array_equal(Embedder(onnx_dir=old).embed_passages(TEXTS), before)
    assert model_export.split_weights(old) is False  # done once
    assert [p.name for p in tmp_path.iterdir()] == ["old"]  # no temporary folder left


def test_a_failed_split_leaves_the_older_export_as_it_was(onnx_dir: Path, tmp_path: Path):
    old = _whole_export(onnx_dir, tmp_path / "old")
    (old / "model.onnx").write_bytes((old / "model.onnx").read_bytes()[:4096])  # cut short
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    with pytest.raises(Exception):
        model_export.split_weights(old)
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["old"]


def test_missing_weights_file_refused(onnx_dir: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(onnx_dir, broken)
    (broken / "model.onnx.data").unlink()
    with pytest.raises(ModelError, match="model.onnx.data"):
        Embedder(onnx_dir=broken)


def test_int8_export(tmp_path: Path, st_vectors: np.ndarray):
    out = tmp_path / "int8"
    export_onnx(DEFAULT_MODEL, out, quantize=True)
    emb = Embedder(onnx_dir=out)
    assert emb.precision == "int8"
    assert (out / "model.onnx").stat().st_size < 80_000_000
    cos = _cos(emb.embed_passages(TEXTS), st_vectors)
    assert cos.mean() >= 0.98 and cos.min() >= 0.95, cos


def test_export_leaves_torch_out_of_the_calling_process(tmp_path: Path):
    """The export runs in a child Python: an indexing process does not keep torch's memory."""
    out = tmp_path / "m"
    code = ("import sys; from qa.embed import DEFAULT_MODEL; from qa.model_export import export_onnx; export_onnx(DEFAULT_MODEL, sys.argv[1]); "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
    assert (out / "embed_config.json").is_file()


def test_the_export_stages_hand_over_through_files_and_onnx_s_runs_without_torch(tmp_path: Path):
    """Torch's stage (a child) leaves the traced graph and the check's reference; ONNX's stage,
    run here in a process of its own, finishes the export without importing torch."""
    code = ("import json, sys; from pathlib import Path; from qa.embed import DEFAULT_MODEL; from qa.model_export import _export_stage, _run_stage; "
            "tmp = Path(sys.argv[1]); _run_stage(DEFAULT_MODEL, ['trace', DEFAULT_MODEL, str(tmp)]); "
            "traced = sorted(p.name for p in tmp.iterdir()); rc = _export_stage(['finish', str(tmp), 'int8', 'fuse']); "
            "print(json.dumps({'traced': traced, 'rc': rc, 'files': sorted(p.name for p in tmp.iterdir()), "
            "'heavy': sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)}))")
    out = tmp_path / "m"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["traced"] == ["check_batch.npz", "raw.onnx", "tokenizer.json", "trace.json"]
    assert got["rc"] == 0 and got["heavy"] == []
    assert got["files"] == ["embed_config.json", "model.onnx", "model.onnx.data", "tokenizer.json"]
    assert json.loads((out / "embed_config.json").read_text())["check_min_cosine"] >= 0.95


def test_a_failed_export_child_is_one_clear_error_and_leaves_nothing(tmp_path: Path, monkeypatch):
    out = tmp_path / "m"
    monkeypatch.setattr(sys, "executable", shutil.which("false"))  # the child exits 1 at once
    with pytest.raises(ModelError, match="exporting .* failed: exit status 1"):
        export_onnx(DEFAULT_MODEL, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_export_refuses_to_replace_a_foreign_folder(tmp_path: Path):
    foreign = tmp_path / "index"
    foreign.mkdir()
    (foreign / "vectors.npy").write_bytes(b"precious")
    with pytest.raises(ModelError):
        export_onnx(DEFAULT_MODEL, foreign)
    assert (foreign / "vectors.npy").read_bytes() == b"precious"


def _span_mean(backend, text: str, span: tuple[int, int]) -> np.ndarray:
    """Reference in-context sentence vector: mean of the text tokens lying inside `span`."""
    enc = backend.encode([text])[0]
    hidden, _ = backend.hidden([enc.ids])
    rows = [i for i, ((s, e), special) in enumerate(zip(enc.offsets, enc.special_tokens_mask))
            if not special and span[0] <= s and e <= span[1]]
    vec = hidden[0, rows].mean(axis=0)
    return vec / np.linalg.norm(vec)


def test_embed_chunks_pools_each_sentence_from_its_passage(onnx_dir: Path):
    emb = Embedder(onnx_dir=onnx_dir)
    title = "Harbour strike"
    body = ["The harbour authority cut its budget on Monday.", "Dock workers said they would strike in May.",
            "Ferries ran as usual."]
    texts, spans = [], []
    for n in (3, 1, 2):  # passages of different lengths share a padded batch
        text = title + "\n" + " ".join(body[:n])
        starts = [text.index(s) for s in body[:n]]
        texts.append(text)
        spans.append([(s, s + len(body[i])) for i, s in enumerate(starts)])
    pvecs, svecs = embed.embed_chunks(emb, texts, spans)
    assert pvecs.shape == (3, 384) and svecs.shape == (6, 384)
    assert _cos(pvecs, emb.embed_passages(texts)).min() > 0.9999  # passage vectors are unchanged
    want = np.stack([_span_mean(emb._onnx, t, sp) for t, sps in zip(texts, spans) for sp in sps])
    np.testing.assert_allclose(svecs, want, atol=2e-5)
    assert _cos(svecs[0:1], svecs[1:2])[0] < 0.95  # sentences of one passage get their own vectors


def test_embed_chunks_embeds_sentences_cut_off_by_truncation_alone(onnx_dir: Path):
    emb = Embedder(onnx_dir=onnx_dir)
    sentences = LONG.split(". ")
    spans, pos = [], 0
    for s in sentences:
        start = LONG.index(s, pos)
        spans.append((start, start + len(s)))
        pos = start + len(s)
    _, svecs = embed.embed_chunks(emb, [LONG], [spans])
    alone = emb.embed_passages(sentences)
    cos = _cos(svecs, alone)
    assert cos[-1] > 0.9999 and cos[-20:].min() > 0.9999  # past 256 tokens: embedded on their own
    assert cos[0] < 0.999  # seen by the model inside the passage: pooled from it


def test_embed_chunks_separately_and_empty(onnx_dir: Path):
    emb = Embedder(onnx_dir=onnx_dir)
    texts = ["T\nOne sentence here. Another one there."]
    spans = [[(2, 20), (21, 39)]]
    pvecs, svecs = embed.embed_chunks(emb, texts, spans, in_context=False)
    assert _cos(svecs, emb.embed_passages(["One sentence here.", "Another one there."])).min() > 0.9999
    assert _cos(pvecs, emb.embed_passages(texts)).min() > 0.9999
    empty = embed.embed_chunks(emb, [], [])
    assert empty[0].shape == (0, 384) and empty[1].shape == (0, 384)
    with pytest.raises(ValueError):
        embed.embed_chunks(emb, texts, [])
