import numpy as np
import pytest

from edgec.passes.fusion.fold_scale_bias import FoldScaleBias
from edgec.rewrite.testing import check_pass


def _floats(n, seed, lo=-1.0, hi=1.0):
    return ", ".join(f"{v:.6f}" for v in np.random.default_rng(seed).uniform(lo, hi, n))


def conv_then(binary, cshape, n, first="c", lo=0.5, hi=2.0, w_input=False):
    const = f"float[{','.join(map(str, cshape))}] k = {{{_floats(n, 3, lo, hi)}}}" if cshape else f"float k = {{{_floats(1, 3, lo, hi)}}}"
    w_decl = "" if w_input else f"float[4,3,3,3] w = {{{_floats(108, 1)}}}, "
    w_in = ", float[4,3,3,3] w" if w_input else ""
    operands = "c, k" if first == "c" else "k, c"
    return f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[1,3,5,5] x{w_in}) => (float[1,4,5,5] y) <{w_decl}float[4] b = {{{_floats(4, 2)}}}, {const}> {{
      c = Conv <pads = [1,1,1,1]> (x, w, b)
      y = {binary} ({operands})
    }}"""


@pytest.mark.parametrize("binary", ["Mul", "Div", "Add", "Sub"])
def test_conv_per_channel_constant_folds(binary):
    check_pass(conv_then(binary, [4, 1, 1], 4), FoldScaleBias(), ["Conv"], rtol=1e-4, atol=1e-4)


def test_commutative_mul_scalar_first():
    check_pass(conv_then("Mul", [], 1, first="k"), FoldScaleBias(), ["Conv"], rtol=1e-4, atol=1e-4)


def test_spatially_varying_constant_declines():
    pass_ = FoldScaleBias()
    check_pass(conv_then("Mul", [1, 5, 5], 25), pass_, ["Conv", "Mul"], modified=False)
    assert any("not a per-output-channel" in r for r in pass_.last_trace.declines["ConvMul"])


def test_sub_with_constant_first_does_not_fold():
    check_pass(conv_then("Sub", [4, 1, 1], 4, first="k"), FoldScaleBias(), ["Conv", "Sub"], modified=False)


def test_non_constant_weight_declines():
    pass_ = FoldScaleBias()
    check_pass(conv_then("Mul", [4, 1, 1], 4, w_input=True), pass_, ["Conv", "Mul"], modified=False)
    assert any("weight is not constant" in r for r in pass_.last_trace.declines["ConvMul"])


@pytest.mark.parametrize("binary,trans_b", [("Mul", 0), ("Add", 1), ("Div", 1), ("Sub", 0)])
def test_gemm_per_column_constant_folds(binary, trans_b):
    wshape = "4,3" if trans_b else "3,4"
    text = f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[2,3] x) => (float[2,4] y) <float[{wshape}] w = {{{_floats(12, 1)}}}, float[4] c = {{{_floats(4, 2)}}},
        float[1,4] k = {{{_floats(4, 3, 0.5, 2.0)}}}> {{
      h = Gemm <transB = {trans_b}, alpha = 0.7, beta = 1.5> (x, w, c)
      y = {binary} (h, k)
    }}"""
    check_pass(text, FoldScaleBias(), ["Gemm"], rtol=1e-4, atol=1e-4)


def test_gemm_row_varying_constant_declines():
    text = f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[2,3] x) => (float[2,4] y) <float[3,4] w = {{{_floats(12, 1)}}}, float[2,1] k = {{1.0, 2.0}}> {{
      h = Gemm (x, w)
      y = Mul (h, k)
    }}"""
    check_pass(text, FoldScaleBias(), ["Gemm", "Mul"], modified=False)


def _inf_text(c: str, w: str = "0.5, -0.25, 1.0, -1.0, 0.75, 0.5") -> str:
    return f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[1,3,3,3] x) => (float[1,2,3,3] y) <float[2,3,1,1] w = {{{w}}}, float[1,2,1,1] k = {{{c}}}> {{
      a = Conv (x, w)
      y = Mul (a, k)
    }}"""


def test_non_finite_operand_declines():
    # y * inf is +-inf per element; a weight of inf made the conv sum inf - inf = NaN
    pass_ = FoldScaleBias()
    check_pass(_inf_text("inf, 2.0"), pass_, ["Conv", "Mul"], modified=False)
    assert any("not finite" in r for r in pass_.last_trace.declines["ConvMul"])


def test_overflowing_folded_weight_declines():
    # (1e30 x0 - 1e30 x1) * 1e10 can be finite; weights of 1e40 are inf in float32
    pass_ = FoldScaleBias()
    check_pass(_inf_text("1e10, 2.0", "1e30, -1e30, 1.0, -1.0, 0.75, 0.5"), pass_, ["Conv", "Mul"], modified=False)
    assert any("overflows" in r for r in pass_.last_trace.declines["ConvMul"])
    check_pass(_inf_text("1e5, 2.0", "1e30, -1e30, 1.0, -1.0, 0.75, 0.5"), FoldScaleBias(), ["Conv"],
               rtol=1e-4, atol=1e-4)
