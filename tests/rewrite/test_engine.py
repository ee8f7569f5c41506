"""The rewrite engine: matching, declines, no mutation on failure, fixpoint, trace, custom rules."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.infra.context import PassContext
from edgec.infra.pass_base import register_pass
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass, RewriteTrace, apply_rules
from edgec.rewrite.testing import assert_same_outputs, inputs_for, op_list, parse, run, text

HEADER = '<ir_version: 8, opset_import: ["" : 18]>'


class AddZeroIsIdentity(RewriteRule):
    """x + 0 → x (commutative: 0 + x too)."""

    def pattern(self, op, x):
        return op.Add(x, op.scalar(0.0))

    def rewrite(self, op, match):
        return match["x"]


class ReluRelu(RewriteRule):
    def pattern(self, op, x):
        return op.Relu(op.Relu(x))

    def rewrite(self, op, match):
        return op.Relu(match["x"])


class NegNeg(RewriteRule):
    def pattern(self, op, x):
        return op.Neg(op.Neg(x, _name="inner"))

    def check(self, match):
        if match.node("inner").name == "keep":
            return MatchResult.fail("inner Neg is named keep")
        return MatchResult.success()

    def rewrite(self, op, match):
        return op.Identity(match["x"])


def test_commutative_add_matches_both_orders():
    m = parse(HEADER + """
    g (float[3] x) => (float[3] y) {
      zero = Constant <value = float[1] {0.0}> ()
      a = Add (zero, x)
      b = Add (a, zero)
      y = Relu (b)
    }""")
    trace = RewriteTrace()
    assert apply_rules(m, [AddZeroIsIdentity()], trace=trace) == 2
    assert op_list(m) == ["Relu"]
    assert trace.hits["AddZeroIsIdentity"] == 2


def test_constant_value_predicate_declines_other_constants():
    m = parse(HEADER + """
    g (float[3] x) => (float[3] y) {
      one = Constant <value = float[1] {1.0}> ()
      y = Add (x, one)
    }""")
    before = text(m)
    assert apply_rules(m, [AddZeroIsIdentity()]) == 0
    assert text(m) == before


def test_other_consumer_declines_with_reason_and_no_mutation():
    m = parse(HEADER + """
    g (float[3] x) => (float[3] y, float[3] z) {
      a = Relu (x)
      y = Relu (a)
      z = Sigmoid (a)
    }""")
    before = text(m)
    trace = RewriteTrace()
    assert apply_rules(m, [ReluRelu()], trace=trace) == 0
    assert text(m) == before
    reasons = trace.declines["ReluRelu"]
    assert reasons["intermediate 'a' (Relu) is also used by Sigmoid ''"] == 1
    assert any(r.startswith("no match:") for r in reasons)  # the first Relu has no Relu producer


def test_intermediate_graph_output_declines():
    m = parse(HEADER + """
    g (float[3] x) => (float[3] y, float[3] a) {
      a = Relu (x)
      y = Relu (a)
    }""")
    trace = RewriteTrace()
    assert apply_rules(m, [ReluRelu()], trace=trace) == 0
    assert any("graph output" in r for r in trace.declines["ReluRelu"])


def test_check_failure_recorded_and_graph_untouched():
    m = parse(HEADER + """
    g (float[3] x) => (float[3] y) {
      [keep] a = Neg (x)
      y = Neg (a)
    }""")
    before = text(m)
    trace = RewriteTrace()
    assert apply_rules(m, [NegNeg()], trace=trace) == 0
    assert text(m) == before
    assert trace.declines["NegNeg"]["inner Neg is named keep"] == 1
    assert "inner Neg is named keep" in trace.format()


def test_fixpoint_collapses_chain_and_counts_hits():
    m = parse(HEADER + """
    g (float[4] x) => (float[4] y) {
      a = Relu (x)
      b = Relu (a)
      c = Relu (b)
      d = Relu (c)
      y = Relu (d)
    }""")
    feeds = inputs_for(m)
    expected = run(m, feeds)
    trace = RewriteTrace()
    hits = apply_rules(m, [ReluRelu()], trace=trace)
    assert op_list(m) == ["Relu"]
    assert hits == 4 and trace.hits["ReluRelu"] == 4
    assert_same_outputs(expected, run(m, feeds), rtol=0, atol=0)
    assert m.graph.outputs[0].name == "y"


def test_identity_replacement_of_graph_output_keeps_output_name():
    m = parse(HEADER + """
    g (float[3] x) => (float[3] y) {
      zero = Constant <value = float[1] {0.0}> ()
      y = Add (x, zero)
    }""")
    assert apply_rules(m, [AddZeroIsIdentity()]) == 1
    assert op_list(m) == ["Identity"] and m.graph.outputs[0].name == "y"
    assert not any(n.op_type == "Constant" for n in m.graph), "consumed constant left behind"
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(run(m, {"x": x})["y"], x)


def test_opset_bounds_skip_rule_with_reason():
    class NewOnly(ReluRelu):
        min_opset = 19

    m = parse(HEADER + "\ng (float[3] x) => (float[3] y) { a = Relu (x)\n y = Relu (a) }")
    trace = RewriteTrace()
    assert apply_rules(m, [NewOnly()], trace=trace) == 0
    assert trace.skipped["NewOnly"] == "opset 18 < min_opset 19"


def test_rewrite_returning_none_leaves_no_dangling_uses():
    class Declines(RewriteRule):
        def pattern(self, op, x):
            return op.Relu(x)

        def rewrite(self, op, match):
            op.Sigmoid(match["x"])  # built, then declined: must be detached
            return None

    m = parse(HEADER + "\ng (float[3] x) => (float[3] y) { y = Relu (x) }")
    before = text(m)
    trace = RewriteTrace()
    assert apply_rules(m, [Declines()], trace=trace) == 0
    assert text(m) == before
    assert len(m.graph.inputs[0].uses()) == 1
    assert trace.declines["Declines"]["rewrite returned no replacement"] == 1


def test_pattern_with_shared_var_requires_same_value():
    class Silu(RewriteRule):
        def pattern(self, op, x):
            return op.Mul(x, op.Sigmoid(x))

        def rewrite(self, op, match):
            return op.HardSwish(match["x"])  # any marker op

    m = parse(HEADER + """
    g (float[3] x, float[3] z) => (float[3] y, float[3] w) {
      s = Sigmoid (x)
      y = Mul (s, x)
      t = Sigmoid (z)
      w = Mul (x, t)
    }""")
    assert apply_rules(m, [Silu()]) == 1
    assert sorted(op_list(m)) == ["HardSwish", "Mul", "Sigmoid"]


@register_pass
class _SquareToMulPass(RewriteRulePass):
    """Test pass: Pow(x, 2) → Mul(x, x)."""

    name = "test-square-to-mul"

    class PowTwo(RewriteRule):
        def pattern(self, op, x):
            return op.Pow(x, op.scalar(2.0))

        def rewrite(self, op, match):
            return op.Mul(match["x"], match["x"])

    rules = (PowTwo,)


def test_user_rule_pass_and_trace_instrument():
    m = parse(HEADER + """
    g (float[2,3] x) => (float[2,3] y) {
      two = Constant <value = float {2.0}> ()
      p = Pow (x, two)
      y = Add (p, x)
    }""")
    feeds = inputs_for(m)
    expected = run(m, feeds)
    trace = RewriteTrace()
    result = _SquareToMulPass()(m, PassContext(instruments=[trace]))
    assert result.modified and op_list(m) == ["Mul", "Add"]
    assert trace.hits["test-square-to-mul/PowTwo"] == 1
    assert "test-square-to-mul/PowTwo: 1 hit(s)" in str(trace)
    assert_same_outputs(expected, run(m, feeds), rtol=1e-6, atol=1e-6)


def test_pattern_must_return_node_output():
    class Bad(RewriteRule):
        def pattern(self, op, x):
            return x

    with pytest.raises(TypeError, match="pattern must return"):
        Bad()
