"""GatherND and run-time Gather, lowered by edgec (ops/tensor.py): one TE kernel with ONNX's
negative indices wrapped by the data's dims, batch_dims, static and symbolic shapes, and a guard
that stops the run on an index out of range (the kernels read memory at the index)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.compare import assert_outputs_match
from edgec.errors import GuardError
from edgec.reference import run_ort


def _model(op: str, data_shape, idx_shape, out_shape, **attrs) -> onnx.ModelProto:
    g = h.make_graph([h.make_node(op, ["data", "idx"], ["y"], **attrs)], op.lower(),
                     [h.make_tensor_value_info("data", TP.FLOAT, data_shape),
                      h.make_tensor_value_info("idx", TP.INT64, idx_shape)],
                     [h.make_tensor_value_info("y", TP.FLOAT, out_shape)])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 8
    return m


def _compile(model, tmp_path, symbolic: bool):
    onnx.save(model, tmp_path / "m.onnx")
    return compile_model(tmp_path / "m.onnx", tmp_path / "art", CompileOptions(target="host", symbolic_dims=symbolic))


CASES = [  # data shape, indices shape, batch_dims, output shape (symbolic names where dims vary)
    ([4, 5, 6], [3, 2], 0, [3, 6]),
    ([4, 5, 6], [2, 3, 3], 0, [2, 3]),
    ([2, 5, 6], [2, 4, 1], 1, [2, 4, 6]),
    (["b", 7], ["b", "t", 2], 0, ["b", "t"]),
]


@pytest.mark.parametrize("data_shape,idx_shape,batch_dims,out_shape", CASES)
def test_gather_nd_matches_onnxruntime(tmp_path, data_shape, idx_shape, batch_dims, out_shape):
    model = _model("GatherND", data_shape, idx_shape, out_shape, batch_dims=batch_dims)
    symbolic = any(isinstance(d, str) for d in data_shape)
    art = _compile(model, tmp_path, symbolic)
    assert art.metadata["lowering"]["edgec"].get("GatherND") == 1
    rng = np.random.default_rng(0)
    for b, t in ((2, 3), (3, 1)) if symbolic else ((None, None),):
        sizes = {"b": b, "t": t}
        ds = [sizes.get(d, d) for d in data_shape]
        ix = [sizes.get(d, d) for d in idx_shape]
        k = ix[-1]
        bounds = ds[batch_dims:batch_dims + k]
        idx = np.stack([rng.integers(-n, n, ix[:-1]) for n in bounds], axis=-1).astype(np.int64)  # negatives too
        feeds = {"data": rng.standard_normal(ds).astype(np.float32), "idx": idx}
        assert_outputs_match(run_artifact(art, feeds), run_ort(model, feeds), atol=0)


def test_gather_nd_index_out_of_range_is_one_clear_error(tmp_path):
    model = _model("GatherND", [4, 5], [3, 2], [3])
    art = _compile(model, tmp_path, False)
    data = np.zeros((4, 5), np.float32)
    ok = np.array([[0, 0], [3, 4], [-4, -5]], np.int64)  # the extremes of the range are fine
    assert_outputs_match(run_artifact(art, {"data": data, "idx": ok}), run_ort(model, {"data": data, "idx": ok}), atol=0)
    with pytest.raises(GuardError, match=r"\(GatherND\): an index is out of range"):
        run_artifact(art, {"data": data, "idx": np.array([[0, 0], [4, 0], [0, 0]], np.int64)})


def test_runtime_gather_over_symbolic_indices(tmp_path):
    """An embedding lookup table[ids] with ids[batch, seq]: negative ids wrapped, an id >= rows
    refused; the static-index Gather path is not involved."""
    model = _model("Gather", [10, 3], ["batch", "seq"], ["batch", "seq", 3], axis=0)
    art = _compile(model, tmp_path, True)
    table = np.random.default_rng(1).standard_normal((10, 3)).astype(np.float32)
    ids = np.array([[0, 9, -1], [-10, 4, 5]], np.int64)
    assert_outputs_match(run_artifact(art, {"data": table, "idx": ids}), run_ort(model, {"data": table, "idx": ids}), atol=0)
    with pytest.raises(GuardError, match=r"\(Gather\): an index is out of range"):
        run_artifact(art, {"data": table, "idx": np.array([[10]], np.int64)})


def test_constant_index_out_of_range_is_refused_at_compile(tmp_path, run_cli):
    g = h.make_graph([h.make_node("GatherND", ["data", "idx"], ["y"])], "g",
                     [h.make_tensor_value_info("data", TP.FLOAT, [4, 5])], [h.make_tensor_value_info("y", TP.FLOAT, [1])],
                     [onnx.numpy_helper.from_array(np.array([[1, 5]], np.int64), "idx")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "m.onnx")
    r = run_cli("compile", tmp_path / "m.onnx", "-t", "x86-64", "-O0", "-o", tmp_path / "art")
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1 and "(GatherND): a constant index is out of range" in lines[0], r
