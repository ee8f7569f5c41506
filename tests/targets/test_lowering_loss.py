"""SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss: weights, ignore_index, reductions, N-d."""

from __future__ import annotations

import numpy as np
import pytest

from tests.targets.lowering_util import check, model, rand


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_cross_entropy_weighted_ignore_index(reduction, tmp_path):
    out = "float l" if reduction != "none" else "float[3, 2] l"
    proto = model(13, f"""
        agraph (float[3, 5, 2] x, int64[3, 2] t, float[5] w) => ({out}, float[3, 5, 2] lp)
        {{ l, lp = SoftmaxCrossEntropyLoss <reduction: string = "{reduction}", ignore_index: int = 2> (x, t, w) }}""")
    t = np.array([[0, 2], [4, 1], [2, 3]], np.int64)
    check(proto, {"x": rand(3, 5, 2, lo=-3, hi=3), "t": t, "w": rand(5, seed=4, lo=0.1, hi=1)}, tmp_path,
          owned={"SoftmaxCrossEntropyLoss"})


def test_nll_loss_sum_and_mean(tmp_path):
    proto = model(13, """
        agraph (float[4, 3] x, int64[4] t) => (float s, float m)
        { s = NegativeLogLikelihoodLoss <reduction: string = "sum"> (x, t)
          m = NegativeLogLikelihoodLoss <ignore_index: int = 1> (x, t) }""")
    check(proto, {"x": rand(4, 3), "t": np.array([0, 1, 2, 1], np.int64)}, tmp_path,
          owned={"NegativeLogLikelihoodLoss"})
