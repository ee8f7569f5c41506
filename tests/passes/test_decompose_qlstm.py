"""decompose-rnn on com.microsoft DynamicQuantizeLSTM (what onnxruntime's `quantize_dynamic` makes of an
LSTM; its weights are int8 whatever `weight_type` says): unrolled with DynamicQuantizeMatMul
products, compiled for x86-64 and compared with an exact numpy model of onnxruntime's kernel.

Why not onnxruntime itself: its uint8 x int8 GEMM (MLAS) is exact only on CPUs with VNNI. On x86
without it (AVX2, e.g. this test's AMD EPYC without AVX-512) MLAS multiplies with vpmaddubsw, which
adds two adjacent u8·s8 products into an int16 with saturation: X and H are quantized to uint8 over
[0, 255], the weights span [-127, 127], so a pair reaches 64770 and is clipped to 32767. That made
onnxruntime's outputs 0.07-0.44 away from the exact result here, while edgec (int32 products, or
float32 ones where they are exact) stays within 2e-7 of it. So edgec is checked against the numpy
model, and the numpy model against onnxruntime: with the int8 weights re-encoded as uint8 (its u8u8
kernels are exact on every CPU), and as written, where that is exact (`ort_u8s8_exact`) or else
against the same model with MLAS's int16 pair saturation, which reproduces onnxruntime's output
here to 1.2e-7."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime import quantization

from tests.targets.qlinear_util import ort_u8s8_exact, run_ort_exact

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


def _dynamic_qgemm(a, w, w_scale, w_zp, saturate_pairs: bool):
    """onnxruntime's quantized GEMM of the LSTM (rnn_helpers ComputeGemm): a float32 [M, K] quantized
    to uint8 per tensor as DynamicQuantizeLinear (range [min(a, 0), max(a, 0)], scale = range / 255,
    zero point = round_half_even(clip(-min / scale, 0, 255)), q = clip(round_half_even(a / scale) + zp)),
    times w int8 [K, N] (zero point per tensor or per column) accumulated exactly, then
    float32(acc) * float32(a_scale * w_scale). `saturate_pairs`: as MLAS's u8s8 kernel without VNNI,
    sum the raw products q[2j]·w[2j] + q[2j+1]·w[2j+1] in saturating int16, then correct for the
    zero points in int32."""
    lo, hi = np.minimum(a.min(), np.float32(0)), np.maximum(a.max(), np.float32(0))
    scale = np.float32(1) if hi == lo else np.float32((hi - lo) / np.float32(255))
    zp = int(np.round(np.clip(np.float32(0) - lo / scale, 0, 255)))
    q = np.clip(np.round(a / scale) + zp, 0, 255).astype(np.int64)
    w, w_zp = w.astype(np.int64), np.asarray(w_zp).astype(np.int64)
    if saturate_pairs:
        pairs = (q[:, :, None] * w[None]).reshape(q.shape[0], q.shape[1] // 2, 2, -1).sum(2)
        acc = np.clip(pairs, -32768, 32767).sum(1) - zp * w.sum(0) - q.sum(1, keepdims=True) * w_zp \
            + q.shape[1] * zp * w_zp
    else:
        acc = (q - zp) @ (w - w_zp)
    return acc.astype(np.float32) * (scale * np.asarray(w_scale, np.float32))


def _qlstm_reference(proto, inputs, saturate_pairs=False):
    """DynamicQuantizeLSTM (no clip, default activations, layout 0) as onnxruntime computes it: X of
    all steps quantized at once, H[t-1] of the whole batch at each step, X·W + H·R + (Wb + Rb), gates
    i, o, f, c; activations in float64 rounded to float32."""
    node = proto.graph.node[0]
    consts = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    val = [inputs.get(n, consts.get(n)) if n else None for n in node.input]
    x, w, r, bias, h0, c0, w_scale, w_zp, r_scale, r_zp = val[0], *val[1:4], *val[5:7], *val[8:12]
    direction = helper.get_attribute_value(next(a for a in node.attribute if a.name == "direction")).decode()
    sig = lambda v: (1 / (1 + np.exp(-v.astype(np.float64)))).astype(np.float32)  # noqa: E731
    tanh = lambda v: np.tanh(v.astype(np.float64)).astype(np.float32)  # noqa: E731
    out = {"y": [], "yh": [], "yc": []}
    for d in range(w.shape[0]):
        xw = _dynamic_qgemm(x.reshape(S * B, IN), w[d], w_scale[d], w_zp[d], saturate_pairs).reshape(S, B, 4 * H)
        b = bias[d, :4 * H] + bias[d, 4 * H:]
        h = h0[d] if h0 is not None else np.zeros((B, H), np.float32)
        c = c0[d] if c0 is not None else np.zeros((B, H), np.float32)
        y = np.zeros((S, B, H), np.float32)
        for t in range(S - 1, -1, -1) if direction == "reverse" or d == 1 else range(S):
            gi, go, gf, gc = np.split(xw[t] + _dynamic_qgemm(h, r[d], r_scale[d], r_zp[d], saturate_pairs) + b, 4, 1)
            c = sig(gf) * c + sig(gi) * tanh(gc)
            y[t] = h = sig(go) * tanh(c)
        for k, v in (("y", y), ("yh", h), ("yc", c)):
            out[k].append(v)
    return {k: np.stack(v, 1 if k == "y" else 0) for k, v in out.items()}


@pytest.mark.parametrize("direction,initial_state,per_channel,wtype", [
    ("bidirectional", True, False, "QInt8"),
    ("forward", False, True, "QInt8"),
    ("reverse", True, False, "QUInt8"),
])
def test_dynamic_quantize_lstm_matches_exact_reference_and_onnxruntime(direction, initial_state, per_channel, wtype,
                                                                      tmp_path):
    from edgec.api import CompileOptions, compile_model, run_artifact
    from edgec.pipelines import default_pipeline
    from edgec.reference import run_ort
    from edgec.targets.registry import get_target

    _lstm(tmp_path / "f.onnx", direction, initial_state)
    quantization.quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", per_channel=per_channel,
                                  weight_type=getattr(quantization.QuantType, wtype))
    proto = onnx.load(tmp_path / "q.onnx")
    assert [n.op_type for n in proto.graph.node] == ["DynamicQuantizeLSTM"]
    # native: one recurrence kernel (targets/tvm/ops/rnn.py); unrolled: decompose-rnn{native=0}
    art = compile_model(tmp_path / "q.onnx", tmp_path / "art", CompileOptions(target="x86-64"))
    assert art.metadata["lowering"]["edgec"] == {"DynamicQuantizeLSTM": 1}, art.metadata["lowering"]
    pipeline = default_pipeline(get_target("x86-64"), 2).replace("decompose-rnn", "decompose-rnn{native=0}")
    unrolled = compile_model(tmp_path / "q.onnx", tmp_path / "art-u", CompileOptions(target="x86-64", passes=pipeline))
    assert "DynamicQuantizeMatMul" in unrolled.metadata["lowering"]["edgec"], unrolled.metadata["lowering"]
    for seed in range(2):
        rng = np.random.default_rng(seed)
        inputs = {i.name: rng.uniform(-1, 1, [d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
                  for i in proto.graph.input}
        expected = _qlstm_reference(proto, inputs)
        ort_model = expected if ort_u8s8_exact() else _qlstm_reference(proto, inputs, saturate_pairs=True)
        for got, want, what in [(run_artifact(art, inputs), expected, "edgec"),
                                (run_artifact(unrolled, inputs), expected, "edgec, unrolled"),
                                (run_ort_exact(proto, inputs), expected, "onnxruntime, uint8 weights"),
                                (run_ort(proto, inputs), ort_model, "onnxruntime as written")]:
            for name, e in want.items():
                # integer products are exact; what remains is float32 rounding, the order of the
                # additions and onnxruntime's activation kernels (all three measured <= 2e-7)
                np.testing.assert_allclose(got[name], e, atol=2e-6, rtol=1e-5, err_msg=f"{what}: {name}")
        # X and H really are quantized on the fly: the float LSTM is much further from the quantized result
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
