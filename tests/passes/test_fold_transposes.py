from edgec.passes.layout.fold_transposes import FoldTransposes
from edgec.rewrite.testing import check_pass

HEADER = '<ir_version: 8, opset_import: ["" : 18]>'


def test_transpose_pair_composes_to_one():
    text = HEADER + """
    g (float[2,3,4,5] x) => (float[5,2,4,3] y) {
      t = Transpose <perm = [0,2,3,1]> (x)
      y = Transpose <perm = [2,0,1,3]> (t)
    }"""
    m = check_pass(text, FoldTransposes(), ["Transpose"], rtol=0, atol=0)
    assert list(m.graph.node(0).attributes["perm"].value) == [3, 0, 2, 1]


def test_inverse_transposes_cancel_even_with_shared_inner():
    text = HEADER + """
    g (float[1,3,4,5] x) => (float[1,3,4,5] y, float[1,4,5,3] t) {
      t = Transpose <perm = [0,2,3,1]> (x)
      u = Transpose <perm = [0,3,1,2]> (t)
      y = Relu (u)
    }"""
    m = check_pass(text, FoldTransposes(), ["Transpose", "Relu"], rtol=0, atol=0)
    assert m.graph.node(1).inputs[0].name == "x"


def test_unit_dim_transpose_becomes_reshape_and_chain_folds():
    text = HEADER + """
    g (float[2,1,1,6] x) => (float[12] y) <int64[2] s = {2, 6}> {
      t = Transpose <perm = [0,3,1,2]> (x)
      f = Flatten <axis = 1> (t)
      y0 = Reshape (f, s)
      y = Reshape (y0, m1)
    }""".replace("<int64[2] s = {2, 6}>", "<int64[2] s = {2, 6}, int64[1] m1 = {-1}>")
    check_pass(text, FoldTransposes(), ["Reshape"], rtol=0, atol=0)


def test_squeeze_unsqueeze_chain_folds():
    text = HEADER + """
    g (float[1,3,1,4] x) => (float[3,4,1] y) <int64[2] a = {0, 2}, int64[1] b = {2}> {
      s = Squeeze (x, a)
      y = Unsqueeze (s, b)
    }"""
    check_pass(text, FoldTransposes(), ["Reshape"], rtol=0, atol=0)


def test_must_not_fire_on_real_transpose_or_dynamic_shapes():
    text = HEADER + """
    g (float[N,3,4] x) => (float[N,4,3] y, float[N,12] z) <int64[2] s = {0, -1}, int64[2] s2 = {0, 12}> {
      y = Transpose <perm = [0,2,1]> (x)
      r = Reshape (x, s)
      z = Reshape (r, s2)
    }"""
    pass_ = FoldTransposes()
    check_pass(text, pass_, ["Transpose", "Reshape", "Reshape"], modified=False)
    assert any("static" in r for r in pass_.last_trace.declines["ReshapeChain"])
