"""The Python runtime's inputs and outputs (targets/tvm/runtime.py): inputs go to the VM without a
copy when aligned, through a reused aligned buffer when not; results never alias the caller's
arrays or a buffer a later call reuses."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h

from edgec.api import CompileOptions, compile_model


def _model(tmp_path):
    """Outputs: x itself (a graph output that is the input: the VM returns its argument),
    z = x * 2, c = Not(b), s = f + f (float16, 0-d)."""
    g = h.make_graph([h.make_node("Add", ["x", "x"], ["z"]),
                      h.make_node("Not", ["b"], ["c"]), h.make_node("Add", ["f", "f"], ["s"])], "io",
                     [h.make_tensor_value_info("x", TP.FLOAT, [3, 5]), h.make_tensor_value_info("b", TP.BOOL, [4]),
                      h.make_tensor_value_info("f", TP.FLOAT16, [])],
                     [h.make_tensor_value_info("x", TP.FLOAT, [3, 5]), h.make_tensor_value_info("z", TP.FLOAT, [3, 5]),
                      h.make_tensor_value_info("c", TP.BOOL, [4]), h.make_tensor_value_info("s", TP.FLOAT16, [])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "io.onnx")
    return compile_model(tmp_path / "io.onnx", tmp_path / "art", CompileOptions(target="x86-64", opt_level=0))


def _placed(a: np.ndarray, misalign: int) -> np.ndarray:
    """A copy of `a` whose data starts `misalign` bytes past a 64-byte boundary."""
    raw = np.empty(a.nbytes + 64 + misalign, np.uint8)
    off = (-raw.ctypes.data % 64) + misalign
    out = raw[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 64 == misalign
    return out


def test_aligned_and_misaligned_inputs_and_no_aliasing(tmp_path):
    """One loaded model called again and again (as `bench` and a serving loop do): an aligned
    input is passed without a copy, a misaligned one through the reused staging buffer; the
    output that is the input itself is a copy either way."""
    from edgec.targets.tvm.execute import load

    art = _model(tmp_path)
    lm = load(art)
    x = np.arange(15, dtype=np.float32).reshape(3, 5)
    b = np.array([True, False, True, False])
    f = np.array(1.5, np.float16)
    results = []
    for xin in (_placed(x, 0), _placed(x + 10, 4), _placed(x + 100, 4), _placed(x + 200, 0)):
        out = lm.run({"x": xin, "b": b, "f": f})
        assert out["s"].shape == () and out["s"].dtype == np.float16 and out["s"] == 3.0
        np.testing.assert_array_equal(out["c"], ~b)
        np.testing.assert_array_equal(out["z"], xin * 2)
        expected_y = xin.copy()
        xin += 1000  # the caller reuses its array: results already returned must not change
        np.testing.assert_array_equal(out["x"], expected_y)
        results.append((out, expected_y))
    for out, expected_y in results:  # later calls (reusing the staging buffer) did not touch them
        np.testing.assert_array_equal(out["x"], expected_y)
        np.testing.assert_array_equal(out["z"], expected_y * 2)
