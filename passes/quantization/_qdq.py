"""Building QDQ pieces in the IR: constants, a Q->DQ pair after a tensor, a DQ'd weight."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.domains import onnx_opset
from edgec.passes.control._common import Namer

MS = "com.microsoft"
QUANTIZED_FROM = "edgec.quantized_from"


def qdq_domain(model: ir.Model, qtypes: set[str]) -> str:
    """ai.onnx where the model's opset has per-axis Q/DQ of these types (13; 16-bit: 21), else
    com.microsoft's Q/DQ, which onnxruntime runs at any opset: the model's opset is left as it is."""
    need = 21 if qtypes & {"int16", "uint16"} else 13
    if onnx_opset(model, 1) >= need:
        return ""
    model.opset_imports.setdefault(MS, 1)
    return MS


class Builder:
    def __init__(self, model: ir.Model, domain: str):
        self.model, self.graph, self.domain = model, model.graph, domain
        self.namer = Namer(model)

    def const(self, base: str, array: np.ndarray) -> ir.Value:
        name = self.namer.fresh(base)
        t = ir.tensor(np.asarray(array), name=name)
        v = ir.Value(name=name, shape=ir.Shape(t.shape.dims), type=ir.TensorType(t.dtype), const_value=t)
        self.graph.register_initializer(v)
        return v

    def _node(self, op, inputs, out_base, dtype, shape, attrs=None) -> ir.Node:
        n = ir.node(op, inputs, attrs or {}, domain=self.domain, name=self.namer.fresh(out_base))
        o = n.outputs[0]
        o.name = self.namer.fresh(out_base)
        o.type = ir.TensorType(dtype)
        o.shape = shape
        return n

    def qdq_after(self, t: ir.Value, scale: np.float32, zp: np.ndarray) -> ir.Value:
        """Insert t -> QuantizeLinear -> DequantizeLinear; every use of t (not graph outputs) now
        reads the dequantized value, which is returned."""
        s = self.const(f"{t.name}_scale", np.asarray(scale, np.float32))
        z = self.const(f"{t.name}_zero_point", zp)
        q = self._node("QuantizeLinear", [t, s, z], f"{t.name}_q", ir.DataType.from_numpy(zp.dtype), t.shape)
        dq = self._node("DequantizeLinear", [q.outputs[0], s, z], f"{t.name}_dq", t.dtype, t.shape)
        dq.outputs[0].metadata_props[QUANTIZED_FROM] = t.name  # for reports: the float tensor it stands for
        uses = [u for u in t.uses() if u[0] is not q]
        for node, idx in uses:
            node.replace_input_with(idx, dq.outputs[0])
        p = t.producer()
        if p is not None:
            self.graph.insert_after(p, [q, dq])
        else:
            self.graph.insert_before(self.graph.node(0), [q, dq])
        return dq.outputs[0]

    def dequantized_const(self, node: ir.Node, index: int, q: np.ndarray, scale: np.ndarray, zp: np.ndarray,
                          axis: int | None, base: str) -> None:
        """node.inputs[index] := DequantizeLinear(q, scale, zp[, axis]) (inserted before node)."""
        qv = self.const(f"{base}_quantized", q)
        sv, zv = self.const(f"{base}_scale", scale), self.const(f"{base}_zero_point", zp)
        attrs = {"axis": int(axis)} if axis is not None and np.ndim(scale) == 1 else {}
        old = node.inputs[index]
        dq = self._node("DequantizeLinear", [qv, sv, zv], f"{base}_dq", old.dtype if old.dtype else ir.DataType.FLOAT,
                        ir.Shape(list(q.shape)), attrs)
        self.graph.insert_before(node, [dq])
        node.replace_input_with(index, dq.outputs[0])
        self.drop_unused([old])

    def replace_node(self, node: ir.Node, nodes: list[ir.Node], new: ir.Value) -> None:
        """Insert `nodes` before `node`, whose single output `new` takes over (uses, graph output,
        name), remove `node` and the constants only it read."""
        y = node.outputs[0]
        self.graph.insert_before(node, nodes)
        y.replace_all_uses_with(new, replace_graph_outputs=True)
        name = y.name
        old = list(node.inputs)
        self.graph.remove(node, safe=True)
        self.drop_unused(old)
        y.name, new.name = None, name  # the value keeps its name (graph outputs, reports)

    def drop_unused(self, values) -> None:
        """Drop the float constants a rewrite replaced once nothing reads them (a quantized model
        must not carry its float weights along)."""
        from edgec.rewrite.driver import drop_unused_constants

        drop_unused_constants(self.graph, [v for v in values if v is not None])
