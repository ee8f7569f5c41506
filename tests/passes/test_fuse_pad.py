import numpy as np
import pytest

from edgec.passes.fusion.fuse_pad import FusePad
from edgec.rewrite.testing import check_pass


def _floats(n, seed=1):
    return ", ".join(f"{v:.6f}" for v in np.random.default_rng(seed).uniform(-1, 1, n))


def model(body, out="float[1,4,6,6] y", inits="", opset=18):
    return f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g (float[1,3,6,6] x) => ({out}) <int64[8] p = {{0, 0, 1, 2, 0, 0, 1, 0}}, float[4,3,3,3] w = {{{_floats(108)}}}{inits}> {{
      {body}
    }}"""


def test_pad_into_conv():
    m = check_pass(model("q = Pad (x, p)\n y = Conv <pads = [0, 0, 1, 1]> (q, w)", "float[1,4,7,7] y"),
                   FusePad(), ["Conv"], rtol=1e-5, atol=1e-5)
    assert list(m.graph.node(0).attributes["pads"].value) == [1, 2, 2, 1]


def test_pad_with_axes_input_into_conv():
    text = model("q = Pad (x, p2, z, ax)\n y = Conv (q, w)", "float[1,4,6,5] y",
                 inits=", int64[4] p2 = {1, 1, 1, 0}, float z = {0.0}, int64[2] ax = {2, 3}")
    m = check_pass(text, FusePad(), ["Conv"], rtol=1e-5, atol=1e-5)
    assert list(m.graph.node(0).attributes["pads"].value) == [1, 1, 1, 0]


def test_pad_into_average_pool_counts_pads():
    m = check_pass(model("q = Pad (x, p)\n y = AveragePool <kernel_shape = [3, 3]> (q)", "float[1,3,6,6] y"),
                   FusePad(), ["AveragePool"], rtol=1e-5, atol=1e-5)
    assert m.graph.node(0).attributes["count_include_pad"].value == 1


def test_pad_into_max_pool_after_relu():
    body = "r = Relu (x)\n q = Pad (r, p)\n y = MaxPool <kernel_shape = [3, 3], strides = [2, 2]> (q)"
    check_pass(model(body, "float[1,3,3,3] y"), FusePad(), ["Relu", "MaxPool"], rtol=0, atol=0)


@pytest.mark.parametrize("body,out,why", [
    ("q = Pad (x, p)\n y = MaxPool <kernel_shape = [3, 3], strides = [2, 2]> (q)", "float[1,3,3,3] y", "provably >= 0"),
    # Sqrt(x < 0) is NaN: the explicit zero pad made border windows 0, MaxPool's own padding NaN
    ("r = Sqrt (x)\n q = Pad (r, p)\n y = MaxPool <kernel_shape = [3, 3], strides = [2, 2]> (q)", "float[1,3,3,3] y",
     "provably >= 0"),
    ("q = Pad (x, p, v)\n y = Conv (q, w)", "float[1,4,6,6] y", "constant zero pad"),
    ('q = Pad <mode = "reflect"> (x, p)\n y = Conv (q, w)', "float[1,4,6,6] y", "constant zero pad"),
    ("q = Pad (x, pc)\n y = Conv (q, w2)", "float[1,4,6,6] y", "channel"),
])
def test_must_not_fire(body, out, why):
    inits = (", float v = {0.5}, int64[8] pc = {0, 1, 1, 2, 0, 0, 1, 0}, "
             f"float[4,4,3,3] w2 = {{{_floats(144)}}}")
    pass_ = FusePad()
    check_pass(model(body, out, inits), pass_, None, modified=False)
    reasons = [r for rs in pass_.last_trace.declines.values() for r in rs]
    assert any(why in r for r in reasons), reasons
