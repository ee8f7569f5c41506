"""edgec.weights: tensors copied into a weights file (external ones file to file) and mapped back."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgec.errors import ArtifactError
from edgec.ir.loader import EXTERNAL_DATA_BYTES, load_model, save_model
from edgec.weights import initializer_bytes, open_weights, source_array, tensor_item, write_weights


def test_roundtrip_memory_and_external_tensors(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.integers(-9, 9, size=(7,)).astype(np.int64)
    ext_data = rng.standard_normal(1000).astype(np.float32)
    (tmp_path / "src.bin").write_bytes(b"x" * 100 + ext_data.tobytes())
    ext = ir.ExternalTensor("src.bin", 100 + 40, 960 * 4, ir.DataType.FLOAT, shape=ir.Shape([960]), name="e",
                            base_dir=tmp_path)
    items = [tensor_item("a", ir.tensor(a)), tensor_item("e", ext), tensor_item("b", ir.tensor(b)),
             ("c", lambda: np.full((3,), 7, np.int32), (3,), "int32")]
    entries = write_weights(items, tmp_path / "w.bin")
    assert [e["offset"] % 4096 for e in entries] == [0, 0, 0, 0]
    assert [e["nbytes"] for e in entries] == [60, 3840, 56, 12]
    got = open_weights(tmp_path, {"file": "w.bin", "tensors": entries})
    assert np.array_equal(got[0], a) and np.array_equal(got[2], b)
    assert np.array_equal(got[1], ext_data[10:970]) and got[3].tolist() == [7, 7, 7]
    got[0][0, 0] = 99.0  # copy-on-write: the file keeps its bytes
    assert np.array_equal(open_weights(tmp_path, {"file": "w.bin", "tensors": entries})[0], a)


@pytest.mark.parametrize("offset", [0, 4096, 140])
def test_source_array_is_aligned_and_writable_for_dlpack(tmp_path, offset):
    data = np.arange(64, dtype=np.float32)
    (tmp_path / "src.bin").write_bytes(b"x" * offset + data.tobytes())
    ext = ir.ExternalTensor("src.bin", offset, 256, ir.DataType.FLOAT, shape=ir.Shape([8, 8]), name="e",
                            base_dir=tmp_path)
    for t in (ext, ir.tensor(data[1:].copy())):
        a = source_array(t)
        assert a.ctypes.data % 64 == 0 and a.flags.writeable and a.flags.c_contiguous
        assert np.array_equal(a.reshape(-1), data[:64] if t is ext else data[1:])


def test_short_file_is_an_error(tmp_path):
    entries = write_weights([tensor_item("a", ir.tensor(np.ones(2048, np.float32)))], tmp_path / "w.bin")
    with open(tmp_path / "w.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(ArtifactError, match=r"w.bin: weight 'a' \[0, 8192\) exceeds the file \(100 bytes\)"):
        open_weights(tmp_path, {"file": "w.bin", "tensors": entries})
    with pytest.raises(ArtifactError, match="weights file missing"):
        open_weights(tmp_path, {"file": "nope.bin", "tensors": entries})


def test_big_in_memory_initializers_are_saved_as_external_data(tmp_path, monkeypatch):
    """Initializers too big for one protobuf leave the .onnx even when none came as external data."""
    import edgec.ir.loader as loader

    w = ir.Value(name="w", const_value=ir.tensor(np.arange(1 << 18, dtype=np.float32)))
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([1 << 18]))
    node = ir.node("Add", [x, w], outputs=[ir.Value(name="y", type=ir.TensorType(ir.DataType.FLOAT),
                                                    shape=ir.Shape([1 << 18]))])
    graph = ir.Graph([x], node.outputs, nodes=[node], initializers=[w], opset_imports={"": 17}, name="g")
    model = ir.Model(graph, ir_version=8)
    assert initializer_bytes(model) == 1 << 20 < EXTERNAL_DATA_BYTES
    save_model(model, tmp_path / "small.onnx")
    assert not (tmp_path / "small.onnx.data").exists()
    monkeypatch.setattr(loader, "EXTERNAL_DATA_BYTES", 1 << 20)
    save_model(model, tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").stat().st_size == 1 << 20
    assert (tmp_path / "big.onnx").stat().st_size < 4096
    back = load_model(tmp_path / "big.onnx")
    assert np.array_equal(back.graph.initializers["w"].const_value.numpy(), np.arange(1 << 18, dtype=np.float32))
