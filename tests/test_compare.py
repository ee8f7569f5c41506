"""edgec.compare on its own: the cases a naive max(|a - e|) calls a match."""

import numpy as np

from edgec.compare import Tolerance, compare_array, compare_outputs, worst_error


def test_nan_inf_shape_dtype_missing_and_imaginary_parts_are_mismatches():
    e = np.array([1.0, 2.0, 3.0], np.float32)
    assert not compare_array("y", np.array([1.0, np.nan, 3.0], np.float32), e).ok
    assert not compare_array("y", np.array([1.0, np.inf, 3.0], np.float32), e).ok
    assert not compare_array("y", e.reshape(3, 1), e).ok
    assert not compare_array("y", e.astype(np.float64), e).ok
    assert not compare_array("y", np.array([1 + 1j, 2, 3], np.complex64), np.array([1, 2, 3], np.complex64)).ok
    diffs = compare_outputs({"y": e}, {"y": e, "z": e})
    assert [d.ok for d in diffs] == [True, False] and np.isnan(worst_error(diffs))


def test_same_nonfinite_values_and_errors_within_the_bound_match():
    e = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)
    assert compare_array("y", e.copy(), e).ok
    d = compare_array("y", e + np.float32(5e-5), e, Tolerance(1e-4))
    assert d.ok and 0 < d.max_abs <= 1e-4
