"""ONNX-domain quantized ops (QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger,
DynamicQuantizeLinear) against onnxruntime on seeded full-range int8/uint8 data. These kernels
are exact integer arithmetic plus one float32 requantization, so the results must be identical.
onnxruntime's uint8 x int8 products saturate pairs at int16 on x86 without VNNI (AVX2), so it is run
with those int8 operands re-encoded as uint8 (qlinear_util.exact_ort_model; as written it was 22-36
units off on the u8s8 QLinearConv / QLinearMatMul cases and 21984 off on MatMulInteger on an AVX2
EPYC), and also as written where it is exact."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from edgec.reference import run_ort
from tests.targets.qlinear_util import (
    compare_quantized,
    exact_ort_model,
    one_node_model,
    ort_u8s8_exact,
    qdata,
)

U8, I8 = np.uint8, np.int8


def _conv_case(seed, xt, wt, *, per_channel, bias, shape=(1, 8, 9, 9), m=6, k=(3, 3), group=1, y_scale=0.2, **attrs):
    rng = np.random.default_rng(seed)
    x = qdata(rng, shape, xt)
    w = qdata(rng, (m, shape[1] // group, *k), wt)
    w_scale = rng.uniform(0.005, 0.02, m).astype(np.float32) if per_channel else np.float32(0.01)
    # onnxruntime requires one zero point for all channels of a per-channel filter
    w_zp = np.full(m, 3 if wt == U8 else -2, wt) if per_channel else wt(5 if wt == U8 else -3)
    consts = [("x_scale", np.float32(0.02)), ("x_zp", xt(120 if xt == U8 else 7)), ("w", w), ("w_scale", w_scale),
              ("w_zp", w_zp), ("y_scale", np.float32(y_scale)), ("y_zp", xt(128 if xt == U8 else -5))]
    order = ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp"]
    if bias:
        consts.append(("b", rng.integers(-20000, 20000, m).astype(np.int32)))
        order.append("b")
    proto = one_node_model("QLinearConv", {"x": x}, consts, TensorProto.UINT8 if xt == U8 else TensorProto.INT8,
                           order=order, group=group, **attrs)
    return proto, {"x": x}


CONV_CASES = {
    "u8u8-tensor": dict(xt=U8, wt=U8, per_channel=False, bias=False, pads=[1, 1, 1, 1]),
    "u8s8-channel-bias": dict(xt=U8, wt=I8, per_channel=True, bias=True, pads=[1, 0, 2, 1], strides=[2, 1]),
    "s8s8-channel-bias": dict(xt=I8, wt=I8, per_channel=True, bias=True, dilations=[2, 2]),
    "u8s8-depthwise": dict(xt=U8, wt=I8, per_channel=True, bias=True, m=8, group=8, pads=[1, 1, 1, 1]),
    "u8s8-grouped-same-upper": dict(xt=U8, wt=I8, per_channel=False, bias=True, group=2, auto_pad="SAME_UPPER",
                                    strides=[2, 2]),
    "s8s8-conv1d": dict(xt=I8, wt=I8, per_channel=True, bias=True, shape=(2, 4, 17), k=(5,), pads=[2, 1]),
    "u8u8-pointwise": dict(xt=U8, wt=U8, per_channel=False, bias=True, shape=(1, 16, 7, 7), m=12, k=(1, 1)),
    # sum |w - w_zp| * max |x - x_zp| >= 2^24: float32 would not be exact, int32 kernel
    "u8u8-wide-int32": dict(xt=U8, wt=U8, per_channel=False, bias=True, shape=(1, 128, 5, 5), m=4, pads=[1, 1, 1, 1],
                            y_scale=1.0),
}
INT32_PATH = {"u8u8-wide-int32"}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_qlinear_conv_matches_onnxruntime_exactly(case, tmp_path):
    proto, inputs = _conv_case(11, **CONV_CASES[case])
    compare_quantized(proto, inputs, tmp_path, owned=["QLinearConv"], max_units=0)


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_qlinear_conv_uses_float32_kernels_only_where_exact(case):
    from edgec.ir import load_model
    from edgec.targets.tvm.lower import lower_model

    proto, _ = _conv_case(11, **CONV_CASES[case])
    text = lower_model(load_model(proto))[0]["main"].script()
    conv = [ln for ln in text.splitlines() if "R.nn.conv" in ln]
    assert len(conv) == 1, conv
    want = "int32" if case in INT32_PATH else "float32"
    assert f'out_dtype="{want}"' in conv[0], conv[0]


def test_qlinear_conv_output_is_not_trivially_saturated(tmp_path):
    from tests.targets.lowering_util import edgec_run

    proto, inputs = _conv_case(3, **CONV_CASES["u8s8-channel-bias"])
    y = edgec_run(proto, inputs, tmp_path)[0]["y"]
    assert len(np.unique(y)) > 50 and np.mean((y == 0) | (y == 255)) < 0.2


MATMUL_CASES = {
    "u8u8-2d": ((5, 32), U8, (32, 7), U8, False),
    "u8u8-2d-int32": ((3, 3000), U8, (3000, 4), U8, False),  # K too large for exact float32 sums
    "u8s8-3d-per-column": ((2, 5, 32), U8, (32, 9), I8, True),
    "s8s8-batched": ((3, 4, 16), I8, (3, 16, 6), I8, False),
}


def _matmul_case(case):
    a_shape, at, b_shape, bt, per_col = MATMUL_CASES[case]
    rng = np.random.default_rng(4)
    a, b = qdata(rng, a_shape, at), qdata(rng, b_shape, bt)
    n = b_shape[-1]
    b_scale = rng.uniform(0.002, 0.01, n).astype(np.float32) if per_col else np.float32(0.004)
    b_zp = np.full(n, 4 if bt == U8 else 0, bt) if per_col else bt(130 if bt == U8 else -1)
    consts = [("a_scale", np.float32(0.03)), ("a_zp", at(118 if at == U8 else 2)), ("b", b), ("b_scale", b_scale),
              ("b_zp", b_zp), ("y_scale", np.float32(0.2 * np.sqrt(a_shape[-1] / 32))), ("y_zp", at(125 if at == U8 else 3))]
    proto = one_node_model("QLinearMatMul", {"a": a}, consts, TensorProto.UINT8 if at == U8 else TensorProto.INT8,
                           order=["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"])
    return proto, {"a": a}


@pytest.mark.parametrize("case", sorted(MATMUL_CASES))
def test_qlinear_matmul_matches_onnxruntime_exactly(case, tmp_path):
    proto, inputs = _matmul_case(case)
    compare_quantized(proto, inputs, tmp_path, owned=["QLinearMatMul"], max_units=0)


@pytest.mark.parametrize("case", sorted(MATMUL_CASES))
def test_qlinear_matmul_uses_float32_kernels_only_where_exact(case):
    from edgec.ir import load_model
    from edgec.targets.tvm.lower import lower_model

    text = lower_model(load_model(_matmul_case(case)[0]))[0]["main"].script()
    mm = [ln for ln in text.splitlines() if "R.matmul" in ln]
    assert len(mm) == 1, mm
    assert ('out_dtype="int32"' in mm[0]) == case.endswith("int32"), mm[0]


@pytest.mark.parametrize("xt,wt", [(U8, U8), (U8, I8)])
def test_conv_integer_matches_onnxruntime(xt, wt, tmp_path):
    rng = np.random.default_rng(8)
    x, w = qdata(rng, (1, 3, 8, 8), xt), qdata(rng, (4, 3, 3, 3), wt)
    proto = one_node_model("ConvInteger", {"x": x}, [("w", w), ("x_zp", xt(100)), ("w_zp", wt(7))],
                           TensorProto.INT32, pads=[1, 1, 1, 1], strides=[2, 2])
    compare_quantized(proto, {"x": x}, tmp_path, owned=["ConvInteger"], max_units=0)


def test_exact_onnxruntime_reference_does_not_saturate():
    """The worst uint8 x int8 pair, 255·127 + 255·127 = 64770: exact through `exact_ort_model` on every
    CPU; onnxruntime as written gives it, or 32767 (int16 saturation) exactly where `ort_u8s8_exact`
    says so. Per-column int8 zero points and a runtime int8 B are re-encoded too."""
    a = np.full((3, 4), 255, U8)
    b = np.full((4, 2), 127, I8)
    zps = [("a_zp", U8(0)), ("b_zp", np.zeros(2, I8))]
    for inputs, consts in (({"a": a}, [("b", b), *zps]), ({"a": a, "b": b}, zps)):
        proto = one_node_model("MatMulInteger", inputs, consts, TensorProto.INT32, [3, 2],
                               order=["a", "b", "a_zp", "b_zp"])
        exact_proto, exact_inputs = exact_ort_model(proto, inputs)
        types = {t.name: t.data_type for t in exact_proto.graph.initializer}
        types |= {i.name: i.type.tensor_type.elem_type for i in exact_proto.graph.input}
        assert [types[n] for n in exact_proto.graph.node[0].input[1::2]] == [TensorProto.UINT8] * 2  # b, b_zp
        np.testing.assert_array_equal(run_ort(exact_proto, exact_inputs)["y"], np.full((3, 2), 2 * 64770))
        as_written = run_ort(proto, inputs)["y"]
        np.testing.assert_array_equal(as_written, np.full((3, 2), 2 * (64770 if ort_u8s8_exact() else 32767)))


def test_matmul_integer_matches_onnxruntime(tmp_path):
    rng = np.random.default_rng(9)
    a, b = qdata(rng, (2, 3, 40), U8), qdata(rng, (40, 5), I8)
    proto = one_node_model("MatMulInteger", {"a": a, "b": b}, [("a_zp", U8(131)), ("b_zp", np.full(5, -3, I8))],
                           TensorProto.INT32)
    compare_quantized(proto, {"a": a, "b": b}, tmp_path, owned=["MatMulInteger"], max_units=0)


def test_dynamic_quantize_linear_rounds_half_to_even(tmp_path):
    from onnx import helper

    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, [6]),
                           helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
                           helper.make_tensor_value_info("z", TensorProto.UINT8, [])])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    from tests.targets.lowering_util import edgec_run

    # scale = 127.5 / 255 = 0.5, so x / scale hits .5 exactly: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 5.5 -> 6
    x = np.array([0.25, 0.75, 1.25, 2.75, 0.0, 127.5], np.float32)
    out = edgec_run(proto, {"x": x}, tmp_path)[0]
    np.testing.assert_array_equal(out["y"], np.array([0, 2, 2, 6, 0, 255], np.uint8))
    compare_quantized(proto, {"x": x}, tmp_path / "b", max_units=0)
    for seed in range(3):
        xr = np.random.default_rng(seed).normal(0.3, 2.0, 6).astype(np.float32)
        compare_quantized(proto, {"x": xr}, tmp_path / f"r{seed}", owned=["DynamicQuantizeLinear"], max_units=0)


def test_qlinear_conv_per_channel_input_scale_is_rejected_with_node_and_op(tmp_path):
    from edgec.errors import UnsupportedOpError
    from edgec.ir import load_model
    from edgec.targets.tvm.lower import lower_model

    x = np.zeros((1, 3, 5, 5), np.uint8)
    proto = one_node_model("QLinearConv", {"x": x},
                           [("x_scale", np.ones(3, np.float32)), ("x_zp", U8(0)), ("w", np.zeros((2, 3, 3, 3), U8)),
                            ("w_scale", np.float32(1)), ("w_zp", U8(0)), ("y_scale", np.float32(1)), ("y_zp", U8(0))],
                           TensorProto.UINT8)
    proto.graph.node[0].name = "qconv0"
    with pytest.raises(UnsupportedOpError, match=r"node 'qconv0' op 'QLinearConv'.*x_scale must be a scalar"):
        lower_model(load_model(proto))


@pytest.mark.parametrize("op,x_shape,s_shape,axis,block,qt", [
    ("QuantizeLinear", (4, 6), (4, 3), 1, 2, I8),
    ("QuantizeLinear", (5, 4), (3, 4), 0, 2, U8),  # 5 elements in blocks of 2: the last block is partial
    ("DequantizeLinear", (4, 6), (4, 2), 1, 3, U8),
    ("DequantizeLinear", (2, 5, 3), (2, 2, 3), 1, 3, I8),
])
def test_blocked_quantize_dequantize_match_onnxruntime(op, x_shape, s_shape, axis, block, qt, tmp_path):
    rng = np.random.default_rng(12)
    x = rng.normal(0, 3, x_shape).astype(np.float32) if op == "QuantizeLinear" else qdata(rng, x_shape, qt)
    s = rng.uniform(0.01, 0.1, s_shape).astype(np.float32)
    zp = qdata(rng, s_shape, qt) // 4
    out = (TensorProto.UINT8 if qt == U8 else TensorProto.INT8) if op == "QuantizeLinear" else TensorProto.FLOAT
    proto = one_node_model(op, {"x": x, "s": s}, [("zp", zp)], out, list(x_shape), model_opset=21, axis=axis,
                           block_size=block)
    proto.ir_version = 10
    if op == "QuantizeLinear":
        compare_quantized(proto, {"x": x, "s": s}, tmp_path, owned=[op], max_units=0)
    else:
        from tests.targets.qlinear_util import compare_float

        compare_float(proto, {"x": x, "s": s}, tmp_path, owned=[op], atol=0, rtol=0)


def test_blocked_quantize_with_wrong_scale_shape_is_rejected():
    from edgec.errors import UnsupportedOpError
    from edgec.ir import load_model
    from edgec.targets.tvm.lower import lower_model

    x, s = np.zeros((4, 6), np.float32), np.ones((4, 2), np.float32)
    proto = one_node_model("QuantizeLinear", {"x": x, "s": s}, [("zp", np.zeros((4, 2), I8))], TensorProto.INT8, [4, 6],
                           model_opset=21, axis=1, block_size=2)
    proto.ir_version = 10
    proto.graph.node[0].name = "q0"
    with pytest.raises(UnsupportedOpError, match=r"node 'q0' op 'QuantizeLinear'.*scale dim 2 along axis 1 does not "
                                                 r"match ceil\(6 / 2\)"):
        lower_model(load_model(proto))
