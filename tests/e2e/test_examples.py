"""The spine: compile each bundled example for x86-64, run it, compare with onnxruntime."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest

from edgec.artifact import sha256_file
from tests.conftest import EXAMPLES
from tests.e2e.compile_check import run_and_check

MODELS = ["small_cnn", "tiny_transformer"]


@pytest.mark.parametrize("name", MODELS)
def test_compile_run_compare(name, tmp_path, run_cli):
    model = EXAMPLES / f"{name}.onnx"
    art = tmp_path / name
    r = run_cli("compile", model, "--target", "x86-64", "-o", art)
    assert r.code == 0, r
    assert {p.name for p in art.iterdir()} == {"model.so", "metadata.json", "model.h"}
    r = run_cli("run", art, "--compare-onnx", model, "--output", tmp_path / "out.npz")
    assert r.code == 0, r
    errors = [float(x) for x in re.findall(r"max abs error ([0-9.e+-]+),", r.out)]
    assert errors and max(errors) <= 1e-4, r.out
    saved = np.load(tmp_path / "out.npz")
    assert set(saved.files) == {o.name for o in onnx.load(model).graph.output}


def test_metadata_and_header(tmp_path, run_cli):
    model = EXAMPLES / "small_cnn.onnx"
    art = tmp_path / "cnn"
    assert run_cli("compile", model, "-t", "x86-64", "-o", art, "-O", "2").code == 0
    meta = json.loads((art / "metadata.json").read_text())
    assert meta["model"]["sha256"] == sha256_file(model)
    assert meta["inputs"] == [{"name": "input", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert meta["outputs"] == [{"name": "logits", "shape": [1, 10], "dtype": "float32"}]
    assert meta["target"]["name"] == "x86-64" and meta["target"]["tvm"]["mcpu"] == "x86-64-v3"
    assert {"edgec", "apache-tvm", "onnx"} <= set(meta["versions"])
    p = meta["pipeline"]
    assert p["text"] and p["passes"], p
    assert all({"pass", "nodes_before", "nodes_after", "op_delta"} <= set(rec) and "seconds" not in rec for rec in p["passes"])
    header = (art / "model.h").read_text()
    assert '#define EDGEC_MODEL_INPUT0_NAME "input"' in header
    assert "edgec_model_input0_shape[4] = {1, 3, 32, 32}" in header
    assert "#define EDGEC_MODEL_OUTPUT0_BYTES 40" in header


def test_recompile_replaces_artifact_atomically(tmp_path, run_cli):
    art = tmp_path / "cnn"
    assert run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", "x86-64", "-o", art).code == 0
    first = (art / "metadata.json").read_text()
    r = run_cli("compile", EXAMPLES / "tiny_transformer.onnx", "-t", "x86-64", "-o", art)
    assert r.code == 0
    assert (art / "metadata.json").read_text() != first
    assert [p.name for p in tmp_path.iterdir()] == ["cnn"]  # no temp or backup dirs left


def test_failed_compile_keeps_previous_artifact(tmp_path, run_cli):
    art = tmp_path / "cnn"
    assert run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", "x86-64", "-o", art).code == 0
    before = (art / "metadata.json").read_text()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert run_cli("compile", bad, "-t", "x86-64", "-o", art).code == 2
    assert (art / "metadata.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx", "cnn"]


def test_run_with_pb_and_npy_inputs(tmp_path, run_cli):
    from onnx import numpy_helper

    art = tmp_path / "tr"
    assert run_cli("compile", EXAMPLES / "tiny_transformer.onnx", "-t", "x86-64", "-o", art).code == 0
    rng = np.random.default_rng(3)
    feeds = {"tokens": rng.standard_normal((1, 16, 64)).astype(np.float32),
             "mask": np.zeros((1, 1, 16, 16), np.float32)}
    np.save(tmp_path / "tokens.npy", feeds["tokens"])
    (tmp_path / "mask.pb").write_bytes(numpy_helper.from_array(feeds["mask"]).SerializeToString())
    run_and_check(run_cli, art, EXAMPLES / "tiny_transformer.onnx", tmp_path, atol=1e-4, inputs=feeds,
                  extra=("-i", f"tokens={tmp_path / 'tokens.npy'}", "-i", f"mask={tmp_path / 'mask.pb'}"))


def test_inspect_passes_targets(run_cli):
    r = run_cli("inspect", EXAMPLES / "small_cnn.onnx", "--json")
    info = json.loads(r.out)
    assert info["ops"]["Conv"] == 4 and info["parameters"] == 10298 and info["flops"] > 3_000_000
    r = run_cli("passes")
    assert r.code == 0 and "fold-constants" in r.out
    r = run_cli("targets")
    for name in ("x86-64", "host", "armv8", "armv7", "cuda-sm87"):
        assert re.search(rf"^{re.escape(name)}\s", r.out, re.M), name


def test_bench_reports_median_p90_min(tmp_path, run_cli):
    art = tmp_path / "cnn"
    assert run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", "x86-64", "-o", art).code == 0
    r = run_cli("bench", art, "-n", "5", "--warmup", "1", "--threads", "1", "--json")
    assert r.code == 0, r
    stats = json.loads(r.out)
    assert stats["runs"] == 5 and 0 < stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"]
