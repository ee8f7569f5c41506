"""Models with external data: weights beside the model are mapped lazily, not loaded at import
(the path to >2 GiB models, whose protobuf cannot hold the weights), and compile correctly."""

from __future__ import annotations

import tracemalloc

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgec.ir import load_model
from edgec.reference import run_ort
from tests.e2e.compile_check import run_and_check

MB = 1 << 20


def _external_model(tmp_path, n=4096):
    """MatMul by a [n, n] float32 weight (64 MiB for n=4096) stored in weights.bin."""
    w = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32) * 0.01
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "ext",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "model.onnx"
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
                    size_threshold=1024)
    assert path.stat().st_size < 4096 and (tmp_path / "weights.bin").stat().st_size == n * n * 4
    return path, w


def test_load_does_not_read_external_weights(tmp_path):
    path, _ = _external_model(tmp_path)
    tracemalloc.start()
    model = load_model(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * MB, f"loading allocated {peak / MB:.1f} MiB for a model with 64 MiB of external weights"
    w = model.graph.initializers["w"].const_value
    assert w.numpy().shape == (4096, 4096)  # readable on demand


def test_external_data_model_compiles_and_matches(tmp_path, run_cli):
    path, _ = _external_model(tmp_path, n=256)
    r = run_cli("compile", path, "-t", "x86-64", "-o", tmp_path / "art")
    assert r.code == 0, r
    run_and_check(run_cli, tmp_path / "art", path, tmp_path, atol=1e-4)
    assert run_ort(str(path), {"x": np.ones((1, 256), np.float32)})["y"].shape == (1, 256)


def test_verify_and_optimize_keep_external_weights(tmp_path, run_cli):
    path, _ = _external_model(tmp_path, n=256)
    r = run_cli("compile", path, "-t", "x86-64", "-o", tmp_path / "art", "--verify")
    assert r.code == 0 and "verified against onnxruntime" in r.out, r
    out = tmp_path / "opt" / "model.onnx"
    out.parent.mkdir()
    r = run_cli("optimize", path, "-o", out)
    assert r.code == 0, r
    assert (out.parent / "model.onnx.data").stat().st_size == 256 * 256 * 4 and out.stat().st_size < 4096
    x = {"x": np.ones((1, 256), np.float32)}
    assert np.abs(run_ort(str(out), x)["y"] - run_ort(str(path), x)["y"]).max() <= 1e-5


def _external_reshape(tmp_path, target, name="model.onnx"):
    """x [2, 6] -> Reshape(target, stored in w.bin) -> Relu -> y, declared [3, 4]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])
    g = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("Relu", ["r"], ["y"])],
                          "ext_shape", [x], [y], [numpy_helper.from_array(np.array(target, np.int64), "shape")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    d = tmp_path / name.split(".")[0]
    d.mkdir()
    onnx.save_model(m, d / name, save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin",
                    size_threshold=0)
    assert onnx.load(d / name, load_external_data=False).graph.initializer[0].data_location == TensorProto.EXTERNAL
    return d / name


def test_a_reshape_target_in_the_external_file_is_not_an_inconsistent_model(tmp_path, run_cli):
    """onnx's shape inference cannot read a shape tensor stored externally ("Cannot parse data from
    external tensors"): that is its limit, so the model loads (it was refused, exit 2) and compiles;
    the target is read in and checked, so a model it contradicts is still refused."""
    path = _external_reshape(tmp_path, [3, 4])
    load_model(path)
    r = run_cli("compile", path, "-t", "host", "-o", tmp_path / "art", "--verify")
    assert r.code == 0, r
    r = run_cli("inspect", _external_reshape(tmp_path, [4, 3], "bad.onnx"))  # infers [4, 3], declares [3, 4]
    assert r.code == 2 and "inconsistent shapes" in r.err and len(r.err.strip().splitlines()) == 1, r
