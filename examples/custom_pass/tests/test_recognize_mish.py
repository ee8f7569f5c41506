"""recognize-mish: fires on both spellings (checked against onnxruntime), declines where it must."""

from edgec_example_plugin.recognize_mish import RecognizeMish

from edgec.rewrite.testing import check_pass


def model(body: str, opset: int = 18, dtype: str = "float") -> str:
    return f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g ({dtype}[2,16] x) => ({dtype}[2,16] y) {{ {body} }}"""


SOFTPLUS = "s = Softplus (x)\n t = Tanh (s)\n y = Mul (t, x)"
LOG_EXP = """e = Exp (x)
  one = Constant <value = float {1.0}> ()
  a = Add (e, one)
  s = Log (a)
  t = Tanh (s)
  y = Mul (x, t)"""


def test_softplus_form_becomes_mish():
    check_pass(model(SOFTPLUS), RecognizeMish(), ["Mish"], rtol=1e-5, atol=1e-5)


def test_log_exp_form_becomes_mish():
    check_pass(model(LOG_EXP), RecognizeMish(), ["Mish"], rtol=1e-5, atol=1e-5)


def test_declines_below_opset_18():
    pass_ = RecognizeMish()
    check_pass(model(SOFTPLUS, opset=17), pass_, None, modified=False)
    assert "min_opset 18" in pass_.last_trace.skipped["MishFromSoftplus"]


def test_declines_other_constant_and_other_operand():
    check_pass(model(LOG_EXP.replace("{1.0}", "{2.0}")), RecognizeMish(), None, modified=False)
    other = "z = Neg (x)\n s = Softplus (x)\n t = Tanh (s)\n y = Mul (t, z)"
    check_pass(model(other), RecognizeMish(), None, modified=False)


def test_declines_a_constant_that_broadcasts_x_to_another_shape():
    body = LOG_EXP.replace("float {1.0}", "float[3,1,1] {1.0, 1.0, 1.0}")
    check_pass(model(body).replace("(float[2,16] y)", "(float[3,2,16] y)"), RecognizeMish(), None, modified=False)
    body = LOG_EXP.replace("float {1.0}", "float[1,1] {1.0}")  # size 1, rank <= x's: same shape
    check_pass(model(body), RecognizeMish(), ["Mish"], rtol=1e-5, atol=1e-5)


def test_declines_when_tanh_is_used_elsewhere():
    body = "s = Softplus (x)\n t = Tanh (s)\n y = Mul (t, x)\n y2 = Identity (t)"
    text = model(body).replace("(float[2,16] y)", "(float[2,16] y, float[2,16] y2)")
    check_pass(text, RecognizeMish(), None, modified=False)
