"""decompose-rnn: unroll ONNX LSTM/GRU/RNN over a static sequence length into MatMul, Add, gates.

com.microsoft DynamicQuantizeLSTM (an LSTM with int8/uint8 weights W [D, I, 4H], R [D, H, 4H] and
their scales / zero points at inputs 8-11) is unrolled the same way, its products becoming
com.microsoft DynamicQuantizeMatMul nodes: the input block X (all steps at once) and each step's
hidden state are quantized to uint8 on the fly, as onnxruntime's kernel does."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.passes.cleanup._common import (
    all_graphs,
    constant_array,
    int_attr,
    is_standard,
    opset_version,
)
from edgec.passes.control._common import Emitter, Namer, Tensor, rebind_output

logger = logging.getLogger(__name__)

_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
_SIMPLE_ACTS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}
MS = "com.microsoft"
QLSTM = "DynamicQuantizeLSTM"


def _kind(node: ir.Node) -> str | None:
    """"LSTM", "GRU", "RNN" for the standard ops, "LSTM" for com.microsoft DynamicQuantizeLSTM, else None."""
    if node.op_type in _GATES and is_standard(node):
        return node.op_type
    return "LSTM" if node.op_type == QLSTM and node.domain == MS else None


@dataclass
class _Plan:
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


def plan(node: ir.Node) -> _Plan | str:
    """What to unroll, or the reason to leave the node alone."""
    op = _kind(node)
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
    if constant_array(x) is not None:
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
        lens = constant_array(seq_lens)
        if lens is None or not np.all(lens == seq):
            return "sequence_lens is given and not constantly the full sequence length"
    return _Plan(op, seq, hidden, layout, reverse, acts, bool(int_attr(node, "linear_before_reset", 0)))


def _input(node: ir.Node, i: int) -> Tensor | None:
    v = node.inputs[i] if len(node.inputs) > i else None
    if v is None:
        return None
    arr = constant_array(v)
    return arr if arr is not None else v


def _nonzero(x: Tensor | None) -> Tensor | None:
    """None for an all-zero constant initial state (as exporters emit): its terms vanish."""
    return None if isinstance(x, np.ndarray) and not x.any() else x


class _Unroller:
    def __init__(self, e: Emitter, node: ir.Node, p: _Plan):
        self.e, self.node, self.p = e, node, p
        self.x = node.inputs[0]
        self.w, self.r, self.b = _input(node, 1), _input(node, 2), _input(node, 3)
        self.h0, self.c0 = _nonzero(_input(node, 5)), _nonzero(_input(node, 6))
        self.peep = _input(node, 7) if p.op == "LSTM" else None
        self.state_axis = 0 if p.layout == 0 else 1  # direction axis of initial_h / Y_h
        self.quantized = node.op_type == QLSTM
        if self.quantized:
            self.qparams = [_input(node, i) for i in (8, 9, 10, 11)]  # W_scale, W_zp, R_scale, R_zp

    def weights(self, d: int) -> tuple[Tensor, Tensor]:
        """Direction d's input and recurrence weights as the right operands of the products:
        [I, G*H] and [H, G*H] (float), or (weight, scale, zero point) of the quantized LSTM."""
        e = self.e
        if self.quantized:
            ws, wz, rs, rz = (e.index(q, 0, d) for q in self.qparams)
            return (e.index(self.w, 0, d), ws, wz), (e.index(self.r, 0, d), rs, rz)
        return e.transpose(e.index(self.w, 0, d), [1, 0]), e.transpose(e.index(self.r, 0, d), [1, 0])

    def product(self, a: Tensor | None, w) -> Tensor | None:
        """a · w; None stands for a zero `a`."""
        if a is None or not self.quantized:
            return self.e.matmul(a, w)
        # onnx's shape inference does not know contrib ops: the Emitter gives it its type and shape
        return self.e.op("DynamicQuantizeMatMul", [a, *w], domain=MS)

    def act(self, name: str, x: Tensor) -> ir.Value:
        return self.e.op(name, [x])

    def direction(self, d: int) -> tuple[list[ir.Value], ir.Value, ir.Value | None]:
        """Hidden states in time order, the final H and the final C of direction d."""
        e, p, hs = self.e, self.p, self.p.hidden
        g = _GATES[p.op]
        w_t, r_t = self.weights(d)                           # [I, G*H], [H, G*H]
        x_bias = rb_h = None
        if self.b is not None:
            bd = e.index(self.b, 0, d)
            wb, rb = e.slice(bd, 0, 0, g * hs), e.slice(bd, 0, g * hs, 2 * g * hs)
            if p.op == "GRU" and p.lbr:  # Rb_h is applied inside r * (...)
                x_bias = e.concat([e.add(e.slice(wb, 0, 0, 2 * hs), e.slice(rb, 0, 0, 2 * hs)),
                                   e.slice(wb, 0, 2 * hs, 3 * hs)], 0)
                rb_h = e.slice(rb, 0, 2 * hs, 3 * hs)
            else:
                x_bias = e.add(wb, rb)
        xw = e.add(self.product(self.x, w_t), x_bias)       # all time steps at once
        h = None if self.h0 is None else e.index(self.h0, self.state_axis, d)
        c = None if self.c0 is None else e.index(self.c0, self.state_axis, d)
        peep = None
        if self.peep is not None:
            pd = e.index(self.peep, 0, d)
            peep = [e.slice(pd, 0, k * hs, (k + 1) * hs) for k in range(3)]  # i, o, f
        order = range(p.seq - 1, -1, -1) if p.reverse[d] else range(p.seq)
        outs: dict[int, ir.Value] = {}
        for t in order:
            xw_t = e.index(xw, p.layout, t)                 # [B, G*H]
            acts = p.acts[d]
            if p.op == "LSTM":
                h, c = self.lstm_step(xw_t, h, c, r_t, peep, acts)
            elif p.op == "GRU":
                h = self.gru_step(xw_t, h, r_t, rb_h, acts)
            else:
                h = self.act(acts[0], e.add(xw_t, e.matmul(h, r_t)))
            outs[t] = h
        return [outs[t] for t in range(p.seq)], h, c

    def lstm_step(self, xw_t, h, c, r_t, peep, acts):
        e, hs = self.e, self.p.hidden
        gi, go, gf, gc = e.split(e.add(xw_t, self.product(h, r_t)), 1, [hs] * 4)
        pi, po, pf = peep if peep is not None else (None, None, None)
        i = self.act(acts[0], e.add(gi, e.mul(pi, c)))
        f = self.act(acts[0], e.add(gf, e.mul(pf, c)))
        c = e.add(e.mul(f, c), e.mul(i, self.act(acts[1], gc)))
        o = self.act(acts[0], e.add(go, e.mul(po, c)))
        return e.mul(o, self.act(acts[2], c)), c

    def gru_step(self, xw_t, h, r_t, rb_h, acts):
        e, hs = self.e, self.p.hidden
        xz, xr, xh = e.split(xw_t, 1, [hs] * 3)
        if self.p.lbr:
            hz, hr, hh = e.split(e.matmul(h, r_t), 1, [hs] * 3) if h is not None else (None, None, None)
            z = self.act(acts[0], e.add(xz, hz))
            r = self.act(acts[0], e.add(xr, hr))
            cand = self.act(acts[1], e.add(xh, e.mul(r, e.add(hh, rb_h))))
        else:
            hz, hr = e.split(e.matmul(h, e.slice(r_t, 1, 0, 2 * hs)), 1, [hs] * 2) if h is not None else (None, None)
            z = self.act(acts[0], e.add(xz, hz))
            r = self.act(acts[0], e.add(xr, hr))
            cand = self.act(acts[1], e.add(xh, e.matmul(e.mul(r, h), e.slice(r_t, 1, 2 * hs, 3 * hs))))
        if h is None:  # H = (1 - z) * cand + z * 0
            return e.op("Sub", [cand, e.op("Mul", [z, cand])])
        return e.op("Add", [cand, e.op("Mul", [z, e.op("Sub", [h, cand])])])

    def run(self) -> list[ir.Value | None]:
        e, p = self.e, self.p
        wanted = [o.name and (o.uses() or o.is_graph_output()) for o in self.node.outputs]
        seqs, finals_h, finals_c = [], [], []
        for d in range(len(p.reverse)):
            hs, h, c = self.direction(d)
            seqs.append(hs)
            finals_h.append(h)
            finals_c.append(c)
        results: list[ir.Value | None] = [None] * len(self.node.outputs)
        if wanted[0]:
            # layout 0: Y [S, D, B, H]; layout 1: Y [B, S, D, H]
            t_axis, d_axis = (0, 1) if p.layout == 0 else (1, 2)
            per_dir = [e.concat([e.unsqueeze(h, [t_axis, d_axis]) for h in hs], t_axis) for hs in seqs]
            results[0] = e.concat(per_dir, d_axis)
        for k, finals in ((1, finals_h), (2, finals_c)):
            if k < len(wanted) and wanted[k]:
                if any(f is None for f in finals):  # C of an LSTM is never None after a step
                    raise AssertionError("missing final state")
                results[k] = e.concat([e.unsqueeze(f, [self.state_axis]) for f in finals], self.state_axis)
        return results


@register_pass
class DecomposeRnn(Pass):
    """Unroll LSTM/GRU/RNN (and com.microsoft DynamicQuantizeLSTM) nodes with a static sequence length
    into MatMul/Add/activation ops (DynamicQuantizeMatMul for the quantized LSTM's products)."""

    name = "decompose-rnn"
    options = {}

    def run(self, model: ir.Model, ctx) -> PassResult:
        namer: Namer | None = None
        modified = False
        opset = opset_version(model)
        for graph in all_graphs(model.graph):
            for node in list(graph):
                if _kind(node) is None:
                    continue
                p = plan(node)
                if isinstance(p, str):
                    logger.info("decompose-rnn: leaving %s (%s): %s", node.name, node.op_type, p)
                    continue
                namer = namer or Namer(model)
                e = Emitter(graph, node, namer, opset, prefix=node.name or node.op_type)
                results = _Unroller(e, node, p).run()
                e.commit()
                for old, new in zip(node.outputs, results):
                    if new is not None:
                        rebind_output(old, new, namer)
                graph.remove(node, safe=True)
                modified = True
        return PassResult(model, modified)
