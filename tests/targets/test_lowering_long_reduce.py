"""Long float reductions (issue 12, zoo failure group 4): sums over more than LONG_SUM elements are
staged, so their error stays near float32 rounding instead of growing with the length."""

from __future__ import annotations

import numpy as np
import pytest

from tests.targets.lowering_util import check, edgec_run, model, rand


def _big(*shape, seed=0):
    """Values ~1e3 (a large common offset: the worst case for one serial fp32 accumulator)."""
    return (1e3 + 1e2 * rand(*shape, seed=seed)).astype(np.float32)


def _rel_err(actual, expected64):
    return float(np.max(np.abs(actual.astype(np.float64) - expected64) / np.abs(expected64)))


def test_reduce_mean_256x256_matches_float64(tmp_path):
    proto = model(13, """
        agraph (float[2, 3, 256, 256] x) => (float[2, 3, 1, 1] y, float[2, 3] z)
        { y = ReduceMean <axes: ints = [2, 3]> (x)
          z = ReduceMean <axes: ints = [-1, -2], keepdims: int = 0> (x) }""")
    x = _big(2, 3, 256, 256)
    out, report = edgec_run(proto, {"x": x}, tmp_path)
    ref = x.astype(np.float64).mean(axis=(2, 3))
    assert out["y"].shape == (2, 3, 1, 1) and out["z"].shape == (2, 3)
    assert _rel_err(out["y"].reshape(2, 3), ref) < 3e-7  # one serial accumulator: 5e-6
    assert _rel_err(out["z"], ref) < 3e-7
    assert report.by_edgec["ReduceMean"] == 2


def test_global_average_pool_long_plane_matches_float64(tmp_path):
    proto = model(13, """
        agraph (float[1, 4, 120, 160] x) => (float[1, 4, 1, 1] y) { y = GlobalAveragePool (x) }""")
    x = _big(1, 4, 120, 160, seed=1)
    out, report = edgec_run(proto, {"x": x}, tmp_path)
    assert _rel_err(out["y"], x.astype(np.float64).mean(axis=(2, 3), keepdims=True)) < 3e-7
    assert report.by_edgec["GlobalAveragePool"] == 1


def test_reduce_sum_one_long_axis_matches_float64(tmp_path):
    proto = model(13, """
        agraph (float[3, 65536] x) => (float[3] y) <int64[1] a = {1}>
        { y = ReduceSum <keepdims: int = 0> (x, a) }""")
    x = _big(3, 65536, seed=2)
    out, _ = edgec_run(proto, {"x": x}, tmp_path)
    assert _rel_err(out["y"], x.astype(np.float64).sum(axis=1)) < 3e-7


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceL1", "ReduceL2", "ReduceSumSquare",
                                "ReduceLogSum", "ReduceLogSumExp"])
def test_long_reductions_match_onnxruntime(op, tmp_path):
    """Shapes and values of the staged forms: keepdims 0/1, a split axis (4096), an axis no block
    size divides (2053, prime), several reduced axes, a reduced middle axis."""
    proto = model(18, f"""
        agraph (float[2, 4096] a, float[2053, 3] b, float[2, 40, 3, 50] c) =>
               (float[2] ya, float[1, 3] yb, float[1, 40, 1, 1] yc, float[2, 3] yd)
        <int64[1] a1 = {{1}}, int64[1] a0 = {{0}}, int64[3] a023 = {{0, 2, 3}}, int64[2] a13 = {{1, 3}}>
        {{ ya = {op} <keepdims: int = 0> (a, a1)
           yb = {op} (b, a0)
           yc = {op} (c, a023)
           yd = {op} <keepdims: int = 0> (c, a13) }}""")
    inputs = {"a": rand(2, 4096, lo=0.1, hi=2.0), "b": rand(2053, 3, seed=1, lo=0.1, hi=2.0),
              "c": rand(2, 40, 3, 50, seed=2, lo=0.1, hi=2.0)}
    check(proto, inputs, tmp_path, owned={op}, rtol=1e-5, atol=1e-3)
