"""bench_runtime is optional tooling: without openvino it imports, says why it stops, and stops."""

import importlib.util
import sys

import pytest

from benchmarks import bench_runtime


@pytest.mark.skipif(importlib.util.find_spec("openvino") is not None, reason="openvino is installed here")
def test_says_openvino_is_missing_and_stops(monkeypatch, capsys, tmp_path):
    argv = ["bench_runtime", "--model", str(tmp_path / "m"), "--work", str(tmp_path / "w")]
    monkeypatch.setattr(sys, "argv", argv)
    bench_runtime.main()
    assert "openvino is not importable" in capsys.readouterr().out
    assert not (tmp_path / "w").exists()  # nothing exported, nothing read
