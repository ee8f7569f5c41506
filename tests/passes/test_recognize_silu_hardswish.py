import pytest

from edgec.passes.fusion.recognize_hardswish import RecognizeHardSwish
from edgec.passes.fusion.recognize_silu import RecognizeSilu
from edgec.rewrite.testing import check_pass


def model(body, opset=18, extra=""):
    return f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g (float[2,8] x) => (float[2,8] y{extra}) {{ {body} }}"""


SILU = "s = Sigmoid (x)\n y = Mul (x, s)"
HSIG = "s = HardSigmoid <alpha = 0.16666667, beta = 0.5> (x)\n y = Mul (s, x)"
RELU6 = """
      three = Constant <value = float {3.0}> ()
      zero = Constant <value = float {0.0}> ()
      six = Constant <value = float {6.0}> ()
      a = Add (x, three)
      c = Clip (a, zero, six)
      m = Mul (x, c)
      y = Div (m, six)
"""


def test_silu():
    check_pass(model(SILU), RecognizeSilu(), ["edgec.Silu"], rtol=1e-5, atol=1e-5)


def test_silu_with_other_sigmoid_consumer_declines():
    check_pass(model(SILU, extra=", float[2,8] s"), RecognizeSilu(), None, modified=False)


@pytest.mark.parametrize("body", [HSIG, RELU6])
def test_hardswish(body):
    check_pass(model(body), RecognizeHardSwish(), ["HardSwish"], rtol=1e-5, atol=1e-5)


def test_hardswish_wrong_constants_and_opset():
    check_pass(model(HSIG.replace("0.16666667", "0.2")), RecognizeHardSwish(), None, modified=False)
    pass_ = RecognizeHardSwish()
    check_pass(model(HSIG, opset=13), pass_, None, modified=False)
    assert "min_opset 14" in pass_.last_trace.skipped["HardSwishFromRelu6"]


def _broadcast_model(three_shape: str, three_values: str, y_shape: str) -> str:
    return f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[2,8] x) => (float{y_shape} y) {{
      three = Constant <value = float{three_shape} {{{three_values}}}> ()
      zero = Constant <value = float {{0.0}}> ()
      six = Constant <value = float {{6.0}}> ()
      a = Add (x, three)
      c = Clip (a, zero, six)
      m = Mul (x, c)
      y = Div (m, six)
    }}"""


def test_hardswish_declines_a_constant_that_broadcasts_x():
    # x + [3,1,1] of 3.0s is [3,2,8]: HardSwish(x) would be [2,8] (found by helper P)
    check_pass(_broadcast_model("[3,1,1]", "3.0, 3.0, 3.0", "[3,2,8]"), RecognizeHardSwish(), None, modified=False)
    check_pass(_broadcast_model("[1,1,1]", "3.0", "[1,2,8]"), RecognizeHardSwish(), None, modified=False)


def test_hardswish_takes_a_size_one_constant_of_no_higher_rank():
    check_pass(_broadcast_model("[1,1]", "3.0", "[2,8]"), RecognizeHardSwish(), ["HardSwish"], rtol=1e-5, atol=1e-5)
