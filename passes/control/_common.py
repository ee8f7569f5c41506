"""Helpers shared by the control-flow passes (private: not scanned for passes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain
from edgec.passes.cleanup._common import all_graphs

Tensor = ir.Value | np.ndarray


def name_counts(graph: ir.Graph) -> Counter:
    """How often each value and node name occurs in `graph` and its subgraphs."""
    counts: Counter = Counter()
    for g in all_graphs(graph):
        counts.update(v.name for v in g.inputs if v.name)
        counts.update(list(g.initializers))
        for n in g:
            if n.name:
                counts[n.name] += 1
            counts.update(o.name for o in n.outputs if o.name)
    return counts


class Namer:
    """Fresh value/node names that clash with nothing in the model (any graph)."""

    def __init__(self, model: ir.Model):
        self.counts = name_counts(model.graph)

    def fresh(self, base: str) -> str:
        base = base or "v"
        name, i = base, 0
        while name in self.counts:
            i += 1
            name = f"{base}_{i}"
        self.counts[name] += 1
        return name


_UNARY = {"Identity", "Sigmoid", "Tanh", "Relu", "Neg", "Abs", "Exp"}
_BINARY = {"Add", "Sub", "Mul", "Div"}
_SAME_TYPE = _UNARY | _BINARY | {"MatMul", "Transpose", "Gather", "Slice", "Split", "Unsqueeze", "Concat"}


def _const_ints(v: ir.Value | None, attrs: dict[str, Any], name: str) -> list[int] | None:
    """An int list given as the constant input `v` or else as the attribute `name`."""
    if v is not None:
        arr = const_array(v)
        return None if arr is None else [int(i) for i in np.asarray(arr).reshape(-1)]
    a = attrs.get(name)
    return None if a is None else [int(i) for i in np.asarray(a).reshape(-1)]


def _broadcast(a: ir.Shape, b: ir.Shape) -> ir.Shape:
    n = max(len(a), len(b))
    da, db = [1] * (n - len(a)) + list(a), [1] * (n - len(b)) + list(b)
    dims: list[Any] = []
    for x, y in zip(da, db):
        if x == 1 or x == y:
            dims.append(y)
        elif y == 1 or isinstance(x, int):  # a valid broadcast of x != 1 is x
            dims.append(x)
        elif isinstance(y, int):
            dims.append(y)
        else:
            dims.append(None)
    return ir.Shape(dims)


def _shape_of(op_type: str, ins: list[ir.Value | None], attrs: dict[str, Any], num_outputs: int) -> list[ir.Shape] | None:
    """The output shapes of the ops the control passes emit, or None where unknown."""
    shapes = [None if v is None else v.shape for v in ins]
    x = shapes[0] if shapes else None
    if x is None:
        return None
    if op_type in _UNARY:
        return [x]
    if op_type in _BINARY:
        return None if shapes[1] is None else [_broadcast(x, shapes[1])]
    if op_type in ("MatMul", "DynamicQuantizeMatMul"):
        w = shapes[1]
        if w is None or len(x) < 2 or len(w) != 2:
            return None
        return [ir.Shape([*x[:-1], w[-1]])]
    if op_type == "Transpose":
        perm = attrs.get("perm")
        return None if perm is None else [ir.Shape([x[p] for p in perm])]
    if op_type == "Gather":
        idx = ins[1].const_value if ins[1] is not None else None
        axis = int(attrs.get("axis", 0)) % len(x)
        if idx is None or idx.shape is None:
            return None
        return [ir.Shape([*x[:axis], *idx.shape, *x[axis + 1:]])]
    if op_type == "Slice":
        starts, ends = _const_ints(ins[1], {}, ""), _const_ints(ins[2], {}, "")
        axes = _const_ints(ins[3], {}, "") if len(ins) > 3 and ins[3] is not None else None
        steps = _const_ints(ins[4], {}, "") if len(ins) > 4 and ins[4] is not None else None
        if starts is None or ends is None or (len(ins) > 3 and ins[3] is not None and axes is None) \
                or (len(ins) > 4 and ins[4] is not None and steps is None):
            return None
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
        dims = list(x)
        for a, s0, e0, st in zip(axes, starts, ends, steps):
            a %= len(x)
            dims[a] = len(range(dims[a])[s0:e0:st]) if isinstance(dims[a], int) else None
        return [ir.Shape(dims)]
    if op_type == "Split":
        axis = int(attrs.get("axis", 0)) % len(x)
        sizes = _const_ints(ins[1] if len(ins) > 1 else None, attrs, "split")
        if sizes is None or len(sizes) != num_outputs:
            return None
        return [ir.Shape([*x[:axis], s, *x[axis + 1:]]) for s in sizes]
    if op_type == "Unsqueeze":
        axes = _const_ints(ins[1] if len(ins) > 1 else None, attrs, "axes")
        if axes is None:
            return None
        rank = len(x) + len(axes)
        axes = sorted(a % rank for a in axes)
        dims, rest = [], iter(x)
        for i in range(rank):
            dims.append(1 if i in axes else next(rest))
        return [ir.Shape(dims)]
    if op_type == "Concat":
        if any(s is None or len(s) != len(x) for s in shapes):
            return None
        axis = int(attrs["axis"]) % len(x)
        dims: list[Any] = []
        for i in range(len(x)):
            known = {s[i] for s in shapes if isinstance(s[i], int)}
            dims.append(known.pop() if len(known) == 1 else x[i] if len({s[i] for s in shapes}) == 1 else None)
        along = [s[axis] for s in shapes]
        dims[axis] = sum(along) if all(isinstance(d, int) for d in along) else None
        return [ir.Shape(dims)]
    return None


def _output_types(op_type: str, domain: str, ins: list[ir.Value | None], attrs: dict[str, Any],
                  num_outputs: int) -> list[tuple[ir.TensorType | None, ir.Shape | None]]:
    """(type, shape) of each output of an emitted node, None where unknown. The ops of
    `_SAME_TYPE` keep their first input's tensor type, DynamicQuantizeMatMul gives float32; any
    other op (a comparison gives bool, Shape int64, Cast its `to`) and values of other types
    (sequences through an Identity) are left for shape inference."""
    x = ins[0] if ins else None
    if op_type == "DynamicQuantizeMatMul" and domain == "com.microsoft":
        typ = ir.TensorType(ir.DataType.FLOAT)
    elif (is_onnx_domain(domain) and op_type in _SAME_TYPE and x is not None
          and isinstance(x.type, ir.TensorType)):
        typ = ir.TensorType(x.type.dtype)
    else:
        return [(None, None)] * num_outputs
    shapes = _shape_of(op_type, ins, attrs, num_outputs)
    return [(typ, None if shapes is None else shapes[i]) for i in range(num_outputs)]


class Emitter:
    """Collects new nodes and initializers for insertion before `anchor` in `graph`.

    Tensors are `ir.Value`s or numpy arrays; structural ops whose inputs are all arrays are
    computed in numpy (e.g. slicing and transposing constant weights) instead of emitted.
    """

    def __init__(self, graph: ir.Graph, anchor: ir.Node, namer: Namer, opset: int, prefix: str):
        self.graph, self.anchor, self.namer, self.opset, self.prefix = graph, anchor, namer, opset, prefix
        self.nodes: list[ir.Node] = []
        self.inits: list[ir.Value] = []

    def value(self, x: Tensor) -> ir.Value:
        if isinstance(x, ir.Value):
            return x
        arr = np.asarray(x)
        name = self.namer.fresh(f"{self.prefix}_const")
        tensor = ir.tensor(arr, name=name)
        v = ir.Value(name=name, shape=ir.Shape(arr.shape), type=ir.TensorType(tensor.dtype), const_value=tensor)
        self.inits.append(v)
        return v

    def op(self, op_type: str, inputs: Sequence[Tensor | None], attrs: dict[str, Any] | None = None,
           num_outputs: int = 1, node_name: str | None = None, domain: str = "") -> ir.Value | list[ir.Value]:
        ins = [None if x is None else self.value(x) for x in inputs]
        node = ir.Node(domain, op_type, ins, attributes=ir.convenience.convert_attributes(attrs or {}),
                       num_outputs=num_outputs, name=self.namer.fresh(node_name or f"{self.prefix}_{op_type}"))
        for o, (typ, shape) in zip(node.outputs, _output_types(op_type, domain, ins, attrs or {}, num_outputs)):
            o.name = self.namer.fresh(f"{self.prefix}_{op_type.lower()}")
            # Shape inference cannot see through the contrib ops emitted here (com.microsoft
            # DynamicQuantizeMatMul): give every output the dtype and shape it is known to have,
            # so that values computed from it (a stacked RNN's input) get static shapes too.
            if typ is not None:
                o.type = typ
            if shape is not None:
                o.shape = shape
        self.nodes.append(node)
        return node.outputs[0] if num_outputs == 1 else list(node.outputs)

    # Structural ops, folded in numpy when their inputs are arrays.
    def transpose(self, x: Tensor, perm: list[int]) -> Tensor:
        if isinstance(x, np.ndarray):
            return np.ascontiguousarray(x.transpose(perm))
        return self.op("Transpose", [x], {"perm": perm})

    def slice(self, x: Tensor, axis: int, start: int, end: int) -> Tensor:
        if isinstance(x, np.ndarray):
            idx = [slice(None)] * x.ndim
            idx[axis] = slice(start, end)
            return np.ascontiguousarray(x[tuple(idx)])
        return self.op("Slice", [x, np.array([start], np.int64), np.array([end], np.int64),
                                 np.array([axis], np.int64)])

    def index(self, x: Tensor, axis: int, i: int) -> Tensor:
        """x[..., i, ...] along `axis` (the axis is dropped)."""
        if isinstance(x, np.ndarray):
            return np.ascontiguousarray(np.take(x, i, axis=axis))
        return self.op("Gather", [x, np.array(i, np.int64)], {"axis": axis})

    def add(self, a: Tensor | None, b: Tensor | None) -> Tensor | None:
        """a + b, where None stands for zero."""
        if a is None or b is None:
            return b if a is None else a
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            return a + b
        return self.op("Add", [a, b])

    def mul(self, a: Tensor | None, b: Tensor | None) -> Tensor | None:
        """a * b, where None stands for zero."""
        if a is None or b is None:
            return None
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            return a * b
        return self.op("Mul", [a, b])

    def matmul(self, a: Tensor | None, b: Tensor) -> Tensor | None:
        return None if a is None else self.op("MatMul", [a, b])

    def split(self, x: Tensor, axis: int, sizes: list[int]) -> list[Tensor]:
        if len(sizes) == 1:
            return [x]
        if isinstance(x, np.ndarray):
            return list(np.split(x, np.cumsum(sizes)[:-1], axis=axis))
        if self.opset >= 13:
            return self.op("Split", [x, np.array(sizes, np.int64)], {"axis": axis}, num_outputs=len(sizes))
        return self.op("Split", [x], {"axis": axis, "split": sizes}, num_outputs=len(sizes))

    def unsqueeze(self, x: Tensor, axes: list[int]) -> Tensor:
        if isinstance(x, np.ndarray):
            return np.expand_dims(x, tuple(axes))
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, np.array(axes, np.int64)])
        return self.op("Unsqueeze", [x], {"axes": axes})

    def concat(self, xs: list[Tensor], axis: int) -> Tensor:
        if len(xs) == 1:
            return xs[0]
        if all(isinstance(x, np.ndarray) for x in xs):
            return np.concatenate(xs, axis=axis)
        return self.op("Concat", xs, {"axis": axis})

    def commit(self) -> None:
        for v in self.inits:
            self.graph.register_initializer(v)
        if self.nodes:
            self.graph.insert_before(self.anchor, self.nodes)


def rebind_output(old: ir.Value, new: ir.Value, namer: Namer) -> None:
    """Make `new` (a fresh node output) take the place of `old`: its uses, and for a graph
    output its slot and name."""
    if old.is_graph_output():
        name = old.name
        old.name = namer.fresh(f"{name}__replaced")
        new.name = name
    old.replace_all_uses_with(new, replace_graph_outputs=True)


def move_initializers(src: ir.Graph, dst: ir.Graph, namer: Namer, own: Counter) -> None:
    """Move `src`'s initializers to `dst`, renaming those whose names occur outside `src`
    (`own`: the name counts of `src`). Release `src`'s outputs first (they own their values)."""
    for name in list(src.initializers):
        init = src.initializers[name]
        del src.initializers[name]
        init.name = rename_on_clash(name, namer, own)
        dst.register_initializer(init)


def rename_on_clash(name: str, namer: Namer, own: Counter) -> str:
    if namer.counts[name] <= own[name]:
        return name
    namer.counts[name] -= 1
    return namer.fresh(name)
