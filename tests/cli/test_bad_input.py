"""Every bad input: exit code 2, exactly one line on stderr naming the problem, no traceback,
and no output directory left behind."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import EXAMPLES, model_from_text


def _save(path, model):
    onnx.save(model, path)
    return path


def _unsupported_op(tmp_path):
    m = model_from_text("""
        <ir_version: 8, opset_import: ["" : 17, "com.acme" : 1]>
        agraph (float[2, 3] x) => (float[2, 3] y) { y = com.acme.Frobnicate(x) }""")
    return _save(tmp_path / "custom.onnx", m), ["Frobnicate", "com.acme"]


def _unsupported_standard_op(tmp_path):
    m = model_from_text("""
        <ir_version: 8, opset_import: ["" : 17]>
        agraph (float[3, 3] x) => (float y) { y = Det(x) }""")
    return _save(tmp_path / "det.onnx", m), ["Det", "ai.onnx", "opset 17"]


def _missing(tmp_path):
    return tmp_path / "nope.onnx", ["not found"]


def _directory(tmp_path):
    return tmp_path, ["directory"]


def _text_file(tmp_path):
    p = tmp_path / "notes.onnx"
    p.write_text("this is not a model\n" * 20)
    return p, ["not"]


def _empty(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    return p, ["empty"]


def _truncated(tmp_path):
    data = (EXAMPLES / "small_cnn.onnx").read_bytes()
    p = tmp_path / "truncated.onnx"
    p.write_bytes(data[: len(data) // 2])
    return p, ["truncated"]


def _external_escape(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(6, np.float32).tobytes())
    d = tmp_path / "models"
    d.mkdir()
    w = numpy_helper.from_array(np.zeros((2, 3), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", "24")):
        e = w.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add0")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return _save(d / "escape.onnx", m), ["escapes the model directory", "w"]


def _inconsistent_shapes(tmp_path):
    m = model_from_text("""
        <ir_version: 8, opset_import: ["" : 17]>
        agraph (float[2, 3] x, float[4, 5] z) => (float[2, 3] y) { y = Add(x, z) }""")
    return _save(tmp_path / "shapes.onnx", m), ["inconsistent shapes", "Add"]


CASES = [_unsupported_op, _unsupported_standard_op, _missing, _directory, _text_file, _empty,
         _truncated, _external_escape, _inconsistent_shapes]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_bad_model_exits_2_with_one_line(case, tmp_path, run_cli):
    model, must_mention = case(tmp_path)
    out = tmp_path / "out" / "artifact"
    r = run_cli("compile", model, "--target", "x86-64", "-o", out)
    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("edgec: error: ")
    assert "Traceback" not in r.err + r.out
    for word in must_mention:
        assert word in lines[0], (word, lines[0])
    assert not out.exists()
    assert not list((tmp_path / "out").glob(".*")) if (tmp_path / "out").exists() else True


def test_unsupported_op_names_node_op_domain_opset(tmp_path, run_cli):
    model, _ = _unsupported_op(tmp_path)
    r = run_cli("compile", model, "-t", "x86-64", "-o", tmp_path / "o")
    assert "node '" in r.err and "op 'Frobnicate'" in r.err and "domain 'com.acme'" in r.err
    assert str(model) in r.err


def test_inspect_and_optimize_report_bad_input_the_same_way(tmp_path, run_cli):
    model, _ = _truncated(tmp_path)
    for argv in (("inspect", model), ("optimize", model, "-o", tmp_path / "o.onnx")):
        r = run_cli(*argv)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r
    assert not (tmp_path / "o.onnx").exists()


def test_bad_cli_usage_is_exit_2(run_cli, tmp_path):
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-o", tmp_path / "o", "--target", "nonsense-9000")
    assert r.code == 2 and "unknown target 'nonsense-9000'" in r.err
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-o", tmp_path / "o", "--passes", "no-such-pass")
    assert r.code == 2 and "unknown pass 'no-such-pass'" in r.err
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx")
    assert r.code == 2 and "Missing option" in r.err
    assert not (tmp_path / "o").exists()


def test_run_rejects_wrong_input_shape(run_cli, tmp_path):
    art = tmp_path / "cnn"
    assert run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", "x86-64", "-o", art).code == 0
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    r = run_cli("run", art, "--input", f"input={tmp_path / 'x.npy'}")
    assert r.code == 2 and "shape [1, 3, 8, 8]" in r.err
    r = run_cli("run", tmp_path / "not-an-artifact")
    assert r.code == 2 and "not an artifact" in r.err


def _memory_bomb_input(tmp_path):
    m = model_from_text("""
        <ir_version: 8, opset_import: ["" : 17]>
        agraph (float[100000, 100000, 1000] x) => (float[100000, 100000, 1000] y) { y = Relu(x) }""")
    return _save(tmp_path / "bomb.onnx", m), ["'x'", "over the limit"]


def _memory_bomb_expand(tmp_path):
    m = model_from_text("""
        <ir_version: 8, opset_import: ["" : 17]>
        agraph (float[1] x) => (float[A, B, C] y) <int64[3] s = {4096, 4096, 4096}> { y = Expand(x, s) }""")
    return _save(tmp_path / "expand.onnx", m), ["needs", "over the limit"]


def _size_disagrees_with_data(tmp_path):
    w = numpy_helper.from_array(np.zeros((2, 3), np.float32), "w")
    w.dims[:] = [4, 3]
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add0")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return _save(tmp_path / "size.onnx", m), ["'w'", "48 bytes", "holds 24 bytes"]


def _cycle(tmp_path):
    m = model_from_text("""
        <ir_version: 8, opset_import: ["" : 17]>
        agraph (float[2] x) => (float[2] y) { a = Add(x, b)
          b = Relu(a)
          y = Identity(b) }""")
    return _save(tmp_path / "cycle.onnx", m), ["invalid ONNX model", "topologically sorted"]


def _duplicate_names(tmp_path):
    m = model_from_text("""
        <ir_version: 8, opset_import: ["" : 17]>
        agraph (float[2] x) => (float[2] y) { y = Relu(x)
          y = Neg(x) }""")
    return _save(tmp_path / "dup.onnx", m), ["invalid ONNX model", "y"]


SAFETY = [_memory_bomb_input, _memory_bomb_expand, _size_disagrees_with_data, _cycle, _duplicate_names]


@pytest.mark.parametrize("case", SAFETY, ids=[c.__name__.strip("_") for c in SAFETY])
def test_unsafe_model_rejected(case, tmp_path, run_cli):
    test_bad_model_exits_2_with_one_line(case, tmp_path, run_cli)


def test_max_tensor_bytes_is_configurable(tmp_path, run_cli):
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", "x86-64", "-o", tmp_path / "o",
                "--max-tensor-bytes", "1000")
    assert r.code == 2 and "over the limit of 1,000" in r.err
