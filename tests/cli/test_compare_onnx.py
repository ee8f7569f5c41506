"""`edgec run --compare-onnx` cannot call a wrong result a match: NaN, Inf, missing and extra
outputs, shape and dtype differences each exit 3 and say what differs; the verdict prints the real
worst error."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

from edgec.reference import run_ort, seeded_inputs
from tests.conftest import model_from_text

HEAD = '<ir_version: 8, opset_import: ["" : 17]>'
ARTIFACTS = {
    "sqrt": "g (float[2,3] x) => (float[2,3] y) { y = Sqrt(x) }",
    "sqrt_abs": "g (float[2,3] x) => (float[2,3] y) { a = Abs(x)\n y = Sqrt(a) }",
    "exp_big": "g (float[2,3] x) => (float[2,3] y) <float k = {1000.0}> { a = Mul(x, k)\n y = Exp(a) }",
    "two_outputs": "g (float[2,3] x) => (float[2,3] y, float[2,3] w) { a = Abs(x)\n y = Sqrt(a)\n w = Neg(x) }",
}
REFERENCES = {
    **ARTIFACTS,
    "identity": "g (float[2,3] x) => (float[2,3] y) { y = Identity(x) }",
    "reshaped": "g (float[2,3] x) => (float[3,2] y) <int64[2] s = {3, 2}> { a = Abs(x)\n b = Sqrt(a)\n y = Reshape(b, s) }",
    "double": "g (float[2,3] x) => (double[2,3] y) { a = Abs(x)\n b = Sqrt(a)\n y = Cast<to = 11>(b) }",
    "renamed_input": "g (float[2,3] q) => (float[2,3] y) { a = Abs(q)\n y = Sqrt(a) }",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmp")
    for name, body in REFERENCES.items():
        onnx.save(model_from_text(f"{HEAD}\n{body}"), d / f"{name}.onnx")
    return d


@pytest.fixture(scope="module")
def artifacts(files):
    from edgec.api import CompileOptions, compile_model

    return {name: compile_model(files / f"{name}.onnx", files / f"art_{name}", CompileOptions(target="x86-64", opt_level=0)).path
            for name in ARTIFACTS}


def _check(run_cli, artifacts, files, art, ref):
    return run_cli("run", artifacts[art], "--compare-onnx", files / f"{ref}.onnx")


@pytest.mark.parametrize("art,ref,why", [
    ("sqrt", "sqrt_abs", r"'y': \d+ of 6 values: NaN where the reference is finite"),
    ("sqrt_abs", "sqrt", r"'y': \d+ of 6 values: finite where the reference is NaN/Inf"),
    ("exp_big", "identity", r"'y': \d+ of 6 values: Inf where the reference is finite"),
    ("sqrt_abs", "two_outputs", r"'w': missing from the outputs"),
    ("two_outputs", "sqrt_abs", r"'w': extra output the reference does not have"),
    ("sqrt_abs", "reshaped", r"'y': shape \[2, 3\], reference \[3, 2\]"),
    ("sqrt_abs", "double", r"'y': dtype float32, reference float64"),
])
def test_mismatch_exits_3_and_says_why(run_cli, artifacts, files, art, ref, why):
    r = _check(run_cli, artifacts, files, art, ref)
    assert r.code == 3, r
    assert "OK" not in r.out
    line = [x for x in r.err.splitlines() if x.startswith("MISMATCH")]
    assert len(line) == 1 and re.search(why, line[0]), r


def test_nan_is_reported_as_the_worst_error(run_cli, artifacts, files):
    r = _check(run_cli, artifacts, files, "sqrt", "sqrt_abs")
    assert "max abs error nan" in r.err and "max abs error 0 " not in r.err + r.out, r


def test_match_prints_the_real_worst_error(run_cli, artifacts, files, tmp_path):
    r = run_cli("run", artifacts["two_outputs"], "--compare-onnx", files / "two_outputs.onnx", "--output", tmp_path / "o.npz")
    assert r.code == 0, r
    got = np.load(tmp_path / "o.npz")
    x = seeded_inputs([_info("x")])["x"]
    ref = run_ort(str(files / "two_outputs.onnx"), {"x": x})
    worst = max(float(np.max(np.abs(got[n].astype(np.float64) - ref[n]))) for n in ("y", "w"))
    m = re.search(r"OK: matches onnxruntime on all 2 output\(s\) \(max abs error (\S+) <=", r.out)
    assert m and float(m.group(1)) == pytest.approx(worst, abs=1e-9), r
    assert all(np.isfinite(got[n]).all() for n in ("y", "w"))


def test_a_tight_atol_turns_a_small_error_into_a_mismatch(run_cli, artifacts, files):
    # Sqrt compiled vs onnxruntime may differ in the last ulp; atol=-1 can never be met
    r = run_cli("run", artifacts["sqrt_abs"], "--compare-onnx", files / "sqrt_abs.onnx", "--atol", "-1")
    assert r.code == 3 and "> bound -1" in r.err, r


def test_reference_with_other_input_names_is_a_clear_user_error(run_cli, artifacts, files):
    r = _check(run_cli, artifacts, files, "sqrt_abs", "renamed_input")
    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "renamed_input.onnx" in lines[0] and "['q']" in lines[0], r


def _info(name):
    from edgec.ir.analysis import TensorInfo

    return TensorInfo(name, (2, 3), "float32")
