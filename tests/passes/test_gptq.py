"""GPTQ for quantize-weights (method=gptq): the weights are fitted to their inputs' second moments,
so on held-out inputs of the same distribution the layer's output error is lower than
round-to-nearest's (the point of the method) while the stored format is unchanged (onnxruntime
runs it and computes exactly x @ the stored integers). With uncorrelated inputs (X^T X = I) it is
round-to-nearest, bit for bit. A decoder is calibrated on token sequences (its vocabulary read from
the embedding Gather); token ids outside the vocabulary are the user's error, one line."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgec.errors import EdgecError
from edgec.passes.quantization._data import token_samples
from edgec.passes.quantization._gptq import gptq_blocks
from edgec.passes.quantization._nbits import dequantize, quantize_blocks
from edgec.passes.quantization.quantize_weights import token_vocab
from edgec.reference import run_ort
from tests.passes.test_quantize_weights import _stored_weight, quantize

K, N = 96, 40


def _mixing(seed: int = 5) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((K, K)) / np.sqrt(K)).astype(np.float32)


def correlated_inputs(rows: int, seed: int) -> np.ndarray:
    """Inputs with strongly correlated features and a mean (as activations after GELU have)."""
    z = np.random.default_rng(seed).standard_normal((rows, K)).astype(np.float32)
    return z @ _mixing() + 0.5


def test_identity_gram_is_round_to_nearest():
    w = np.random.default_rng(0).normal(0, 0.02, (K, N)).astype(np.float32)
    for bits, sym in ((4, False), (4, True), (8, False)):
        got = gptq_blocks(w, np.eye(K), bits, 32, sym)
        want = quantize_blocks(w, bits, 32, sym)
        assert all(np.array_equal(a, b) for a, b in zip(got, want)), (bits, sym)


@pytest.mark.parametrize("bits,group,symmetric", [(4, 32, False), (4, 16, True), (8, 32, False)])
def test_lower_output_error_than_round_to_nearest_on_held_out_inputs(bits, group, symmetric):
    w = np.random.default_rng(1).normal(0, 0.02, (K, N)).astype(np.float32)
    x = correlated_inputs(2000, seed=2)
    q, zp, s = gptq_blocks(w, x.T.astype(np.float64) @ x, bits, group, symmetric)
    rq, rzp, rs = quantize_blocks(w, bits, group, symmetric)
    held = correlated_inputs(500, seed=3)  # not the calibration rows

    def err(q, zp, s):
        return float(np.linalg.norm(held @ dequantize(q, zp, s, K, group) - held @ w))

    assert err(q, zp, s) < 0.8 * err(rq, rzp, rs), (err(q, zp, s), err(rq, rzp, rs))
    assert q.max() < (1 << bits) and zp.max() < (1 << bits) and np.all(np.isfinite(s)) and np.all(s > 0)


def _mlp() -> onnx.ModelProto:
    """y = MatMul(x @ mix + 0.5, W): the quantized MatMul sees correlated inputs."""
    rng = np.random.default_rng(4)
    inits = [nh.from_array(_mixing(), "mix"), nh.from_array(np.full(K, 0.5, np.float32), "shift"),
             nh.from_array(rng.normal(0, 0.02, (K, N)).astype(np.float32), "w")]
    nodes = [h.make_node("MatMul", ["x", "mix"], ["m"], name="mix_mm"), h.make_node("Add", ["m", "shift"], ["a"]),
             h.make_node("MatMul", ["a", "w"], ["y"], name="mm")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, [64, K])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [64, N])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 10
    return onnx.shape_inference.infer_shapes(m)


def test_pass_with_gptq_runs_in_onnxruntime_and_beats_rtn(tmp_path):
    src = _mlp()
    data = tmp_path / "calib"
    data.mkdir()
    rng = np.random.default_rng(6)
    for i in range(8):
        np.save(data / f"{i}.npy", rng.standard_normal((64, K)).astype(np.float32))
    opts = {"bits": 4, "exclude": "mix_mm", "accuracy_level": 0}
    g = quantize(src, **opts, method="gptq", data=str(data), samples=8)
    r = quantize(src, **opts)
    assert [n.op_type for n in g.graph.node] == ["MatMul", "Add", "MatMulNBits"]
    x = np.random.default_rng(7).standard_normal((64, K)).astype(np.float32)  # held out
    want = run_ort(src, {"x": x})["y"]
    got_g, got_r = run_ort(g, {"x": x})["y"], run_ort(r, {"x": x})["y"]
    # onnxruntime computes x' @ the stored integers (the format did not change)
    a = x @ nh.to_array(next(t for t in src.graph.initializer if t.name == "mix")) + 0.5
    np.testing.assert_allclose(got_g, a @ _stored_weight(g, g.graph.node[2]), rtol=1e-4, atol=1e-4)
    assert np.linalg.norm(got_g - want) < 0.8 * np.linalg.norm(got_r - want)


def _decoder_inputs(model_path) -> tuple[ir.Model, list]:
    from edgec.ir.analysis import graph_inputs

    m = ir.load(model_path)
    return m, graph_inputs(m)


def test_decoder_vocab_and_token_calibration_data(tmp_path):
    m, inputs = _decoder_inputs("tests/models/tiny_gpt2_kv.onnx")
    vocab = token_vocab(m)
    assert vocab == 256
    feeds = list(token_samples(inputs, vocab, None, 3, seed=0, length=10))
    assert len(feeds) == 3 and feeds[0]["input_ids"].shape == (1, 10) and feeds[0]["input_ids"].max() < vocab
    assert all(f["past_key_values.0.key"].shape[2] == 0 for f in feeds)
    d = tmp_path / "ids"
    d.mkdir()
    np.savez(d / "a.npz", input_ids=np.array([[1, 2, 3], [4, 5, 6]]))
    np.save(d / "b.npy", np.array([7, 8]))
    got = [f["input_ids"].tolist() for f in token_samples(inputs, vocab, str(d), 10)]
    assert got == [[[1, 2, 3]], [[4, 5, 6]], [[7, 8]]]
    np.save(d / "c.npy", np.array([300]))
    with pytest.raises(EdgecError, match=r"c\.npy: token ids must lie in \[0, 256\)"):
        list(token_samples(inputs, vocab, str(d), 10))


def test_decoder_quantized_with_gptq_runs_and_stays_close():
    from edgec.llm_decode import prefill_feed

    src = onnx.load("tests/models/tiny_gpt2_kv.onnx")
    q = quantize(src, bits=4, method="gptq", samples=8, tokens=32)
    assert sum(n.op_type == "MatMulNBits" for n in q.graph.node) >= 8
    shapes = {i.name: tuple(d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim) for i in src.graph.input}
    feed = prefill_feed(shapes, np.random.default_rng(9).integers(0, 256, (1, 20)))
    want, got = run_ort(src, feed)["logits"], run_ort(q, feed)["logits"]
    assert got.shape == want.shape and np.all(np.isfinite(got))
    cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    assert cos.min() > 0.98
