"""What the TVM backend's own lowerings accept, decided on the ONNX node alone (no tvm import).

Shared by the lowerings (`edgec.targets.tvm.ops`) and by the passes that create edgec-domain ops
only edgec's backend can lower (`fuse-activation` → `edgec.FusedConv`): a pass asks the same
function the lowering asks, so it never creates an op the backend then refuses (issue 12: a 1-D
Conv + Relu became a FusedConv that the rank-4-only Conv lowering declined).
"""

from __future__ import annotations

import onnx_ir as ir

from edgec.passes.cleanup.resolve_auto_pad import explicit_pads

#: Conv ranks edgec lowers: 3 (1-D, R.nn.conv1d), 4 (2-D, conv2d), 5 (3-D, conv3d)
CONV_RANKS = (3, 4, 5)


def _auto_pad(node: ir.Node) -> str:
    a = node.attributes.get("auto_pad")
    v = "NOTSET" if a is None or a.is_ref() else a.value
    return v.decode() if isinstance(v, bytes) else str(v)


def _rank(v: ir.Value | None) -> int | None:
    return None if v is None or v.shape is None else len(v.shape)


def conv_rank(node: ir.Node) -> int | None:
    """The rank of a Conv's X (W's rank when X's is unknown), or None."""
    r = _rank(node.inputs[0]) if node.inputs else None
    return r if r is not None else _rank(node.inputs[1] if len(node.inputs) > 1 else None)


def conv_pads(node: ir.Node) -> list[int] | None:
    """A Conv / FusedConv node's pads (all begins, then all ends) with auto_pad resolved; None when
    SAME_* padding depends on shapes that are not static, or the rank is unknown."""
    r = conv_rank(node)
    if r is None:
        return None
    mode = _auto_pad(node)
    if mode == "NOTSET":
        a = node.attributes.get("pads")
        return [0] * (2 * (r - 2)) if a is None else [int(p) for p in a.as_ints()]
    if mode == "VALID":
        return [0] * (2 * (r - 2))
    return explicit_pads(node)


def conv_lowerable(node: ir.Node) -> str:
    """'' when edgec's Conv lowering (`targets/tvm/ops/nn.py:conv`, also FusedConv's) takes `node`,
    else the reason it does not."""
    r = conv_rank(node)
    if r not in CONV_RANKS:
        return f"Conv of rank {r} (edgec lowers ranks {', '.join(map(str, CONV_RANKS))})"
    if any(a.is_ref() for a in node.attributes.values()):
        return "Conv with attributes referencing function attributes"
    mode = _auto_pad(node)
    if mode not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        return f"Conv auto_pad {mode!r}"
    pads = conv_pads(node)
    if pads is None or len(pads) != 2 * (r - 2):
        return f"Conv auto_pad {mode} with a non-static input shape"
    return ""
