"""Symbolic dims (issue 12 item 2): a named, -1 or missing input dim stays symbolic through the
Relax lowering, shape computations over it (Shape -> Gather/Slice -> Unsqueeze -> Concat ->
Div/Mul -> Reshape) are evaluated symbolically, and one artifact runs every size, matching
onnxruntime; --input-shape still specializes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.compare import assert_outputs_match
from edgec.errors import ArtifactError
from edgec.reference import run_ort
from tests.conftest import require_target_tools

D, HEADS = 32, 4


def attention_model(seq_dim="seq") -> onnx.ModelProto:
    """Self-attention over x[batch, seq, D] written as exporters write it: the head split's shape
    is Concat(Shape(x)[0:2], [HEADS, D/HEADS]) and the merge's Concat(Gather(Shape, 0), Gather(Shape,
    1), [D]); a second output folds pairs of positions: Reshape(y, [batch, seq / 2, 2 * D]) (seq even)."""
    rng = np.random.default_rng(0)
    inits = [nh.from_array((rng.standard_normal((D, 3 * D)) * 0.2).astype(np.float32), "wqkv"),
             nh.from_array((rng.standard_normal((D, D)) * 0.2).astype(np.float32), "wo"),
             nh.from_array(np.array([0], np.int64), "i0"), nh.from_array(np.array([2], np.int64), "i2"),
             nh.from_array(np.int64(0), "s0"), nh.from_array(np.int64(1), "s1"), nh.from_array(np.int64(2), "two"),
             nh.from_array(np.array([HEADS, D // HEADS], np.int64), "hd"), nh.from_array(np.array([D], np.int64), "dd"),
             nh.from_array(np.array([2 * D], np.int64), "d2"),
             nh.from_array(np.float32(1 / np.sqrt(D // HEADS)), "scale")]
    nodes = [
        h.make_node("MatMul", ["x", "wqkv"], ["qkv"]),
        h.make_node("Split", ["qkv"], ["q", "k", "v"], axis=2, num_outputs=3),
        h.make_node("Shape", ["x"], ["sh"]),
        h.make_node("Slice", ["sh", "i0", "i2"], ["bs"]),
        h.make_node("Concat", ["bs", "hd"], ["split_shape"], axis=0),
        *[h.make_node("Reshape", [t, "split_shape"], [t + "4"]) for t in "qkv"],
        h.make_node("Transpose", ["q4"], ["qt"], perm=[0, 2, 1, 3]),
        h.make_node("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1]),
        h.make_node("Transpose", ["v4"], ["vt"], perm=[0, 2, 1, 3]),
        h.make_node("MatMul", ["qt", "kt"], ["a0"]), h.make_node("Mul", ["a0", "scale"], ["a1"]),
        h.make_node("Softmax", ["a1"], ["a"], axis=-1), h.make_node("MatMul", ["a", "vt"], ["o4"]),
        h.make_node("Transpose", ["o4"], ["o4t"], perm=[0, 2, 1, 3]),
        h.make_node("Gather", ["sh", "s0"], ["b"], axis=0), h.make_node("Gather", ["sh", "s1"], ["s"], axis=0),
        h.make_node("Unsqueeze", ["b", "i0"], ["b1"]), h.make_node("Unsqueeze", ["s", "i0"], ["s1d"]),
        h.make_node("Concat", ["b1", "s1d", "dd"], ["merge_shape"], axis=0),
        h.make_node("Reshape", ["o4t", "merge_shape"], ["o3"]),
        h.make_node("MatMul", ["o3", "wo"], ["o"]), h.make_node("Add", ["o", "x"], ["y"]),
        h.make_node("Div", ["s", "two"], ["half"]), h.make_node("Unsqueeze", ["half", "i0"], ["half1"]),
        h.make_node("Concat", ["b1", "half1", "d2"], ["pair_shape"], axis=0),
        h.make_node("Reshape", ["y", "pair_shape"], ["pairs"]),
    ]
    g = h.make_graph(nodes, "attention", [h.make_tensor_value_info("x", TP.FLOAT, ["batch", seq_dim, D])],
                     [h.make_tensor_value_info("y", TP.FLOAT, ["batch", seq_dim, D]),
                      h.make_tensor_value_info("pairs", TP.FLOAT, ["batch", "half", 2 * D])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def _compile(model, tmp_path, name="art", target="x86-64", shapes=None):
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return compile_model(path, tmp_path / name, CompileOptions(target=target, input_shapes=shapes or {},
                                                               symbolic_dims=True))


def _x(batch, seq, seed=0):
    return {"x": np.random.default_rng(seed).standard_normal((batch, seq, D)).astype(np.float32)}


SIZES = [(1, 2), (2, 18), (3, 64)]


def test_one_artifact_runs_every_batch_and_sequence_length(tmp_path):
    model = attention_model()
    art = _compile(model, tmp_path)
    assert [t.shape for t in art.inputs] == [("batch", "seq", D)]
    assert art.outputs[0].shape == ("batch", "seq", D)
    assert art.outputs[1].shape == ("batch", "seq // 2", 2 * D), art.outputs[1]
    lowering = art.metadata["lowering"]
    assert lowering["edgec"].get("Reshape", 0) == 5, lowering  # edgec's own Reshape took the symbolic shapes
    assert lowering["folded"].get("Shape") == 1 and lowering["folded"].get("Concat", 0) >= 3, lowering
    for seed, (b, s) in enumerate(SIZES):
        feeds = _x(b, s, seed)
        got = run_artifact(art, feeds)
        assert got["y"].shape == (b, s, D) and got["pairs"].shape == (b, s // 2, 2 * D)
        assert_outputs_match(got, run_ort(model, feeds), atol=1e-4, rtol=1e-4)


def test_model_h_marks_symbolic_dims(tmp_path):
    _compile(attention_model(), tmp_path)
    text = (tmp_path / "art" / "model.h").read_text()
    assert "edgec_model_input0_shape[3] = {-1, -1, 32};" in text, text
    assert "#define EDGEC_MODEL_INPUT0_NUMEL -1" in text and "[batch, seq, 32]" in text


def test_input_shape_specializes(tmp_path):
    model = attention_model()
    art = _compile(model, tmp_path, shapes={"x": [2, 8, D]})
    assert art.inputs[0].shape == (2, 8, D) and art.outputs[1].shape == (2, 4, 2 * D)
    feeds = _x(2, 8)
    assert_outputs_match(run_artifact(art, feeds), run_ort(model, feeds), atol=1e-4, rtol=1e-4)
    with pytest.raises(ArtifactError, match=r"has shape \[2, 9, 32\], the artifact expects \[2, 8, 32\]"):
        run_artifact(art, _x(2, 9))


def test_inputs_sharing_a_dim_must_agree(tmp_path, run_cli):
    """Two inputs naming `seq`: one size per run, or one line, exit 2."""
    g = h.make_graph([h.make_node("Add", ["a", "b"], ["y"])], "two",
                     [h.make_tensor_value_info("a", TP.FLOAT, ["seq", 4]), h.make_tensor_value_info("b", TP.FLOAT, ["seq", 4])],
                     [h.make_tensor_value_info("y", TP.FLOAT, ["seq", 4])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 8
    art = _compile(m, tmp_path)
    ok = {"a": np.ones((3, 4), np.float32), "b": np.full((3, 4), 2, np.float32)}
    assert_outputs_match(run_artifact(art, ok), run_ort(m, ok), atol=0)
    np.save(tmp_path / "a.npy", np.ones((3, 4), np.float32))
    np.save(tmp_path / "b.npy", np.ones((5, 4), np.float32))
    r = run_cli("run", tmp_path / "art", "-i", f"a={tmp_path / 'a.npy'}", "-i", f"b={tmp_path / 'b.npy'}")
    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "input 'b' has seq = 5, input 'a' has seq = 3" in lines[0], r.err


def test_symbolic_artifact_on_armv8(tmp_path):
    """The bundle's C runtime takes each run's input shape (metadata names the dims)."""
    require_target_tools("armv8")
    model = attention_model()
    art = _compile(model, tmp_path, target="armv8")
    meta = json.loads((tmp_path / "art" / "metadata.json").read_text())
    assert meta["inputs"][0]["shape"] == ["batch", "seq", D]
    for seed, (b, s) in enumerate(SIZES[:2]):
        feeds = _x(b, s, seed)
        assert_outputs_match(run_artifact(art, feeds), run_ort(model, feeds), atol=1e-4, rtol=1e-4)


def test_shape_arithmetic_exporters_write(tmp_path):
    """Size, ReduceProd, Mul, Max, Mod, Equal + Where (a Reshape's 0/-1 resolved the way torch's
    exporter computes it) over symbolic dims feed Reshape; the model flattens x[n, c, t] to
    [n, c * t] via Size / n and to [max(n, 1), -1]."""
    inits = [nh.from_array(np.array([0], np.int64), "axes0"), nh.from_array(np.array([-1], np.int64), "minus1"),
             nh.from_array(np.int64(1), "one"), nh.from_array(np.int64(0), "zero"), nh.from_array(np.int64(7), "seven")]
    nodes = [h.make_node("Shape", ["x"], ["sh"]), h.make_node("Size", ["x"], ["numel"]),
             h.make_node("Gather", ["sh", "zero"], ["n"], axis=0),
             h.make_node("Div", ["numel", "n"], ["per"]),
             h.make_node("Unsqueeze", ["n", "axes0"], ["n1"]), h.make_node("Unsqueeze", ["per", "axes0"], ["per1"]),
             h.make_node("Concat", ["n1", "per1"], ["flat_shape"], axis=0),
             h.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
             h.make_node("ReduceProd", ["sh"], ["numel2"], keepdims=1),
             h.make_node("Max", ["n1", "one"], ["nmax"]),
             h.make_node("Equal", ["numel2", "numel2"], ["same"]),
             h.make_node("Where", ["same", "minus1", "numel2"], ["rest"]),
             h.make_node("Concat", ["nmax", "rest"], ["shape2"], axis=0),
             h.make_node("Reshape", ["x", "shape2"], ["flat2"]),
             h.make_node("Mod", ["numel", "seven"], ["r"]), h.make_node("Cast", ["r"], ["rf"], to=TP.FLOAT),
             h.make_node("Add", ["flat2", "rf"], ["y2"])]
    g = h.make_graph(nodes, "arith", [h.make_tensor_value_info("x", TP.FLOAT, ["n", "c", "t"])],
                     [h.make_tensor_value_info("flat", TP.FLOAT, ["n", "ct"]),
                      h.make_tensor_value_info("y2", TP.FLOAT, ["n", "ct"])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    art = _compile(m, tmp_path)
    assert art.metadata["lowering"]["edgec"]["Reshape"] == 2, art.metadata["lowering"]
    for shape in [(1, 2, 3), (4, 5, 6)]:
        feeds = {"x": np.random.default_rng(1).standard_normal(shape).astype(np.float32)}
        assert_outputs_match(run_artifact(art, feeds), run_ort(m, feeds), atol=1e-6)


def test_run_and_bench_size_symbolic_dims_with_dim(tmp_path, run_cli):
    model = attention_model()
    _compile(model, tmp_path)
    r = run_cli("run", tmp_path / "art", "--dim", "batch=2", "--dim", "seq=6", "--compare-onnx", tmp_path / "art.onnx")
    assert r.code == 0 and "y: float32[2, 6, 32]" in r.out and "OK: matches onnxruntime" in r.out, r
    r = run_cli("bench", tmp_path / "art", "--dim", "seq=8", "-n", "2", "--warmup", "0", "--threads", "1")
    assert r.code == 0 and "median" in r.out, r
    r = run_cli("bench", tmp_path / "art", "--dim", "sequence=8", "-n", "2")
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1 and "--dim sequence" in lines[0] and "['batch', 'seq']" in lines[0], r
    r = run_cli("run", tmp_path / "art", "--dim", "seq=-3")
    assert r.code == 2 and "--dim" in r.err, r


@pytest.mark.parametrize("n", [600, 512, 70])
def test_matmul_with_symbolic_rows(tmp_path, n):
    """x[batch, seq, 48] @ w[48, n] over symbolic rows: n = 600 (no multiple of 64: w padded with
    zero columns, the result sliced back), 512 (whole vectors) and 70 (too small to pad: a partial
    last vector) all match onnxruntime at several sizes."""
    rng = np.random.default_rng(n)
    w = nh.from_array(rng.standard_normal((48, n)).astype(np.float32), "w")
    g = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                     [h.make_tensor_value_info("x", TP.FLOAT, ["batch", "seq", 48])],
                     [h.make_tensor_value_info("y", TP.FLOAT, ["batch", "seq", n])], [w])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 8
    art = _compile(m, tmp_path)
    assert art.outputs[0].shape == ("batch", "seq", n)
    for b, s in ((1, 1), (2, 7)):
        feeds = {"x": rng.standard_normal((b, s, 48)).astype(np.float32)}
        assert_outputs_match(run_artifact(art, feeds), run_ort(m, feeds), atol=1e-4, rtol=1e-4)


def test_dim_bounds(tmp_path, run_cli):
    """--dim seq=2..64: recorded in the metadata, the memory plan's upper bound, sizes inside run
    and match onnxruntime, a size outside is one error line (exit 2); an unknown name or bounds
    without --symbolic-dims are refused before any build."""
    model = attention_model()
    onnx.save(model, tmp_path / "m.onnx")
    art = compile_model(tmp_path / "m.onnx", tmp_path / "art", CompileOptions(
        target="x86-64", symbolic_dims=True, dim_bounds={"seq": (2, 64)}))
    assert art.metadata["dim_bounds"] == {"seq": [2, 64]}
    feeds = _x(2, 18)
    assert_outputs_match(run_artifact(art, feeds), run_ort(model, feeds), atol=1e-4, rtol=1e-4)
    with pytest.raises(ArtifactError, match=r"input 'x' has seq = 66; the artifact was compiled for seq in 2\.\.64"):
        run_artifact(art, _x(1, 66))
    np.save(tmp_path / "x.npy", _x(1, 66)["x"])
    r = run_cli("run", tmp_path / "art", "-i", f"x={tmp_path / 'x.npy'}")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "seq in 2..64" in r.err, r
    r = run_cli("compile", tmp_path / "m.onnx", "-t", "x86-64", "--symbolic-dims", "--dim", "sequence=1..8",
                "-o", tmp_path / "bad")
    assert r.code == 2 and "--dim sequence: the model's symbolic dims are ['batch', 'seq']" in r.err, r
    r = run_cli("compile", tmp_path / "m.onnx", "-t", "x86-64", "--dim", "seq=1..8", "-o", tmp_path / "bad2")
    assert r.code == 2 and "needs --symbolic-dims" in r.err, r
    r = run_cli("compile", tmp_path / "m.onnx", "-t", "x86-64", "--symbolic-dims", "--dim", "seq=9..8", "-o", tmp_path / "bad3")
    assert r.code == 2 and "LO <= HI" in r.err, r


def mlp_model(d: int = 48, f: int = 200) -> onnx.ModelProto:
    """x[batch, seq, d] -> MatMul(f) + bias -> Gelu-free Relu -> MatMul(d) + residual: an LLM's MLP."""
    rng = np.random.default_rng(4)
    inits = [nh.from_array((rng.standard_normal((d, f)) * 0.1).astype(np.float32), "w1"),
             nh.from_array(rng.standard_normal(f).astype(np.float32), "b1"),
             nh.from_array((rng.standard_normal((f, d)) * 0.1).astype(np.float32), "w2")]
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"]), h.make_node("Add", ["m1", "b1"], ["a1"]),
             h.make_node("Relu", ["a1"], ["r"]), h.make_node("MatMul", ["r", "w2"], ["m2"]),
             h.make_node("Add", ["m2", "x"], ["y"])]
    g = h.make_graph(nodes, "mlp", [h.make_tensor_value_info("x", TP.FLOAT, ["batch", "seq", d])],
                     [h.make_tensor_value_info("y", TP.FLOAT, ["batch", "seq", d])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_matmuls_with_symbolic_rows_get_the_matmul_rule(tmp_path):
    """Constant-weight matmuls over symbolic (batch, seq) rows are tiled by the matmul rule (row
    tiles with a predicated tail), not left to a generic fallback: decode (1 row), a row count no
    tile divides, and prefill match onnxruntime."""
    model = mlp_model()
    art = _compile(model, tmp_path, target="host")
    schedules = art.metadata["lowering"]["schedules"]
    assert schedules.get("matmul", 0) == 2 and set(schedules) == {"matmul"}, schedules
    for seed, (b, s) in enumerate([(1, 1), (1, 13), (2, 64)]):
        feeds = {"x": np.random.default_rng(seed).standard_normal((b, s, 48)).astype(np.float32)}
        assert_outputs_match(run_artifact(art, feeds), run_ort(model, feeds), atol=1e-4, rtol=1e-4)
