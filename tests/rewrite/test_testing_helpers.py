"""edgec.rewrite.testing.check_pass: the caller's inputs reach both onnxruntime runs, so edge
values catch a rewrite that seeded inputs in [-1, 1] cannot."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.rewrite import RewriteRule, RewriteRulePass
from edgec.rewrite.testing import check_pass

LOG_EXP = """<ir_version: 8, opset_import: ["" : 18]>
g (float[4] x) => (float[4] y) {
  one = Constant <value = float {1.0}> ()
  e = Exp (x)
  a = Add (e, one)
  y = Log (a)
}"""


class _SoftplusFromLogExp(RewriteRule):
    def pattern(self, op, x):
        return op.Log(op.Add(op.Exp(x), op.scalar(1.0)))

    def rewrite(self, op, match):
        return op.Softplus(match["x"])


class _RecognizeSoftplus(RewriteRulePass):
    """Log(Exp(x) + 1) -> Softplus (test-only: not the same above x = 88)."""

    name = "test-recognize-softplus"
    rules = (_SoftplusFromLogExp,)


def test_seeded_inputs_pass_and_edge_values_are_caught():
    check_pass(LOG_EXP, _RecognizeSoftplus(), ["Softplus"], rtol=1e-5, atol=1e-5)
    big = {"x": np.array([0.5, 90.0, 100.0, -3.0], np.float32)}  # exp overflows: inf before, 90 and 100 after
    with pytest.raises(AssertionError, match="y"):
        check_pass(LOG_EXP, _RecognizeSoftplus(), ["Softplus"], rtol=1e-5, atol=1e-5, inputs=big)
