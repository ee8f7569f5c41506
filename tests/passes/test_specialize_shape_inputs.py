"""specialize-shape-inputs: runtime shape parameters fixed by static shapes become guarded constants.

Each case compiles the specialized model with edgec (x86-64), compares it with onnxruntime on the
original model for every runtime spelling the guard must accept, checks that a disagreeing runtime
value raises GuardError naming file, node and op, and checks cases where the pass must not fire.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from edgec.errors import GuardError
from edgec.reference import run_ort
from edgec.rewrite.testing import run_pipeline


def _model(opset: int, text: str) -> onnx.ModelProto:
    proto = onnx.parser.parse_model(f'<ir_version: 10, opset_import: ["" : {opset}]>\n' + text)
    onnx.checker.check_model(proto)
    return proto


def _compile(model: ir.Model, tmp_path):
    from edgec.ir import graph_inputs
    from edgec.targets import get_target
    from edgec.targets.tvm.build import build_library
    from edgec.targets.tvm.lower import lower_model
    from edgec.targets.tvm.runtime import LoadedModel

    mod, report = lower_model(model)
    lib = build_library(mod, get_target("x86-64"), tmp_path / "m.so").library
    return LoadedModel(lib, [t.name for t in graph_inputs(model)], [v.name for v in model.graph.outputs], threads=1)


def _specialize(proto):
    model, modified = run_pipeline(proto, "specialize-shape-inputs")
    # the specialized model stays a valid ONNX model that onnxruntime runs (model-local function)
    onnx.checker.check_model(ir.serde.serialize_model(model))
    return model, modified


def _check(lm, proto, feeds, atol=1e-5):
    for feed in feeds:
        got = lm.run(feed)
        want = run_ort(proto, feed)
        for name, e in want.items():
            assert got[name].shape == e.shape and got[name].dtype == e.dtype, (name, feed)
            np.testing.assert_allclose(got[name], e, atol=atol, rtol=1e-5, err_msg=str(feed))


REDUCE = """
    agraph (float[3, 4, 5] x, int64[2] axes) => (float[3, 1, 1] y) {
        y = ReduceSum <keepdims: int = 1> (x, axes) }"""


def test_reduce_axes_specialized_and_guarded(tmp_path):
    proto = _model(18, REDUCE)
    model, modified = _specialize(proto)
    assert modified
    guard = [n for n in model.graph if n.op_type == "AssertEqual"]
    assert len(guard) == 1 and guard[0].domain == "edgec"
    assert "TopK" in [n.op_type for n in model.graph]  # axes compared as a normalized, sorted set
    reduce = next(n for n in model.graph if n.op_type == "ReduceSum")
    assert reduce.inputs[1] is guard[0].outputs[0]
    # onnxruntime runs the specialized model (the guard's reference body is Identity)
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    feed = {"x": x, "axes": np.array([1, 2], np.int64)}
    np.testing.assert_allclose(run_ort(ir.serde.serialize_model(model), feed)["y"], run_ort(proto, feed)["y"], rtol=1e-6)
    lm = _compile(model, tmp_path)
    _check(lm, proto, [{"x": x, "axes": np.array(a, np.int64)} for a in ([1, 2], [2, 1], [-1, 1], [-2, -1])])
    with pytest.raises(GuardError, match=r"node 'ReduceSum.*' \(ReduceSum\) input 'axes'.*differs from the compiled \[1, 2\]"):
        lm.run({"x": x, "axes": np.array([0, 2], np.int64)})


def test_reshape_zero_and_minus_one_accepted(tmp_path):
    proto = _model(14, """
        agraph (float[2, 3, 4] x, int64[2] shape) => (float[2, 12] y) { y = Reshape (x, shape) }""")
    model, modified = _specialize(proto)
    assert modified
    lm = _compile(model, tmp_path)
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    _check(lm, proto, [{"x": x, "shape": np.array(s, np.int64)} for s in ([2, 12], [0, -1], [-1, 12], [2, -1])])
    with pytest.raises(GuardError, match=r"\(Reshape\) input 'shape'"):
        lm.run({"x": x, "shape": np.array([4, 6], np.int64)})


def test_topk_k_and_split_sizes(tmp_path):
    proto = _model(18, """
        agraph (float[3, 6] x, int64[1] k, int64[2] parts) => (float[3, 2] v, int64[3, 2] i, float[3, 1] a, float[3, 5] b) {
            v, i = TopK <axis: int = 1> (x, k)
            a, b = Split <axis: int = 1> (x, parts) }""")
    model, modified = _specialize(proto)
    assert modified and sum(n.op_type == "AssertEqual" for n in model.graph) == 2
    lm = _compile(model, tmp_path)
    x = np.random.default_rng(1).permutation(18).astype(np.float32).reshape(3, 6)
    _check(lm, proto, [{"x": x, "k": np.array([2], np.int64), "parts": np.array([1, 5], np.int64)}])
    with pytest.raises(GuardError, match=r"\(Split\) input 'parts'"):
        lm.run({"x": x, "k": np.array([2], np.int64), "parts": np.array([2, 4], np.int64)})


def test_empty_axes_compiled_without_guard(tmp_path):
    proto = _model(18, """
        agraph (float[2, 3] x, int64[0] axes) => (float[2, 3] y) {
            y = ReduceMax <keepdims: int = 1, noop_with_empty_axes: int = 1> (x, axes) }""")
    model, modified = _specialize(proto)
    assert modified and "AssertEqual" not in [n.op_type for n in model.graph]
    lm = _compile(model, tmp_path)
    _check(lm, proto, [{"x": np.arange(6, dtype=np.float32).reshape(2, 3), "axes": np.zeros(0, np.int64)}])


@pytest.mark.parametrize("text", [
    # keepdims=0 removing one of two equal dims: axis 1 or 2, the shapes cannot tell
    """agraph (float[3, 2, 2] x, int64[1] axes) => (float[3, 2] y) { y = ReduceSum <keepdims: int = 0> (x, axes) }""",
    # keepdims=1 and two axes, one of them a size-1 dim: which one is not determined
    """agraph (float[3, 1, 4] x, int64[2] axes) => (float[1, 1, 4] y) { y = ReduceSum <keepdims: int = 1> (x, axes) }""",
    # constant axes: nothing to specialize
    """agraph (float[3, 4] x) => (float[3, 1] y) <int64[1] axes = {1}> { y = ReduceSum (x, axes) }""",
    # Resize scales also move the sampling coordinates: not derivable from the shapes
    """agraph (float[1, 1, 2, 2] x, float[4] scales) => (float[1, 1, 4, 4] y) { y = Resize (x, , scales) }""",
    # unknown output shape
    """agraph (float[2, 3, 4] x, int64[2] shape) => (float[?, ?] y) { y = Reshape (x, shape) }""",
])
def test_must_not_fire(text):
    proto = _model(18, text)
    model, modified = _specialize(proto)
    assert not modified
    assert "AssertEqual" not in [n.op_type for n in model.graph]


def test_in_default_pipelines():
    from edgec.pipelines import default_pipeline

    for level in (0, 1, 2, 3):
        assert "specialize-shape-inputs" in default_pipeline(None, level).split(",")


def test_cli_compile_run_and_guard_error(tmp_path, run_cli):
    """`edgec compile` (default pipeline) specializes the runtime axes; `edgec run` with the
    compiled value works, with another value exits 2 with one line naming file, node and op."""
    proto = _model(18, """
        agraph (float[3, 4] x, int64[1] axes) => (float[3, 1] y) { y = ReduceMean <keepdims: int = 1> (x, axes) }""")
    proto.graph.node[0].name = "mean"
    src = tmp_path / "mean.onnx"
    onnx.save(proto, src)
    r = run_cli("compile", src, "-t", "x86-64", "-o", tmp_path / "out")
    assert r.code == 0, r.err
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "good.npy", np.array([-1], np.int64))
    np.save(tmp_path / "bad.npy", np.array([0], np.int64))
    r = run_cli("run", tmp_path / "out", "-i", f"x={tmp_path / 'x.npy'}", "-i", f"axes={tmp_path / 'good.npy'}",
                "--output", tmp_path / "o.npz")
    assert r.code == 0, r.err
    np.testing.assert_allclose(np.load(tmp_path / "o.npz")["y"], x.mean(axis=1, keepdims=True), rtol=1e-6)
    r = run_cli("run", tmp_path / "out", "-i", f"x={tmp_path / 'x.npy'}", "-i", f"axes={tmp_path / 'bad.npy'}")
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err
    assert "mean.onnx" in lines[0] and "node 'mean' (ReduceMean) input 'axes'" in lines[0], lines[0]


def test_affine_grid_size_channel_ignored_and_expand_ones(tmp_path):
    """AffineGrid's size[1] (C) does not change the output: any C passes the guard; Expand's 1s
    stand for the input dims."""
    proto = _model(20, """
        agraph (float[2, 2, 3] theta, int64[4] size, float[3, 1] x, int64[2] shape)
            => (float[2, 4, 5, 2] grid, float[3, 4] e) {
            grid = AffineGrid <align_corners: int = 0> (theta, size)
            e = Expand (x, shape) }""")
    model, modified = _specialize(proto)
    assert modified and sum(n.op_type == "AssertEqual" for n in model.graph) == 2
    lm = _compile(model, tmp_path)
    rng = np.random.default_rng(2)
    theta = rng.standard_normal((2, 2, 3)).astype(np.float32)
    x = rng.standard_normal((3, 1)).astype(np.float32)
    for c, shape in ((3, [3, 4]), (1, [1, 4]), (7, [3, 4])):
        _check(lm, proto, [{"theta": theta, "size": np.array([2, c, 4, 5], np.int64), "x": x,
                            "shape": np.array(shape, np.int64)}])
    with pytest.raises(GuardError, match=r"\(AffineGrid\) input 'size'"):
        lm.run({"theta": theta, "size": np.array([2, 3, 5, 4], np.int64), "x": x, "shape": np.array([3, 4], np.int64)})


def test_constant_of_shape_zero_size_output_guarded(tmp_path):
    proto = _model(20, """
        agraph (int64[1] shape) => (int32[0] y) {
            y = ConstantOfShape <value: tensor = int32[1] {7}> (shape) }""")
    model, modified = _specialize(proto)
    assert modified
    lm = _compile(model, tmp_path)
    _check(lm, proto, [{"shape": np.array([0], np.int64)}])
    with pytest.raises(GuardError, match=r"\(ConstantOfShape\) input 'shape'"):
        lm.run({"shape": np.array([3], np.int64)})
