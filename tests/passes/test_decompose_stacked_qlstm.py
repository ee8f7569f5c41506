"""Two stacked com.microsoft DynamicQuantizeLSTMs whose sequence length is a named dim fixed by
--input-shape (issue 12: tashkeel_bilstm_int8, tashkeel_rawi_int8, tashkeel_rawi_ensemble_int8).

decompose-rnn unrolls the first LSTM into DynamicQuantizeMatMul nodes, which onnx's shape inference
does not know; the Emitter gives every value it creates its dtype and shape, so infer-shapes carries
the static sequence length through Y -> Transpose -> Reshape to the second LSTM's X and the next
fixpoint round unrolls that one too. Checked against the exact numpy model of onnxruntime's kernel
(tests/passes/test_decompose_qlstm.py: onnxruntime's own u8s8 products saturate on x86 without VNNI)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime import quantization

from tests.passes.test_decompose_qlstm import _dynamic_qgemm

S, B, IN, H = 6, 1, 8, 16


def _stacked(path, direction: str, seed: int = 0):
    """x [seq, B, IN] -> LSTM -> Y [seq, D, B, H] -> Transpose/Reshape [seq, B, D*H] -> LSTM -> y."""
    rng = np.random.default_rng(seed)
    d = 2 if direction == "bidirectional" else 1
    inits, nodes = [], []
    x = "x"
    for k, width in enumerate((IN, d * H)):
        inits += [numpy_helper.from_array(rng.uniform(-0.5, 0.5, (d, 4 * H, width)).astype(np.float32), f"W{k}"),
                  numpy_helper.from_array(rng.uniform(-0.5, 0.5, (d, 4 * H, H)).astype(np.float32), f"R{k}"),
                  numpy_helper.from_array(rng.uniform(-0.2, 0.2, (d, 8 * H)).astype(np.float32), f"B{k}")]
        nodes.append(helper.make_node("LSTM", [x, f"W{k}", f"R{k}", f"B{k}"], [f"y{k}"], hidden_size=H,
                                      direction=direction, name=f"lstm{k}"))
        if k == 0:  # what torch exports between stacked layers: [S, D, B, H] -> [S, B, D, H] -> [S, B, D*H]
            inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape"))
            nodes += [helper.make_node("Transpose", ["y0"], ["y0t"], perm=[0, 2, 1, 3]),
                      helper.make_node("Reshape", ["y0t", "shape"], ["x1"])]
            x = "x1"
    g = helper.make_graph(nodes, "stacked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", B, IN])],
                          [helper.make_tensor_value_info("y1", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def _reference(proto, x):
    """Both DynamicQuantizeLSTMs (default activations, no initial state) with exact integer products."""
    consts = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    sig = lambda v: (1 / (1 + np.exp(-v.astype(np.float64)))).astype(np.float32)  # noqa: E731
    tanh = lambda v: np.tanh(v.astype(np.float64)).astype(np.float32)  # noqa: E731
    for node in proto.graph.node:
        if node.op_type == "Transpose":
            x = x.transpose(0, 2, 1, 3)
        elif node.op_type == "Reshape":
            x = x.reshape(x.shape[0], x.shape[1], -1)
        elif node.op_type == "DynamicQuantizeLSTM":
            w, r, bias, _, _, _, _, w_scale, w_zp, r_scale, r_zp = (consts.get(n) for n in node.input[1:12])
            s = x.shape[0]
            ys = []
            for d in range(w.shape[0]):
                xw = _dynamic_qgemm(x.reshape(s * B, -1), w[d], w_scale[d], w_zp[d], False).reshape(s, B, 4 * H)
                b = bias[d, :4 * H] + bias[d, 4 * H:]
                h, c = np.zeros((B, H), np.float32), np.zeros((B, H), np.float32)
                y = np.zeros((s, B, H), np.float32)
                for t in range(s - 1, -1, -1) if d == 1 else range(s):
                    gi, go, gf, gc = np.split(xw[t] + _dynamic_qgemm(h, r[d], r_scale[d], r_zp[d], False) + b, 4, 1)
                    c = sig(gf) * c + sig(gi) * tanh(gc)
                    y[t] = h = sig(go) * tanh(c)
                ys.append(y)
            x = np.stack(ys, 1)
        else:
            raise AssertionError(node.op_type)
    return x


def test_decomposed_qlstm_values_carry_dtypes_and_shapes(tmp_path):
    """Every value decompose-rnn creates for the first LSTM has a dtype and a shape (onnx cannot
    infer the contrib DynamicQuantizeMatMul), and the first LSTM's Y is [S, D, B, H]."""
    from edgec.infra.context import PassContext
    from edgec.passes.control.decompose_rnn import DecomposeRnn

    _stacked(tmp_path / "f.onnx", "bidirectional")
    quantization.quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", weight_type=quantization.QuantType.QInt8)
    proto = onnx.load(tmp_path / "q.onnx")
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = S  # as --input-shape x=S,1,8 does
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    assert DecomposeRnn()(model, PassContext()).modified
    # the first LSTM is gone; the second one's X gets its static shape from the next infer-shapes
    assert [n.op_type for n in model.graph].count("DynamicQuantizeLSTM") == 1
    y0 = next(n for n in model.graph if n.op_type == "Transpose").inputs[0]
    created = [o for n in model.graph if n.op_type not in ("DynamicQuantizeLSTM", "Transpose", "Reshape")
               for o in n.outputs]
    assert created and any(o.producer().op_type == "DynamicQuantizeMatMul" for o in created)
    for o in created:
        assert o.dtype == ir.DataType.FLOAT, (o.name, o.producer().op_type)
        assert o.shape is not None and o.shape.is_static(), (o.name, o.producer().op_type, o.shape)
    assert list(y0.shape) == [S, 2, B, H]


@pytest.mark.parametrize("native", [True, False], ids=["kernel", "unrolled"])
@pytest.mark.parametrize("direction", ["bidirectional", "forward"])
def test_stacked_dynamic_quantize_lstms_with_fixed_sequence_length(direction, native, tmp_path):
    """Both LSTMs as the CPU backend's recurrence kernel (decompose-rnn types the first one's
    outputs so the second gets a static X), or unrolled (decompose-rnn{native=0})."""
    from edgec.api import CompileOptions, compile_model, run_artifact
    from edgec.pipelines import default_pipeline
    from edgec.targets.registry import get_target

    _stacked(tmp_path / "f.onnx", direction)
    quantization.quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", weight_type=quantization.QuantType.QInt8)
    proto = onnx.load(tmp_path / "q.onnx")
    assert [n.op_type for n in proto.graph.node].count("DynamicQuantizeLSTM") == 2
    passes = None if native else default_pipeline(get_target("x86-64"), 2).replace("decompose-rnn", "decompose-rnn{native=0}")
    art = compile_model(tmp_path / "q.onnx", tmp_path / "art",
                        CompileOptions(target="x86-64", input_shapes={"x": [S, B, IN]}, passes=passes))
    lowering = art.metadata["lowering"]
    if native:
        assert lowering["edgec"].get("DynamicQuantizeLSTM") == 2, lowering
        assert "DynamicQuantizeMatMul" not in lowering["edgec"], lowering
    else:
        assert "DynamicQuantizeMatMul" in lowering["edgec"], lowering
        assert "DynamicQuantizeLSTM" not in str(lowering), lowering
    for seed in range(2):
        x = np.random.default_rng(seed).uniform(-1, 1, (S, B, IN)).astype(np.float32)
        want = _reference(proto, x)
        got = run_artifact(art, {"x": x})["y1"]
        assert got.shape == want.shape
        # integer products are exact; float32 rounding and activation kernels differ by <= ~2e-7
        np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)
