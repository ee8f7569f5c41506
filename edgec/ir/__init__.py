"""edgec's intermediate graph: onnx-ir's mutable Model/Graph/Node/Value with use lists.

edgec builds on `onnx_ir` for the in-memory graph and lossless ONNX (de)serialization, and adds
safe loading, analyses, and helpers passes share.
"""

from edgec.ir.analysis import (
    TensorInfo,
    flops,
    graph_inputs,
    graph_outputs,
    node_count,
    op_histogram,
    parameter_count,
    to_networkx,
)
from edgec.ir.loader import load_model, save_model, to_proto

__all__ = [
    "TensorInfo", "flops", "graph_inputs", "graph_outputs", "node_count", "op_histogram",
    "parameter_count", "to_networkx", "load_model", "save_model", "to_proto",
]
