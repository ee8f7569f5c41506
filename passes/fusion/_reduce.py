"""Reading ReduceMean axes (attribute before opset 18, input from 18) for the norm recognizers."""

from __future__ import annotations

from edgec.ir.constants import const_array
from edgec.rewrite.matcher import attr_value


def trailing_axis(node, rank: int | None) -> int | None:
    """If ReduceMean `node` keeps dims and reduces exactly the trailing axes, the first one (negative)."""
    if attr_value(node, "keepdims", 1) != 1:
        return None
    axes = attr_value(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        arr = const_array(node.inputs[1])
        axes = None if arr is None else [int(a) for a in arr.reshape(-1)]
    if not axes:
        return None
    if any(a >= 0 for a in axes):
        if rank is None:
            return None
        axes = [a - rank if a >= 0 else a for a in axes]
    axes = sorted(axes)
    if axes != list(range(-len(axes), 0)):
        return None
    return axes[0]
