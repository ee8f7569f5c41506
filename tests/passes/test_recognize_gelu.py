import pytest

from edgec.passes.fusion.recognize_gelu import RecognizeGelu
from edgec.rewrite.testing import check_pass

ERF = """
      s = Constant <value = float {1.4142135}> ()
      h = Constant <value = float {0.5}> ()
      one = Constant <value = float {1.0}> ()
      a = Div (x, s)
      e = Erf (a)
      p = Add (one, e)
      q = Mul (x, h)
      y = Mul (q, p)
"""
TANH = """
      three = Constant <value = float {3.0}> ()
      c = Constant <value = float {0.044715}> ()
      k = Constant <value = float {0.7978846}> ()
      h = Constant <value = float {0.5}> ()
      one = Constant <value = float {1.0}> ()
      x3 = Pow (x, three)
      t0 = Mul (c, x3)
      t1 = Add (x, t0)
      t2 = Mul (k, t1)
      t3 = Tanh (t2)
      t4 = Add (t3, one)
      t5 = Mul (x, t4)
      y = Mul (t5, h)
"""


def model(body, opset, extra=""):
    return f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g (float[2,8] x) => (float[2,8] y{extra}) {{ {body} }}"""


@pytest.mark.parametrize("body,approx", [(ERF, "none"), (TANH, "tanh")])
@pytest.mark.parametrize("opset,op", [(20, "Gelu"), (18, "edgec.Gelu")])
def test_gelu_forms(body, approx, opset, op):
    m = check_pass(model(body, opset), RecognizeGelu(), [op], rtol=1e-4, atol=1e-4)
    assert m.graph.node(0).attributes["approximate"].value == approx


def test_other_consumer_of_intermediate_declines():
    check_pass(model(ERF, 18, extra=", float[2,8] e"), RecognizeGelu(), None, modified=False)


def test_wrong_constant_declines():
    check_pass(model(ERF.replace("{0.5}", "{0.6}"), 18), RecognizeGelu(), None, modified=False)
