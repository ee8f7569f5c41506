"""The channel-dependency graph's data structure (see _channels.py for how it is built): spaces
(one channel axis of one tensor), the `elements` graph tying channel indices that are removed
together, the `clusters` graph tying coupled layers (and blocking those that cannot lose
channels), and the bindings of constants (weights, biases, per-channel parameters) to an
activation's channels."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import onnx_ir as ir

from edgec.ir.constants import const_array


@dataclass
class Space:
    key: tuple
    axis: int
    size: int
    role: str = "act"  # act | out (a weight's output axis) | in (a weight's input axis) | bn | const
    feeds: tuple | None = None  # role "in": the activation key whose channels this axis reads


@dataclass
class ChannelGraph:
    spaces: dict[tuple, Space] = field(default_factory=dict)
    elements: nx.Graph = field(default_factory=nx.Graph)
    clusters: nx.Graph = field(default_factory=nx.Graph)
    sources: list[tuple[ir.Node, tuple]] = field(default_factory=list)  # (node, its output activation key)
    grouped: list[tuple[ir.Node, tuple, int]] = field(default_factory=list)  # (Conv, out key, channels per group)
    splits: list[tuple[ir.Node, list[tuple]]] = field(default_factory=list)  # (Split, output keys)
    slices: list[tuple[ir.Node, tuple, int, int, int]] = field(default_factory=list)  # (Slice, input key, i in axes, start, end)
    # (Reshape / Resize, its input naming the count: the target / sizes, the space counted, entry)
    counts: list[tuple[ir.Node, int, tuple, int]] = field(default_factory=list)
    first: set = field(default_factory=set)  # ids of source nodes reading a graph input

    # --- building blocks -------------------------------------------------------------------------
    def space(self, key: tuple, axis: int, size: int, role: str = "act", feeds: tuple | None = None) -> Space:
        if key in self.spaces:
            return self.spaces[key]
        s = Space(key, axis, size, role, feeds)
        self.spaces[key] = s
        self.clusters.add_node(key)
        self.elements.add_nodes_from((key, j) for j in range(size))
        return s

    def tie(self, ka: tuple, ia, kb: tuple, ib) -> None:
        self.clusters.add_edge(ka, kb)
        self.elements.add_edges_from(((ka, int(a)), (kb, int(b))) for a, b in zip(ia, ib))

    def same(self, ka: tuple, kb: tuple) -> None:
        n = self.spaces[ka].size
        self.tie(ka, range(n), kb, range(n))

    def carry(self, x: Space, out: ir.Value, axis: int) -> None:
        """`out` carries `x`'s channels one to one, on its own `axis` (elementwise ops, pools,
        transposes, reshapes that keep the channel dim)."""
        key = vkey(out)
        self.space(key, axis, x.size)
        self.same(x.key, key)

    def block(self, key: tuple, reason: str) -> None:
        self.clusters.add_edge(key, ("block", reason))

    def carried(self, v: ir.Value | None) -> Space | None:
        return None if v is None or v.name is None else self.spaces.get(("v", v.name))


def label(node: ir.Node) -> str:
    """A node's name, or its weight's when it has none (ONNX names are optional)."""
    w = node.inputs[1] if len(node.inputs) > 1 and node.inputs[1] is not None else None
    return node.name or (f"{node.op_type}({w.name})" if w is not None else node.op_type)


def vkey(v: ir.Value) -> tuple:
    return ("v", v.name)


def bind(cg: ChannelGraph, v: ir.Value | None, axis: int, act: tuple, role: str, why: str) -> bool:
    """Bind axis `axis` of constant `v` to activation space `act` index for index; block if `v`
    is not a constant read by this node only or its extent differs."""
    arr = const_array(v)
    size = cg.spaces[act].size
    if arr is None or not v.is_initializer():
        cg.block(act, f"{why} is not a constant initializer")
        return False
    if len(v.uses()) != 1:
        cg.block(act, f"{why} '{v.name}' is shared by {len(v.uses())} nodes")
        return False
    if arr.ndim <= axis or arr.shape[axis] != size:
        cg.block(act, f"{why} '{v.name}' has shape {list(arr.shape)}, not {size} along axis {axis}")
        return False
    key = ("i", v.name, axis)
    if key in cg.spaces:  # the same constant bound twice by one node (x * w + w): not a layout we prune
        cg.block(act, f"{why} '{v.name}' is read twice")
        return False
    cg.space(key, axis, size, role, feeds=act if role == "in" else None)
    cg.same(key, act)
    return True


def data_sink(cg: ChannelGraph, node: ir.Node, x: Space | None, w: ir.Value, w_axis: int, want_axis: int) -> str | None:
    """Bind the weight's input axis to the channels of the data input `x` (when they are pruned)."""
    if x is None:
        return None
    if x.axis != want_axis:
        return f"{node.op_type} node '{node.name}' reads channel axis {x.axis} as a non-channel axis"
    bind(cg, w, w_axis, x.key, "in", f"{node.op_type} '{node.name}' weight")
    return None
