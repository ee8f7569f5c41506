"""Compile-time packed operands and the rules that use them: packed-B matmul, padded odd N,
NCHW depthwise for channel counts no vector block divides. Numerics vs onnxruntime (atol 1e-4),
which rule took each kernel, and cases the rules must not take. No timing asserts."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from onnx import helper, numpy_helper

from edgec.targets.registry import get_target
from edgec.targets.tvm.build import optimize_relax, tvm_target
from edgec.targets.tvm.lower import lower_model
from tests.targets.test_schedules import _check, _conv, _model, _w


def _kernels(model, spec="host") -> list[str]:
    """Names of the fused kernels edgec builds for `model` (before scheduling)."""
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    s = get_target(spec)
    mod = optimize_relax(mod, tvm_target(s), s)
    return [gv.name_hint for gv in mod.functions if gv.name_hint != "main"]


@pytest.mark.parametrize("m,k,n", [(7, 33, 40), (77, 600, 200), (5, 19, 77), (1, 50, 1000), (128, 256, 1024)])
def test_matmul_constant_b_is_packed(tmp_path, m, k, n):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Add", ["y", "b"], ["out"])]
    model = _model(nodes, [("x", [1, m, k])], "out", [_w("w", (k, n)), _w("b", (n,))])
    assert any("matmul_packed" in name for name in _kernels(model))
    assert _check(model, tmp_path).get("matmul") == 1


def test_gemm_trans_b_is_packed(tmp_path):
    """ONNX Gemm(transB=1) with a constant weight: the transpose folds, then B is packed."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["out"], transB=1)]
    model = _model(nodes, [("x", [3, 37])], "out", [_w("w", (101, 37)), _w("b", (101,))])
    assert any("matmul_packed" in name for name in _kernels(model))
    assert _check(model, tmp_path).get("matmul") == 1


@pytest.mark.parametrize("n", [77, 13])
def test_matmul_odd_n_runtime_b(tmp_path, n):
    """Both operands are activations (attention scores) and no vector width divides N: not
    packed (B is not a constant), computed over a zero-padded B copy by the matmul rule."""
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Mul", ["s", "c"], ["out"])]
    inits = [numpy_helper.from_array(np.float32(0.125), "c")]
    model = _model(nodes, [("q", [1, 5, n, 40]), ("kt", [1, 5, 40, n])], "out", inits)
    assert not any("matmul_packed" in name for name in _kernels(model))
    assert _check(model, tmp_path).get("matmul") == 1


@pytest.mark.parametrize("c,stride,hw", [(13, 1, (15, 17)), (27, 2, (19, 19)), (37, 1, (99, 7)), (45, 2, (8, 50))])
def test_depthwise_nchw_odd_channels(tmp_path, c, stride, hw):
    dw, inits, y = _conv("x", c, c, 3, stride, group=c, tag="dw")
    clip = helper.make_node("Clip", [y, "lo", "hi"], ["out"])
    inits += [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
    used = _check(_model([dw, clip], [("x", [1, c, *hw])], "out", inits), tmp_path)
    assert used.get("depthwise-nchw") == 1


def test_depthwise_nchw_5x5_no_padding(tmp_path):
    dw, inits, y = _conv("x", 7, 7, 5, 1, group=7, pad=0, bias=False, tag="dw")
    used = _check(_model([dw], [("x", [1, 7, 12, 21])], y, inits), tmp_path)
    assert used.get("depthwise-nchw") == 1


def test_depthwise_rules_do_not_misfire(tmp_path):
    """Grouped (not depthwise) convs are neither depthwise rule's; 32 channels take the blocked one."""
    conv, inits, y = _conv("x", 12, 12, 3, group=2, tag="g")
    used = _check(_model([conv], [("x", [1, 12, 9, 9])], y, inits), tmp_path)
    assert not {"depthwise-nchw", "depthwise-nchwc"} & set(used)
    dw, inits, y = _conv("x", 32, 32, 3, group=32, tag="dw")
    used = _check(_model([dw], [("x", [1, 32, 9, 9])], y, inits), tmp_path)
    assert used.get("depthwise-nchwc") == 1 and "depthwise-nchw" not in used


def test_packed_kernels_on_avx2_lanes(tmp_path):
    """8-lane target: panel widths and row tiles follow the vector width."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["out"])]
    used = _check(_model(nodes, [("x", [1, 9, 30])], "out", [_w("w", (30, 45))]), tmp_path, spec="x86-64-avx2")
    assert used.get("matmul") == 1
    dw, inits, y = _conv("x", 11, 11, 3, 2, group=11, tag="dw")
    used = _check(_model([dw], [("x", [1, 11, 13, 13])], y, inits), tmp_path, spec="x86-64-avx2")
    assert used.get("depthwise-nchw") == 1


def test_image_stem_writes_the_blocked_layout(tmp_path):
    """A 3-channel stem with constant weights feeding two blocked convs reads NCHW and writes
    NCHW16c itself (the packed kernel's accumulator cropped per row): the only layout transform
    left is the one back out to NCHW at the end."""
    stem, i0, y0 = _conv("x", 3, 16, 3, 2, tag="s")
    relu = helper.make_node("Relu", [y0], ["r"])
    a, i1, ya = _conv("r", 16, 16, 3, tag="a")
    b, i2, yb = _conv("r", 16, 16, 1, tag="b")
    model = _model([stem, relu, a, b, helper.make_node("Add", [ya, yb], ["out"])], [("x", [1, 3, 25, 23])], "out",
                   i0 + i1 + i2)
    assert sum("layout_transform" in k for k in _kernels(model)) == 1  # back out only
    used = _check(model, tmp_path)
    assert used.get("conv2d-nchw-packed") == 1 and used.get("conv2d-nchwc") == 2


def test_one_layout_transform_per_tensor(tmp_path):
    """An NCHW conv that cannot write the blocked layout (its weights are a runtime input, so not
    packed) feeding two blocked convs: one transform into the blocked layout, not one per consumer."""
    stem = helper.make_node("Conv", ["x", "sw"], ["s.y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    a, i1, ya = _conv("s.y", 16, 16, 3, tag="a")
    b, i2, yb = _conv("s.y", 16, 16, 1, tag="b")
    model = _model([stem, a, b, helper.make_node("Add", [ya, yb], ["out"])], [("x", [1, 3, 12, 12]),
                                                                            ("sw", [16, 3, 3, 3])], "out", i1 + i2)
    assert sum("layout_transform" in k for k in _kernels(model)) == 2  # into blocked, and back out
    _check(model, tmp_path)
