"""Issue 11, model reading and size bombs: special files where a file is expected (FIFO, /dev/zero),
bad external-data fields, negative dims, and sizes that only constant folding, unrolling or the
user's --input-shape reveal. Each is exit 2 with exactly one `edgec: error:` line naming the
problem, and writes nothing. Where a regression would hang (a FIFO, /dev/zero) the CLI runs in a
subprocess with a timeout; elsewhere in-process (`run_cli`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.errors import ModelValidationError
from edgec.infra.context import PassContext
from edgec.infra.manager import PassManager
from edgec.infra.pass_base import Pass, PassResult
from tests.conftest import EXAMPLES, model_from_text

H = '<ir_version: 8, opset_import: ["" : 17]>'


def _assert_refused(code: int, err: str, out_dir, *words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("edgec: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])
    if out_dir is not None:
        assert not os.path.exists(out_dir)


def _cli_subprocess(*argv, timeout: float = 60) -> tuple[int, str]:
    p = subprocess.run([sys.executable, "-m", "edgec.cli", *map(str, argv)], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stderr


def _compile_sub(model, tmp_path, *extra, words=()):
    out = tmp_path / "out"
    code, err = _cli_subprocess("compile", model, "-t", "x86-64", "-o", out, *extra)
    _assert_refused(code, err, out, *words)


def _compile(run_cli, model, tmp_path, *extra, words=()):
    out = tmp_path / "out"
    r = run_cli("compile", model, "-t", "x86-64", "-o", out, *extra)
    _assert_refused(r.code, r.err, out, *words)


def _save_text(tmp_path, name: str, text: str):
    path = tmp_path / name
    onnx.save(model_from_text(f"{H}\n{text}"), path)
    return path


# --- special files where a file is expected -------------------------------------------------

def test_fifo_model_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "model.onnx")
    _compile_sub(tmp_path / "model.onnx", tmp_path, words=("model.onnx", "not a regular file", "FIFO"))


def test_dev_zero_model_is_refused(tmp_path):
    os.symlink("/dev/zero", tmp_path / "model.onnx")
    _compile_sub(tmp_path / "model.onnx", tmp_path, words=("model.onnx", "not a regular file", "device"))


def _external_model(d, location: str, offset: str = "0", length: str = "24"):
    w = numpy_helper.from_array(np.zeros((2, 3), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        e = w.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add0")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, d / "ext.onnx")
    return d / "ext.onnx"


def test_fifo_external_data_is_refused(tmp_path):
    os.mkfifo(tmp_path / "w.bin")
    model = _external_model(tmp_path, "w.bin")
    _compile_sub(model, tmp_path, words=("ext.onnx", "'w'", "not a regular file", "FIFO"))


def test_dev_zero_external_data_is_refused(tmp_path):
    os.symlink("/dev/zero", tmp_path / "w.bin")  # resolves outside the model directory
    model = _external_model(tmp_path, "w.bin")
    _compile_sub(model, tmp_path, words=("ext.onnx", "'w'", "escapes the model directory"))


@pytest.mark.parametrize("key", ["length", "offset"])
def test_non_numeric_external_data_field(tmp_path, run_cli, key):
    (tmp_path / "w.bin").write_bytes(np.zeros(6, np.float32).tobytes())
    model = _external_model(tmp_path, "w.bin", **{key: "abc"})
    _compile(run_cli, model, tmp_path, words=("ext.onnx", "'w'", key, "'abc'", "not a non-negative integer"))


def test_negative_external_data_length(tmp_path, run_cli):
    (tmp_path / "w.bin").write_bytes(np.zeros(6, np.float32).tobytes())
    model = _external_model(tmp_path, "w.bin", length="-24")
    _compile(run_cli, model, tmp_path, words=("length '-24'", "not a non-negative integer"))


def test_fifo_plugin_is_refused(tmp_path):
    os.mkfifo(tmp_path / "plugin.py")
    _compile_sub(EXAMPLES / "small_cnn.onnx", tmp_path, "--plugin", tmp_path / "plugin.py",
                 words=("plugin", "plugin.py", "not a regular file", "FIFO"))


def test_fifo_run_input_is_refused(tmp_path, run_cli):
    art = tmp_path / "cnn"
    assert run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", "x86-64", "-o", art).code == 0
    os.mkfifo(tmp_path / "x.npy")
    code, err = _cli_subprocess("run", art, "--input", f"input={tmp_path / 'x.npy'}")
    _assert_refused(code, err, None, "x.npy", "not a regular file", "FIFO")


def test_fifo_records_file_is_refused(tmp_path):
    from edgec.targets.tvm.tune.records import Records, RecordsError

    os.mkfifo(tmp_path / "tuning.json")
    with pytest.raises(RecordsError, match="not a regular file .a FIFO."):
        Records.load(tmp_path / "tuning.json", missing_ok=True)


# --- declared dims ------------------------------------------------------------------------------

def test_negative_declared_dim(tmp_path, run_cli):
    model = _save_text(tmp_path, "neg.onnx", "agraph (float[2, -3] x) => (float[2, -3] y) { y = Relu(x) }")
    _compile(run_cli, model, tmp_path, words=("neg.onnx", "'x'", "negative dimension"))


def test_minus_one_dim_is_unknown(tmp_path, run_cli):
    """Paddle writes -1 for an unknown dim: a symbolic dim of its own (one artifact runs any
    size), or fixed with --input-shape."""
    model = _save_text(tmp_path, "m1.onnx", "agraph (float[-1, 3] x) => (float[-1, 3] y) { y = Relu(x) }")
    _compile(run_cli, model, tmp_path, words=("m1.onnx", "'x'", "--input-shape"))  # without --symbolic-dims
    r = run_cli("compile", model, "-t", "x86-64", "-o", tmp_path / "sym", "--symbolic-dims")
    assert r.code == 0, r
    meta = json.loads((tmp_path / "sym" / "metadata.json").read_text())
    assert meta["inputs"][0]["shape"] == ["x_dim0", 3] and meta["outputs"][0]["shape"] == ["x_dim0", 3], meta
    for rows in (1, 5):
        np.save(tmp_path / "x.npy", np.linspace(-1, 1, rows * 3, dtype=np.float32).reshape(rows, 3))
        r = run_cli("run", tmp_path / "sym", "-i", f"x={tmp_path / 'x.npy'}", "--compare-onnx", model)
        assert r.code == 0 and "OK: matches onnxruntime" in r.out, r
    r = run_cli("compile", model, "-t", "x86-64", "-o", tmp_path / "ok", "--input-shape", "x=2,3")
    assert r.code == 0, r
    assert "-1" not in (tmp_path / "ok" / "model.h").read_text()


# --- sizes that folding, unrolling or --input-shape reveal -----------------------------------

BOMBS = {
    "expand": ("""agraph (float[1] x) => (float[?, ?, ?] y) {
        a = Constant<value = int64[3] {1000, 1000, 100}>()
        s = Mul(a, a)
        y = Expand(x, s) }""", "Expand"),
    "tile": ("""agraph (float[10, 10] x) => (float[?, ?] y) {
        a = Constant<value = int64[2] {1000, 1000}>()
        r = Mul(a, a)
        y = Tile(x, r) }""", "Tile"),
    "range": ("""agraph (float[1] x) => (float[?] y) {
        s = Constant<value_float = 0.0>()
        a = Constant<value_float = 100000.0>()
        l = Mul(a, a)
        d = Constant<value_float = 1.0>()
        r = Range(s, l, d)
        y = Add(r, x) }""", "Range"),
    "constant_of_shape": ("""agraph (float[1] x) => (float[?, ?, ?] y) {
        a = Constant<value = int64[3] {1000, 1000, 100}>()
        s = Mul(a, a)
        c = ConstantOfShape<value = float[1] {1.0}>(s)
        y = Add(c, x) }""", "ConstantOfShape"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_size_bomb_behind_constant_arithmetic(name, tmp_path, run_cli):
    text, op = BOMBS[name]
    model = _save_text(tmp_path, f"{name}.onnx", text)
    _compile(run_cli, model, tmp_path, words=(f"{name}.onnx", f"op '{op}'", "over the limit", "--max-tensor-bytes"))


def test_loop_trip_count_1e9_is_a_runtime_loop(tmp_path, run_cli):
    """Too long to unroll: compiled as a run-time loop (not run here: 1e9 iterations)."""
    model = _save_text(tmp_path, "loop.onnx", """agraph (float[2] x) => (float[2] y) {
        n = Constant<value_int = 1000000000>()
        c = Constant<value = bool {1}>()
        y = Loop(n, c, x) <body = b (int64 i, bool cin, float[2] s) => (bool cout, float[2] s2) {
            cout = Identity(cin)
            s2 = Add(s, s) }> }""")
    r = run_cli("compile", model, "-t", "x86-64", "-o", tmp_path / "out")
    assert r.code == 0, r
    assert json.loads((tmp_path / "out" / "metadata.json").read_text())["lowering"]["edgec"]["Loop"] == 1


def test_nested_loop_unroll_bomb_is_bounded(tmp_path, run_cli):
    """Three nested 40-trip loops would be 64,000 body copies; unroll-loop stops at its node
    budget (here 2,000) and the Loop left over runs as a run-time loop, matching onnxruntime."""
    model = _save_text(tmp_path, "nest.onnx", """agraph (float[2] x) => (float[2] y) {
        n = Constant<value_int = 40>()
        c = Constant<value = bool {1}>()
        y = Loop(n, c, x) <body = b1 (int64 i, bool c1, float[2] s) => (bool o1, float[2] s2) {
            o1 = Identity(c1)
            s2 = Loop(n, c, s) <body = b2 (int64 j, bool c2, float[2] t) => (bool o2, float[2] t2) {
                o2 = Identity(c2)
                t2 = Loop(n, c, t) <body = b3 (int64 k, bool c3, float[2] u) => (bool o3, float[2] u2) {
                    o3 = Identity(c3)
                    u2 = Add(u, u) }> }> }> }""")
    passes = "fold-constants,unroll-loop{max_unrolled_nodes=2000},eliminate-dead-code,infer-shapes"
    r = run_cli("compile", model, "-t", "x86-64", "-o", tmp_path / "out", "--passes", passes)
    assert r.code == 0, r
    np.save(tmp_path / "x.npy", np.array([1e-30, -3.0], np.float32))  # 64,000 doublings: -> inf, -inf
    r = run_cli("run", tmp_path / "out", "-i", f"x={tmp_path / 'x.npy'}", "--compare-onnx", model)
    assert r.code == 0 and "OK: matches onnxruntime" in r.out, r


def test_input_shape_bomb(tmp_path, run_cli):
    model = _save_text(tmp_path, "dyn.onnx", "agraph (float[N, M, K] x) => (float[N, M, K] y) { y = Relu(x) }")
    _compile(run_cli, model, tmp_path, "--input-shape", "x=100000,100000,1000",
             words=("dyn.onnx", "'x'", "[100000, 100000, 1000]", "over the limit", "--max-tensor-bytes"))


def test_input_shape_negative_dim(tmp_path, run_cli):
    model = _save_text(tmp_path, "dyn.onnx", "agraph (float[N, 3] x) => (float[N, 3] y) { y = Relu(x) }")
    _compile(run_cli, model, tmp_path, "--input-shape", "x=-5,3", words=("'x'", "non-negative", "[-5, 3]"))


class _Inflate(Pass):
    """Test pass: gives the graph output a static shape of 1.6 TB (as a buggy pass could)."""

    name = "inflate"

    def run(self, model, ctx):
        model.graph.outputs[0].shape = ir.Shape([100000, 100000, 1000])
        return PassResult(model, True)


def test_manager_checks_sizes_after_each_pass():
    model = ir.serde.deserialize_model(model_from_text(f"{H}\nagraph (float[2] x) => (float[2] y) {{ y = Relu(x) }}"))
    with pytest.raises(ModelValidationError, match=r"value 'y' \(op 'Relu'\) .* after pass 'inflate'"):
        PassManager([_Inflate()]).run(model, PassContext())
