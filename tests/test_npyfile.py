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
