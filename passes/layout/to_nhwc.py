"""to-nhwc: NCHW → NHWC for targets that prefer channel-last activations (TargetSpec.layout "NHWC").

1. Conv / edgec.FusedConv with a constant 4-D weight → Transpose → edgec.ConvNHWC (weight
   pre-transposed to OHWI) → Transpose; MaxPool / AveragePool → edgec.{Max,Average}PoolNHWC;
   GlobalAveragePool / GlobalMaxPool → ReduceMean / ReduceMax over axes [1, 2];
   inference BatchNormalization → Mul + Add by channel-last constants.
2. The Transposes are sunk through elementwise ops and Concat and cancelled (sink-transposes,
   fold-transposes), identical Transposes of one value merged: at most one Transpose remains at
   each graph input and output.
3. `io_layout=nhwc` also removes those by making the graph's 4-D inputs/outputs NHWC; which ones
   is recorded in the model's metadata_props["edgec.io_layout"] (JSON: name → "NHWC").

Exactness: each converted op is Transpose∘op_nhwc∘Transpose with the same attributes; a node with
an attribute the NHWC op does not carry (AveragePool-19 dilations), a Z of another shape, MaxPool
indices or a BN that fold-batchnorm's check rejects is declined. See docs/pass-safety.md.
"""

from __future__ import annotations

import json

import numpy as np
import onnx_ir as ir

from edgec.errors import PipelineError
from edgec.infra.pass_base import PassResult, register_pass
from edgec.ir.edgec_ops import (
    CONV_ATTRS,
    EDGEC_DOMAIN,
    POOL_ATTRS,
    conv_nhwc_function,
    pool_nhwc_function,
)
from edgec.passes.fusion._common import rank, static_shape
from edgec.passes.fusion.fold_batchnorm import _bn_factors, _check_bn, _input_dtype
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass, RewriteTrace, apply_rules

from ._perm import TO_NCHW, TO_NHWC, perm_of
from .fold_transposes import RULES as FOLD_RULES
from .sink_transposes import SINK_RULES, remove_dead_transposes, with_shape

IO_LAYOUT_KEY = "edgec.io_layout"


def _to_nhwc(op, v: ir.Value) -> ir.Value:
    return with_shape(op.Transpose(v, perm=list(TO_NHWC)), v, TO_NHWC)


def _back(op, y: ir.Value, like: ir.Value) -> ir.Value:
    with_shape(y, like, TO_NHWC)
    return op.Transpose(y, perm=list(TO_NCHW))


def _auto_pad_ok(match, name: str) -> bool:
    return match.attr(name, "auto_pad", "NOTSET") in ("NOTSET", "VALID")


def _dropped_attrs(node: ir.Node, kept) -> list[str]:
    """Attributes of `node` the NHWC op would not carry (and that are not at their no-op default)."""
    out = []
    for k, a in node.attributes.items():
        if k in kept or (k == "dilations" and not a.is_ref() and all(int(d) == 1 for d in a.value)):
            continue
        out.append(k)
    return out


class ConvToNHWC(RewriteRule):
    def pattern(self, op, x):
        return [op.Conv(x, _allow_other_inputs=True, _name="conv"),
                op.FusedConv(x, _domain=EDGEC_DOMAIN, _allow_other_inputs=True, _name="conv")]

    def check(self, match):
        w = match.const_value_of(match.root.inputs[1])
        if rank(match["x"]) != 4 or w is None or w.ndim != 4:
            return MatchResult.fail("not a 2-D convolution with a constant weight")
        if not _auto_pad_ok(match, "conv") or static_shape(match.output) is None:
            return MatchResult.fail("auto_pad SAME_* or output shape unknown")
        dropped = _dropped_attrs(match.root, CONV_ATTRS + ("activation", "activation_params"))
        if dropped:
            return MatchResult.fail(f"attributes {dropped} would not be carried by edgec.ConvNHWC")
        z = match.root.inputs[3] if len(match.root.inputs) > 3 else None
        if z is not None and static_shape(z) != static_shape(match.output):
            return MatchResult.fail("residual Z does not have the output's (static 4-D) shape")
        return MatchResult.success()

    def rewrite(self, op, match):
        n = match.root
        w = match.const_value_of(n.inputs[1])
        b = n.inputs[2] if len(n.inputs) > 2 and n.inputs[2] is not None else None
        b = b if b is not None else op.initializer(np.zeros(w.shape[0], dtype=w.dtype), "zero_bias")
        inputs = [_to_nhwc(op, match["x"]), op.initializer(np.ascontiguousarray(w.transpose(0, 2, 3, 1)), "w_ohwi"), b]
        z = n.inputs[3] if len(n.inputs) > 3 else None
        if z is not None:
            inputs.append(_to_nhwc(op, z))
        act = match.attr("conv", "activation", "") or ""
        params = [float(p) for p in match.attr("conv", "activation_params", []) or []]
        fn = conv_nhwc_function(act, params, z is not None, match.opset)
        op.add_function(fn)
        attrs = {k: a for k, a in n.attributes.items() if k in CONV_ATTRS}
        y = op.ConvNHWC(*inputs, _domain=EDGEC_DOMAIN, _overload=fn.overload, activation=act,
                        activation_params=params or None, **attrs)
        return _back(op, y, match.output)


class PoolToNHWC(RewriteRule):
    def pattern(self, op, x):
        return [op.MaxPool(x, _name="pool"), op.AveragePool(x, _name="pool")]

    def check(self, match):
        n = match.root
        if rank(match["x"]) != 4 or not _auto_pad_ok(match, "pool") or static_shape(match.output) is None:
            return MatchResult.fail("not a 2-D pool with NOTSET/VALID auto_pad and known output shape")
        if len(n.outputs) > 1 or match.attr("pool", "storage_order", 0):
            return MatchResult.fail("MaxPool indices output")
        dropped = _dropped_attrs(n, POOL_ATTRS[n.op_type])
        if dropped:  # e.g. AveragePool-19 dilations: edgec.AveragePoolNHWC has none
            return MatchResult.fail(f"attributes {dropped} would not be carried by edgec.{n.op_type}NHWC")
        return MatchResult.success()

    def rewrite(self, op, match):
        n = match.root
        fn = pool_nhwc_function(n.op_type, match.opset)
        op.add_function(fn)
        attrs = {k: a for k, a in n.attributes.items() if k in POOL_ATTRS[n.op_type]}
        y = getattr(op, f"{n.op_type}NHWC")(_to_nhwc(op, match["x"]), _domain=EDGEC_DOMAIN, **attrs)
        return _back(op, y, match.output)


class GlobalPoolToNHWC(RewriteRule):
    def pattern(self, op, x):
        return [op.GlobalAveragePool(x, _name="pool"), op.GlobalMaxPool(x, _name="pool")]

    def check(self, match):
        return MatchResult(rank(match["x"]) == 4, "input is not 4-D")

    def rewrite(self, op, match):
        reduce = getattr(op, "ReduceMean" if match.root.op_type == "GlobalAveragePool" else "ReduceMax")
        xt = _to_nhwc(op, match["x"])
        if match.opset >= 18:
            y = reduce(xt, np.array([1, 2], dtype=np.int64), keepdims=1)
        else:
            y = reduce(xt, axes=[1, 2], keepdims=1)
        return _back(op, y, match.output)


class BatchNormToNHWC(RewriteRule):
    def pattern(self, op, x, scale, bias, mean, var):
        return op.BatchNormalization(x, scale, bias, mean, var, _name="bn")

    def check(self, match):
        why = _check_bn(match)
        if why or rank(match["x"]) != 4 or match.const("scale").dtype.kind != "f" or _input_dtype(match) is None:
            return MatchResult.fail(why or "input is not 4-D, or its dtype unknown, or parameters not float")
        return MatchResult.success()

    def rewrite(self, op, match):
        s, shift = _bn_factors(match)
        dtype = _input_dtype(match)  # opset 15: scale may be float while X is float16
        xt = _to_nhwc(op, match["x"])
        y = with_shape(op.Mul(xt, op.initializer(s.astype(dtype), "bn_scale_nhwc")), xt)
        return _back(op, op.Add(y, op.initializer(shift.astype(dtype), "bn_shift_nhwc")), match.output)


CONVERT_RULES = (ConvToNHWC, PoolToNHWC, GlobalPoolToNHWC, BatchNormToNHWC)


def merge_duplicate_transposes(graph: ir.Graph) -> int:
    merged = 0
    for node in list(graph):
        if node.graph is not graph or node.op_type != "Transpose":
            continue
        perm = perm_of(node, rank(node.inputs[0]))
        for other in list(node.inputs[0].consumers()):
            if other is node or other.op_type != "Transpose" or other.outputs[0].is_graph_output():
                continue
            if perm_of(other, rank(other.inputs[0])) == perm:
                other.outputs[0].replace_all_uses_with(node.outputs[0])
                graph.remove(other, safe=True)
                merged += 1
    return merged


def nhwc_io(model: ir.Model) -> dict[str, str]:
    """Drop the Transposes at 4-D graph inputs/outputs by making those NHWC; returns name → "NHWC"."""
    graph, changed = model.graph, {}
    for x in graph.inputs:
        users = x.consumers()
        if rank(x) != 4 or x.name in graph.initializers or not users or x.is_graph_output():
            continue
        if all(u.op_type == "Transpose" and perm_of(u, 4) == list(TO_NHWC) for u in users):
            dims = list(x.shape.dims)
            x.shape = ir.Shape([dims[a] for a in TO_NHWC])
            for u in users:
                u.outputs[0].replace_all_uses_with(x, replace_graph_outputs=True)
                graph.remove(u, safe=True)
            changed[x.name] = "NHWC"
    for i, y in enumerate(list(graph.outputs)):
        t = y.producer()
        if t is None or t.op_type != "Transpose" or perm_of(t, 4) != list(TO_NCHW) or rank(y) != 4:
            continue
        inner = t.inputs[0]
        if inner.is_graph_input() or inner.is_graph_output() or inner.is_initializer() or len(y.consumers()):
            continue
        name = y.name
        graph.outputs[i] = inner
        graph.remove(t, safe=True)
        y.name, inner.name = None, name
        changed[name] = "NHWC"
    return changed


@register_pass
class ToNHWC(RewriteRulePass):
    """Convert Conv/pool/BatchNorm to NHWC and cancel the Transposes (io_layout=nhwc: NHWC graph I/O too)."""

    name = "to-nhwc"
    rules = CONVERT_RULES
    options = {"max_iterations": 16, "io_layout": "nchw"}

    def run(self, model: ir.Model, ctx) -> PassResult:
        opts = self.opts
        if opts["io_layout"] not in ("nchw", "nhwc"):
            raise PipelineError(f"to-nhwc: io_layout must be nchw or nhwc, got '{opts['io_layout']}'")
        local = RewriteTrace()
        n = opts["max_iterations"]
        hits = apply_rules(model, self.make_rules(), max_iterations=n, trace=local)
        if hits:
            hits += apply_rules(model, [r() for r in FOLD_RULES[:2] + SINK_RULES], max_iterations=4 * n, trace=local)
            remove_dead_transposes(model.graph)
            hits += merge_duplicate_transposes(model.graph)
            hits += apply_rules(model, [r() for r in FOLD_RULES], max_iterations=n, trace=local)
        if opts["io_layout"] == "nhwc":
            changed = nhwc_io(model)
            if changed:
                old = json.loads(model.metadata_props.get(IO_LAYOUT_KEY, "{}"))
                model.metadata_props[IO_LAYOUT_KEY] = json.dumps({**old, **changed}, sort_keys=True)
                hits += len(changed)
        for inst in getattr(ctx, "instruments", []):
            if isinstance(inst, RewriteTrace):
                inst.merge(local, prefix=self.name)
        self.last_trace = local
        return PassResult(model, hits > 0)
