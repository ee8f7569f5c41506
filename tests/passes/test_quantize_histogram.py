"""Streamed calibration histograms (passes/quantization/_histogram.py): exact under range growth,
bounded, blind to NaN/Inf, and the range each method picks."""

import numpy as np
import pytest

from edgec.passes.quantization._histogram import BINS, TensorStats, pick_range


def test_doubling_the_range_loses_no_count_and_matches_one_histogram_of_all_data():
    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal(5000) * s for s in (0.01, 0.3, 2.0, 50.0)]  # the range grows 3 times
    st = TensorStats()
    for c in chunks:
        st.update(c)
    allx = np.concatenate(chunks)
    direct, _ = np.histogram(allx, bins=BINS, range=(-st.radius, st.radius))
    assert st.counts.shape == (BINS,)
    assert np.array_equal(st.counts, direct), "merged bins differ from a histogram of all the data"
    assert (st.min, st.max, st.n) == (allx.min(), allx.max(), allx.size)


def test_nan_and_inf_are_counted_apart_and_never_move_the_range():
    st = TensorStats()
    st.update(np.array([0.5, -0.25, np.nan, np.inf, -np.inf], np.float32))
    assert (st.min, st.max, st.nonfinite, st.n) == (-0.25, 0.5, 3, 2)
    assert pick_range(st, "minmax", False, 256) == (-0.25, 0.5)


def test_only_zeros_give_an_empty_range():
    st = TensorStats()
    st.update(np.zeros(10))
    assert pick_range(st, "minmax", True, 256) == (0.0, 0.0)


def _qmse(x, lo, hi, levels):
    s = (hi - lo) / (levels - 1)
    q = np.clip(np.round((x - lo) / s), 0, levels - 1) * s + lo
    return float(np.mean((q - x) ** 2))


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_methods_clip_a_heavy_tail_inside_minmax_and_keep_zero_inside(method):
    rng = np.random.default_rng(1)
    st = TensorStats()
    st.update(np.concatenate([rng.standard_normal(200_000), [80.0, -60.0]]))  # two outliers
    lo, hi = pick_range(st, method, False, 256)
    assert -60.0 <= lo < 0 < hi <= 80.0
    assert hi < 20.0, f"{method} kept the outlier: {hi}"
    s_lo, s_hi = pick_range(st, method, True, 256)
    assert s_lo == -s_hi and s_hi > 1.0


def test_mse_range_has_a_lower_quantization_error_than_minmax():
    rng = np.random.default_rng(3)
    x = rng.laplace(size=100_000)  # heavy tails: clipping them pays, the more so with few levels
    st = TensorStats()
    st.update(x)
    lo, hi = pick_range(st, "mse", False, 16)
    assert st.min < lo < 0 < hi < st.max
    assert _qmse(x, lo, hi, 16) < 0.7 * _qmse(x, st.min, st.max, 16)


def test_entropy_leaves_the_zero_spike_of_a_relu_out():
    rng = np.random.default_rng(2)
    st = TensorStats()
    st.update(np.maximum(rng.standard_normal(200_000), 0))  # half exact zeros
    lo, hi = pick_range(st, "entropy", False, 256)
    assert lo == 0.0 and 3.0 < hi <= st.max, hi


def test_unknown_method_is_an_error():
    st = TensorStats()
    st.update(np.ones(3))
    with pytest.raises(ValueError, match="unknown calibration method"):
        pick_range(st, "kl-magic", False, 256)
