import numpy as np
import onnx
import pytest

from edgec.ir.loader import to_proto
from edgec.passes.fusion.fuse_activation import FuseActivation
from edgec.rewrite.testing import check_pass


def _floats(n, seed):
    return ", ".join(f"{v:.6f}" for v in np.random.default_rng(seed).uniform(-1, 1, n))


ACTS = {
    "Relu": ("y = Relu (c)", []),
    "ReLU6": ("lo = Constant <value = float {0.0}> ()\n hi = Constant <value = float {0.5}> ()\n y = Clip (c, lo, hi)", [0.0, 0.5]),
    "LeakyRelu": ("y = LeakyRelu <alpha = 0.2> (c)", [0.2]),
    "Sigmoid": ("y = Sigmoid (c)", []),
    "HardSigmoid": ("y = HardSigmoid <alpha = 0.3, beta = 0.4> (c)", [0.3, 0.4]),
    "HardSwish": ("y = HardSwish (c)", []),
    "Silu": ("s = Sigmoid (c)\n y = Mul (s, c)", []),
    "Tanh": ("y = Tanh (c)", []),
}


def conv_model(body, inputs="", outs="", inits="", bias=""):
    return f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[1,3,5,5] x{inputs}) => (float[1,4,5,5] y{outs}) <float[4,3,3,3] w = {{{_floats(108, 1)}}}{inits}> {{
      c = Conv <pads = [1,1,1,1]> (x, w{bias})
      {body}
    }}"""


@pytest.mark.parametrize("name", sorted(ACTS))
def test_conv_activation_fuses(name):
    body, params = ACTS[name]
    m = check_pass(conv_model(body), FuseActivation(), ["edgec.FusedConv"], rtol=1e-4, atol=1e-4)
    node = m.graph.node(0)
    act = "Clip" if name == "ReLU6" else name
    assert node.attributes["activation"].value == act
    got = list(node.attributes["activation_params"].value) if params else []
    np.testing.assert_allclose(got, params, rtol=1e-6)
    assert list(node.attributes["pads"].value) == [1, 1, 1, 1]
    onnx.checker.check_model(to_proto(m), full_check=True)


def test_clip_with_non_constant_bounds_declines():
    body = "y = Clip (c, lo, hi)"
    pass_ = FuseActivation()
    check_pass(conv_model(body, inputs=", float lo, float hi"), pass_, ["Conv", "Clip"], modified=False)
    assert any("Clip bounds must be constant" in r for r in pass_.last_trace.declines["ConvClip"])


def test_conv_output_with_other_consumer_declines():
    check_pass(conv_model("y = Relu (c)", outs=", float[1,4,5,5] c"), FuseActivation(), ["Conv", "Relu"], modified=False)


def test_residual_add_then_relu():
    body = "a = Add (c, r)\n y = Relu (a)"
    m = check_pass(conv_model(body, inputs=", float[1,4,5,5] r", bias=", b", inits=f", float[4] b = {{{_floats(4, 2)}}}"),
                   FuseActivation(), ["edgec.FusedConv"], rtol=1e-4, atol=1e-4)
    node = m.graph.node(0)
    assert len(node.inputs) == 4 and node.inputs[3].name == "r"
    assert node.attributes["activation"].value == "Relu"


def test_residual_add_with_broadcast_declines():
    body = "y = Add (c, r)"
    pass_ = FuseActivation()
    check_pass(conv_model(body, inputs=", float[1,4,1,1] r"), pass_, ["Conv", "Add"], modified=False)


def test_gemm_and_matmul_activation():
    text = f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[2,3] x, float[4,5] v) => (float[2,4] y, float[2,5] z) <float[3,4] w = {{{_floats(12, 1)}}}, float[5,6] u = {{{_floats(30, 2)}}}> {{
      h = Gemm <alpha = 0.5> (x, w)
      y = LeakyRelu (h)
      k = MatMul (v, u)
      z0 = Sigmoid (k)
      z = Slice (z0, st, en)
    }}"""
    text = text.replace("float[30]", "").replace("z = Slice (z0, st, en)", "z = Identity (z0)").replace("float[2,5] z", "float[4,6] z")
    m = check_pass(text, FuseActivation(), ["edgec.FusedGemm", "edgec.FusedMatMul", "Identity"], rtol=1e-4, atol=1e-4)
    assert m.graph.node(0).attributes["alpha"].value == pytest.approx(0.5)


def test_wrong_opset_skips():
    text = conv_model("y = Relu (c)").replace('"" : 18', '"" : 10')
    pass_ = FuseActivation()
    check_pass(text, pass_, ["Conv", "Relu"], modified=False)
    assert "opset 10 < min_opset 11" == pass_.last_trace.skipped["ConvRelu"]


def _f16_bits(values) -> str:
    return ", ".join(str(int(b)) for b in np.asarray(values, np.float16).view(np.uint16))


def _clip_f16(opset: int) -> str:
    w = np.random.default_rng(1).uniform(-1, 1, 108)
    return f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g (float16[1,3,5,5] x) => (float16[1,4,5,5] y) <float16[4,3,3,3] w = {{{_f16_bits(w)}}},
        float16 lo = {{{_f16_bits([0.0])}}}, float16 hi = {{{_f16_bits([0.5])}}}> {{
      c = Conv <pads = [1,1,1,1]> (x, w)
      y = Clip (c, lo, hi)
    }}"""


def test_clip_on_float16_before_opset_15_declines():
    # the fused body's Clip bounds are float32 Constants (no CastLike before opset 15): for a
    # float16 Conv the fused model was invalid (Clip min of type float on a float16 tensor)
    pass_ = FuseActivation()
    check_pass(_clip_f16(13), pass_, ["Conv", "Clip"], modified=False)
    assert any("before opset 15" in r for r in pass_.last_trace.declines["ConvClip"])
    check_pass(_clip_f16(18), FuseActivation(), ["edgec.FusedConv"], rtol=0, atol=0)


def test_clip_bound_not_exact_in_float32_declines():
    # activation_params are float32: a double bound 0.1 would become 0.10000000149011612
    text = """<ir_version: 8, opset_import: ["" : 18]>
    g (double[2,3] x) => (double[2,3] y) <double[3,3] w = {1, 0, 0, 0, 1, 0, 0, 0, 1}, double lo = {0.0},
        double hi = {0.1}> {
      c = MatMul (x, w)
      y = Clip (c, lo, hi)
    }"""
    pass_ = FuseActivation()
    check_pass(text, pass_, ["MatMul", "Clip"], modified=False)
    assert any("float32" in r for r in pass_.last_trace.declines["MatMulClip"])
    check_pass(text.replace("hi = {0.1}", "hi = {0.5}"), FuseActivation(), ["edgec.FusedMatMul"], rtol=0, atol=0)
