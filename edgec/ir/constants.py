"""The constant behind a value: the one helper every pass, rewrite rule and lowering uses to ask
"is this value known at compile time, and what is it?".

A value is a constant when it holds a `const_value` (an initializer) that is not also a graph
input (an input with a default can be overridden at run time), or when it is the output of a
standard-domain Constant node. The array is read, never copied into the graph or renamed.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.domains import is_onnx_domain

__all__ = ["const_array", "constant_node_array"]

_LIST_ATTRS = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
               "value_ints": np.int64, "value_string": np.bytes_, "value_strings": np.bytes_}


def constant_node_array(node: ir.Node) -> np.ndarray | None:
    """The array a standard Constant node produces, or None (not a Constant node, a reference
    attribute, or not exactly one value attribute)."""
    if node.op_type != "Constant" or not is_onnx_domain(node.domain) or len(node.attributes) != 1:
        return None
    name, attr = next(iter(node.attributes.items()))
    if attr.is_ref():
        return None
    if name == "value":
        return attr.as_tensor().numpy()
    if name in _LIST_ATTRS:
        return np.array(attr.value, dtype=_LIST_ATTRS[name])
    return None


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The compile-time array behind `value` (see the module doc), or None."""
    if value is None:
        return None
    if value.const_value is not None:
        return None if value.is_graph_input() else value.const_value.numpy()
    node = value.producer()
    return None if node is None else constant_node_array(node)
