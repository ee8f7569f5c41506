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
