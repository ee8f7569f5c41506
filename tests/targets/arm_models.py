"""Small ONNX models (built with onnx.helper) used by the target tests.

`conv_add_matmul()`: two inputs; Conv -> Relu -> Add(y) -> Flatten -> MatMul -> one output.
`pool_softmax()`: one input; Conv -> MaxPool -> AveragePool -> Flatten -> MatMul -> Softmax, two outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name: str, arr: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(arr.astype(np.float32), name)


def _model(nodes, inputs, outputs, inits, name) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgec-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def conv_add_matmul(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Add", ["r", "y"], ["a"]),
        helper.make_node("Flatten", ["a"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w2"], ["out"]),
    ]
    inits = [_init("w", rng.standard_normal((8, 3, 3, 3)) * 0.3), _init("b", rng.standard_normal(8)),
             _init("w2", rng.standard_normal((8 * 8 * 8, 16)) * 0.1)]
    inputs = [helper.make_tensor_value_info("x", f, [1, 3, 8, 8]),
              helper.make_tensor_value_info("y", f, [1, 8, 8, 8])]
    outputs = [helper.make_tensor_value_info("out", f, [1, 16])]
    return _model(nodes, inputs, outputs, inits, "conv_add_matmul")


def pool_softmax(seed: int = 1) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["p"], ["q"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["q"], ["fl"], axis=1),
        helper.make_node("MatMul", ["fl", "w2"], ["logits"]),
        helper.make_node("Add", ["logits", "b2"], ["z"]),
        helper.make_node("Softmax", ["z"], ["prob"], axis=-1),
    ]
    inits = [_init("w", rng.standard_normal((6, 3, 3, 3)) * 0.3), _init("b", rng.standard_normal(6)),
             _init("w2", rng.standard_normal((6 * 4 * 4, 10)) * 0.2), _init("b2", rng.standard_normal(10))]
    inputs = [helper.make_tensor_value_info("x", f, [1, 3, 16, 16])]
    outputs = [helper.make_tensor_value_info("prob", f, [1, 10]),
               helper.make_tensor_value_info("q", f, [1, 6, 4, 4])]
    return _model(nodes, inputs, outputs, inits, "pool_softmax")


MODELS = {"conv_add_matmul": conv_add_matmul, "pool_softmax": pool_softmax}


def io_metadata(model: onnx.ModelProto) -> dict:
    """`metadata.json`-style I/O description (names, static shapes, dtypes) of an ONNX model."""
    def one(vi):
        t = vi.type.tensor_type
        return {"name": vi.name, "shape": [d.dim_value for d in t.shape.dim],
                "dtype": np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name}
    return {"inputs": [one(v) for v in model.graph.input], "outputs": [one(v) for v in model.graph.output]}


def random_inputs(model: onnx.ModelProto, seed: int = 42) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i["name"]: rng.standard_normal(i["shape"]).astype(i["dtype"])
            for i in io_metadata(model)["inputs"]}


def onnxruntime_outputs(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs)))
