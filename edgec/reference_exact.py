"""onnxruntime as an exact reference for integer products.

MLAS's uint8 x int8 GEMM on x86 without VNNI (AVX2, AVX-512 BW) multiplies with vpmaddubsw, which
adds two adjacent u8·s8 products into an int16 with saturation (255·127·2 = 64770 becomes 32767;
onnxruntime documents this and offers `reduce_range`). VNNI's vpdpbusd and the u8u8 kernels
(widened to int16, vpmaddwd) are exact. `exact_ort_model` re-encodes the int8 B operand of such
products as uint8 (b + 128 with zero point + 128: the same b - b_zp), so that onnxruntime runs its
exact u8u8 kernels on every CPU: the model's integer semantics, unchanged."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

# op -> (A or its zero point: indices whose dtype tells whether A is uint8, None: always uint8;
#        [(B index, B zero point index)])
_U8S8 = {"QLinearConv": ((2, 0), [(3, 5)]), "QLinearMatMul": ((2, 0), [(3, 5)]), "QGemm": ((2, 0), [(3, 5)]),
         "MatMulInteger": ((2, 0), [(1, 3)]), "ConvInteger": ((2, 0), [(1, 3)]),
         "MatMulIntegerToFloat": ((4, 0), [(1, 5)]), "DynamicQuantizeMatMul": (None, [(1, 3)]),
         "DynamicQuantizeLSTM": (None, [(1, 9), (2, 11)])}


def exact_ort_model(proto, inputs: dict):
    """(proto, inputs) with every int8 B operand of a uint8 x int8 product (an initializer or a graph
    input, with its zero point) re-encoded as uint8 + 128: the same integer products, which
    onnxruntime computes exactly on every CPU (its u8u8 kernels do not saturate)."""
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    g, inputs = m.graph, dict(inputs)
    inits = {t.name: t for t in g.initializer}
    gins = {i.name: i for i in g.input}
    producers = {o: n for n in g.node for o in n.output}

    def elem_type(name):
        if name in inits:
            return inits[name].data_type
        if name in gins:
            return gins[name].type.tensor_type.elem_type
        p = producers.get(name)
        return TensorProto.UINT8 if p is not None and p.op_type == "DynamicQuantizeLinear" else None

    done: dict[str, str] = {}

    def shifted(name):
        if name not in done:
            if name in gins:
                gins[name].type.tensor_type.elem_type = TensorProto.UINT8
                inputs[name] = (inputs[name].astype(np.int16) + 128).astype(np.uint8)
                done[name] = name
            else:
                a = numpy_helper.to_array(inits[name]).astype(np.int16) + 128
                g.initializer.append(numpy_helper.from_array(a.astype(np.uint8), name + "_as_u8"))
                done[name] = name + "_as_u8"
        return done[name]

    for k, n in enumerate(g.node):
        if n.op_type not in _U8S8:
            continue
        a_idx, operands = _U8S8[n.op_type]
        if a_idx is not None:
            names = [n.input[i] for i in a_idx if i < len(n.input) and n.input[i]]
            if not names or elem_type(names[0]) != TensorProto.UINT8:
                continue
        for b, zp in operands:
            if elem_type(n.input[b]) != TensorProto.INT8:
                continue
            n.input[b] = shifted(n.input[b])
            while len(n.input) <= zp:
                n.input.append("")
            if n.input[zp]:
                n.input[zp] = shifted(n.input[zp])
            else:
                n.input[zp] = f"_u8_zero_point_{k}_{zp}"
                g.initializer.append(numpy_helper.from_array(np.uint8(128), n.input[zp]))
    return m, inputs



def has_u8s8_products(proto) -> bool:
    """Whether the graph has an op that `exact_ort_model` may re-encode (top-level graph)."""
    return any(n.op_type in _U8S8 for n in proto.graph.node)


def exact_reference(model, inputs: dict):
    """(model, inputs) as onnxruntime should run them as a reference: re-encoded by `exact_ort_model`
    when the top-level graph has uint8 x int8 products, else as given. `model` is a ModelProto,
    serialized bytes or a path; a path with no such product stays a path (onnxruntime resolves its
    external data), one with such products is loaded with its weights, unless that is over
    protobuf's 2 GiB: then it stays as given, and onnxruntime's own kernels decide."""
    if isinstance(model, bytes):
        proto = onnx.load_from_string(model)
    elif isinstance(model, onnx.ModelProto):
        proto = model
    else:
        proto = onnx.load(str(model), load_external_data=False)
        if not has_u8s8_products(proto):
            return model, inputs
        from pathlib import Path

        onnx.load_external_data_for_model(proto, str(Path(model).parent))
        if proto.ByteSize() >= 2**31 - 2**20:
            return model, inputs
    if not has_u8s8_products(proto):
        return model, inputs
    return exact_ort_model(proto, inputs)
