"""recognize-layernorm / recognize-rmsnorm with gamma/beta of other shapes than [D], and LayerNorm
without gamma/beta: the op list after the pass, onnxruntime on the rewritten model, and the
compiled (-O2) model against onnxruntime on the original."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgec.infra.context import PassContext
from edgec.ir.loader import to_proto
from edgec.passes.fusion.recognize_layernorm import RecognizeLayerNorm
from edgec.passes.fusion.recognize_rmsnorm import RecognizeRMSNorm
from edgec.rewrite.testing import check_pass, parse
from tests.conftest import model_from_text
from tests.e2e.compile_check import compile_and_compare

G8 = "1.0, 0.9, 1.1, 0.8, 1.2, 0.7, 1.3, 1.0"
B8 = "0.1, 0.2, 0.3, 0.4, -0.1, -0.2, -0.3, 0.0"


def ln_text(gamma=("[8]", G8), beta=("[8]", B8), opset=18, axes="-1"):
    inits = []
    tail = ["y = Identity (n)"]
    if gamma is not None:
        inits.append(f"float{gamma[0]} gm = {{{gamma[1]}}}")
        tail = ["y = Mul (n, gm)"]
        if beta is not None:
            inits.append(f"float{beta[0]} b = {{{beta[1]}}}")
            tail = ["sc = Mul (n, gm)", "y = Add (sc, b)"]
    naxes = axes.count(",") + 1
    body = "\n      ".join(tail)
    return f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g (float[2,4,8] x) => (float[2,4,8] y) <{", ".join(inits)}> {{
      ax = Constant <value = int64[{naxes}] {{{axes}}}> ()
      two = Constant <value = float {{2.0}}> ()
      eps = Constant <value = float {{1e-5}}> ()
      mean = ReduceMean (x, ax)
      d = Sub (x, mean)
      sq = Pow (d, two)
      var = ReduceMean (sq, ax)
      ve = Add (var, eps)
      sd = Sqrt (ve)
      n = Div (d, sd)
      {body}
    }}""".replace("<>", "")


def rms_text(gamma=("[8]", G8), opset=18):
    return f"""<ir_version: 10, opset_import: ["" : {opset}]>
    g (float[2,4,8] x) => (float[2,4,8] y) <float{gamma[0]} gm = {{{gamma[1]}}}> {{
      ax = Constant <value = int64[1] {{-1}}> ()
      eps = Constant <value = float {{1e-6}}> ()
      sq = Mul (x, x)
      ms = ReduceMean (sq, ax)
      v = Add (ms, eps)
      r = Sqrt (v)
      n = Div (x, r)
      y = Mul (n, gm)
    }}"""


def _node(model, op_type):
    return next(n for n in model.graph if n.op_type == op_type)


def _shape(value):
    return tuple(value.const_value.shape) if value.const_value is not None else tuple(value.shape)


def _compile_check(text, tmp_path, ir_version=8):
    return compile_and_compare(model_from_text(text, ir_version), tmp_path, opt_level=2, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("gshape,bshape", [("[1,1,8]", "[1,1,8]"), ("[1,8]", "[8]"), ("[8]", "[1,1,1]")])
def test_layernorm_leading_ones_gamma_beta_become_vectors(gshape, bshape, tmp_path):
    bvals = B8 if bshape != "[1,1,1]" else "0.25"
    text = ln_text(gamma=(gshape, G8), beta=(bshape, bvals))
    m = check_pass(text, RecognizeLayerNorm(), ["LayerNormalization"], rtol=1e-5, atol=1e-5)
    ln = _node(m, "LayerNormalization")
    assert [_shape(v) for v in ln.inputs[1:]] == [(8,), (8,)]
    assert _compile_check(text, tmp_path).get("LayerNormalization") == 1


def test_layernorm_gamma_not_over_last_axis_is_not_absorbed(tmp_path):
    # gamma [4,1] scales rows, not the normalized axis: only the normalization is recognized
    text = ln_text(gamma=("[4,1]", "1.0, 2.0, 3.0, 4.0"), beta=None)
    m = check_pass(text, RecognizeLayerNorm(), ["LayerNormalization", "Mul"], rtol=1e-5, atol=1e-5)
    ln = _node(m, "LayerNormalization")
    np.testing.assert_array_equal(ln.inputs[1].const_value.numpy(), np.ones(8, np.float32))
    assert _shape(_node(m, "Mul").inputs[1]) == (4, 1)
    ops = _compile_check(text, tmp_path)
    assert ops.get("LayerNormalization") == 1 and ops.get("Mul") == 1


@pytest.mark.parametrize("bshape,bvals", [("[4,1]", "1.0, 2.0, 3.0, 4.0"), ("[3,2,4,8]", ", ".join(["0.5"] * 192))])
def test_layernorm_bad_beta_keeps_the_add(bshape, bvals, tmp_path):
    text = ln_text(beta=(bshape, bvals))
    if bshape == "[3,2,4,8]":  # the Add enlarges the output: fix the declared output shape
        text = text.replace("=> (float[2,4,8] y)", "=> (float[3,2,4,8] y)")
    m = check_pass(text, RecognizeLayerNorm(), ["LayerNormalization", "Add"], rtol=1e-5, atol=1e-5)
    assert len(_node(m, "LayerNormalization").inputs) == 2  # gamma only: the bias stays an Add
    ops = _compile_check(text, tmp_path)
    assert ops.get("LayerNormalization") == 1 and ops.get("Add") == 1


@pytest.mark.parametrize("opset,axes", [(17, None), (18, "-1"), (18, "1, 2")])
def test_layernorm_without_gamma_beta(opset, axes, tmp_path):
    text = ln_text(gamma=None, opset=opset, axes=axes or "-1")
    if opset == 17:
        text = (text.replace("mean = ReduceMean (x, ax)", "mean = ReduceMean <axes = [-1]> (x)")
                .replace("var = ReduceMean (sq, ax)", "var = ReduceMean <axes = [-1]> (sq)"))
    m = check_pass(text, RecognizeLayerNorm(), ["LayerNormalization", "Identity"], rtol=1e-5, atol=1e-5)
    ln = _node(m, "LayerNormalization")
    norm = (8,) if axes != "1, 2" else (4, 8)
    np.testing.assert_array_equal(ln.inputs[1].const_value.numpy(), np.ones(norm, np.float32))
    assert len([v for v in ln.inputs if v is not None]) == 2
    assert _compile_check(text, tmp_path).get("LayerNormalization") == 1


def test_layernorm_without_gamma_prefers_the_full_pattern():
    m = check_pass(ln_text(), RecognizeLayerNorm(), ["LayerNormalization"], rtol=1e-5, atol=1e-5)
    assert [_shape(v) for v in _node(m, "LayerNormalization").inputs[1:]] == [(8,), (8,)]


def test_layernorm_without_gamma_must_not_fire_on_non_trailing_axis():
    pass_ = RecognizeLayerNorm()
    check_pass(ln_text(gamma=None, axes="1"), pass_, None, modified=False)
    assert any("trailing axes" in r for r in pass_.last_trace.declines["LayerNorm"])


@pytest.mark.parametrize("opset,op", [(18, "edgec.RMSNormalization"), (23, "RMSNormalization")])
def test_rmsnorm_leading_ones_gamma(opset, op, tmp_path):
    text = rms_text(("[1,1,8]", G8), opset)
    m = check_pass(text, RecognizeRMSNorm(), [op], rtol=1e-5, atol=1e-5)
    assert _shape(_node(m, "RMSNormalization").inputs[1]) == (8,)
    assert _compile_check(text, tmp_path, ir_version=10).get(op.replace(".", "::")) == 1


def test_rmsnorm_gamma_not_over_last_axis_declines(tmp_path):
    text = rms_text(("[4,1]", "1.0, 2.0, 3.0, 4.0"))
    pass_ = RecognizeRMSNorm()
    check_pass(text, pass_, None, modified=False)
    assert any("gamma 'gm' [4, 1] does not broadcast like a vector" in r for r in pass_.last_trace.declines["RMSNorm"])
    assert "edgec::RMSNormalization" not in _compile_check(text, tmp_path, ir_version=10)


def test_rewritten_model_passes_strict_shape_inference():
    m = parse(ln_text(gamma=("[1,1,8]", G8), beta=("[1,1,8]", B8)))
    assert RecognizeLayerNorm()(m, PassContext()).modified
    onnx.checker.check_model(to_proto(m), full_check=True)
