"""Reproducible artifacts (issue 16): the same model and options give byte-identical artifact
directories, bundle included, for x86-64, armv8 and armv7; pass times live in the compile's build
info (the report shows them), never in metadata.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import require_target_tools


def _model(path: Path) -> Path:
    """Conv + BatchNorm + Relu + Gemm: a few passes fire (fold-batchnorm, fusion), several kernels."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in
             (("w", (8, 3, 3, 3)), ("scale", (8,)), ("bias", (8,)), ("mean", (8,)), ("gemm_w", (8 * 6 * 6, 10)))]
    inits.append(numpy_helper.from_array(np.abs(rng.standard_normal(8)).astype(np.float32) + 0.5, "var"))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"]),
             helper.make_node("Relu", ["b"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("MatMul", ["f", "gemm_w"], ["y"])]
    g = helper.make_graph(nodes, "repro", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def _hashes(art: Path) -> dict[str, str]:
    return {str(p.relative_to(art)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(art.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("target", ["x86-64", "armv8", "armv7"])
def test_two_compiles_give_identical_files(tmp_path, run_cli, target):
    if target != "x86-64":
        require_target_tools(target)
    model = _model(tmp_path / "m.onnx")
    arts = []
    for i in (1, 2):
        art = tmp_path / f"a{i}"
        r = run_cli("compile", model, "--target", target, "-o", art)
        assert r.code == 0, r
        arts.append(_hashes(art))
    assert arts[0] == arts[1], {k: (arts[0].get(k), arts[1].get(k)) for k in set(arts[0]) | set(arts[1])
                                if arts[0].get(k) != arts[1].get(k)}
    assert "metadata.json" in arts[0] and len(arts[0]) >= 3
    if target != "x86-64":
        assert any(k.startswith("bundle/") for k in arts[0]), "a cross-target artifact has its bundle"


def test_pass_times_go_to_the_report_not_the_metadata(tmp_path, run_cli):
    model = _model(tmp_path / "m.onnx")
    report = tmp_path / "report.html"
    r = run_cli("compile", model, "-o", tmp_path / "a", "--report", report)
    assert r.code == 0, r
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    runs = meta["pipeline"]["passes"]
    assert runs and all("seconds" not in rec for rec in runs)
    html = report.read_text()
    assert "nan" not in html.split("<h2>Passes</h2>")[1], "the report has every pass's time"


def test_api_build_info_has_pass_times(tmp_path):
    from edgec.api import CompileOptions, compile_model

    art = compile_model(_model(tmp_path / "m.onnx"), tmp_path / "a", CompileOptions(target="x86-64"))
    seconds = art.build_info["pass_seconds"]
    assert len(seconds) == len(art.metadata["pipeline"]["passes"]) and all(s >= 0 for s in seconds)
    assert art.build_info["host"]["cpus"] >= 1 and art.build_info["backend_seconds"] > 0
