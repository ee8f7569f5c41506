"""A small graph builder for the generator: nodes, constants and inputs with shapes tracked by hand.

Block builders take a `Graph` and a `Value` (the tensor the model computes so far) and return
the next `Value`. Every value keeps its static shape and dtype, so blocks choose attributes that
are valid for it; `onnx.checker.check_model(full_check=True)` re-checks them all at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8

_DTYPES = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64, "bool": TensorProto.BOOL,
           "int32": TensorProto.INT32, "float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE}


def onnx_dtype(dtype: str) -> int:
    return _DTYPES[dtype]


@dataclass(frozen=True)
class Value:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass
class Graph:
    rng: np.random.Generator
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    values: list[Value] = field(default_factory=list)   # computed float values (for skip connections)
    value_info: list = field(default_factory=list)      # every node output with its tracked shape
    _count: int = 0

    def fresh(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    # -- random choices --------------------------------------------------------------------
    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def uniform(self, shape, low: float = -1.0, high: float = 1.0) -> np.ndarray:
        return self.rng.uniform(low, high, size=shape).astype(np.float32)

    # -- graph construction ----------------------------------------------------------------
    def input(self, shape, dtype: str = "float32", prefix: str = "in") -> Value:
        v = Value(self.fresh(prefix), tuple(int(d) for d in shape), dtype)
        self.inputs.append(helper.make_tensor_value_info(v.name, onnx_dtype(dtype), list(v.shape)))
        if dtype == "float32":
            self.values.append(v)
        return v

    def const(self, array, prefix: str = "c") -> Value:
        a = np.asarray(array)
        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(a, name))
        return Value(name, tuple(a.shape), str(a.dtype))

    def ints(self, values, prefix: str = "i") -> Value:
        return self.const(np.asarray(values, dtype=np.int64), prefix)

    def weight(self, shape, fan_in: int) -> Value:
        """Weights scaled so outputs stay around unit magnitude whatever the fan-in."""
        return self.const(self.uniform(shape) * np.float32(np.sqrt(3.0 / max(fan_in, 1))), "w")

    def op(self, op_type: str, inputs, shape, dtype: str = "float32", n_out: int = 1, **attrs):
        """Add a node; returns its Value (or a list of Values when `shape` is a list of shapes)."""
        shapes = shape if n_out > 1 else [shape]
        dtypes = dtype if isinstance(dtype, list) else [dtype] * n_out
        outs = [Value(self.fresh(op_type.lower()), tuple(int(d) for d in s), t) for s, t in zip(shapes, dtypes)]
        names = [i.name if isinstance(i, Value) else i for i in inputs]
        self.nodes.append(helper.make_node(op_type, names, [o.name for o in outs], name=self.fresh("n_" + op_type), **attrs))
        for o in outs:
            self.value_info.append(helper.make_tensor_value_info(o.name, onnx_dtype(o.dtype), list(o.shape)))
            if o.dtype == "float32":
                self.values.append(o)
        return outs if n_out > 1 else outs[0]

    def same(self, op_type: str, *inputs, **attrs) -> Value:
        """An op whose output has the shape and dtype of its first input."""
        return self.op(op_type, inputs, inputs[0].shape, inputs[0].dtype, **attrs)

    def earlier(self, shape) -> Value | None:
        """An earlier computed float value of this shape, for a skip connection (None if none)."""
        found = [v for v in self.values if v.shape == tuple(shape)]
        return self.pick(found) if found else None

    def output(self, v: Value) -> None:
        if v.name not in {o.name for o in self.outputs}:
            self.outputs.append(helper.make_tensor_value_info(v.name, onnx_dtype(v.dtype), list(v.shape)))

    def model(self, name: str, doc: str = "", all_outputs: bool = False) -> onnx.ModelProto:
        """The model; `all_outputs` makes every node output a graph output with its tracked shape
        (for validating the generator's shape bookkeeping against onnx and onnxruntime)."""
        outputs = list(self.outputs)
        if all_outputs:
            declared = {o.name for o in outputs}
            outputs += [v for v in self.value_info if v.name not in declared]
        graph = helper.make_graph(self.nodes, name, self.inputs, outputs, self.initializers)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgec.fuzz",
                              doc_string=doc)
        m.ir_version = IR_VERSION
        return m


def broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    return tuple(max(x, y) for x, y in zip(a, b))
