"""Rules apply inside If/Loop bodies and user functions, not in edgec's own function bodies, and
never match across a scope boundary."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from edgec.infra.context import PassContext
from edgec.ir.loader import to_proto
from edgec.passes.fusion.recognize_silu import RecognizeSilu
from edgec.rewrite import RewriteRule, RewriteTrace, apply_rules
from edgec.rewrite.testing import op_list, parse, run

HEADER = '<ir_version: 10, opset_import: ["" : 18]>'

CONTROL_FLOW = HEADER + """
g (float[4] x, bool c) => (float[4] y, float[4] z) {
  y = If (c) <then_branch = g1 () => (float[4] t) {
        s = Sigmoid (x)
        t = Mul (x, s)
     }, else_branch = g2 () => (float[4] e) {
        two = Constant <value = float {2.0}> ()
        e = Div (x, two)
     }>
  n = Constant <value = int64 {3}> ()
  go = Constant <value = bool {1}> ()
  z = Loop (n, go, x) <body = body (int64 i, bool ci, float[4] v) => (bool co, float[4] vo) {
        co = Identity (ci)
        sv = Sigmoid (v)
        m = Mul (v, sv)
        four = Constant <value = float {4.0}> ()
        vo = Div (m, four)
     }>
}"""


class DivByConstant(RewriteRule):
    """x / c → x · (1/c): the rewrite makes a new constant."""

    def pattern(self, op, x):
        return op.Div(x, op.const("c"))

    def rewrite(self, op, match):
        c = match.const("c")
        return op.Mul(match["x"], np.asarray(1.0 / c, dtype=c.dtype))


def _subgraphs(model: ir.Model) -> dict[str, ir.Graph]:
    return {g.name: g for g in model.graph.subgraphs()}


def _ops(graph) -> list[str]:
    return [f"{n.domain}.{n.op_type}" if n.domain else n.op_type for n in graph if n.op_type != "Constant"]


def _feeds(cond: bool) -> dict[str, np.ndarray]:
    return {"x": np.linspace(-3, 3, 4, dtype=np.float32), "c": np.array(cond)}


def _assert_same(before: dict, after: dict) -> None:
    assert set(after) == set(before)
    for k, e in before.items():
        assert after[k].shape == e.shape and after[k].dtype == e.dtype, k
        assert np.isfinite(after[k]).all(), k
        np.testing.assert_allclose(after[k], e, rtol=1e-6, atol=1e-6, err_msg=k)


def test_rules_fire_inside_if_branch_and_loop_body():
    m = parse(CONTROL_FLOW)
    expected = {c: run(m, _feeds(c)) for c in (True, False)}
    assert RecognizeSilu()(m, PassContext()).modified
    assert apply_rules(m, [DivByConstant()]) == 2
    subs = _subgraphs(m)
    assert _ops(subs["g1"]) == ["edgec.Silu"]
    assert _ops(subs["g2"]) == ["Mul"]
    assert _ops(subs["body"]) == ["Identity", "edgec.Silu", "Mul"]
    assert op_list(m) == ["If", "Loop"]
    # the new constants are Constant nodes in the bodies (not initializers), with model-unique names
    assert not any(g.initializers for g in subs.values())
    assert [float(ir.convenience.get_const_tensor(n.inputs[1]).numpy()) for n in subs["body"] if n.op_type == "Mul"] == [0.25]
    proto = to_proto(m)
    onnx.checker.check_model(proto, full_check=True)
    for c in (True, False):
        _assert_same(expected[c], run(m, _feeds(c)))


def test_match_across_scope_boundary_is_declined():
    m = parse(HEADER + """
    g (float[4] x, bool c) => (float[4] y) {
      s = Sigmoid (x)
      y = If (c) <then_branch = g1 () => (float[4] t) { t = Mul (x, s) },
                  else_branch = g2 () => (float[4] e) { e = Neg (x) }>
    }""")
    pass_ = RecognizeSilu()
    assert not pass_(m, PassContext()).modified
    assert _ops(_subgraphs(m)["g1"]) == ["Mul"] and op_list(m) == ["Sigmoid", "If"]
    assert any("enclosing graph" in r for r in pass_.last_trace.declines["Silu"])


USER_FUNCTION = """<ir_version: 10, opset_import: ["" : 18, "local" : 1]>
g (float[4] x) => (float[4] y) { y = local.F (x) }
<domain: "local", opset_import: ["" : 18]>
F (a) => (b) {
  s = Sigmoid (a)
  b = Mul (a, s)
}"""


def test_rules_fire_in_user_functions_but_not_in_edgec_functions():
    m = parse(USER_FUNCTION)
    feeds = _feeds(True)
    del feeds["c"]
    expected = run(m, feeds)
    trace = RewriteTrace()
    assert apply_rules(m, RecognizeSilu().make_rules(), trace=trace) == 1
    fn = m.functions[("local", "F", "")]
    assert _ops(fn) == ["edgec.Silu"]
    assert fn.opset_imports["edgec"] == 1 and m.opset_imports["edgec"] == 1
    silu = next(f for f in m.functions.values() if f.domain == "edgec")
    assert _ops(silu) == ["Sigmoid", "Mul"]  # edgec's reference body: left alone
    # a second run finds nothing: the edgec.Silu body is not rewritten into edgec.Silu itself
    assert apply_rules(m, RecognizeSilu().make_rules()) == 0
    assert _ops(silu) == ["Sigmoid", "Mul"]
    onnx.checker.check_model(to_proto(m), full_check=True)
    _assert_same(expected, run(m, feeds))


def test_function_with_reference_attribute_is_not_matched():
    class LeakyToRelu(RewriteRule):  # would be wrong for the caller's alpha
        def pattern(self, op, x):
            return op.LeakyRelu(x, alpha=lambda a: a is None or a == 0.0)

        def rewrite(self, op, match):
            return op.Relu(match["x"])

    m = parse("""<ir_version: 10, opset_import: ["" : 18, "local" : 1]>
    g (float[4] x) => (float[4] y) { y = local.F <alpha: float = 0.5> (x) }
    <domain: "local", opset_import: ["" : 18]>
    F <alpha> (a) => (b) { b = LeakyRelu <alpha: float = @alpha> (a) }""")
    trace = RewriteTrace()
    assert apply_rules(m, [LeakyToRelu()], trace=trace) == 0
    assert _ops(m.functions[("local", "F", "")]) == ["LeakyRelu"]
    assert any("reference attribute" in r for r in trace.declines["LeakyToRelu"])
