"""`edgec prune` and `edgec compile --prune`: the pruned model written, checked and smaller; the
report; misuse is one line with exit 2."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgec.reference import run_ort
from tests.passes.test_prune_channels import RESIDUAL


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "res.onnx"
    onnx.save(onnx.parser.parse_model(RESIDUAL), p)
    return p


def test_prune_a_model_with_external_data_from_another_directory(run_cli, tmp_path, monkeypatch):
    """Weights in a .data file beside the model, edgec run from elsewhere: they are read from the
    model's directory (they had been looked up relative to the working directory: exit 1)."""
    d = tmp_path / "model"
    d.mkdir()
    folded = onnx.parser.parse_model(RESIDUAL.replace("y = MatMul (f, fc)", "fcn = Neg (fc)\n  y = MatMul (f, fcn)"))
    for t in folded.graph.initializer:  # raw data, which onnx.save moves to the external file (folding reads fc)
        t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t), t.name))
    onnx.save(folded, d / "res.onnx", save_as_external_data=True,
              all_tensors_to_one_file=True, location="res.onnx.data", size_threshold=0)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = tmp_path / "p.onnx"
    assert onnx.load(d / "res.onnx", load_external_data=False).graph.initializer[0].data_location == 1  # external
    r = run_cli("prune", d / "res.onnx", "-o", out, "--ratio", "0.5", "--no-protect-ends", "--json")
    assert r.code == 0, r
    assert [g["pruned"] for g in json.loads(r.out)["groups"]] == [4, 4, 0]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 4, 6, 6)).astype(np.float32)
    assert np.isfinite(run_ort(str(out), {"x": x})["y"]).all()


def test_prune_channel_report_json(run_cli, model, tmp_path):
    out = tmp_path / "p.onnx"
    r = run_cli("prune", model, "-o", out, "--ratio", "0.5", "--no-protect-ends", "--report", "--json")
    assert r.code == 0, r
    rep = json.loads(r.out)
    assert rep["params_after"] < rep["params_before"] and rep["flops_after"] < rep["flops_before"]
    assert rep["bytes_after"] < rep["bytes_before"]
    assert [g["pruned"] for g in rep["groups"]] == [4, 4, 0]
    assert rep["agreement"]["samples"] == 8 and not rep["agreement"]["outputs"]["y"]["mismatch"]
    m = onnx.load(out)
    onnx.checker.check_model(m, full_check=True)
    y = run_ort(m, {"x": np.ones((1, 4, 6, 6), np.float32)})["y"]
    assert y.shape == (1, 3) and np.isfinite(y).all()


def test_prune_text_report_and_modes(run_cli, model, tmp_path):
    r = run_cli("prune", model, "-o", tmp_path / "a.onnx", "--ratio", "0.5", "--report")
    assert r.code == 0, r
    assert "first layer (protected)" in r.out and "graph output" in r.out and "cosine" in r.out
    r = run_cli("prune", model, "-o", tmp_path / "b.onnx", "--mode", "unstructured", "--ratio", "0.5",
                "--scope", "layer", "--report")
    assert r.code == 0, r
    assert "sparsity 0.000 -> 0.500" in r.out
    r = run_cli("prune", model, "-o", tmp_path / "c.onnx", "--mode", "2:4", "--no-protect-ends")
    assert r.code == 0 and "layers masked" in r.out, r


@pytest.mark.parametrize("args, words", [
    (["--ratio", "1.5"], "--ratio must be in [0, 1)"),
    (["--threshold", "0.1"], "--threshold applies to --mode unstructured"),
    (["--mode", "2:4", "--layer-ratio", "w1=0.2"], "does not apply to --mode 2:4"),
    (["--layer-ratio", "w1"], "NAME=R"),
    (["--calibration-data", "nowhere"], "--importance sensitivity"),
    (["--mode", "sparse"], "sparse"),
    (["--eval-data", "d"], "--eval-data needs --report"),
    (["--report", "--labels", "l.npy"], "--labels needs --eval-data"),
    (["--latency"], "--latency / --threads need --report"),
])
def test_misuse_is_one_line_exit_2(run_cli, model, tmp_path, args, words):
    r = run_cli("prune", model, "-o", tmp_path / "p.onnx", *args)
    assert r.code == 2, r
    assert words in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "p.onnx").exists()


def test_missing_model_is_one_line_exit_2(run_cli, tmp_path):
    r = run_cli("prune", tmp_path / "nope.onnx", "-o", tmp_path / "p.onnx")
    assert r.code == 2 and "nope.onnx" in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_compile_prune_bad_value_exit_2(run_cli, model, tmp_path):
    r = run_cli("compile", model, "-t", "host", "-o", tmp_path / "art", "--prune", "channel:2")
    assert r.code == 2 and "--ratio must be in [0, 1)" in r.err, r.err
    r = run_cli("compile", model, "-t", "host", "-o", tmp_path / "art", "--prune", "rows")
    assert r.code == 2 and "mode must be one of" in r.err and len(r.err.strip().splitlines()) == 1, r.err


WIDE = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1,3,8,8] x) => (float[1,4,8,8] y) <float[16,3,1,1] w0 = {W0}, float[32,16,1,1] w1 = {W1},
    float[4,32,1,1] w2 = {W2}> {
  a = Conv (x, w0)
  r = Relu (a)
  b = Conv (r, w1)
  q = Relu (b)
  y = Conv (q, w2)
}"""


def test_compile_prune_runs_the_pruned_model(run_cli, tmp_path):
    rng = np.random.default_rng(0)
    text = WIDE
    for name, n in (("W0", 48), ("W1", 512), ("W2", 128)):
        text = text.replace(name, ", ".join(f"{v:.4f}" for v in rng.uniform(-1, 1, n)))
    model = tmp_path / "wide.onnx"
    onnx.save(onnx.parser.parse_model(text), model)
    out = tmp_path / "art"
    r = run_cli("compile", model, "-t", "host", "-o", out, "--prune", "channel:0.5", "--verify")
    assert r.code == 0, r
    meta = json.loads((out / "metadata.json").read_text())
    assert "prune-channels" in meta["pipeline"]["text"]
    runs = [r["modified"] for r in meta["pipeline"]["passes"] if r["pass"] == "prune-channels"]
    assert runs[0] and not any(runs[1:])  # the pipeline runs to a fixpoint: pruned once
    assert run_cli("run", out).code == 0


def test_sensitivity_on_calibration_data(run_cli, model, tmp_path):
    d = tmp_path / "calib"
    d.mkdir()
    for i in range(3):
        np.save(d / f"{i}.npy", np.random.default_rng(i).standard_normal((1, 4, 6, 6)).astype(np.float32))
    r = run_cli("prune", model, "-o", tmp_path / "p.onnx", "--importance", "sensitivity", "--calibration-data", d,
                "--ratio", "0.5", "--json")
    assert r.code == 0, r
    assert [g["pruned"] for g in json.loads(r.out)["groups"]] == [0, 4, 0]
    np.save(d / "bad.npy", np.zeros((1, 2, 6, 6), np.float32))
    r = run_cli("prune", model, "-o", tmp_path / "q.onnx", "--importance", "sensitivity", "--calibration-data", d)
    assert r.code == 2 and "bad.npy" in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_report_accuracy_with_labels(run_cli, model, tmp_path):
    d = tmp_path / "eval"
    d.mkdir()
    xs = [np.random.default_rng(i).standard_normal((1, 4, 6, 6)).astype(np.float32) for i in range(4)]
    for i, x in enumerate(xs):
        np.save(d / f"{i}.npy", x)
    truth = [int(np.argmax(run_ort(onnx.load(model), {"x": x})["y"])) for x in xs]  # the original is always right
    np.save(tmp_path / "labels.npy", np.array(truth, np.int64))
    r = run_cli("prune", model, "-o", tmp_path / "p.onnx", "--ratio", "0.5", "--report", "--eval-data", d,
                "--labels", tmp_path / "labels.npy", "--eval-samples", "4")
    assert r.code == 0, r
    assert "top-1 accuracy on 4 labelled samples: original 1.0000" in r.out, r.out


def test_report_latency_times_both_compiled_models(run_cli, model, tmp_path):
    r = run_cli("prune", model, "-o", tmp_path / "p.onnx", "--ratio", "0.5", "--no-protect-ends", "--report",
                "--latency", "--threads", "1", "--json")
    assert r.code == 0, r
    lat = json.loads(r.out)["latency"]
    assert lat["runs"] == 60 and lat["threads"] == 1 and lat["target"] == "host"
    assert 0 < lat["original_ms"] < 1e3 and 0 < lat["pruned_ms"] < 1e3
    assert lat["ratio"] == pytest.approx(lat["pruned_ms"] / lat["original_ms"])
    text = run_cli("prune", model, "-o", tmp_path / "q.onnx", "--report", "--latency", "--threads", "1")
    assert text.code == 0 and "compiled latency (host, 1 thread(s)" in text.out and "FLOPs ratio" in text.out


def test_inspect_counts_flops_per_sample_with_a_symbolic_batch(run_cli, tmp_path):
    """FLOPs of a model with a symbolic batch are per sample (they were 0), and the output says so."""
    sym = RESIDUAL.replace("float[1,", "float[N,").replace("int64[2] shp = {1, -1}", "int64[2] shp = {0, -1}")
    onnx.save(onnx.parser.parse_model(sym), tmp_path / "sym.onnx")
    onnx.save(onnx.parser.parse_model(RESIDUAL), tmp_path / "static.onnx")
    infos = [json.loads(run_cli("inspect", tmp_path / f, "--json").out) for f in ("sym.onnx", "static.onnx")]
    assert infos[0]["flops"] == infos[1]["flops"] > 0
    assert [i["flops_symbolic_dims_as_1"] for i in infos] == [True, False]
    assert "(symbolic dimensions counted as 1)" in run_cli("inspect", tmp_path / "sym.onnx").out
