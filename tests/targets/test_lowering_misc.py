"""Pad (modes, negative pads, runtime value), cumulative ops, OneHot, activations, Pow dtypes,
Resize/Upsample; and a node edgec declines that TVM's frontend cannot take either."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.errors import UnsupportedOpError
from tests.targets.lowering_util import check, edgec_run, model, rand


def test_pad_modes(tmp_path):
    proto = model(18, """
        agraph (float[3, 4] x, float v) => (float[5, 7] c, float[5, 6] r, float[3, 5] e, float[4, 4] w)
        <int64[4] p1 = {1, 2, 1, 1}, int64[4] p2 = {1, 1, 1, 1}, int64[4] p3 = {0, -1, 0, 2}, int64[2] p4 = {1, 0},
         int64[1] ax = {0}>
        { c = Pad <mode: string = "constant"> (x, p1, v)
          r = Pad <mode: string = "reflect"> (x, p2)
          e = Pad <mode: string = "edge"> (x, p3)
          w = Pad <mode: string = "wrap"> (x, p4, , ax) }""")
    check(proto, {"x": rand(3, 4), "v": np.array(2.5, np.float32)}, tmp_path, owned={"Pad"})


def test_cumulative_onehot_activations_pow(tmp_path):
    proto = model(26, """
        agraph (float[2, 5] x, int64[3] i, int64[2, 5] n) => (float[2, 5] cs, float[2, 5] cp, float[3, 4] oh,
                                                            float[2, 5] ce, float[2, 5] mi, int64[2, 5] pw)
        <int64 ax = {1}, int64 depth = {4}, float[2] vals = {-1.0, 3.0}, int64[5] ex = {0, 1, 2, 3, 1}>
        { cs = CumSum <exclusive: int = 1, reverse: int = 1> (x, ax)
          cp = CumProd (x, ax)
          oh = OneHot (i, depth, vals)
          ce = Celu <alpha: float = 0.5> (x)
          mi = Mish (x)
          pw = Pow (n, ex) }""")
    check(proto, {"x": rand(2, 5, lo=-2, hi=2), "i": np.array([0, 3, -1], np.int64),
                  "n": np.arange(10, dtype=np.int64).reshape(2, 5)}, tmp_path,
          owned={"CumSum", "CumProd", "OneHot", "Celu", "Mish", "Pow"})


@pytest.mark.parametrize("attrs,extra", [
    ('mode: string = "linear"', "scales = {1.0, 1.0, 1.5, 0.6}"),
    ('mode: string = "cubic", coordinate_transformation_mode: string = "align_corners"', "scales = {1.0, 1.0, 2.0, 0.5}"),
    ('mode: string = "linear", antialias: int = 1', "scales = {1.0, 1.0, 0.5, 0.5}"),
    ('mode: string = "nearest", coordinate_transformation_mode: string = "asymmetric", nearest_mode: string = "floor"',
     "scales = {1.0, 1.0, 2.0, 3.0}"),
])
def test_resize_constant_scales(attrs, extra, tmp_path):
    x = rand(1, 2, 6, 5)
    out = [int(np.floor(d * s)) for d, s in zip(x.shape, eval("[" + extra.split("{")[1].split("}")[0] + "]"))]
    proto = model(19, f"""
        agraph (float[1, 2, 6, 5] x) => (float[{", ".join(map(str, out))}] y)
        <float[4] {extra}>
        {{ y = Resize <{attrs}> (x, , scales) }}""")
    check(proto, {"x": x}, tmp_path, owned={"Resize"}, engine="reference")


def test_resize_sizes_axes_keep_aspect(tmp_path):
    proto = model(19, """
        agraph (float[1, 1, 4, 6] x) => (float[1, 1, 2, 3] y)
        <int64[2] sizes = {3, 3}>
        { y = Resize <mode: string = "linear", axes: ints = [2, 3], keep_aspect_ratio_policy: string = "not_larger"> (x, , , sizes) }""")
    check(proto, {"x": rand(1, 1, 4, 6)}, tmp_path, owned={"Resize"})


def test_resize_with_runtime_antialias_scales_is_declined_with_a_precise_error(tmp_path):
    # runtime scales are lowered with runtime taps (resize_runtime.py) except for antialias, and
    # TVM's frontend cannot take a runtime scale either: the result must be an
    # UnsupportedOpError naming node, op, domain and opset - not a crash
    proto = model(19, """
        agraph (float[1, 1, 4, 4] x, float[4] s) => (float[1, 1, 2, 2] y)
        { y = Resize <mode: string = "linear", antialias: int = 1> (x, , s) }""")
    proto.graph.node[0].name = "up"
    with pytest.raises(UnsupportedOpError) as e:
        edgec_run(proto, {"x": rand(1, 1, 4, 4), "s": np.array([1, 1, 0.5, 0.5], np.float32)}, tmp_path)
    msg = str(e.value)
    assert "node 'up'" in msg and "op 'Resize'" in msg and "domain 'ai.onnx'" in msg and "opset 19" in msg
