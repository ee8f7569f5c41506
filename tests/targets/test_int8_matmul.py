"""The int8 dot-product matmul kernel (targets/tvm/int8_matmul.py, rule matmul_int8) on a VNNI
target: MatMulInteger, QLinearMatMul, QGemm and DynamicQuantizeLinear -> MatMulInteger equal
onnxruntime's exact integer results bit for bit (shapes no tile divides, 3-D A, int8 and uint8 A,
per-tensor and per-column B zero points); where the kernel must not apply (B not constant, B - b_zp
outside int8, B zero point not constant) the generic path runs and is exact too; the artifact holds
`vpdpbusd`. Built for x86-64-vnni; run only where this CPU has VNNI (else compiled and checked)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.ir import graph_inputs, load_model
from edgec.targets import get_target
from edgec.targets.registry import missing_host_features
from tests.targets.qlinear_util import one_node_model, qdata, run_ort_exact

U8, I8 = np.uint8, np.int8
MS = "com.microsoft"
T = {U8: TensorProto.UINT8, I8: TensorProto.INT8}
SPEC = "x86-64-vnni"


def _build(proto, tmp_path):
    from edgec.targets.tvm.build import build_library
    from edgec.targets.tvm.lower import lower_model

    m = load_model(proto)
    mod, _ = lower_model(m, dot="vnni")
    res = build_library(mod, get_target(SPEC), tmp_path / "m.so")
    return m, res


def _check(proto, inputs, tmp_path, fast: bool):
    """Build for VNNI; assert the int8 kernel was (`fast`) or was not used; run and compare every
    output with onnxruntime's exact one (same names, shapes, dtypes, values)."""
    from edgec.targets.tvm.runtime import LoadedModel

    m, res = _build(proto, tmp_path)
    assert (res.schedules.get("matmul_int8", 0) > 0) == fast, res.schedules
    if missing_host_features(get_target(SPEC)):
        pytest.skip("this CPU lacks VNNI: compiled, not run")
    lm = LoadedModel(res.library, [t.name for t in graph_inputs(m)], [v.name for v in m.graph.outputs])
    actual = lm.run(inputs)
    expected = run_ort_exact(proto, inputs)
    assert set(actual) == set(expected)
    for name, e in expected.items():
        a = actual[name]
        assert a.shape == e.shape and a.dtype == e.dtype, (name, a.shape, a.dtype, e.shape, e.dtype)
        if e.dtype.kind == "f":  # float epilogues (scales, bias): onnxruntime may round in another order
            assert not np.isnan(a).any() and not np.isnan(e).any(), name
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-4, err_msg=name)
        else:
            np.testing.assert_array_equal(a, e, err_msg=name)
    return res


@pytest.mark.parametrize("at,a_shape,n,b_zp", [
    (U8, (2, 5, 13), 21, None),                    # K, N no tile divides, 3-D A, no B zero point
    (U8, (33, 64), 48, "column"),                  # per-column B zero points
    (I8, (3, 7, 30), 17, "tensor"),                # int8 A: shifted to uint8 and corrected
])
def test_matmul_integer_uses_the_kernel_and_is_exact(at, a_shape, n, b_zp, tmp_path):
    rng = np.random.default_rng(41)
    a = qdata(rng, a_shape, at)
    k = a_shape[-1]
    b = rng.integers(-120, 121, (k, n)).astype(I8)
    a_zp = np.asarray(at(7 if at == U8 else -5))
    consts = [("b", b)]
    order = ["a", "b", "azp"]
    if b_zp is not None:
        consts.append(("bzp", rng.integers(-7, 8, n if b_zp == "column" else 1).astype(I8)))
        order.append("bzp")
    proto = one_node_model("MatMulInteger", {"a": a, "azp": a_zp}, consts, TensorProto.INT32, None,
                           model_opset=13, order=order)
    _check(proto, {"a": a, "azp": a_zp}, tmp_path, fast=True)


@pytest.mark.parametrize("case", ["b_input", "b_out_of_int8", "b_zp_input"])
def test_matmul_integer_falls_back_where_the_kernel_does_not_apply(case, tmp_path):
    rng = np.random.default_rng(42)
    a = qdata(rng, (6, 20), U8)
    b = qdata(rng, (20, 9), I8)
    inputs = {"a": a}
    if case == "b_input":
        inputs["b"] = b
        consts, order = [], ["a", "b"]
    elif case == "b_out_of_int8":  # uint8 B with zero point 0: B - b_zp up to 255
        consts, order = [("b", qdata(rng, (20, 9), U8))], ["a", "b"]
    else:  # B's zero point only known at run time
        inputs["bzp"] = np.array([-3], I8)
        consts, order = [("b", b)], ["a", "b", "", "bzp"]
    proto = one_node_model("MatMulInteger", inputs, consts, TensorProto.INT32, None, model_opset=13, order=order)
    _check(proto, inputs, tmp_path, fast=False)


@pytest.mark.parametrize("at,yt,per_column", [(U8, U8, True), (I8, I8, False)])
def test_qlinear_matmul_requantizes_after_the_kernel(at, yt, per_column, tmp_path):
    rng = np.random.default_rng(43)
    a = qdata(rng, (3, 7, 40), at)
    b = qdata(rng, (40, 33), I8)
    b_scale = rng.uniform(0.002, 0.006, 33).astype(np.float32) if per_column else np.float32(0.004)
    b_zp = np.zeros(33, I8) if per_column else I8(0)
    consts = [("sa", np.float32(0.05)), ("za", at(120 if at == U8 else -4)), ("b", b), ("sb", b_scale),
              ("zb", b_zp), ("sy", np.float32(0.6)), ("zy", yt(128 if yt == U8 else 5))]
    proto = one_node_model("QLinearMatMul", {"a": a}, consts, T[yt], None, model_opset=13,
                           order=["a", "sa", "za", "b", "sb", "zb", "sy", "zy"])
    _check(proto, {"a": a}, tmp_path, fast=True)


@pytest.mark.parametrize("trans_b", [True, False])
def test_qgemm_with_bias_requantizes_after_the_kernel(trans_b, tmp_path):
    rng = np.random.default_rng(44)
    a = qdata(rng, (19, 52), U8)
    b = qdata(rng, (35, 52) if trans_b else (52, 35), I8)
    consts = [("sa", np.float32(0.03)), ("za", U8(126)), ("b", b),
              ("sb", rng.uniform(0.002, 0.006, 35).astype(np.float32)), ("zb", np.zeros(35, I8)),
              ("c", rng.integers(-30000, 30000, 35).astype(np.int32)), ("sy", np.float32(0.3)), ("zy", U8(128))]
    proto = one_node_model("QGemm", {"a": a}, consts, TensorProto.UINT8, [19, 35], domain=MS,
                           order=["a", "sa", "za", "b", "sb", "zb", "c", "sy", "zy"], transB=int(trans_b), alpha=0.75)
    _check(proto, {"a": a}, tmp_path, fast=True)


@pytest.mark.parametrize("op", ["MatMulIntegerToFloat", "DynamicQuantizeMatMul"])
def test_microsoft_float_output_matmuls_use_the_kernel(op, tmp_path):
    rng = np.random.default_rng(47)
    b = qdata(rng, (36, 20), I8)
    consts = [("b", b), ("sb", rng.uniform(0.002, 0.006, 20).astype(np.float32)), ("zb", np.zeros(20, I8)),
              ("bias", rng.uniform(-1, 1, 20).astype(np.float32))]
    if op == "DynamicQuantizeMatMul":
        a = rng.normal(0.2, 1.5, (2, 6, 36)).astype(np.float32)
        order = ["a", "b", "sb", "zb", "bias"]
    else:
        a = qdata(rng, (2, 6, 36), U8)
        consts[1:1] = [("sa", np.float32(0.03))]
        consts += [("za", U8(131))]
        order = ["a", "b", "sa", "sb", "za", "zb", "bias"]
    proto = one_node_model(op, {"a": a}, consts, TensorProto.FLOAT, [2, 6, 20], domain=MS, order=order)
    _check(proto, {"a": a}, tmp_path, fast=True)


def _dynamic_model(k: int, n: int, rng):
    b = rng.integers(-127, 128, (k, n)).astype(I8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "scale", "zp"]),
             helper.make_node("MatMulInteger", ["q", "b", "zp"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "scale"], ["y"])]
    g = helper.make_graph(
        nodes, "dql_mmi", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 9, k])],
        [helper.make_tensor_value_info("q", TensorProto.UINT8, [2, 9, k]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 9, n])],
        [numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def test_dynamic_quantize_then_matmul_integer_is_exact(tmp_path):
    rng = np.random.default_rng(45)
    proto = _dynamic_model(30, 50, rng)
    x = rng.normal(0.3, 2.0, (2, 9, 30)).astype(np.float32)
    _check(proto, {"x": x}, tmp_path, fast=True)


def test_vnni_artifact_holds_vpdpbusd(tmp_path):
    _, res = _build(_dynamic_model(64, 32, np.random.default_rng(46)), tmp_path)
    asm = subprocess.run(["objdump", "-d", str(res.library)], capture_output=True, text=True, check=True).stdout
    assert "vpdpbusd" in asm
