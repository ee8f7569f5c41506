"""decompose-rnn: unroll ONNX LSTM/GRU/RNN over a static sequence length into MatMul, Add, gates.

com.microsoft DynamicQuantizeLSTM (an LSTM with int8/uint8 weights W [D, I, 4H], R [D, H, 4H] and
their scales / zero points at inputs 8-11) is unrolled the same way, its products becoming
com.microsoft DynamicQuantizeMatMul nodes: the input block X (all steps at once) and each step's
hidden state are quantized to uint8 on the fly, as onnxruntime's kernel does."""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import onnx_opset
from edgec.passes.cleanup._common import (
    all_graphs,
)
from edgec.passes.control._common import Emitter, Namer, Tensor, rebind_output
from edgec.passes.control.rnn_plan import GATES, MS, QLSTM, RnnPlan, plan, rnn_kind
from edgec.targets.lowerable import rnn_lowerable

logger = logging.getLogger(__name__)


def _input(node: ir.Node, i: int) -> Tensor | None:
    v = node.inputs[i] if len(node.inputs) > i else None
    if v is None:
        return None
    arr = const_array(v)
    return arr if arr is not None else v


def _nonzero(x: Tensor | None) -> Tensor | None:
    """None for an all-zero constant initial state (as exporters emit): its terms vanish."""
    return None if isinstance(x, np.ndarray) and not x.any() else x


class _Unroller:
    def __init__(self, e: Emitter, node: ir.Node, p: RnnPlan):
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
        g = GATES[p.op]
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


def _type_outputs(node: ir.Node) -> None:
    """Give a node left to the backend its output types where they are unknown: onnx's shape
    inference does not know com.microsoft DynamicQuantizeLSTM, and without them a stacked second
    LSTM would have no static sequence length."""
    p = plan(node)
    x = node.inputs[0]
    seq, batch = x.shape[p.layout], x.shape[1 - p.layout]
    d = len(p.reverse)
    state = [d, batch, p.hidden] if p.layout == 0 else [batch, d, p.hidden]
    shapes = [[seq, d, batch, p.hidden] if p.layout == 0 else [batch, seq, d, p.hidden], state, state]
    for v, shape in zip(node.outputs, shapes):
        if v.name and v.shape is None:
            v.shape = ir.Shape(shape)
            v.dtype = x.dtype


@register_pass
class DecomposeRnn(Pass):
    """Unroll LSTM/GRU/RNN (and com.microsoft DynamicQuantizeLSTM) nodes with a static sequence length
    into MatMul/Add/activation ops (DynamicQuantizeMatMul for the quantized LSTM's products).

    native=1 leaves the nodes the TVM backend lowers as one recurrence kernel (`rnn_lowerable`);
    edgec's compile sets it for CPU targets, so only what that kernel refuses is unrolled."""

    name = "decompose-rnn"
    options = {"native": False}

    def run(self, model: ir.Model, ctx) -> PassResult:
        namer: Namer | None = None
        modified = False
        opset = onnx_opset(model, 1)
        native = bool(self.opts["native"])
        for graph in all_graphs(model.graph):
            for node in list(graph):
                if rnn_kind(node) is None:
                    continue
                if native and not rnn_lowerable(node):
                    logger.info("decompose-rnn: leaving %s (%s) to the backend's recurrence kernel", node.name, node.op_type)
                    _type_outputs(node)
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
