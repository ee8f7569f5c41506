"""prune-channels: remove whole output channels of Conv / Gemm / MatMul and the matching input
channels of every consumer, physically (the initializers get smaller).

The channel-dependency graph (_channels.py) splits the graph into groups of coupled layers and
each group into units (indices removed together: a channel through a residual Add is removed from
every producer of the Add and every consumer of its output; a depthwise/grouped Conv's group with
its input channels; Concat and Split offsets; Flatten's H*W features of a channel). In each group
that nothing blocks, `ratio` of the units (rounded down; at least one unit stays) with the least
importance are removed:

- l1 / l2: the norm of the weight rows that produce the unit (summed over the group's producers,
  depthwise weights included);
- bn: the |scale| of the BatchNormalizations on the unit (l1 where a group has none);
- sensitivity: measured on calibration data (`data`, `samples`; seeded random inputs without):
  for every consumer weight reading the unit, E|x_c| * ||W[:, c]||, the mean size of what channel c
  adds to the consumer's output; the model runs in onnxruntime once per sample.

`round_to` keeps a multiple of that many units per producer (the multiple nearest the asked count,
never below 90% of it; a layer whose channels it does not divide keeps a multiple of the largest
power of 2 of it that does): the CPU backend
carries a channel-blocked layout (NCHW16c on AVX-512) only through layers whose channels the block
divides, and pads the rest only within 10% growth (pad-channels), so a layer left with 45 channels
can push a whole model out of the blocked layout and make the pruned model slower than the
original; `edgec compile --prune` sets it to the target's block.

`keep` (node or weight names, globs) protects a layer's output group; `protect_ends` protects the
groups of the first layers (reading a graph input); the last layers' outputs are graph outputs and
are never pruned. `layer_ratios` ('name=r,...') sets a group's ratio by one of its producers (the
smallest given ratio of a group wins). A model carrying the metadata key `edgec.pruned_channels`
(set by this pass) is left alone: a pipeline run to a fixpoint prunes once. After the pass, `last_report` lists every group: its
layers, units before/after, or why it was left alone."""

from __future__ import annotations

import math
from collections import defaultdict

import networkx as nx
import numpy as np
import onnx_ir as ir

from edgec.errors import PipelineError
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import onnx_opset
from edgec.passes.pruning import _channels
from edgec.passes.pruning._channel_graph import ChannelGraph, label
from edgec.passes.pruning._common import layer_ratios, named, patterns, set_constant

IMPORTANCE = ("l1", "l2", "bn", "sensitivity")
PRUNED = "edgec.pruned_channels"  # model metadata: set by this pass, removed by edgec.prune before saving


@register_pass
class PruneChannels(Pass):
    """Remove the least important output channels of coupled Conv/Gemm/MatMul groups (physically)."""

    name = "prune-channels"
    options = {"ratio": 0.3, "importance": "l1", "keep": "", "layer_ratios": "", "protect_ends": True,
               "data": "", "samples": 16, "seed": 0, "preprocess": "", "round_to": 1}
    changes_numerics = True

    def float_arithmetic(self, ctx) -> bool:
        return True

    def run(self, model: ir.Model, ctx) -> PassResult:
        o = self.opts
        if not 0 <= o["ratio"] < 1:
            raise PipelineError(f"prune-channels: ratio must be in [0, 1), got {o['ratio']}")
        if o["importance"] not in IMPORTANCE:
            raise PipelineError(f"prune-channels: importance must be one of {', '.join(IMPORTANCE)}, got '{o['importance']}'")
        rules = layer_ratios(o["layer_ratios"])
        if PRUNED in model.metadata_props:  # a pipeline run to a fixpoint: prune once, not once per iteration
            self.last_report = []
            return PassResult(model, False)
        cg = _channels.build(model)
        keep = patterns(o["keep"])
        for node, key in cg.sources:
            if keep and named(node, keep):
                cg.block(key, f"'{label(node)}' is kept (keep)")
            elif o["protect_ends"] and id(node) in cg.first:
                cg.block(key, f"'{label(node)}' is a first layer (protected)")
        groups = _groups(cg)
        units = _units(cg)
        score = _importance(model, cg, o)
        removed: set = set()
        report = []
        source_keys = {k for _, k in cg.sources}
        for gid, (keys, reasons) in enumerate(groups):
            mine = units.get(gid, [])
            producers = [label(n) for n, k in cg.sources if k in keys]
            entry = {"layers": producers, "units": len(mine),
                     "channels": max((cg.spaces[k].size for k in keys if k[0] == "v"), default=0)}
            if reasons:
                entry.update(pruned=0, reason="; ".join(sorted(reasons)[:3]))
                report.append(entry)
                continue
            ratio = min([r for n, k in cg.sources if k in keys for r in _given(n, rules)] or [o["ratio"]])
            count = 0
            for part in _by_producer(mine, source_keys).values():  # each producer keeps 1 - ratio of its channels
                n = min(int(np.floor(ratio * len(part) + 1e-9)), len(part) - 1)
                if n > 0:  # keep a multiple of round_to channels (what vector kernels tile by)
                    n = _rounded(len(part), n, _units_per_block(part[0], source_keys, o["round_to"]))
                for unit in sorted(part, key=score)[:max(n, 0)]:
                    removed.update(unit)
                count += max(n, 0)
            if count == 0:
                entry.update(pruned=0, reason=f"ratio {ratio} removes no unit of {len(mine)}")
            else:
                entry.update(pruned=count, ratio=ratio)
            report.append(entry)
        self.last_report = report
        self.last_removed_inputs = {}
        if not removed:
            return PassResult(model, False)
        # what the consumers no longer read: {(weight, axis): removed indices} (tests zero these in
        # the original model, which must then compute what the pruned one does)
        self.last_removed_inputs = {(k[1], cg.spaces[k].axis): sorted(i for kk, i in removed if kk == k)
                                    for k in {k for k, _ in removed} if cg.spaces[k].role == "in"}
        _apply(model, cg, removed)
        model.metadata_props[PRUNED] = f"ratio={o['ratio']},importance={o['importance']}"
        return PassResult(model, True)


def _units_per_block(unit: set, source_keys: set, round_to: int) -> int:
    """`round_to` channels in units: a unit holding w channels of each producer (an attention head:
    its D channels; a conv group) needs round_to / gcd(round_to, w) units per block."""
    producers = {k for k, _ in unit if k in source_keys}
    width = sum(1 for k, _ in unit if k in producers) // max(len(producers), 1)
    return round_to // math.gcd(round_to, max(width, 1))


def _rounded(units: int, remove: int, block: int) -> int:
    """How many of `units` to remove so that the rest is a multiple of the largest power-of-2
    part of `block` dividing `units` (a layer the block does not divide stays as aligned as it was):
    the multiple nearest the asked count `units - remove`, but not below 90% of it (MobileNet's own
    rule for rounding channel counts), so that every layer loses about the asked share. Rounding
    the kept count up instead spared the narrow layers (MobileNetV2 at 0.3 with 16-channel blocks:
    24 -> 24, 96 -> 80, 144 -> 112 kept, 0-22% removed, while the wide ones lost 28-30%)."""
    while block > 1 and units % block:
        block //= 2
    if block <= 1:
        return remove
    want = units - remove
    kept = max(int(want / block + 0.5), 1) * block
    if kept < 0.9 * want:
        kept += block
    return max(units - min(kept, units), 0)


def _given(node: ir.Node, rules) -> list[float]:
    return [r for pat, r in rules if named(node, [pat])]


def _by_producer(units: list[set], source_keys: set) -> dict[frozenset, list[set]]:
    """Units by the set of producer outputs they hold (a Concat's inputs are separate producers)."""
    out: dict[frozenset, list[set]] = defaultdict(list)
    for u in units:
        out[frozenset(k for k, _ in u if k in source_keys)].append(u)
    return out


def _groups(cg: ChannelGraph) -> list[tuple[set, set]]:
    """(space keys, block reasons) per connected group that holds at least one source."""
    out = []
    source_keys = {k for _, k in cg.sources}
    for comp in nx.connected_components(cg.clusters):
        keys = {k for k in comp if k[0] != "block"}
        if not keys & source_keys:
            continue
        reasons = {k[1] for k in comp if k[0] == "block"}
        out.append((keys, reasons))
    return out


def _units(cg: ChannelGraph) -> dict[int, list[set]]:
    """Group index -> its units (sets of (key, index) removed together)."""
    group_of = {}
    for gid, (keys, _) in enumerate(_groups(cg)):
        for k in keys:
            group_of[k] = gid
    out: dict[int, list[set]] = defaultdict(list)
    for comp in nx.connected_components(cg.elements):
        key = next(iter(comp))[0]
        if key in group_of:
            out[group_of[key]].append(comp)
    for gid in out:
        out[gid].sort(key=lambda u: min((k[1], i) for k, i in u if k[0] == "v"))
    return out


def _slice_norm(arr: np.ndarray, axis: int, p: str) -> np.ndarray:
    a = np.moveaxis(arr.astype(np.float64), axis, 0).reshape(arr.shape[axis], -1)
    return np.abs(a).sum(axis=1) if p == "l1" else np.sqrt((a * a).sum(axis=1))


def _importance(model: ir.Model, cg: ChannelGraph, o: dict):
    """unit -> score (smaller: removed first)."""
    inits = model.graph.initializers
    how = o["importance"]
    per: dict[tuple, np.ndarray] = {}
    if how in ("l1", "l2", "bn"):
        for key, s in cg.spaces.items():
            if s.role == "out":
                per[key] = _slice_norm(inits[key[1]].const_value.numpy(), s.axis, "l2" if how == "l2" else "l1")
        if how == "bn":
            bn = {key: np.abs(inits[key[1]].const_value.numpy().astype(np.float64))
                  for key, s in cg.spaces.items() if s.role == "bn"}
            bn_groups = {g for g, (keys, _) in enumerate(_groups(cg)) if any(k in bn for k in keys)}
            group_of = {k: g for g, (keys, _) in enumerate(_groups(cg)) for k in keys}
            per = {k: v for k, v in per.items() if group_of.get(k) not in bn_groups} | bn
    else:
        per = _sensitivity(model, cg, o)

    def score(unit: set) -> float:
        return float(sum(per[k][i] for k, i in unit if k in per))

    return score


def _sensitivity(model: ir.Model, cg: ChannelGraph, o: dict) -> dict[tuple, np.ndarray]:
    """{consumer weight input-axis key: E|x_c| * ||W[:, c]||_2 per channel c}, x measured on
    calibration samples in onnxruntime."""
    from edgec.ir.analysis import graph_inputs
    from edgec.passes.quantization import _data
    from edgec.passes.quantization._calibrate import observe

    sinks = {k: s for k, s in cg.spaces.items() if s.role == "in"}
    names = sorted({s.feeds[1] for s in sinks.values()})
    sums: dict[str, np.ndarray] = {}

    def add(name: str, a: np.ndarray) -> None:
        axis = cg.spaces[("v", name)].axis
        m = np.abs(np.moveaxis(a.astype(np.float64), axis, 0).reshape(a.shape[axis], -1)).mean(axis=1)
        sums[name] = sums.get(name, 0) + m

    feeds = _data.samples(graph_inputs(model), o["data"] or None, o["samples"], o["seed"], o["preprocess"])
    n = observe(model, names, feeds, add) if names else 0
    out = {}
    for key, s in sinks.items():
        w = model.graph.initializers[key[1]].const_value.numpy()
        mean = sums.get(s.feeds[1], np.zeros(s.size)) / max(n, 1)
        out[key] = _slice_norm(w, s.axis, "l2") * mean
    return out


def _apply(model: ir.Model, cg: ChannelGraph, removed: set) -> None:
    """Delete the removed indices from every space; fix grouped Convs' group and Split sizes."""
    by_key: dict[tuple, list[int]] = defaultdict(list)
    for k, i in removed:
        by_key[k].append(i)
    inits = model.graph.initializers
    values = {v.name: v for n in model.graph for v in n.outputs if v.name}
    new_size = {k: s.size for k, s in cg.spaces.items()}
    for key, idx in by_key.items():
        s = cg.spaces[key]
        new_size[key] = s.size - len(idx)
        if key[0] == "i":
            v = inits[key[1]]
            set_constant(v, np.delete(v.const_value.numpy(), sorted(idx), axis=s.axis))
        else:
            v = values.get(key[1])
            if v is not None and v.shape is not None:
                dims = list(v.shape)
                dims[s.axis] = new_size[key]
                v.shape = ir.Shape(dims)
    for node, key, per_group in cg.grouped:
        node.attributes["group"] = ir.AttrInt64("group", new_size[key] // per_group)
    for node, key, i, lo, hi in cg.slices:  # the channels kept before lo and inside [lo, hi) give the new bounds
        gone = np.array(sorted(by_key.get(key, [])), dtype=np.int64)
        new_lo = lo - int((gone < lo).sum())
        new_hi = new_lo + (hi - lo) - int(((gone >= lo) & (gone < hi)).sum())
        for pos, value in ((1, new_lo), (2, new_hi)):
            arr = const_array(node.inputs[pos]).copy()
            arr[i] = value
            set_constant(node.inputs[pos], arr)
    for node, pos, key, i in cg.counts:  # a Reshape target / Resize sizes naming a count: a copy (it may be shared)
        arr = const_array(node.inputs[pos]).astype(np.int64).reshape(-1)
        if arr[i] != new_size[key]:  # its group lost channels
            arr = arr.copy()
            arr[i] = new_size[key]
            _replace_constant(model, node, pos, arr, f"{node.inputs[pos].name}__pruned")
    for node, keys in cg.splits:
        sizes = np.array([new_size[k] for k in keys], dtype=np.int64)
        if len(node.inputs) > 1 and node.inputs[1] is not None:
            old = node.inputs[1]
            if const_array(old) is not None and not np.array_equal(const_array(old), sizes):
                _replace_constant(model, node, 1, sizes, f"{old.name}__pruned")
        elif "split" in node.attributes or onnx_opset(model, 1) < 13:
            node.attributes["split"] = ir.AttrInt64s("split", [int(x) for x in sizes])
        elif len(set(sizes.tolist())) > 1:  # num_outputs (equal parts) no longer fits: explicit sizes
            node.attributes.pop("num_outputs", None)
            node.resize_inputs(2)
            node.replace_input_with(1, _new_initializer(model, f"{node.name or keys[0][1]}__split_sizes", sizes))


def _replace_constant(model: ir.Model, node: ir.Node, pos: int, arr: np.ndarray, base: str) -> None:
    """Input `pos` of `node` becomes a new initializer holding `arr` (the old constant may be shared:
    its other readers keep it); the old one goes when nothing reads it any more."""
    old = node.inputs[pos]
    node.replace_input_with(pos, _new_initializer(model, base, arr))
    if old.is_initializer() and not old.uses() and not old.is_graph_output() and not old.is_graph_input():
        model.graph.initializers.pop(old.name)


def _new_initializer(model: ir.Model, base: str, arr: np.ndarray) -> ir.Value:
    """A new initializer holding `arr`, named `base` or `base_1`, `base_2`, ... (the first name no
    value of the graph has: a constant several nodes share gets one new copy per node)."""
    taken = set(model.graph.initializers) | {v.name for n in model.graph for v in n.outputs if v.name}
    taken |= {v.name for v in model.graph.inputs}
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    v = ir.Value(name=name, shape=ir.Shape(arr.shape), type=ir.TensorType(ir.DataType.INT64),
                 const_value=ir.tensor(arr, name=name))
    model.graph.register_initializer(v)
    return v
