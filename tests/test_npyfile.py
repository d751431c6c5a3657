"""Slice-by-slice .npy writing and reading (npyfile.py), and the 4-grams made by blocks."""

import numpy as np

from qa import lexicon
from qa.backends import npyfile


def test_write_in_parts_is_np_save(tmp_path):
    a = np.random.default_rng(0).standard_normal((1000, 7)).astype(np.float32)
    np.save(tmp_path / "whole.npy", a.astype(np.float16), allow_pickle=False)
    npyfile.write(tmp_path / "parts.npy", np.float16, a.shape, (a[lo:lo + 300] for lo in range(0, 1000, 300)))
    assert (tmp_path / "parts.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()


def test_rows_read_back(tmp_path):
    a = np.arange(5000 * 3, dtype=np.float16).reshape(5000, 3)
    np.save(tmp_path / "a.npy", a, allow_pickle=False)
    rows = npyfile.NpyRows(tmp_path / "a.npy")
    assert rows.shape == (5000, 3) and len(rows) == 5000 and rows.dtype == np.float16
    np.testing.assert_array_equal(rows[10:4100], a[10:4100])
    np.testing.assert_array_equal(rows[[3, 7, 4999]], a[[3, 7, 4999]])
    np.testing.assert_array_equal(np.concatenate(list(rows.slices(5, 4999, rows=1000))), a[5:4999])
    np.testing.assert_array_equal(np.concatenate(list(npyfile.slices(a, 5, 4999, rows=1000))), a[5:4999])
    assert len(rows[7:3]) == 0


def test_write_refuses_a_wrong_row_count(tmp_path):
    try:
        npyfile.write(tmp_path / "x.npy", np.float16, (10, 2), [np.zeros((9, 2))])
    except ValueError:
        return
    raise AssertionError("a short array was written")


def test_grams_by_blocks_equal_grams_at_once():
    rng = np.random.default_rng(1)
    lengths = rng.choice([0, 1, 2, 3, 4, 9, 40], size=200)
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = rng.integers(0, 50, size=int(bounds[-1])).astype(np.int32)
    whole = lexicon._grams(ids, bounds, block=10**9)
    for block in (1, 3, 64):
        by_blocks = lexicon._grams(ids, bounds, block=block)
        np.testing.assert_array_equal(by_blocks[0], whole[0])
        np.testing.assert_array_equal(by_blocks[1], whole[1])


def test_appended_values_are_np_save(tmp_path, monkeypatch):
    """Appended a few at a time through a small buffer (flushed mid-extend, at its edge, never),
    the file is np.save's of the whole array: the header's count is written last, same size."""
    values = np.random.default_rng(2).integers(-2**31, 2**31, 100).tolist()
    for code, dtype in (("i", np.int32), ("q", np.int64), ("B", np.uint8)):
        for count in (0, 1, 7, 8, 100):
            part = [v % 256 for v in values[:count]] if code == "B" else values[:count]
            whole = tmp_path / f"whole-{code}{count}.npy"
            np.save(whole, np.array(part, dtype), allow_pickle=False)
            for buffer in (1, 7, 10**6):
                path = tmp_path / f"appended-{code}{count}-{buffer}.npy"
                with npyfile.Appender(path, code, buffer) as out:
                    out.extend(part[:3])
                    for v in part[3:5]:
                        out.append(v)
                    out.extend(iter(part[5:]))
                    assert len(out) == count
                assert path.read_bytes() == whole.read_bytes(), (code, count, buffer)


def _passages():
    """Chunks of short news text: names, numbers, dates, a quote, and copies (same_words pairs)."""
    from qa.types import Chunk

    texts = ["Mr Brown met the Treasury in London on Monday. Sales rose 5% to 3 million.",
             "\"We will not go back,\" said Alice Smith. The union voted in 2004.",
             "Rain is expected across the north later this week with strong winds.",
             "Mr Brown met the Treasury in London on Monday. Sales rose 5% to 3 million.",
             "The club signed a striker from Lyon. He scored twice in his first game for them.",
             "Mr Brown met the Treasury in London on Monday after talks. Profits fell."]
    chunks = []
    for k, text in enumerate(texts):
        cut = text.index(".") + 1
        sentences = ((0, cut), (cut + 1, len(text))) if cut < len(text) else ((0, len(text)),)
        chunks.append(Chunk(f"d{k}", 0, len(text), text, sentences))
    return chunks


def test_lexicon_written_as_built_is_saved_build(tmp_path, monkeypatch):
    """lexicon_files.write (columns appended to their files, same_words reading the term ids
    back from theirs) makes the very bytes of lexicon_files.save(lexicon.build(...)): no passage,
    one sentence, a few passages with copies, with tiny buffers and 4-gram buckets too."""
    import dataclasses
    import functools

    from qa.backends import lexicon_files
    from qa.textutil import terms

    chunks = _passages()
    cases = {"empty": [], "one sentence": [dataclasses.replace(chunks[2], sentences=((0, 20),))],
             "few": chunks}
    for small in (False, True):
        if small:
            monkeypatch.setattr(npyfile, "APPEND_VALUES", 3)
            monkeypatch.setattr(lexicon, "same_words", functools.partial(lexicon.same_words, bucket_grams=5))
        for name, case in cases.items():
            vocab = {t: i for i, t in enumerate(dict.fromkeys(t for c in case for t in terms(c.text)))}
            saved, written = tmp_path / f"saved-{name}-{small}", tmp_path / f"written-{name}-{small}"
            for d in (saved, written, written / "scratch"):
                d.mkdir()
            lex = lexicon.build(case, vocab)
            lexicon_files.save(lex, saved)
            lexicon_files.write(case, vocab, written, written / "scratch")
            assert not any((written / "scratch").iterdir())
            (written / "scratch").rmdir()
            assert sorted(p.name for p in saved.iterdir()) == sorted(p.name for p in written.iterdir())
            for p in saved.iterdir():
                assert (written / p.name).read_bytes() == p.read_bytes(), (name, small, p.name)
            if name == "few":
                assert len(lex.same) and len(lex.names) and lex.flags.any()  # the case covers them
