"""kv-cache-in-place: a decoder's KV cache as buffers allocated once and written in place
(`edgec compile --kv-cache MAX`; docs/llm.md).

A decoder exported with optimum's interface takes `past_key_values.{i}.key/.value`
[batch, kv_heads, past, head_dim] and returns `present.{i}.*` = Concat(past, new, axis=2): every
step writes a whole new cache. This pass turns each past input into a cache buffer
[batch, kv_heads, MAX, head_dim] that the caller allocates once and passes on every call:

    present = Concat(past, new, axis=2)  ->  present = edgec.KVCacheWrite(cache, new, P)

with P = T - S (T: attention_mask's length, the total; S: input_ids' length, the new tokens).
The buffer has MAX rows, or MAX + 1 when a head's slice would be a multiple of 4 KiB
(`cache_rows`: power-of-two strides made the whole step slower through cache-set conflicts).
Backends write the new rows at [P, P + S) in place and attention reads the cache's first T rows;
the `present.*` graph outputs are dropped (their content is the cache buffers). A `Shape` of a
past or present reads the logical shape ([batch, kv_heads, P or T, head_dim]).

The rewrite only applies where it is provably the same computation: each past consumed only by
one Concat(past, new, axis=2) (and Shape), each present only by edgec.Attention's K or V (after
recognize-attention), Shape, and the graph output. Grouped-query attention's repeat of the kv
heads (Reshape(Expand(Unsqueeze(present)))) is removed: edgec.Attention then reads the cache of
kv_heads heads directly (overload `..._g<G>`, query head h reading kv head h // G). Anything else
refuses the mode with one line naming the node: there is no silent fallback to the copying cache.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.errors import ModelValidationError
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import onnx_opset
from edgec.ir.edgec_ops import EDGEC_DOMAIN, attention_function, kv_cache_write_function
from edgec.passes.control._common import Emitter, Namer

PAST_PREFIX = "past_key_values."
PRESENT_PREFIX = "present."
_PAGE = 4096


def cache_rows(max_length: int, head_dim: int, itemsize: int) -> int:
    """The rows of a cache buffer holding `max_length` tokens: one more when a head's slice
    (max_length rows of head_dim values) would be a multiple of 4 KiB. Such power-of-two strides
    put every head's row j into the same cache sets: measured on GPT-2 124M int4 at past 150
    (1 thread), --kv-cache 256 ran the GEMV kernels 0.8 ms slower per step than 250 or 257 rows."""
    return max_length + 1 if (max_length * head_dim * itemsize) % _PAGE == 0 else max_length


def _refuse(file: str, node: ir.Node | None, what: str) -> ModelValidationError:
    where = f"node '{node.name or node.op_type}' ({node.op_type}) " if node is not None else ""
    return ModelValidationError(f"{file}: --kv-cache: {where}{what}; the KV cache cannot be written in place")


def _concat_axis(node: ir.Node) -> int | None:
    a = node.attributes.get("axis")
    return None if a is None else int(a.value)


class _Logical:
    """The logical shapes [batch, kv_heads, P or T, head_dim] of the caches, as 1-D int64 values
    computed from the inputs' shapes (symbolic at compile time: lowering evaluates them)."""

    def __init__(self, em: Emitter, ids: ir.Value, mask: ir.Value):
        one, two, zero = (np.array([i], np.int64) for i in (1, 2, 0))
        sid, smask = em.op("Shape", [ids]), em.op("Shape", [mask])
        self.em = em
        self.batch = em.op("Slice", [sid, zero, one])
        self.total = em.op("Slice", [smask, one, two])
        self.past = em.op("Sub", [self.total, em.op("Slice", [sid, one, two])])

    def shape(self, heads: int, head_dim: int, length: ir.Value) -> ir.Value:
        em = self.em
        return em.op("Concat", [self.batch, np.array([heads], np.int64), length, np.array([head_dim], np.int64)],
                     {"axis": 0})


def _replace_shape(em: Emitter, node: ir.Node, logical: ir.Value) -> None:
    """A Shape node's output from `logical` (its start/end attributes as a Slice)."""
    start = node.attributes.get("start")
    end = node.attributes.get("end")
    out = logical
    if start is not None or end is not None:
        s = int(start.value) if start is not None else 0
        e = int(end.value) if end is not None else np.iinfo(np.int64).max
        out = em.op("Slice", [logical, np.array([s], np.int64), np.array([e], np.int64)])
    node.outputs[0].replace_all_uses_with(out, replace_graph_outputs=True)


@register_pass
class KVCacheInPlace(Pass):
    """Turn a decoder's past_key_values inputs into KV-cache buffers of max_length rows written in place (edgec.KVCacheWrite)."""

    name = "kv-cache-in-place"
    options = {"max_length": 0}

    def run(self, model: ir.Model, ctx) -> PassResult:
        max_len = int(self.opts["max_length"])
        file = model.meta.get("edgec.source") or model.graph.name or "model"
        if max_len < 1:
            raise ModelValidationError(f"{file}: --kv-cache: the cache length must be >= 1, got {max_len}")
        if model.metadata_props.get("edgec.kv_cache") == str(max_len):
            return PassResult(model, False)  # done (the pipeline runs to a fixpoint)
        g = model.graph
        inputs = {v.name: v for v in g.inputs if not v.is_initializer()}
        pasts = [v for v in g.inputs if v.name.startswith(PAST_PREFIX)]
        for need in ("input_ids", "attention_mask"):
            if need not in inputs:
                raise _refuse(file, None, f"the model has no input '{need}' (a decoder's inputs: input_ids, "
                                          f"attention_mask, past_key_values.*)")
        if not pasts:
            raise _refuse(file, None, "the model has no past_key_values.* inputs")
        plans = [self._plan(file, v) for v in pasts]
        groups = _attention_groups(file, plans)
        namer = Namer(model)
        em = Emitter(g, g[0], namer, onnx_opset(model, 1), "kv_cache")
        logical = _Logical(em, inputs["input_ids"], inputs["attention_mask"])
        fn = kv_cache_write_function(onnx_opset(model, 1))
        model.functions.setdefault(fn.identifier(), fn)
        model.opset_imports.setdefault(EDGEC_DOMAIN, 1)
        model.ir_version = max(model.ir_version or 0, 10)
        for past, concat, past_shapes, present_shapes, grouped in plans:
            heads, head_dim = past.shape[1], past.shape[3]
            present = concat.outputs[0]
            for node in past_shapes:
                _replace_shape(em, node, logical.shape(heads, head_dim, logical.past))
            for node in present_shapes:
                _replace_shape(em, node, logical.shape(heads, head_dim, logical.total))
            write = ir.Node(EDGEC_DOMAIN, "KVCacheWrite", [past, concat.inputs[1], logical.past],
                            name=namer.fresh(f"{concat.name or 'concat'}_kv_cache_write"))
            out = write.outputs[0]
            out.name = namer.fresh(f"{past.name}__cache")
            out.type = present.type
            g.insert_before(concat, [write])
            if present.is_graph_output():
                g.outputs.remove(present)
            present.replace_all_uses_with(out)
            for attn, idx, _ in grouped:  # the repeat of the heads: the kernel reads kv head h // G instead
                attn.replace_input_with(idx, out)
            itemsize = np.dtype(past.dtype.numpy()).itemsize if past.dtype is not None else 4
            past.shape = ir.Shape([past.shape[0], heads, cache_rows(max_len, head_dim, itemsize), head_dim])
            g.remove(concat, safe=True)
        for attn, group in groups.items():
            mask = len(attn.inputs) > 3 and attn.inputs[3] is not None
            gfn = attention_function(4, mask, onnx_opset(model, 1), kv_group=group)
            model.functions.setdefault(gfn.identifier(), gfn)
            attn.overload = gfn.overload
        em.anchor = g[0]
        em.commit()  # the logical shapes before the first node: they read graph inputs only
        model.metadata_props["edgec.kv_cache"] = str(max_len)
        return PassResult(model, True)

    def _plan(self, file: str, past: ir.Value):
        """(past, its Concat, the Shape nodes of past, of present), or the refusal."""
        shape = past.shape
        if shape is None or len(shape) != 4 or not isinstance(shape[1], int) or not isinstance(shape[3], int):
            raise _refuse(file, None, f"input '{past.name}' has shape {list(shape) if shape else None}; "
                                      f"expected [batch, kv_heads, past, head_dim] with static kv_heads and head_dim")
        concat, past_shapes = None, []
        for node, idx in past.uses():
            if node.op_type == "Shape" and node.domain == "":
                past_shapes.append(node)
            elif (node.op_type == "Concat" and node.domain == "" and idx == 0 and len(node.inputs) == 2
                  and _concat_axis(node) in (2, -2) and concat is None and node.inputs[1] is not past):
                concat = node
            else:
                what = f"axis {_concat_axis(node)}" if node.op_type == "Concat" else "an op other than Concat(past, new, axis=2)"
                raise _refuse(file, node, f"reads the past cache '{past.name}' ({what})")
        if concat is None:
            raise _refuse(file, None, f"input '{past.name}' is not extended by Concat(past, new, axis=2)")
        present = concat.outputs[0]
        present_shapes, grouped = [], []
        for node, idx in present.uses():
            if node.op_type == "Shape" and node.domain == "":
                present_shapes.append(node)
            elif node.op_type == "Attention" and node.domain == EDGEC_DOMAIN and idx in (1, 2):
                continue
            elif node.op_type == "Unsqueeze" and node.domain == "" and idx == 0:
                grouped += _repeat_kv(file, node, present, shape[1], shape[3])
            else:
                hint = (" (edgec.Attention comes from recognize-attention, at -O2 and above)"
                        if node.op_type in ("MatMul", "Transpose") else "")
                raise _refuse(file, node, f"reads the cache '{present.name}' as something other than "
                                          f"edgec.Attention's K or V (or grouped-query attention's repeat of its "
                                          f"heads){hint}")
        if present.is_graph_output() and not present.name.startswith(PRESENT_PREFIX):
            raise _refuse(file, concat, f"its output '{present.name}' is a graph output not named present.*")
        return past, concat, past_shapes, present_shapes, grouped


def _attention_groups(file: str, plans) -> dict[ir.Node, int]:
    """The edgec.Attention nodes reading repeated cache heads -> G; both K and V must be repeated,
    by the same G (the kernel's one kv-head index h // G)."""
    seen: dict[ir.Node, dict[int, int]] = {}
    for *_, grouped in plans:
        for attn, idx, group in grouped:
            seen.setdefault(attn, {})[idx] = group
    for attn, by_input in seen.items():
        if set(by_input) != {1, 2} or len(set(by_input.values())) != 1:
            raise _refuse(file, attn, "repeats the heads of only one of K and V, or by different factors")
    return {attn: by_input[1] for attn, by_input in seen.items()}


def _only_use(file: str, node: ir.Node) -> ir.Node:
    uses = list(node.outputs[0].uses())
    if len(uses) != 1 or uses[0][1] != 0 or node.outputs[0].is_graph_output():
        raise _refuse(file, node, "repeats the cache's heads for more than one consumer")
    return uses[0][0]


def _repeat_kv(file: str, unsqueeze: ir.Node, present: ir.Value, heads: int, head_dim: int) -> list[tuple]:
    """Grouped-query attention's repeat of the cache's kv heads (transformers' repeat_kv):
    Reshape(Expand(Unsqueeze(present, axis 2), [B, heads, G, T, D]), [B, heads * G, T, D]) read
    only as edgec.Attention's K or V -> [(attention node, input index, G)]; else the refusal."""
    axes = const_array(unsqueeze.inputs[1]) if len(unsqueeze.inputs) > 1 else None
    axes = axes.reshape(-1).tolist() if axes is not None else list(
        unsqueeze.attributes["axes"].value) if "axes" in unsqueeze.attributes else None
    if axes not in ([2], [-3]):
        raise _refuse(file, unsqueeze, f"reads the cache '{present.name}' (an Unsqueeze on axes {axes}, not "
                                       f"grouped-query attention's repeat of the heads)")
    expand = _only_use(file, unsqueeze)
    es = list(expand.outputs[0].shape) if expand.outputs[0].shape is not None else []
    reshape = _only_use(file, expand) if expand.op_type == "Expand" else expand
    rs = list(reshape.outputs[0].shape) if reshape.outputs[0].shape is not None else []
    # G from the expanded dim, else from the merged heads (exporters that compute the Expand's
    # target at run time leave its dims unknown to shape inference); the Expand keeps heads and
    # head_dim (static, checked) and the Reshape merges heads x G into one axis of heads * G
    group = es[2] if len(es) == 5 and isinstance(es[2], int) else (
        rs[1] // heads if len(rs) == 4 and isinstance(rs[1], int) and rs[1] % heads == 0 else None)
    if (expand.op_type != "Expand" or len(es) != 5 or es[1] != heads or es[4] != head_dim or group is None
            or group < 1 or (heads == 1 and not isinstance(es[2], int))):
        raise _refuse(file, expand, f"does not repeat the cache '{present.name}' heads as [B, {heads}, G, T, {head_dim}]")
    if reshape.op_type != "Reshape" or len(rs) != 4 or rs[1] != heads * group or rs[3] != head_dim:
        raise _refuse(file, reshape, f"does not merge the repeated heads of '{present.name}' as "
                                     f"[B, {heads * group}, T, {head_dim}]")
    out = []
    for node, idx in reshape.outputs[0].uses():
        if node.op_type != "Attention" or node.domain != EDGEC_DOMAIN or idx not in (1, 2):
            raise _refuse(file, node, f"reads the repeated heads of the cache '{present.name}' as something "
                                      f"other than edgec.Attention's K or V")
        out.append((node, idx, group))
    if reshape.outputs[0].is_graph_output():
        raise _refuse(file, reshape, "its repeated cache heads are a graph output")
    return out
