import onnx
import pytest

from edgec.ir.loader import to_proto
from edgec.passes.fusion.recognize_attention import RecognizeAttention
from edgec.rewrite.testing import check_pass

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


def model(scale_line, mask_line, perm="[0, 1, 3, 2]", kshape="[1,2,4,8]"):
    return HEADER + f"""
    g (float[1,2,4,8] q, float{kshape} k, float[1,2,4,8] v, float[1,1,1,4] mask) => (float[1,2,4,8] y)
      <float s = {{0.3535534}}> {{
      kt = Transpose <perm = {perm}> (k)
      qk = MatMul (q, kt)
      {scale_line}
      {mask_line}
      p = Softmax <axis = -1> (a)
      y = MatMul (p, v)
    }}"""


@pytest.mark.parametrize("scale_line,expected_scale", [
    ("sc = Mul (qk, s)", 0.3535534), ("sc = Mul (s, qk)", 0.3535534), ("sc = Div (qk, s)", 1 / 0.3535534),
    ("sc = Identity (qk)", None),
])
@pytest.mark.parametrize("masked", [True, False])
def test_attention_forms(scale_line, expected_scale, masked):
    mask_line = "a = Add (sc, mask)" if masked else "a = Identity (sc)"
    text = model(scale_line, mask_line)
    if expected_scale is None:  # no scale at all
        text = text.replace("sc = Identity (qk)\n", "").replace("(sc, mask)", "(qk, mask)").replace("Identity (sc)", "Identity (qk)")
        expected_scale = 1.0
    if not masked:
        text = text.replace("a = Identity (sc)\n", "").replace("a = Identity (qk)\n", "")
        text = text.replace("Softmax <axis = -1> (a)", "Softmax <axis = -1> (sc)" if "sc =" in text else "Softmax <axis = -1> (qk)")
    m = check_pass(text, RecognizeAttention(), ["edgec.Attention"], rtol=1e-5, atol=1e-5)
    node = m.graph.node(0)
    assert node.attributes["scale"].value == pytest.approx(expected_scale, rel=1e-6)
    assert len(node.inputs) == (4 if masked else 3)
    onnx.checker.check_model(to_proto(m), full_check=True)


def test_key_in_head_major_layout_gets_one_transpose():
    # BERT-style: K' = [B, S, H, D], kt = Transpose(K', [0, 2, 3, 1]) = [B, H, D, S]
    text = model("sc = Div (qk, s)", "a = Add (sc, mask)", perm="[0, 2, 3, 1]", kshape="[1,4,2,8]")
    m = check_pass(text, RecognizeAttention(), ["Transpose", "edgec.Attention"], rtol=1e-5, atol=1e-5)
    assert list(m.graph.node(0).attributes["perm"].value) == [0, 2, 1, 3]


def test_must_not_fire_on_softmax_over_other_axis_or_shared_scores():
    text = model("sc = Mul (qk, s)", "a = Add (sc, mask)").replace("Softmax <axis = -1>", "Softmax <axis = 2>")
    pass_ = RecognizeAttention()
    check_pass(text, pass_, None, modified=False)
    assert any("Softmax axis" in r for r in pass_.last_trace.declines["Attention"])
    shared = model("sc = Mul (qk, s)", "a = Add (sc, mask)").replace("=> (float[1,2,4,8] y)", "=> (float[1,2,4,8] y, float[1,2,4,4] p)")
    check_pass(shared, RecognizeAttention(), None, modified=False)


def test_non_constant_scale_declines():
    text = model("sc = Mul (qk, s)", "a = Add (sc, mask)").replace("<float s = {0.3535534}>", "").replace(
        "float[1,1,1,4] mask)", "float[1,1,1,4] mask, float s)")
    pass_ = RecognizeAttention()
    check_pass(text, pass_, None, modified=False)
    assert any("'s' is not" in r for r in pass_.last_trace.declines["Attention"])
