"""edgec/distill_torch.py: the ONNX graph as a torch module computes what onnxruntime computes (on
seeded inputs, batched), its trainable weights are the weight/bias slots only, and masks keep zeros."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgec.compare import assert_outputs_match
from edgec.distill_torch import OnnxModule
from edgec.ir.loader import load_model
from edgec.reference import run_ort

R = np.random.default_rng(0)


def _w(*shape, scale=0.3):
    return R.normal(0, scale, shape).astype(np.float32)


def _model(nodes, inits: dict, x_shape, y_shape, opset=17):
    tensors = [numpy_helper.from_array(a if isinstance(a, np.ndarray) and a.dtype != np.float64 else
                                       np.asarray(a, np.float32), n) for n, a in inits.items()]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], tensors)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def _i64(*v):
    return np.array(v, np.int64)


def cnn_ops():
    """BatchNorm, asymmetric pads, depthwise conv, SAME_UPPER max pool with ceil, average pool
    without the pads counted, LeakyRelu, HardSigmoid, SiLU, GAP, Softmax."""
    n = helper.make_node
    return _model([
        n("Conv", ["x", "w1", "b1"], ["c1"], pads=[0, 1, 1, 2], strides=[1, 2], name="conv1"),
        n("BatchNormalization", ["c1", "s", "bb", "mu", "var"], ["bn"], epsilon=1e-3),
        n("LeakyRelu", ["bn"], ["l"], alpha=0.1),
        n("Conv", ["l", "dw"], ["d"], group=6, pads=[1, 1, 1, 1]),
        n("HardSigmoid", ["d"], ["hs"], alpha=0.3, beta=0.4), n("Mul", ["d", "hs"], ["m"]),
        n("Sigmoid", ["m"], ["sg"]), n("Mul", ["m", "sg"], ["silu"]),
        n("MaxPool", ["silu"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER", ceil_mode=0),
        n("AveragePool", ["mp"], ["ap"], kernel_shape=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0),
        n("GlobalAveragePool", ["ap"], ["g"]), n("Flatten", ["g"], ["f"]),
        n("Gemm", ["f", "wf", "bf"], ["z"], transB=1, alpha=0.7, beta=1.3),
        n("Softmax", ["z"], ["y"], axis=-1),
    ], {"w1": _w(6, 3, 3, 3), "b1": _w(6), "s": 1 + _w(6), "bb": _w(6), "mu": _w(6), "var": 0.5 + np.abs(_w(6)),
        "dw": _w(6, 1, 3, 3), "wf": _w(5, 6), "bf": _w(5)}, ["n", 3, 12, 10], ["n", 5])


def mlp_ops():
    """A transformer-style block: MatMul + bias, LayerNorm, erf GELU, Split/Concat, Slice,
    Reshape/Transpose, ReduceMean, Unsqueeze/Squeeze, Gather with a negative index, Pad, Clip."""
    n = helper.make_node
    return _model([
        n("MatMul", ["x", "w1"], ["h"]), n("Add", ["h", "b1"], ["hb"]),
        n("LayerNormalization", ["hb", "g", "beta"], ["ln"], axis=-1, epsilon=1e-5),
        n("Mul", ["ln", "rs2"], ["u"]), n("Erf", ["u"], ["e"]), n("Add", ["e", "one"], ["e1"]),
        n("Mul", ["ln", "e1"], ["gl"]), n("Mul", ["gl", "half"], ["gelu"]),
        n("Split", ["gelu", "sp"], ["a", "b"], axis=-1),
        n("Concat", ["b", "a"], ["cat"], axis=-1),
        n("Slice", ["cat", "st", "en", "ax"], ["sl"]),
        n("Reshape", ["sl", "shp"], ["rs"]), n("Transpose", ["rs"], ["tr"], perm=[0, 2, 1]),
        n("ReduceMean", ["tr"], ["rm"], axes=[1], keepdims=0),
        n("Unsqueeze", ["rm", "ax1"], ["us"]), n("Squeeze", ["us", "ax1"], ["sq"]),
        n("Gather", ["sq", "gi"], ["ga"], axis=1),
        n("Pad", ["ga", "pads"], ["pd"]),
        n("Clip", ["pd", "lo", "hi"], ["cl"]),
        n("MatMul", ["cl", "w2"], ["y"]),
    ], {"w1": _w(8, 16), "b1": _w(16), "g": 1 + _w(16), "beta": _w(16), "rs2": np.float32(0.70710678),
        "one": np.float32(1.0), "half": np.float32(0.5), "sp": _i64(6, 10), "st": _i64(1), "en": _i64(13),
        "ax": _i64(1), "shp": _i64(0, 3, 4), "ax1": _i64(1), "gi": _i64(-1, 0, 2), "pads": _i64(0, 1, 0, 2),
        "lo": np.float32(-0.5), "hi": np.float32(0.8), "w2": _w(6, 4)}, ["n", 8], ["n", 4])


def opset11_ops():
    """Opset 11: Softmax on a 2-D coercion of a 3-D tensor, Squeeze/Unsqueeze with axes attributes."""
    n = helper.make_node
    return _model([
        n("Unsqueeze", ["x"], ["u"], axes=[1]), n("Mul", ["u", "k"], ["m"]),
        n("Softmax", ["m"], ["s"], axis=1), n("ReduceSum", ["s"], ["r"], axes=[1], keepdims=1),
        n("Squeeze", ["r"], ["q"], axes=[1]), n("Gemm", ["q", "w", "b"], ["y"]),
    ], {"k": _w(1, 3, 1), "w": _w(5, 4), "b": _w(4)}, ["n", 5], ["n", 4], opset=11)


def upsample_ops():
    """A segmentation/detection head: ConvTranspose (stride 2, pads, output_padding), Resize nearest
    (asymmetric/floor by scales; half_pixel by sizes) and bilinear (half_pixel, align_corners),
    Max/Min."""
    n = helper.make_node
    return _model([
        n("ConvTranspose", ["x", "wt", "bt"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
        n("Resize", ["t", "", "sc"], ["r1"], mode="nearest", coordinate_transformation_mode="asymmetric",
          nearest_mode="floor"),
        n("Resize", ["t", "", "", "sz"], ["r2"], mode="nearest"),
        n("Resize", ["t", "", "sc"], ["r3"], mode="linear"),
        n("Resize", ["t", "", "sc"], ["r4"], mode="linear", coordinate_transformation_mode="align_corners"),
        n("Max", ["r1", "r2"], ["mx"]), n("Min", ["r3", "r4", "mx"], ["mn"]),
        n("Add", ["mx", "mn"], ["y"]),
    ], {"wt": _w(3, 4, 3, 3), "bt": _w(4), "sc": np.array([1, 1, 2, 2], np.float32), "sz": _i64(4, 4, 20, 16)},
        [4, 3, 5, 4], [4, 4, 20, 16])


def attention_ops():
    """Self-attention as exporters write it: heads split by Reshape, Q·Kᵀ, a causal mask by Where,
    Softmax over the keys, P·V, heads merged back."""
    n = helper.make_node
    mask = np.tril(np.ones((4, 4), bool))[None, None]
    return _model([
        n("MatMul", ["x", "wq"], ["q0"]), n("MatMul", ["x", "wk"], ["k0"]), n("MatMul", ["x", "wv"], ["v0"]),
        n("Reshape", ["q0", "split"], ["q1"]), n("Reshape", ["k0", "split"], ["k1"]),
        n("Reshape", ["v0", "split"], ["v1"]),
        n("Transpose", ["q1"], ["q"], perm=[0, 2, 1, 3]), n("Transpose", ["k1"], ["kt"], perm=[0, 2, 3, 1]),
        n("Transpose", ["v1"], ["v"], perm=[0, 2, 1, 3]),
        n("MatMul", ["q", "kt"], ["s0"]), n("Mul", ["s0", "scale"], ["s1"]),
        n("Where", ["mask", "s1", "fill"], ["s2"]), n("Softmax", ["s2"], ["p"], axis=-1),
        n("MatMul", ["p", "v"], ["c0"]), n("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3]),
        n("Reshape", ["c1", "merge"], ["c2"]), n("MatMul", ["c2", "wo"], ["y"]),
    ], {"wq": _w(8, 8), "wk": _w(8, 8), "wv": _w(8, 8), "wo": _w(8, 8), "split": _i64(0, 4, 2, 4),
        "merge": _i64(0, 4, 8), "scale": np.float32(0.5), "fill": np.float32(-1e4), "mask": mask},
        ["n", 4, 8], ["n", 4, 8])


def attention_run_time_targets_ops():
    """The same attention with the Reshape targets built at run time from the batch, as torch
    exports a dynamic batch (what prune-channels now rewrites: the counts are Concat pieces)."""
    m = attention_ops()
    n = helper.make_node
    g = m.graph
    shape_nodes = [n("Shape", ["x"], ["sh"]), n("Gather", ["sh", "zero"], ["b0"]),
                   n("Unsqueeze", ["b0", "ax"], ["b1"]), n("Concat", ["b1", "rest4"], ["split_rt"], axis=0),
                   n("Concat", ["b1", "rest3"], ["merge_rt"], axis=0)]
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in ("split", "merge"):
                node.input[i] = f"{name}_rt"
    for node in reversed(shape_nodes):
        g.node.insert(0, node)
    g.initializer.extend([numpy_helper.from_array(np.int64(0), "zero"), numpy_helper.from_array(_i64(0), "ax"),
                          numpy_helper.from_array(_i64(4, 2, 4), "rest4"), numpy_helper.from_array(_i64(4, 8), "rest3")])
    return m


@pytest.mark.parametrize("build", [cnn_ops, mlp_ops, opset11_ops, upsample_ops, attention_ops,
                                   attention_run_time_targets_ops])
def test_torch_module_computes_what_onnxruntime_computes(build, tmp_path):
    m = build()
    onnx.save(m, tmp_path / "m.onnx")
    shape = [4 if isinstance(d, str) else d for d in
             [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]]
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    ref = run_ort(str(tmp_path / "m.onnx"), {"x": x})
    module = OnnxModule(load_model(tmp_path / "m.onnx"))
    with torch.no_grad():
        got = {k: v.numpy() for k, v in module({"x": torch.from_numpy(x)}).items()}
    assert_outputs_match(got, ref, atol=1e-5, rtol=1e-4)


def test_only_weight_and_bias_slots_are_trainable():
    module = OnnxModule(load_model(mlp_ops()))
    assert set(module.trainable) == {"w1", "b1", "g", "beta", "w2"}  # not the scalars, shapes or indices
    module = OnnxModule(load_model(cnn_ops()))
    assert set(module.trainable) == {"w1", "b1", "s", "bb", "dw", "wf", "bf"}  # not BN's running statistics


def test_masks_cover_zero_weights_and_keep_them_zero():
    m = cnn_ops()
    w = numpy_helper.to_array(m.graph.initializer[0]).copy()
    w[:, :, 0] = 0
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "w1"))
    module = OnnxModule(load_model(m))
    assert set(module.masks) == {"w1"}  # the bias, BN and the other weights have no zeros to keep
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    module.apply_masks()
    got = module.param("w1").detach().numpy()
    assert np.array_equal(got == 0, w == 0) and np.allclose(got[w != 0], w[w != 0] + 1)


@pytest.mark.parametrize("opset", [17, 12])  # 12: edgec writes com.microsoft Q/DQ (per-channel below opset 13)
def test_qdq_student_computes_what_onnxruntime_computes(opset, tmp_path):
    from edgec.quantize import QuantizeOptions, quantize_model
    from tests.passes.quant_models import cnn, samples, write_npy_dir

    onnx.save(cnn(opset=opset), tmp_path / "f.onnx")
    data = write_npy_dir(tmp_path / "calib", samples(8))
    quantize_model(tmp_path / "f.onnx", tmp_path / "q.onnx", QuantizeOptions(calibration_data=data))
    q = onnx.load(tmp_path / "q.onnx")
    assert {n.domain for n in q.graph.node if n.op_type == "DequantizeLinear"} == {"com.microsoft" if opset < 13 else ""}
    module = OnnxModule(load_model(tmp_path / "q.onnx"))
    assert {n for n in module.quant if n.endswith("_quantized")} == set(module.quant) and len(module.quant) == 6
    for x in samples(3, seed=7):
        with torch.no_grad():
            got = {k: v.numpy() for k, v in module({"x": torch.from_numpy(x)}).items()}
        assert_outputs_match(got, run_ort(str(tmp_path / "q.onnx"), {"x": x}), atol=1e-5, rtol=1e-4)
        for name, w in module.quant.items():  # the dequantized weights give back the student's integers
            init = next(t for t in q.graph.initializer if t.name == name)
            assert np.array_equal(module.value(name), numpy_helper.to_array(init)), name


def test_a_resize_torch_cannot_match_is_refused_by_name(tmp_path):
    from edgec.errors import UnsupportedOpError

    m = _model([helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="cubic", name="up")],
               {"sc": np.array([1, 1, 2, 2], np.float32)}, [1, 2, 3, 3], [1, 2, 6, 6])
    onnx.save(m, tmp_path / "m.onnx")
    module = OnnxModule(load_model(tmp_path / "m.onnx"))
    with pytest.raises(UnsupportedOpError, match="node 'up' op 'Resize'.*cubic"):
        module({"x": torch.zeros(1, 2, 3, 3)})
