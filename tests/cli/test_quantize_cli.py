"""`edgec quantize` and `edgec compile --quantize`: the QDQ model written and checked, the report,
calibration data errors as one line with exit 2, --verify across the quantization pass."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgec.reference import run_ort
from tests.passes.quant_models import cnn, samples, write_npy_dir


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "cnn.onnx"
    onnx.save(cnn(), p)
    return p


def test_quantize_writes_a_qdq_model_with_a_report(run_cli, model, tmp_path):
    data = write_npy_dir(tmp_path / "calib", samples(12))
    out = tmp_path / "cnn.int8.onnx"
    r = run_cli("quantize", model, "-o", out, "--calibration-data", data, "--method", "percentile", "--report", "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["activations"] == 5 and res["weights"] == 6 and res["options"]["method"] == "percentile"
    rep = res["report"]
    assert rep["samples"] == 12 and rep["source"] == data
    assert rep["outputs"]["y"]["cosine"] > 0.99 and rep["outputs"]["y"]["top1_agreement"] >= 0.9
    assert set(rep["tensors"]) == {"x", "r1", "r2", "f", "g"}
    assert all(s["snr_db"] > 20 for s in rep["tensors"].values()), rep["tensors"]
    q = onnx.load(out)
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) == 5
    x = samples(1, seed=4)[0]
    assert np.all(np.isfinite(run_ort(q, {"x": x})["y"]))


def test_quantize_without_data_warns_and_uses_seeded_inputs(run_cli, model, tmp_path, caplog):
    r = run_cli("quantize", model, "-o", tmp_path / "q.onnx")
    assert r.code == 0, r
    assert "no calibration data" in caplog.text
    assert "5 activation tensors" in r.out, r.out


@pytest.mark.parametrize("case", ["missing-dir", "empty-dir", "wrong-shape", "wrong-dtype", "multi-input-npy"])
def test_bad_calibration_data_is_one_line_exit_2(run_cli, model, tmp_path, case):
    d = tmp_path / "calib"
    d.mkdir()
    if case == "missing-dir":
        d = tmp_path / "nope"
    elif case == "wrong-shape":
        np.save(d / "a.npy", np.zeros((1, 3, 8, 8), np.float32))
    elif case == "wrong-dtype":
        np.save(d / "a.npy", np.zeros((1, 3, 16, 16), np.float64))
    elif case == "multi-input-npy":
        np.savez(d / "a.npz", other=np.zeros((1, 3, 16, 16), np.float32))
    out = tmp_path / "q.onnx"
    r = run_cli("quantize", model, "-o", out, "--calibration-data", d)
    assert r.code == 2, r
    lines = [ln for ln in r.err.splitlines() if ln.startswith("edgec:")]
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    assert str(d) in lines[0] or "calibration" in lines[0], lines
    assert not out.exists()


def test_dynamic_mode_quantizes_matmul_and_gemm_weights_without_calibration(run_cli, model, tmp_path):
    out = tmp_path / "dyn.onnx"
    r = run_cli("quantize", model, "-o", out, "--mode", "dynamic", "--report", "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["activations"] == 2 and res["weights"] == 2, res  # the Gemm and the MatMul; Convs stay float
    assert res["report"]["outputs"]["y"]["cosine"] > 0.99
    q = onnx.load(out)
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("MatMulInteger") == 2 and "Gemm" not in ops and ops.count("Conv") == 2
    assert [o.name for o in q.graph.output] == ["y"]


def test_compile_quantize_verify_checks_against_the_qdq_graph(run_cli, model, tmp_path):
    data = write_npy_dir(tmp_path / "calib", samples(8))
    art = tmp_path / "art"
    r = run_cli("compile", model, "-t", "x86-64", "--quantize", "int8", "--calibration-data", data, "--verify", "-o", art)
    assert r.code == 0, r
    assert "after quantize-static (changes numerics by design)" in r.out and "the compiled artifact matches" in r.out, r.out
    meta = json.loads((art / "metadata.json").read_text())
    assert "quantize-static" in meta["pipeline"]["text"]


def test_calibration_data_without_quantize_is_a_usage_error(run_cli, model, tmp_path):
    r = run_cli("compile", model, "-t", "x86-64", "--calibration-data", tmp_path, "-o", tmp_path / "art")
    assert r.code == 2 and "--calibration-data needs --quantize" in r.err, r


def test_max_accuracy_drop_keeps_the_most_sensitive_layers_in_float(run_cli, model, tmp_path):
    # calibrated on inputs 300x larger than the evaluation inputs: every range is far too wide
    calib = write_npy_dir(tmp_path / "calib", [s * 300 for s in samples(8)])
    evald = write_npy_dir(tmp_path / "eval", samples(30, seed=40))
    out = tmp_path / "q.onnx"
    r = run_cli("quantize", model, "-o", out, "--calibration-data", calib, "--eval-data", evald, "--eval-samples", 30,
                "--max-accuracy-drop", "0.05", "--json")
    assert r.code == 0, r
    b = json.loads(r.out)["accuracy_budget"]
    assert b["metric"].startswith("top-1 agreement") and b["float_accuracy"] == 1.0
    assert b["steps"][0]["accuracy"] < 0.95, b["steps"]  # quantizing everything breaks the budget
    snrs = [s["snr_db"] for s in b["sensitivity"]]
    assert snrs == sorted(snrs) and len(snrs) == 4, b["sensitivity"]
    kept = b["kept_float"]
    assert kept == [s["node"] for s in b["sensitivity"][:len(kept)]], "greedy: most sensitive first"
    assert 1 <= len(kept) < 4 and b["float_accuracy"] - b["quantized_accuracy"] <= 0.05, b
    q = onnx.load(out)
    float_ops = {n.name for n in q.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")}
    for n in kept:
        dq_inputs = {d.output[0] for d in q.graph.node if d.op_type == "DequantizeLinear"}
        node = next(x for x in q.graph.node if x.name == n)
        assert node.name in float_ops and node.input[1] not in dq_inputs, f"{n} must keep float weights"
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node), "the other layers stay quantized"


def test_labels_that_do_not_cover_the_samples_are_one_line(run_cli, model, tmp_path):
    evald = write_npy_dir(tmp_path / "eval", samples(5))
    (tmp_path / "labels.txt").write_text("1 2 3")
    r = run_cli("quantize", model, "-o", tmp_path / "q.onnx", "--eval-data", evald, "--max-accuracy-drop", "0.01",
                "--labels", tmp_path / "labels.txt")
    assert r.code == 2 and "3 labels for 5 evaluation samples" in r.err, r


RUNS_NOWHERE = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 3, 4, 4] x, int16[2] z) => (float[1, 2, 4, 4] y, int16[2] r) {
    w = Constant <value = float[2, 3, 1, 1] {1, 2, 3, 4, 5, 6}> ()
    y = Conv (x, w)
    r = Relu (z)
}
"""


@pytest.mark.parametrize("command", ["quantize", "compile"])
def test_a_model_onnxruntime_cannot_run_is_blamed_for_failed_calibration(run_cli, tmp_path, command):
    """Relu on int16 is valid ONNX that onnxruntime has no kernel for: calibration cannot run it,
    and that is the model's limit (exit 2 naming the file), not edgec's bug; nothing is written."""
    from tests.conftest import model_from_text

    path = tmp_path / "relu16.onnx"
    onnx.save(model_from_text(RUNS_NOWHERE), path)
    out = tmp_path / "out"
    argv = ["quantize", str(path), "-o", str(out)] if command == "quantize" else \
        ["compile", str(path), "--quantize", "int8", "-t", "x86-64", "-o", str(out)]
    r = run_cli(*argv)
    assert r.code == 2, r
    assert f"{path}: onnxruntime cannot run this model, and calibration runs it" in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert not out.exists()


def test_a_calibration_failure_on_a_model_onnxruntime_runs_stays_edgecs(tmp_path):
    from edgec.errors import CalibrationRunError
    from edgec.quantize import blame_calibration

    path = tmp_path / "cnn.onnx"
    onnx.save(cnn(), path)
    with pytest.raises(CalibrationRunError) as e, blame_calibration(path):
        raise CalibrationRunError("onnxruntime cannot run the float model for calibration: (prepared by edgec)")
    assert e.value.exit_code == 1
