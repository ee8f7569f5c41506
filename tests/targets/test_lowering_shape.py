"""Shape-computing ops: constants propagate through Shape/Size of static values and fold, so
Reshape/Expand/Tile/ConstantOfShape/Range downstream are lowered by edgec with constant inputs."""

from __future__ import annotations

import numpy as np

from tests.targets.lowering_util import check, model, rand


def test_shape_chain_feeds_reshape_as_constant(tmp_path):
    proto = model(17, """
        agraph (float[2, 3, 4] x) => (float[6, 4] y, int64[2] s, int64 n)
        <int64[1] zero = {0}, int64[1] minus1 = {-1}>
        { lead = Shape <start: int = 0, end: int = 2> (x)
          last = Shape <start: int = -1> (x)
          p = ReduceProd <keepdims: int = 1> (lead)
          shp = Concat <axis: int = 0> (p, last)
          y = Reshape (x, shp)
          s = Shape <start: int = 1> (x)
          n = Size (x) }""")
    report = check(proto, {"x": rand(2, 3, 4)}, tmp_path, owned={"Shape", "Reshape", "Size"})
    assert report.folded["Concat"] == 1 and report.folded["ReduceProd"] == 1
    assert "Reshape" not in report.by_frontend


def test_expand_tile_constant_of_shape_range(tmp_path):
    proto = model(17, """
        agraph (float[3, 1] x, float[2, 3] t) => (float[2, 3, 4] e, float[4, 9] r, int32[2, 2] c, float[5] g)
        <int64[3] es = {2, 1, 4}, int64[2] reps = {2, 3}, int64[2] cs = {2, 2},
         float start = {1.0}, float limit = {3.5}, float delta = {0.5}>
        { e = Expand (x, es)
          r = Tile (t, reps)
          c = ConstantOfShape <value: tensor = int32[1] {7}> (cs)
          g = Range (start, limit, delta) }""")
    report = check(proto, {"x": rand(3, 1), "t": rand(2, 3, seed=1)}, tmp_path, owned={"Expand", "Tile"})
    assert "Range" in report.folded and "ConstantOfShape" in report.folded


def test_shape_of_dynamic_value_is_not_constant(tmp_path):
    # a static input still gives a static Shape: check the value, not just that it compiles
    proto = model(17, """
        agraph (float[5, 7] x) => (int64[2] s) { s = Shape (x) }""")
    from tests.targets.lowering_util import edgec_run

    out, _ = edgec_run(proto, {"x": rand(5, 7)}, tmp_path)
    np.testing.assert_array_equal(out["s"], np.array([5, 7], np.int64))
    assert out["s"].dtype == np.int64
