"""Cast/CastLike across dtypes, and a Cast edgec must decline with a precise UnsupportedOpError."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.errors import UnsupportedOpError
from tests.targets.lowering_util import check, edgec_run, model


def test_cast_matrix(tmp_path):
    proto = model(19, """
        agraph (float[6] x, bool[6] b, int64[6] i) => (bool[6] fb, float[6] bf, int32[6] fi, float16[6] fh,
                                                       float[6] if, uint8[6] bu, double[6] hd, int64[6] like)
        { fb = Cast <to: int = 9> (x)
          bf = Cast <to: int = 1> (b)
          fi = Cast <to: int = 6> (x)
          fh = Cast <to: int = 10> (x)
          if = Cast <to: int = 1> (i)
          bu = Cast <to: int = 2> (b)
          hd = Cast <to: int = 11> (fh)
          like = CastLike (x, i) }""")
    x = np.array([0.0, -0.0, 1.7, -2.9, 3e-3, 65504.0], np.float32)
    b = np.array([True, False, True, True, False, False])
    i = np.array([0, -1, 2, 3, 1 << 40, -(1 << 33)], np.int64)
    check(proto, {"x": x, "b": b, "i": i}, tmp_path, owned={"Cast", "CastLike"}, rtol=1e-3)


def test_cast_bfloat16_roundtrip(tmp_path):
    proto = model(19, """
        agraph (float[4] x) => (float[4] y) { h = Cast <to: int = 16> (x)
                                               y = Cast <to: int = 1> (h) }""")
    x = np.array([1.0, 3.14159, -2.5e-3, 1000.5], np.float32)
    check(proto, {"x": x}, tmp_path, owned={"Cast"}, engine="reference")


def test_cast_to_float8_is_declined_with_node_op_domain_opset(tmp_path):
    proto = model(19, """
        agraph (float[4] x) => (float[4] y) { h = Cast <to: int = 17> (x)
                                               y = Cast <to: int = 1> (h) }""")
    proto.graph.node[0].name = "to_fp8"
    with pytest.raises(UnsupportedOpError) as e:
        edgec_run(proto, {"x": np.zeros(4, np.float32)}, tmp_path)
    msg = str(e.value)
    assert "node 'to_fp8'" in msg and "op 'Cast'" in msg and "domain 'ai.onnx'" in msg and "opset 19" in msg
