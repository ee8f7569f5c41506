"""Reductions with axes as constant inputs (opset 18), noop_with_empty_axes, empty sets, ArgMax/ArgMin."""

from __future__ import annotations

import numpy as np
import pytest

from tests.targets.lowering_util import check, model, rand

OPS = ["ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceProd", "ReduceSumSquare",
       "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum"]


@pytest.mark.parametrize("op", OPS)
def test_reduce_axes_input(op, tmp_path):
    proto = model(18, f"""
        agraph (float[2, 3, 4] x) => (float[2, 4] y, float[1, 1, 1] z, float[2, 3, 4] n)
        <int64[2] ax = {{1, -3}}, int64[1] a1 = {{1}}, int64[0] none = {{}}>
        {{ y = {op} <keepdims: int = 0> (x, a1)
           z = {op} (x)
           n = {op} <noop_with_empty_axes: int = 1> (x, none) }}""")
    x = rand(2, 3, 4, lo=0.1, hi=2.0)
    check(proto, {"x": x}, tmp_path, owned={op})


def test_reduce_empty_set_gives_identity(tmp_path):
    proto = model(18, """
        agraph (float[2, 0, 4] x) => (float[2, 1, 4] s, float[2, 1, 4] p, float[2, 1, 4] m)
        <int64[1] a = {1}>
        { s = ReduceSum (x, a)
          p = ReduceProd (x, a)
          m = ReduceMax (x, a) }""")
    check(proto, {"x": np.zeros((2, 0, 4), np.float32)}, tmp_path, owned={"ReduceSum", "ReduceProd", "ReduceMax"},
          engine="reference")


def test_argmax_select_last_index(tmp_path):
    proto = model(13, """
        agraph (float[3, 4] x) => (int64[3, 1] a, int64[4] b)
        { a = ArgMax <axis: int = 1, select_last_index: int = 1> (x)
          b = ArgMin <axis: int = 0, keepdims: int = 0, select_last_index: int = 1> (x) }""")
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [0, 5, 1, 5]], np.float32)
    check(proto, {"x": x}, tmp_path, owned={"ArgMax", "ArgMin"})
