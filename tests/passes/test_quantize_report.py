"""The quantization report's comparison (passes/quantization/_report.py): a NaN or Inf that the
other model does not have, or a shape change, is a mismatch; the same NaN in both is not."""

import numpy as np
import pytest

from edgec.passes.quantization._report import ErrorStats


@pytest.mark.parametrize("ref,got,bad", [
    ([1, np.inf], [1, 2], True),
    ([1, np.inf], [1, -np.inf], True),
    ([1, 2], [1, np.nan], True),
    ([1, np.nan], [1, np.nan], False),
    ([1, 2], [1, 2.5], False),
])
def test_nonfinite_values_count(ref, got, bad):
    s = ErrorStats()
    s.update(np.array(ref, np.float32), np.array(got, np.float32))
    assert s.to_json()["mismatch"] is bad


def test_a_shape_change_is_a_mismatch():
    s = ErrorStats()
    s.update(np.zeros((2, 3)), np.zeros((3, 2)))
    assert s.to_json()["mismatch"] is True


def test_cosine_snr_and_top1():
    s = ErrorStats()
    s.update(np.array([[1.0, 3.0], [2.0, 0.0]]), np.array([[1.0, 2.9], [1.0, 1.5]]))
    j = s.to_json()
    assert 0.7 < j["cosine"] < 1.0 and j["top1_agreement"] == 0.5 and j["max_abs"] == 1.5
