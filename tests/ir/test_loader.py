import numpy as np
import onnx
import onnx.helper as oh
import pytest

from edgec.errors import ModelLoadError, ModelValidationError
from edgec.ir.loader import load_model, save_model, to_proto


def small_model(weight_location: str | None = None, length: int | None = None) -> onnx.ModelProto:
    w = oh.make_tensor("w", onnx.TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    if weight_location is not None:
        w.ClearField("float_data")
        w.data_location = onnx.TensorProto.EXTERNAL
        entries = {"location": weight_location, "offset": "0"}
        if length is not None:
            entries["length"] = str(length)
        for k, v in entries.items():
            w.external_data.add(key=k, value=v)
    graph = oh.make_graph(
        [oh.make_node("Add", ["x", "w"], ["y"])], "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])], [w])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def expect(exc, path, match):
    with pytest.raises(exc) as info:
        load_model(path)
    text = str(info.value)
    assert "\n" not in text
    assert str(path.name) in text
    assert match in text
    return text


def test_loads_a_valid_model_and_saves_it(tmp_path):
    p = tmp_path / "ok.onnx"
    onnx.save(small_model(), p)
    model = load_model(p)
    assert [n.op_type for n in model.graph] == ["Add"]
    out = tmp_path / "out.onnx"
    save_model(model, out)
    assert onnx.load(out).graph.node[0].op_type == "Add"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_file(tmp_path):
    expect(ModelLoadError, tmp_path / "nope.onnx", "file not found")


def test_directory(tmp_path):
    d = tmp_path / "dir.onnx"
    d.mkdir()
    expect(ModelLoadError, d, "is a directory")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    expect(ModelLoadError, p, "empty file")


@pytest.mark.parametrize("data", [b"this is not a model at all\n", b"\x89PNG\r\n\x1a\n" + bytes(range(40))])
def test_non_onnx_bytes(tmp_path, data):
    p = tmp_path / "junk.onnx"
    p.write_bytes(data)
    expect(ModelLoadError, p, "")


def test_truncated_protobuf(tmp_path):
    data = small_model().SerializeToString()
    p = tmp_path / "trunc.onnx"
    p.write_bytes(data[: len(data) // 2])
    expect(ModelLoadError, p, "")


def write_external(tmp_path, location, nbytes=16, length=None):
    model_dir = tmp_path / "m"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "w.bin").write_bytes(np.arange(nbytes // 4, dtype=np.float32).tobytes())
    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    p = model_dir / "ext.onnx"
    p.write_bytes(small_model(location, length).SerializeToString())
    return p


def test_external_data_inside_directory_loads(tmp_path):
    p = write_external(tmp_path, "w.bin")
    model = load_model(p)
    assert model.graph.initializers["w"].const_value.numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert to_proto(model).graph.initializer[0].name == "w"


def test_external_data_escaping_with_dotdot(tmp_path):
    p = write_external(tmp_path, "../secret.bin")
    expect(ModelLoadError, p, "escapes the model directory")


def test_external_data_absolute_path(tmp_path):
    p = write_external(tmp_path, str(tmp_path / "secret.bin"))
    expect(ModelLoadError, p, "must be a relative path")


def test_external_data_missing_file(tmp_path):
    p = write_external(tmp_path, "absent.bin")
    expect(ModelLoadError, p, "not found")


def test_external_data_too_short(tmp_path):
    p = write_external(tmp_path, "w.bin", nbytes=8)
    expect(ModelLoadError, p, "external data has 8 bytes")
    p = write_external(tmp_path, "w.bin", nbytes=8, length=16)
    expect(ModelLoadError, p, "exceeds the file")


def test_inconsistent_shapes(tmp_path):
    model = small_model()
    model.graph.initializer[0].CopyFrom(oh.make_tensor("w", onnx.TensorProto.FLOAT, [3], [1.0, 2.0, 3.0]))
    p = tmp_path / "shapes.onnx"
    p.write_bytes(model.SerializeToString())
    expect(ModelValidationError, p, "inconsistent shapes")


def test_checker_failure(tmp_path):
    model = small_model()
    model.graph.node[0].op_type = "NoSuchOp"
    p = tmp_path / "bad.onnx"
    p.write_bytes(model.SerializeToString())
    expect(ModelValidationError, p, "invalid ONNX model")
