"""`edgec compile --emit`: which files the artifact holds. The optimized model.onnx runs in
onnxruntime and agrees with the compiled library; the header and the bundle come and go as asked;
misuse is one line, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgec.compare import assert_outputs_match
from tests.conftest import require_target_tools


def _model(path):
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
             numpy_helper.from_array(np.float32(0.5).reshape(()), "half")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "half"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    g = helper.make_graph(nodes, "emit", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def test_emit_onnx_runs_in_onnxruntime_like_the_library(tmp_path, run_cli):
    import onnxruntime as ort

    from edgec.artifact import load_artifact
    from edgec.targets.tvm.execute import run

    art = tmp_path / "a"
    r = run_cli("compile", _model(tmp_path / "m.onnx"), "-o", art, "--emit", "library,metadata,onnx")
    assert r.code == 0, r
    assert sorted(p.name for p in art.iterdir()) == ["metadata.json", "model.onnx", "model.so"]
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    expected = dict(zip(["y"], ort.InferenceSession(str(art / "model.onnx")).run(None, {"x": x})))
    assert_outputs_match(run(load_artifact(art), {"x": x}), expected, atol=1e-5)


def test_default_and_cross_target_emits(tmp_path, run_cli):
    model = _model(tmp_path / "m.onnx")
    assert run_cli("compile", model, "-o", tmp_path / "host").code == 0
    assert {p.name for p in (tmp_path / "host").iterdir()} == {"metadata.json", "model.h", "model.so"}
    require_target_tools("armv8")
    assert run_cli("compile", model, "-t", "armv8", "-o", tmp_path / "arm").code == 0
    assert (tmp_path / "arm" / "bundle").is_dir()
    assert run_cli("compile", model, "-t", "armv8", "-o", tmp_path / "arm2", "--emit", "library,metadata").code == 0
    assert {p.name for p in (tmp_path / "arm2").iterdir()} == {"metadata.json", "model.so"}


def test_emit_misuse_is_one_line_and_writes_nothing(tmp_path, run_cli):
    model = _model(tmp_path / "m.onnx")
    for args, words in ((["--emit", "library,header"], "metadata"), (["--emit", "library,metadata,wasm"], "wasm"),
                        (["--emit", "library,metadata,bundle", "--no-bundle"], "disagree")):
        r = run_cli("compile", model, "-o", tmp_path / "x", *args)
        assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, (args, r)
        assert not (tmp_path / "x").exists()
