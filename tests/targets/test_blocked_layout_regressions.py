"""Regressions of the x86 backend's channel-blocked layout (targets/tvm/layout.py, layout_guard.py):
valid models around blocked (NCHW{b}c) convs that crashed or miscompiled. Each compiles with the
real pipeline for x86-64 (8-float blocks) and matches onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.reference import run_ort

HW = 8


def _const(name, arr, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


def _conv(rng, inp, out, cin, cout, group=1):
    w = _const(f"{out}.w", rng.standard_normal((cout, cin // group, 3, 3)) * 0.3)
    b = _const(f"{out}.b", rng.standard_normal(cout) * 0.1)
    node = helper.make_node("Conv", [inp, w.name, b.name], [out], kernel_shape=[3, 3], pads=[1] * 4, group=group)
    return node, [w, b]


def _model(nodes, inits, outs=("y",), cin=3):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, HW, HW])],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    types = {v.name: v.type for v in inferred.graph.output}
    for o in m.graph.output:
        o.type.CopyFrom(types[o.name])
    onnx.checker.check_model(m, full_check=True)
    return m


def _stem(rng, c, nodes, inits):
    """x -> conv 3->16 -> conv 16->c ('a', blocked), then `nodes`."""
    n0, i0 = _conv(rng, "x", "a0", 3, 16)
    n1, i1 = _conv(rng, "a0", "a", 16, c)
    return [n0, n1, *nodes], i0 + i1 + inits


def _check(tmp_path, model) -> dict:
    """Compile for x86-64, run on seeded inputs, compare every output with onnxruntime; returns
    the schedule-rule counts of the artifact."""
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    art = compile_model(path, tmp_path / "out", CompileOptions(target="x86-64"))
    feeds = {"x": np.random.default_rng(7).uniform(-1, 1, (1, 3, HW, HW)).astype(np.float32)}
    expected = run_ort(model, feeds)
    actual = run_artifact(art, feeds)
    assert set(actual) == set(expected)
    for name, e in expected.items():
        a = actual[name]
        assert a.shape == e.shape and a.dtype == e.dtype, (name, a.shape, e.shape, a.dtype, e.dtype)
        assert np.isfinite(a[np.isfinite(e)]).all(), name
        np.testing.assert_allclose(a, e, atol=1e-4, rtol=1e-4, err_msg=name)
    return art.metadata["lowering"]["schedules"]


@pytest.mark.parametrize("c,cout,group", [(32, 32, 2), (48, 48, 3), (32, 32, 4), (20, 20, 2),
                                          (16, 32, 16), (32, 64, 32), (20, 40, 20)])
def test_grouped_and_multiplier_conv(tmp_path, c, cout, group):
    """Grouped convs and depthwise convs with channel multiplier 2 stay NCHW; the dense convs
    around them stay blocked."""
    rng = np.random.default_rng(0)
    g, ig = _conv(rng, "a", "b", c, cout, group)
    n3, i3 = _conv(rng, "b", "y", cout, 16)
    used = _check(tmp_path, _model(*_stem(rng, c, [g, n3], ig + i3)))
    assert used.get("conv2d-nchwc", 0) >= 2


@pytest.mark.parametrize("op,shape,swap,c", [
    ("Mul", (1, 1, HW, HW), False, 16), ("Mul", (1, 1, HW, HW), False, 20), ("Div", (1, 1, HW, HW), False, 16),
    ("Mul", (1, 1, 1, 1), False, 20), ("Div", (1, 1, 1, 1), False, 16), ("Add", (1, 1, 1, HW), False, 16),
    ("Sub", (1, 1, HW, HW), True, 16), ("Sub", (1, 1, HW, 1), False, 20), ("Pow", (1, 1, HW, HW), False, 16),
    ("Max", (1, 1, 1, HW), False, 16), ("Min", (1, 1, HW, HW), True, 20), ("Mul", ("c", 1, 1), False, 16),
    ("Sub", ("c", 1, 1), True, 20), ("Add", (1, "c", 1, 1), False, 16), ("Div", (1,), False, 16),
    ("Mul", (HW,), False, 16)])
def test_binary_broadcast_operand(tmp_path, op, shape, swap, c):
    """Channel-broadcasting operands ([1,1,H,W], [1,1,1,1], ...) of a blocked tensor."""
    rng = np.random.default_rng(1)
    shape = tuple(c if d == "c" else d for d in shape)
    k = _const("k", rng.uniform(0.5, 1.5, shape))
    src = "a"
    pre = []
    if op == "Pow":
        pre, src = [helper.make_node("Abs", ["a"], ["a_abs"])], "a_abs"
    node = helper.make_node(op, ["k", src] if swap else [src, "k"], ["b"])
    n3, i3 = _conv(rng, "b", "y", c, 16)
    used = _check(tmp_path, _model(*_stem(rng, c, [*pre, node, n3], [k] + i3)))
    assert used.get("conv2d-nchwc", 0) >= 1


@pytest.mark.parametrize("shape", [(1, 1, HW, HW), (1, 16, 1, 1)])
def test_where_with_broadcast_condition_operand(tmp_path, shape):
    rng = np.random.default_rng(2)
    k = _const("k", rng.uniform(-1, 1, shape))
    nodes = [helper.make_node("Greater", ["a", "k"], ["m"]), helper.make_node("Where", ["m", "a", "k"], ["b"])]
    n3, i3 = _conv(rng, "b", "y", 16, 16)
    _check(tmp_path, _model(*_stem(rng, 16, [*nodes, n3], [k] + i3)))


@pytest.mark.parametrize("axis", [1, -3])
@pytest.mark.parametrize("c", [16, 20])
def test_concat_channels(tmp_path, axis, c):
    rng = np.random.default_rng(3)
    n2, i2 = _conv(rng, "a0", "a2", 16, c)
    cat = helper.make_node("Concat", ["a", "a2"], ["b"], axis=axis)
    n3, i3 = _conv(rng, "b", "y", 2 * c, 16)
    used = _check(tmp_path, _model(*_stem(rng, c, [n2, cat, n3], i2 + i3)))
    assert used.get("conv2d-nchwc", 0) >= 2


@pytest.mark.parametrize("axis", [1, -3])
@pytest.mark.parametrize("sizes", [None, [8, 24], [12, 20]])
def test_split_channels(tmp_path, axis, sizes):
    rng = np.random.default_rng(4)
    extra = [_const("sz", sizes, np.int64)] if sizes else []
    split = helper.make_node("Split", ["a"] + (["sz"] if sizes else []), ["s1", "s2"], axis=axis)
    c1, c2 = sizes or (16, 16)
    n3, i3 = _conv(rng, "s1", "y", c1, 16)
    n4, i4 = _conv(rng, "s2", "y2", c2, 16)
    _check(tmp_path, _model(*_stem(rng, 32, [split, n3, n4], extra + i3 + i4), outs=("y", "y2")))


@pytest.mark.parametrize("op", ["Elu", "IsNaN", "Greater"])
@pytest.mark.parametrize("c", [24, 60])
def test_bool_mask_after_blocked_conv(tmp_path, op, c):
    """Elu decomposes to where(x < 0, ...): a bool mask of a blocked (for 60: channel-padded)
    conv output."""
    rng = np.random.default_rng(5)
    if op == "Elu":
        nodes = [helper.make_node("Elu", ["a"], ["b"])]
    elif op == "IsNaN":
        nodes = [helper.make_node("IsNaN", ["a"], ["m"]), helper.make_node("Where", ["m", "a0_c", "a"], ["b"])]
    else:
        nodes = [helper.make_node("Greater", ["a", "a0_c"], ["m"]), helper.make_node("Where", ["m", "a", "a0_c"], ["b"])]
    zero = [_const("a0_c", np.zeros((1, c, 1, 1)))] if op != "Elu" else []
    n3, i3 = _conv(rng, "b", "y", c, 16)
    _check(tmp_path, _model(*_stem(rng, c, [*nodes, n3], zero + i3)))


def _activation_transforms(model) -> int:
    """layout_transforms of feature maps (not weights, not [1,C,1,1] biases) after convert_to_blocked
    (x86-64: 8 lanes)."""
    import onnx_ir as ir
    import tvm
    from tvm import relax

    from edgec.api import optimize
    from edgec.targets.registry import get_target
    from edgec.targets.tvm.layout import convert_to_blocked
    from edgec.targets.tvm.lower import lower_model

    spec = get_target("x86-64")
    optimized, _ = optimize(ir.serde.deserialize_model(model), spec, CompileOptions(target="x86-64"))
    mod = convert_to_blocked(lower_model(optimized)[0], spec.vector_bits // 32)
    count = [0]

    @relax.expr_functor.visitor
    class _Count(relax.PyExprVisitor):
        def visit_call_(self, call):  # noqa: N802
            if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.layout_transform":
                shape = [int(d) for d in call.args[0].ty.shape.values]
                if not isinstance(call.args[0], tvm.ir.expr.Constant) and np.prod(shape[2:]) > 1:
                    count[0] += 1
            super().visit_call_(call)

    _Count().visit_expr(mod["main"])
    return count[0]


def test_blocked_region_still_spans_safe_ops(tmp_path):
    """Bias, scalar ops, ReLU, residual add, concat (axis -3), max pool and global average
    pooling keep the blocked layout: every dense conv after the stem runs as a blocked kernel and
    activations change layout only entering and leaving the region."""
    rng = np.random.default_rng(6)
    n1, i1 = _conv(rng, "a", "b", 24, 24)
    n2, i2 = _conv(rng, "r", "c", 24, 32)
    n3, i3 = _conv(rng, "cat", "d", 56, 32)
    nodes = [n1, helper.make_node("Relu", ["b"], ["br"]), helper.make_node("Add", ["br", "a"], ["r0"]),
             helper.make_node("Mul", ["r0", "half"], ["r"]), n2,
             helper.make_node("Concat", ["c", "r"], ["cat"], axis=-3), n3,
             helper.make_node("MaxPool", ["d"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["y"])]
    model = _model(*_stem(rng, 24, nodes, i1 + i2 + i3 + [_const("half", 0.5)]))
    used = _check(tmp_path, model)
    assert used.get("conv2d-nchwc") == 4  # 16->24, 24->24, 24->32, 56->32 (distinct kernels)
    assert used.get("conv2d-nchw-packed") == 1  # the 3-channel stem
    assert _activation_transforms(model) == 1  # out of the region only: the stem writes the blocked layout itself
