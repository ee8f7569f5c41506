"""to-nhwc soundness: what the conversion must decline, and that it still fires next to it."""

from edgec.passes.layout.to_nhwc import ToNHWC
from edgec.rewrite.testing import check_pass

HEADER19 = '<ir_version: 9, opset_import: ["" : 19]>'


def test_average_pool_with_dilations_is_not_converted():
    # edgec.AveragePoolNHWC carries no dilations: converting dropped them (output 8x8 instead of 7x7)
    text = HEADER19 + """
    g (float[1,3,9,9] x) => (float[1,3,7,7] y) {
      y = AveragePool <kernel_shape = [2, 2], dilations = [2, 2]> (x)
    }"""
    pass_ = ToNHWC()
    check_pass(text, pass_, ["AveragePool"], modified=False)
    assert any("dilations" in r for r in pass_.last_trace.declines["PoolToNHWC"])


def test_average_pool_with_unit_dilations_still_converts():
    text = HEADER19 + """
    g (float[1,3,9,9] x) => (float[1,3,9,9] y) {
      y = AveragePool <kernel_shape = [2, 2], dilations = [1, 1], count_include_pad = 1, pads = [1, 1, 0, 0]> (x)
    }"""
    check_pass(text, ToNHWC(), ["Transpose", "edgec.AveragePoolNHWC", "Transpose"], rtol=1e-6, atol=1e-6)


def test_batchnorm_with_zero_variance_plus_epsilon_is_not_converted():
    text = HEADER19 + """
    g (float[1,2,3,3] x) => (float[1,2,3,3] y) <float[2] s = {1.0, 2.0}, float[2] b = {0.5, 0.0},
        float[2] m = {0.25, 0.0}, float[2] v = {0.0, 2.0}> {
      y = BatchNormalization <epsilon = 0.0> (x, s, b, m, v)
    }"""
    pass_ = ToNHWC()
    check_pass(text, pass_, ["BatchNormalization"], modified=False)
    assert any("var + epsilon" in r for r in pass_.last_trace.declines["BatchNormToNHWC"])
    check_pass(text.replace("epsilon = 0.0", "epsilon = 0.01"), ToNHWC(), ["Mul", "Add"], rtol=1e-5, atol=1e-5)


def test_batchnorm_float16_input_with_float_parameters():
    text = HEADER19.replace("19", "15") + """
    g (float16[1,2,3,3] x) => (float16[1,2,3,3] y) <float[2] s = {1.0, 2.0}, float[2] b = {0.5, 0.0},
        float[2] m = {0.25, 0.0}, float[2] v = {1.0, 2.0}> {
      y = BatchNormalization (x, s, b, m, v)
    }"""
    check_pass(text, ToNHWC(), ["Mul", "Add"], rtol=4e-3, atol=4e-3)
