"""The Python API (`import edgec`): compile from a path or a ModelProto, load, run against
onnxruntime, typed errors; `import edgec` imports no onnx / TVM."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.compare import assert_outputs_match
from edgec.errors import ArtifactError, ModelLoadError, PipelineError, TargetError


def _proto() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.random.default_rng(3).standard_normal((16, 8)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Sigmoid", ["m"], ["y"])],
                          "api", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_compile_load_run_match_onnxruntime(tmp_path):
    import onnxruntime as ort

    proto = _proto()
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    x = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    expected = {"y": ort.InferenceSession(str(path)).run(None, {"x": x})[0]}
    art = edgec.compile(path, target="x86-64", output=tmp_path / "a", emit=["library", "metadata"])
    assert art.path == tmp_path / "a" and not (art.path / "model.h").exists()
    assert_outputs_match(edgec.load(tmp_path / "a").run({"x": x}), expected, atol=1e-5)
    from_proto = edgec.compile(proto)  # a ModelProto, into a temporary directory
    assert_outputs_match(from_proto.run(x=x), expected, atol=1e-5)
    assert len(from_proto.bench(repeat=2, warmup=0)) == 2


def test_errors_are_typed(tmp_path):
    with pytest.raises(ModelLoadError):
        edgec.compile(tmp_path / "missing.onnx", output=tmp_path / "a")
    onnx.save(_proto(), tmp_path / "m.onnx")
    with pytest.raises(PipelineError):
        edgec.compile(tmp_path / "m.onnx", output=tmp_path / "a", quantize="int3")
    with pytest.raises(PipelineError):
        edgec.compile(tmp_path / "m.onnx", output=tmp_path / "a", group_size=32)
    with pytest.raises(TargetError):
        edgec.compile(tmp_path / "m.onnx", target="z80", output=tmp_path / "a")
    art = edgec.compile(tmp_path / "m.onnx", output=tmp_path / "a")
    with pytest.raises(ArtifactError):
        art.run({"x": np.zeros((3, 16), np.float32)})
    with pytest.raises(ArtifactError):
        edgec.load(tmp_path / "nothing-here")


def test_import_edgec_is_light():
    code = "import sys, edgec; print(edgec.__version__, sorted(m for m in ('onnx', 'tvm', 'onnx_ir', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"{edgec.__version__} []", out
