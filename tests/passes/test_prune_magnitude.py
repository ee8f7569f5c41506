"""prune-magnitude and prune-2-4: zeros where they belong, shapes unchanged, the model runs in
onnxruntime; ratio 0 / protected layers untouched."""

import numpy as np
import onnx

from edgec.infra.context import PassContext
from edgec.ir.loader import to_proto
from edgec.passes.pruning.prune_2_4 import Prune24, mask_2_4
from edgec.passes.pruning.prune_magnitude import PruneMagnitude
from edgec.rewrite.testing import inputs_for, parse, run


def _w(name, shape, seed):
    r = np.random.default_rng(seed)
    vals = ", ".join(f"{v:.5f}" for v in r.uniform(-1, 1, int(np.prod(shape))))
    return f"float[{','.join(map(str, shape))}] {name} = {{{vals}}}"


MODEL = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[1,3,6,6] x) => (float[1,5] y) <{_w('w0', (8, 3, 3, 3), 1)}, {_w('w1', (16, 8, 1, 1), 2)},
    {_w('b1', (16,), 3)}, {_w('fc', (5, 16), 4)}> {{
  a = Conv (x, w0)
  r = Relu (a)
  c = Conv (r, w1, b1)
  p = GlobalAveragePool (c)
  f = Flatten (p)
  y = Gemm <transB = 1> (f, fc)
}}"""


def _apply(pass_):
    model = parse(MODEL)
    feeds = inputs_for(model)
    before = run(model, feeds)
    pass_(model, PassContext())
    onnx.checker.check_model(to_proto(model), full_check=True)
    after = run(model, feeds)
    assert after["y"].shape == before["y"].shape and np.isfinite(after["y"]).all()
    return model, before, after


def _arr(model, name):
    return model.graph.initializers[name].const_value.numpy()


def test_layer_scope_zeros_the_ratio_of_each_middle_layer():
    model, _, _ = _apply(PruneMagnitude(ratio=0.5, scope="layer"))
    assert (_arr(model, "w1") == 0).mean() == 0.5
    assert not (_arr(model, "w0") == 0).any() and not (_arr(model, "fc") == 0).any()  # first and last protected
    assert not (_arr(model, "b1") == 0).any()  # biases are not pruned


def test_zeros_are_the_smallest_magnitudes():
    orig = np.abs(_arr(parse(MODEL), "w1"))
    model, _, _ = _apply(PruneMagnitude(ratio=0.25, scope="layer"))
    w = _arr(model, "w1")
    assert np.abs(orig[w == 0]).max() <= np.abs(orig[w != 0]).min()


def test_threshold_and_global_scope_without_protection():
    model, _, _ = _apply(PruneMagnitude(threshold=0.3, protect_ends=False))
    for name in ("w0", "w1", "fc"):
        orig = _arr(parse(MODEL), name)
        w = _arr(model, name)
        np.testing.assert_array_equal(w == 0, np.abs(orig) <= 0.3)
    model, _, _ = _apply(PruneMagnitude(ratio=0.6, protect_ends=False))
    total = sum((_arr(model, n) == 0).sum() for n in ("w0", "w1", "fc"))
    assert abs(total / (216 + 128 + 80) - 0.6) < 0.01


def test_ratio_zero_changes_nothing():
    model, before, after = _apply(PruneMagnitude(ratio=0.0))
    np.testing.assert_array_equal(before["y"], after["y"])


def test_keep_and_layer_ratio():
    model, _, _ = _apply(PruneMagnitude(ratio=0.5, scope="layer", protect_ends=False, keep="w0",
                                        layer_ratios="fc=0.25"))
    assert not (_arr(model, "w0") == 0).any()
    assert (_arr(model, "fc") == 0).mean() == 0.25 and (_arr(model, "w1") == 0).mean() == 0.5


def test_2_4_keeps_the_two_largest_of_every_four_along_k():
    model, _, _ = _apply(Prune24())
    w = _arr(model, "w1").reshape(16, 2, 4)  # K = 8 input channels, in groups of 4
    orig = _arr(parse(MODEL), "w1").reshape(16, 2, 4)
    assert ((w != 0).sum(-1) == 2).all()
    kept_min = np.where(w != 0, np.abs(orig), np.inf).min(-1)
    dropped_max = np.where(w == 0, np.abs(orig), -np.inf).max(-1)
    assert (dropped_max <= kept_min).all()
    assert not (_arr(model, "w0") == 0).any()  # first layer protected (and K = 27 is no multiple of 4)


def test_2_4_on_matmul_b_runs_along_rows():
    b = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    m = mask_2_4(b, 0)
    assert ((m.reshape(2, 4, 3) != 0).sum(1) == 2).all()
