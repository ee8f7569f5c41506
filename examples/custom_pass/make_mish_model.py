"""Write a small Conv -> Mish-as-three-ops model (what recognize-mish rewrites): `python
make_mish_model.py OUT.onnx`. Random weights from a fixed seed."""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mish_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.5).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Softplus", ["c"], ["sp"]),
        helper.make_node("Tanh", ["sp"], ["t"]),
        helper.make_node("Mul", ["c", "t"], ["y"]),
        helper.make_node("Div", ["y", "two"], ["z"]),
    ]
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    graph = helper.make_graph(nodes, "conv_mish", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, 16, 16])], [w, b, two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


if __name__ == "__main__":
    onnx.save(mish_model(), sys.argv[1])
