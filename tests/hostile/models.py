"""Small ONNX models for the hostile cases (built with onnx.helper; nothing here imports TVM)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR = 8

FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def vi(name: str, shape, dtype: int = FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def model(nodes, inputs, outputs, initializers=(), name: str = "g", opset: int = OPSET, ir: int = IR,
          extra_opsets=()) -> onnx.ModelProto:
    g = helper.make_graph(list(nodes), name, list(inputs), list(outputs), list(initializers))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])
    m.ir_version = ir
    return m


def const(name: str, value, dtype=np.int64) -> onnx.NodeProto:
    """A Constant node producing `name`."""
    return helper.make_node("Constant", [], [name], name=f"const_{name}",
                            value=numpy_helper.from_array(np.asarray(value, dtype=dtype), name))


def add_model(x: str = "x", y: str = "y", w: str = "w", shape=(2, 3), name: str = "g") -> onnx.ModelProto:
    """y = x + w, w an initializer of ones."""
    return model([helper.make_node("Add", [x, w], [y], name="add0")], [vi(x, list(shape))], [vi(y, list(shape))],
                 [numpy_helper.from_array(np.ones(shape, np.float32), w)], name=name)


def external_add_model(location: str, offset: str | None = "0", length: str | None = "24",
                       shape=(2, 3), extra: dict[str, str] | None = None) -> onnx.ModelProto:
    """y = x + w where w's data is external, with the given (possibly hostile) entries."""
    w = numpy_helper.from_array(np.zeros(shape, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entries = {"location": location}
    if offset is not None:
        entries["offset"] = offset
    if length is not None:
        entries["length"] = length
    entries.update(extra or {})
    for k, v in entries.items():
        e = w.external_data.add()
        e.key, e.value = k, v
    return model([helper.make_node("Add", ["x", "w"], ["y"], name="add0")], [vi("x", list(shape))],
                 [vi("y", list(shape))], [w])


def nested_if(depth: int, leaf_value: float = 1.0) -> onnx.ModelProto:
    """y = x + c through `depth` nested If nodes whose conditions are constants (true)."""
    def branch(level: int) -> onnx.GraphProto:
        out = f"b{level}"
        if level == depth:
            nodes = [helper.make_node("Add", ["x", "c"], [out], name=f"leaf{level}")]
            return helper.make_graph(nodes, f"then{level}", [], [vi(out, [2])],
                                     [numpy_helper.from_array(np.full(2, leaf_value, np.float32), "c")])
        nodes = [const(f"cond{level}", True, np.bool_),
                 helper.make_node("If", [f"cond{level}"], [out], name=f"if{level}",
                                  then_branch=branch(level + 1), else_branch=branch_else(level))]
        return helper.make_graph(nodes, f"then{level}", [], [vi(out, [2])])

    def branch_else(level: int) -> onnx.GraphProto:
        out = f"b{level + 1}"
        return helper.make_graph([helper.make_node("Neg", ["x"], [out], name=f"neg{level}")], f"else{level}", [],
                                 [vi(out, [2])])

    nodes = [const("cond", True, np.bool_),
             helper.make_node("If", ["cond"], ["y"], name="if_top", then_branch=branch(0), else_branch=branch_else(-1))]
    return model(nodes, [vi("x", [2])], [vi("y", [2])])


def loop_model(trip_count_nodes, trip_name: str = "M", inner: onnx.GraphProto | None = None) -> onnx.ModelProto:
    """y = x after a Loop of M iterations adding 1 each time (M from `trip_count_nodes`)."""
    body = inner or helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep"),
         helper.make_node("Add", ["v_in", "one"], ["v_out"], name="inc")],
        "body", [vi("i", [], INT64), vi("cond_in", [], BOOL), vi("v_in", [2])],
        [vi("cond_out", [], BOOL), vi("v_out", [2])],
        [numpy_helper.from_array(np.ones(2, np.float32), "one")])
    nodes = [*trip_count_nodes, const("go", True, np.bool_),
             helper.make_node("Loop", [trip_name, "go", "x"], ["y"], name="loop", body=body)]
    return model(nodes, [vi("x", [2])], [vi("y", [2])])
