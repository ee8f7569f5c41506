"""Shrink lowered by edgec (targets/tvm/ops/shrink.py), checked against onnxruntime; integer
Shrink still goes to TVM's importer (the lowering returns NotImplemented)."""

import numpy as np
import pytest

from tests.targets.lowering_util import check, model


@pytest.mark.parametrize("attrs", ["", "<lambd: float = 1.0, bias: float = 0.25>"])
def test_shrink_float(attrs, tmp_path):
    proto = model(18, f"g (float[4,8] x) => (float[4,8] y) {{ y = Shrink {attrs} (x) }}")
    x = np.random.default_rng(0).uniform(-3, 3, (4, 8)).astype(np.float32)
    x[0, :4] = [0.5, -0.5, 1.0, -1.0]  # on the thresholds: the "else 0" side
    report = check(proto, {"x": x}, tmp_path, owned={"Shrink"}, atol=0, rtol=0)
    assert report.by_edgec["Shrink"] == 1


def test_shrink_integer_goes_to_the_importer(tmp_path):
    proto = model(18, "g (int32[6] x) => (int32[6] y) { y = Shrink <lambd: float = 1.0, bias: float = 1.0> (x) }")
    report = check(proto, {"x": np.array([-3, -1, 0, 1, 2, 5], np.int32)}, tmp_path)
    assert "Shrink" not in report.by_edgec
