import pytest

from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'


def test_removes_all_kinds_of_noops():
    proto = parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y) <int64[2] shp = {2, 3}, float[1] zero = {0.0}, float[1] nzero = {-0.0}, float[1] one = {1.0},
        int64[4] nopad = {0, 0, 0, 0}, int64[2] st = {0, 0}, int64[2] en = {2, 9223372036854775807}> {
      a = Identity(x)
      b = Cast<to = 1>(a)
      c = Reshape(b, shp)
      d = Transpose<perm = [0, 1]>(c)
      e = Pad(d, nopad)
      f = Concat<axis = 0>(e)
      g1 = Sum(f)
      h = Slice(g1, st, en)
      i = Add(h, nzero)
      j = Mul(one, i)
      k = Sub(j, zero)
      l = Div(k, one)
      m = Dropout(l)
      n = Expand(m, shp)
      y = Relu(n)
    }""")
    model, modified = run_pipeline(proto, "remove-identity-ops")
    assert modified
    assert op_types(model) == ["Relu"]
    assert model.graph.node(0).inputs[0] is model.graph.inputs[0]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_graph_output_name_is_kept():
    proto = parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y, float[2,3] z) {
      r = Relu(x)
      y = Identity(r)
      z = Identity(x)
    }""")
    model, modified = run_pipeline(proto, "remove-identity-ops")
    assert modified
    # y's Identity goes (Relu now produces 'y'); z = Identity(x) stays because x is a graph input.
    assert op_types(model) == ["Relu", "Identity"]
    assert [o.name for o in model.graph.outputs] == ["y", "z"]
    assert model.graph.node(0).outputs[0].name == "y"
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


@pytest.mark.parametrize("body", [
    "y = Add(x, zero3)",                     # 0 of shape [4,2,3] broadcasts x up: shape changes
    "y = Mul(x, two)",                       # not neutral
    "y = Sub(zero, x)",                      # 0 - x is a negation
    "y = Cast<to = 11>(x)",                  # float -> double
    "y = Transpose<perm = [1, 0]>(x)",
    "y = Dropout(x, ratio, yes)",            # training mode
    "y = Slice(x, one_i, big)",              # drops row 0
])
def test_does_not_fire(body):
    out_t = "double[2,3]" if "Cast" in body else ("float[4,2,3]" if "zero3" in body else
                                                  "float[1,3]" if "Slice" in body else
                                                  "float[3,2]" if "Transpose" in body else "float[2,3]")
    proto = parse_proto(HEADER + f"""
    g (float[2,3] x) => ({out_t} y) <float[4,1,1] zero3 = {{0.0, 0.0, 0.0, 0.0}}, float[1] two = {{2.0}},
        float[1] zero = {{0.0}}, float ratio = {{0.5}}, bool yes = {{1}}, int64[1] one_i = {{1}},
        int64[1] big = {{100}}> {{
      {body}
    }}""")
    model, modified = run_pipeline(proto, "remove-identity-ops")
    assert not modified
    assert len(op_types(model)) == 1


def test_add_positive_zero_changed_the_sign_of_negative_zero():
    # x * -0 is -0 for x > 0; Add(m, +0) gives +0, so 1/y flips from -inf to +inf if the Add goes
    proto = parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y) <float[1] zero = {0.0}, float[1] nzero = {-0.0}, float[1] one = {1.0}> {
      a = Abs(x)
      m = Mul(a, nzero)
      s = Add(m, zero)
      y = Div(one, s)
    }""")
    model, _ = run_pipeline(proto, "infer-shapes,remove-identity-ops")
    assert op_types(model) == ["Abs", "Mul", "Add", "Div"]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)
    model, modified = run_pipeline(parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y) <float[1] nzero = {-0.0}> {
      a = Abs(x)
      s = Add(nzero, a)
      y = Neg(s)
    }"""), "infer-shapes,remove-identity-ops")
    assert modified and op_types(model) == ["Abs", "Neg"]


def test_dropout_before_opset_7_defaults_to_training():
    proto = parse_proto('<ir_version: 3, opset_import: ["" : 6]>\n' + """
    g (float[2,3] x) => (float[2,3] y, float[2,3] z) {
      d = Dropout(x)
      y = Relu(d)
      e = Dropout<is_test = 1>(x)
      z = Relu(e)
    }""")
    model, modified = run_pipeline(proto, "remove-identity-ops")
    assert modified and op_types(model) == ["Dropout", "Relu", "Relu"]
