"""quantize-weights (weight-only int4 / int8 per block along K -> com.microsoft MatMulNBits): the
written model runs in onnxruntime and computes exactly x @ dequantize(stored integers) (the format
is read back by _nbits.unpack, the same code the backend uses), the error against the float model
is bounded, the float weights are gone, and what it must not take stays float (a MatMul of two
activations, a Gemm with transA, K below the group size). onnxruntime's own MatMulNBitsQuantizer
output is read by the same unpack."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgec.api import CompileOptions, optimize
from edgec.passes.quantization._nbits import dequantize, unpack
from edgec.reference import run_ort

K, N, N2 = 80, 40, 24  # K is not a whole number of 32-blocks


def float_model() -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    inits = [nh.from_array(rng.standard_normal((K, N)).astype(np.float32), "w"),
             nh.from_array(rng.standard_normal((N2, N)).astype(np.float32), "w2"),   # Gemm transB
             nh.from_array(rng.standard_normal(N2).astype(np.float32), "c"),
             nh.from_array(rng.standard_normal((8, N2)).astype(np.float32), "small")]  # K=8 < group
    nodes = [h.make_node("MatMul", ["x", "w"], ["hid"], name="mm"),
             h.make_node("Gemm", ["hid", "w2", "c"], ["g"], name="gemm", transB=1),
             h.make_node("MatMul", ["g", "gt"], ["att"], name="act_act"),          # two activations
             h.make_node("Transpose", ["g"], ["gt"]),
             h.make_node("Gemm", ["x8", "small"], ["s"], name="small_k")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, [3, K]),
                                  h.make_tensor_value_info("x8", TP.FLOAT, [3, 8])],
                     [h.make_tensor_value_info("g", TP.FLOAT, [3, N2]), h.make_tensor_value_info("att", TP.FLOAT, [3, 3]),
                      h.make_tensor_value_info("s", TP.FLOAT, [3, N2])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 10
    return onnx.shape_inference.infer_shapes(m)


def quantize(proto, **opts) -> onnx.ModelProto:
    m, _ = optimize(ir.serde.deserialize_model(proto), None, CompileOptions(target=None, passes="quantize-weights"),
                    pass_options={"quantize-weights": opts})
    return ir.serde.serialize_model(m)


def _stored_weight(q: onnx.ModelProto, node: onnx.NodeProto) -> np.ndarray:
    inits = {t.name: nh.to_array(t) for t in q.graph.initializer}
    at = {a.name: h.get_attribute_value(a) for a in node.attribute}
    zp = inits[node.input[3]] if len(node.input) > 3 and node.input[3] else None
    qi, zpi = unpack(inits[node.input[1]], zp, at["bits"], at["block_size"], at["K"], at["N"])
    return dequantize(qi, zpi, inits[node.input[2]], at["K"], at["block_size"])


@pytest.mark.parametrize("bits,group,symmetric,min_cosine", [
    (4, 32, True, 0.98), (4, 16, False, 0.98), (8, 32, True, 0.9999), (8, 128, False, 0.9999)])
def test_runs_in_onnxruntime_as_its_stored_integers_say(bits, group, symmetric, min_cosine):
    proto = float_model()
    q = quantize(proto, bits=bits, group_size=group, symmetric=symmetric, accuracy_level=0)  # float arithmetic
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("MatMulNBits") == 2 and ops.count("MatMul") == 1 and ops.count("Gemm") == 1, ops
    names = {t.name for t in q.graph.initializer}
    assert not {"w", "w2", "c"} & names, "float weights left in the quantized model"
    nb = [n for n in q.graph.node if n.op_type == "MatMulNBits"]
    assert all(len(n.input) > 3 and n.input[3] for n in nb) == (not symmetric)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, K)).astype(np.float32), "x8": rng.standard_normal((3, 8)).astype(np.float32)}
    got = run_ort(q, feeds)
    want = run_ort(proto, feeds)
    w1, w2 = _stored_weight(q, nb[0]), _stored_weight(q, nb[1])
    assert w1.shape == (K, N) and w2.shape == (N, N2)
    inits = {t.name: nh.to_array(t) for t in proto.graph.initializer}
    exact = (feeds["x"] @ w1) @ w2 + inits["c"]
    np.testing.assert_allclose(got["g"], exact, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(got["s"], want["s"])  # K below the group: untouched
    a, b = got["g"].ravel().astype(np.float64), want["g"].ravel().astype(np.float64)
    cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert cosine >= min_cosine, cosine
    assert not np.isnan(got["att"]).any()


def test_idempotent_and_bad_options():
    from edgec.errors import PipelineError

    q = quantize(float_model(), bits=4)
    levels = [a.i for n in q.graph.node for a in n.attribute if a.name == "accuracy_level"]
    assert levels == [4, 4], levels  # int8 activations allowed by default (as onnxruntime-genai's CPU models)
    again = quantize(q, bits=4)
    assert [n.op_type for n in again.graph.node] == [n.op_type for n in q.graph.node]
    with pytest.raises(PipelineError, match="group_size"):
        quantize(float_model(), group_size=48)
    with pytest.raises(PipelineError, match="bits"):
        quantize(float_model(), bits=3)
    with pytest.raises(PipelineError, match="accuracy_level"):
        quantize(float_model(), accuracy_level=5)


def matmul_model(k: int, n: int, seed: int = 5) -> onnx.ModelProto:
    w = np.random.default_rng(seed).standard_normal((k, n)).astype(np.float32)
    g = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                     [h.make_tensor_value_info("x", TP.FLOAT, ["rows", k])],
                     [h.make_tensor_value_info("y", TP.FLOAT, ["rows", n])], [nh.from_array(w, "w")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 10
    return m


def ort_quantized(proto: onnx.ModelProto, block: int, symmetric: bool) -> onnx.ModelProto:
    """onnxruntime's own weight-only quantizer (what users and its model builder make)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    qz = MatMulNBitsQuantizer(proto, algo_config=DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=symmetric))
    qz.process()
    return qz.model.model


@pytest.mark.parametrize("symmetric", [True, False])
def test_reads_onnxruntime_quantizer_output(symmetric):
    q = ort_quantized(matmul_model(K, N), 16, symmetric)
    (nb,) = [n for n in q.graph.node if n.op_type == "MatMulNBits"]
    assert (len(nb.input) > 3 and bool(nb.input[3])) == (not symmetric)
    x = np.random.default_rng(1).standard_normal((3, K)).astype(np.float32)
    np.testing.assert_allclose(run_ort(q, {"x": x})["y"], x @ _stored_weight(q, nb), rtol=1e-4, atol=1e-3)


def test_tied_lm_head_transpose_of_the_embedding_is_quantized():
    """GPT-2's LM head: MatMul(h, Transpose(W)) with W also the embedding table of a Gather."""
    rng = np.random.default_rng(9)
    w = rng.standard_normal((50, 32)).astype(np.float32)  # [vocab, hidden]
    nodes = [h.make_node("Gather", ["W", "ids"], ["e"]), h.make_node("Transpose", ["W"], ["wt"], perm=[1, 0]),
             h.make_node("MatMul", ["e", "wt"], ["logits"])]
    g = h.make_graph(nodes, "tied", [h.make_tensor_value_info("ids", TP.INT64, [1, 4])],
                     [h.make_tensor_value_info("logits", TP.FLOAT, [1, 4, 50])], [nh.from_array(w, "W")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 10
    q = quantize(onnx.shape_inference.infer_shapes(m), bits=8, accuracy_level=0)
    assert [n.op_type for n in q.graph.node] == ["Gather", "MatMulNBits"]
    ids = np.array([[1, 7, 49, 0]], np.int64)
    got = run_ort(q, {"ids": ids})["logits"]
    want = w[ids] @ w.T
    np.testing.assert_allclose(got, want, atol=0.05 * np.abs(want).max())


def test_int8_patterns_widen_matching_matmuls_only():
    q = quantize(float_model(), bits=4, int8="w")  # the MatMul's weight name; the Gemm's is w2
    bits = {n.name: {a.name: h.get_attribute_value(a) for a in n.attribute}["bits"]
            for n in q.graph.node if n.op_type == "MatMulNBits"}
    assert sorted(bits.values()) == [4, 8], bits
    assert bits[next(n for n in bits if n.startswith("mm"))] == 8
    x = np.random.default_rng(0).standard_normal((3, K)).astype(np.float32)
    node = next(n for n in q.graph.node if n.name.startswith("mm"))
    got = run_ort(q, {"x": x, "x8": np.zeros((3, 8), np.float32)})
    assert np.all(np.isfinite(got["g"]))
    w = nh.to_array(next(t for t in float_model().graph.initializer if t.name == "w"))
    np.testing.assert_allclose(_stored_weight(q, node), w, atol=0.02)  # 8-bit steps of a ~N(0, 1) block
