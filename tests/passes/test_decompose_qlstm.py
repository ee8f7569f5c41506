"""decompose-rnn on com.microsoft DynamicQuantizeLSTM (what onnxruntime's `quantize_dynamic` makes of an
LSTM): unrolled with DynamicQuantizeMatMul products, compiled for x86-64 and compared with
onnxruntime's DynamicQuantizeLSTM kernel on seeded inputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime import quantization

S, B, IN, H = 5, 2, 8, 16


def _lstm(path, direction: str, initial_state: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    d = 2 if direction == "bidirectional" else 1
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, (d, 4 * H, IN)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.uniform(-0.5, 0.5, (d, 4 * H, H)).astype(np.float32), "R"),
             numpy_helper.from_array(rng.uniform(-0.2, 0.2, (d, 8 * H)).astype(np.float32), "B")]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [S, B, IN])]
    names = ["x", "W", "R", "B"]
    if initial_state:
        ins += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [d, B, H]) for n in ("h0", "c0")]
        names += ["", "h0", "c0"]
    node = helper.make_node("LSTM", names, ["y", "yh", "yc"], hidden_size=H, direction=direction, name="lstm0")
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [S, d, B, H]),
            helper.make_tensor_value_info("yh", TensorProto.FLOAT, [d, B, H]),
            helper.make_tensor_value_info("yc", TensorProto.FLOAT, [d, B, H])]
    m = helper.make_model(helper.make_graph([node], "lstm", ins, outs, inits), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.mark.parametrize("direction,initial_state,per_channel,wtype", [
    ("bidirectional", True, False, "QInt8"),
    ("forward", False, True, "QInt8"),
    ("reverse", True, False, "QUInt8"),
])
def test_dynamic_quantize_lstm_matches_onnxruntime(direction, initial_state, per_channel, wtype, tmp_path):
    from edgec.api import CompileOptions, compile_model, run_artifact
    from edgec.reference import run_ort

    _lstm(tmp_path / "f.onnx", direction, initial_state)
    quantization.quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", per_channel=per_channel,
                                  weight_type=getattr(quantization.QuantType, wtype))
    proto = onnx.load(tmp_path / "q.onnx")
    assert [n.op_type for n in proto.graph.node] == ["DynamicQuantizeLSTM"]
    art = compile_model(tmp_path / "q.onnx", tmp_path / "art", CompileOptions(target="x86-64"))
    assert "DynamicQuantizeMatMul" in art.metadata["lowering"]["edgec"], art.metadata["lowering"]
    for seed in range(2):
        rng = np.random.default_rng(seed)
        inputs = {i.name: rng.uniform(-1, 1, [d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
                  for i in proto.graph.input}
        actual, expected = run_artifact(art, inputs), run_ort(proto, inputs)
        for name, e in expected.items():
            # int8 products are exact; what remains is float32 rounding and onnxruntime's activation kernels
            np.testing.assert_allclose(actual[name], e, atol=2e-6, rtol=1e-5, err_msg=name)
        # X and H really are quantized on the fly: the float LSTM is much further from onnxruntime's result
        float_y = run_ort(onnx.load(tmp_path / "f.onnx"), inputs)["y"]
        assert np.max(np.abs(float_y - expected["y"])) > 1e-3


def test_dynamic_quantize_lstm_with_clip_is_rejected_with_node_and_op(tmp_path):
    from edgec.api import CompileOptions, compile_model
    from edgec.errors import UnsupportedOpError

    _lstm(tmp_path / "f.onnx", "forward", False)
    quantization.quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", weight_type=quantization.QuantType.QInt8)
    proto = onnx.load(tmp_path / "q.onnx")
    proto.graph.node[0].attribute.append(helper.make_attribute("clip", 3.0))
    onnx.save(proto, tmp_path / "clip.onnx")
    with pytest.raises(UnsupportedOpError, match=r"clip\.onnx: unsupported operator: node '.*' op 'DynamicQuantizeLSTM' "
                                                 r"domain 'com.microsoft'"):
        compile_model(tmp_path / "clip.onnx", tmp_path / "art", CompileOptions(target="x86-64"))
