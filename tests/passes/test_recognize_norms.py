import pytest

from edgec.passes.fusion.recognize_layernorm import RecognizeLayerNorm
from edgec.passes.fusion.recognize_rmsnorm import RecognizeRMSNorm
from edgec.rewrite.testing import check_pass


def ln_model(opset=18, square="Pow (d, two)", axes="[-1]", extra="", beta=True):
    if opset >= 18:
        rm1, rm2 = "mean = ReduceMean (x, ax)", "var = ReduceMean (sq, ax)"
        axes_decl = f"ax = Constant <value = int64[{axes.count(',') + 1}] {{{axes[1:-1]}}}> ()"
    else:
        rm1, rm2 = f"mean = ReduceMean <axes = {axes}> (x)", f"var = ReduceMean <axes = {axes}> (sq)"
        axes_decl = ""
    tail = "y = Add (sc, b)" if beta else "y = Identity (sc)"
    return f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g (float[2,3,8] x) => (float[2,3,8] y{extra}) <float[8] gm = {{1.0,0.9,1.1,0.8,1.2,0.7,1.3,1.0}},
        float[8] b = {{0.1,0.2,0.3,0.4,-0.1,-0.2,-0.3,0.0}}> {{
      {axes_decl}
      two = Constant <value = float {{2.0}}> ()
      eps = Constant <value = float {{1e-5}}> ()
      {rm1}
      d = Sub (x, mean)
      sq = {square}
      {rm2}
      ve = Add (var, eps)
      sd = Sqrt (ve)
      n = Div (d, sd)
      sc = Mul (n, gm)
      {tail}
    }}"""


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("square", ["Pow (d, two)", "Mul (d, d)"])
def test_layernorm(opset, square):
    m = check_pass(ln_model(opset, square), RecognizeLayerNorm(), ["LayerNormalization"], rtol=1e-4, atol=1e-4)
    assert _ln(m).attributes["axis"].value == -1


def test_layernorm_two_trailing_axes_and_no_beta():
    m = check_pass(ln_model(18, axes="[1, 2]", beta=False), RecognizeLayerNorm(),
                   ["LayerNormalization", "Identity"], rtol=1e-4, atol=1e-4)
    assert _ln(m).attributes["axis"].value == -2


def test_layernorm_non_trailing_axis_declines():
    pass_ = RecognizeLayerNorm()
    check_pass(ln_model(18, axes="[1]"), pass_, None, modified=False)
    assert any("trailing axes" in r for r in pass_.last_trace.declines["LayerNorm"])


def test_layernorm_shared_intermediate_and_old_opset_decline():
    check_pass(ln_model(18, extra=", float[2,3,8] d"), RecognizeLayerNorm(), None, modified=False)
    check_pass(ln_model(16), RecognizeLayerNorm(), None, modified=False)


def rms_model(opset, norm="n = Div (x, r)"):
    rm = "ms = ReduceMean (sq, ax)" if opset >= 18 else "ms = ReduceMean <axes = [-1]> (sq)"
    return f"""<ir_version: 10, opset_import: ["" : {opset}]>
    g (float[2,3,8] x) => (float[2,3,8] y) <float[8] gm = {{1.0,0.9,1.1,0.8,1.2,0.7,1.3,1.0}}> {{
      ax = Constant <value = int64[1] {{-1}}> ()
      one = Constant <value = float {{1.0}}> ()
      eps = Constant <value = float {{1e-6}}> ()
      sq = Mul (x, x)
      {rm}
      v = Add (ms, eps)
      r = Sqrt (v)
      {norm}
      y = Mul (gm, n)
    }}"""


@pytest.mark.parametrize("opset,op", [(17, "edgec.RMSNormalization"), (18, "edgec.RMSNormalization"),
                                      (23, "RMSNormalization")])
def test_rmsnorm(opset, op):
    check_pass(rms_model(opset), RecognizeRMSNorm(), [op], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("norm", ["rr = Reciprocal (r)\n n = Mul (x, rr)", "rr = Div (one, r)\n n = Mul (rr, x)"])
def test_rmsnorm_reciprocal_forms(norm):
    check_pass(rms_model(18, norm), RecognizeRMSNorm(), ["edgec.RMSNormalization"], rtol=1e-4, atol=1e-4)


def test_rmsnorm_mean_not_of_square_declines():
    check_pass(rms_model(18).replace("sq = Mul (x, x)", "sq = Abs (x)"), RecognizeRMSNorm(), None, modified=False)


def _ln(model):
    return next(n for n in model.graph if n.op_type == "LayerNormalization")
