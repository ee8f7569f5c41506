"""LayerNormalization (multi-axis, Mean/InvStdDev outputs), RMSNormalization, LpNormalization."""

from __future__ import annotations

from tests.targets.lowering_util import check, model, rand


def test_layer_norm_extra_outputs_multi_axis(tmp_path):
    proto = model(17, """
        agraph (float[2, 3, 4] x, float[3, 4] g, float[3, 4] b) => (float[2, 3, 4] y, float[2, 1, 1] m, float[2, 1, 1] inv)
        { y, m, inv = LayerNormalization <axis: int = 1, epsilon: float = 0.001> (x, g, b) }""")
    check(proto, {"x": rand(2, 3, 4, lo=-3, hi=5), "g": rand(3, 4, seed=1), "b": rand(3, 4, seed=2)}, tmp_path,
          owned={"LayerNormalization"})


def test_rms_norm(tmp_path):
    proto = model(23, """
        agraph (float[2, 3, 4] x, float[3, 4] g) => (float[2, 3, 4] r)
        { r = RMSNormalization <axis: int = -2, epsilon: float = 0.01> (x, g) }""")
    check(proto, {"x": rand(2, 3, 4), "g": rand(3, 4, seed=3)}, tmp_path, owned={"RMSNormalization"})


def test_lp_norm(tmp_path):
    # onnx's reference sums signed values for p=1; onnxruntime (and the spec) use |x|
    proto = model(17, """
        agraph (float[2, 3, 4] x) => (float[2, 3, 4] l1, float[2, 3, 4] l2)
        { l1 = LpNormalization <axis: int = 1, p: int = 1> (x)
          l2 = LpNormalization <axis: int = -1, p: int = 2> (x) }""")
    x = rand(2, 3, 4)
    x[0, :, 0] = 0.0  # a zero vector must normalize to 0, not NaN
    x[1, 0, :] = 0.0
    check(proto, {"x": x}, tmp_path, owned={"LpNormalization"})
