"""What an ONNX LSTM / GRU / RNN node (or com.microsoft DynamicQuantizeLSTM) computes, read off its
attributes and input shapes: the plan `decompose-rnn` unrolls and the TVM backend's recurrent kernel
(`targets/tvm/ops/rnn.py`) runs, or the reason neither takes the node."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array
from edgec.passes.cleanup._common import int_attr, is_standard

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
_SIMPLE_ACTS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}
MS = "com.microsoft"
QLSTM = "DynamicQuantizeLSTM"


def rnn_kind(node: ir.Node) -> str | None:
    """"LSTM", "GRU", "RNN" for the standard ops, "LSTM" for com.microsoft DynamicQuantizeLSTM, else None."""
    if node.op_type in GATES and is_standard(node):
        return node.op_type
    return "LSTM" if node.op_type == QLSTM and node.domain == MS else None


@dataclass
class RnnPlan:
    op: str
    seq: int
    hidden: int
    layout: int
    reverse: tuple[bool, ...]
    acts: list[list[str]]  # per direction
    lbr: bool


def _str_attr(node: ir.Node, name: str, default: str) -> str:
    a = node.attributes.get(name)
    return default if a is None or a.is_ref() else a.as_string()


def plan(node: ir.Node) -> RnnPlan | str:
    """What to unroll, or the reason to leave the node alone."""
    op = rnn_kind(node)
    for attr in ("clip", "activation_alpha", "activation_beta"):
        if attr in node.attributes:
            return f"attribute '{attr}' is not supported"
    if op == "LSTM" and int_attr(node, "input_forget", 0):
        return "input_forget=1 (coupled input/forget gate) is not supported"
    direction = _str_attr(node, "direction", "forward")
    if direction not in _DIRECTIONS:
        return f"unknown direction '{direction}'"
    reverse = _DIRECTIONS[direction]
    layout = int_attr(node, "layout", 0)
    if layout not in (0, 1):
        return f"unknown layout {layout}"
    n_act = len(_DEFAULT_ACTS[op])
    acts_attr = node.attributes.get("activations")
    names = list(acts_attr.as_strings()) if acts_attr is not None and not acts_attr.is_ref() else _DEFAULT_ACTS[op] * len(reverse)
    if len(names) == n_act and len(reverse) == 2:
        names = names * 2
    if len(names) != n_act * len(reverse):
        return f"expected {n_act * len(reverse)} activations, got {len(names)}"
    if any(a.lower() not in _SIMPLE_ACTS for a in names):
        return f"activations {names}: only Sigmoid, Tanh and Relu are supported"
    acts = [[_SIMPLE_ACTS[a.lower()] for a in names[i * n_act:(i + 1) * n_act]] for i in range(len(reverse))]
    x = node.inputs[0]
    if x is None or x.shape is None or len(x.shape) != 3:
        return "the shape of X is unknown"
    if const_array(x) is not None:
        return "X is constant (left to fold-constants)"
    seq = x.shape[layout]
    if not isinstance(seq, int):
        return f"the sequence length ({seq}) is not static; fix it with --input-shape"
    if seq < 1:
        return "empty sequence"
    hidden = int_attr(node, "hidden_size")
    r = node.inputs[2] if len(node.inputs) > 2 else None
    if hidden is None and r is not None and r.shape is not None and isinstance(r.shape[-1], int):
        hidden = int(r.shape[-1])
    if hidden is None:
        return "hidden_size is unknown"
    seq_lens = node.inputs[4] if len(node.inputs) > 4 else None
    if seq_lens is not None:
        lens = const_array(seq_lens)
        if lens is None or not np.all(lens == seq):
            return "sequence_lens is given and not constantly the full sequence length"
    return RnnPlan(op, seq, hidden, layout, reverse, acts, bool(int_attr(node, "linear_before_reset", 0)))
