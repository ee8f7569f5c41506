"""Per-op derivation of shape-determining parameters from static input/output shapes
(private: not scanned for passes; used by `specialize-shape-inputs`).

`derive(node, shapes, opset)` returns the `Specialization`s of a node: which input is replaced,
the value compiled in, and how the runtime value is canonicalized before the equality guard
(`Canon`). A derivation returns None when the shapes do not determine the value uniquely
(e.g. keepdims=0 removing one of two equal dims): the node is then left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import onnx_ir as ir

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Canon:
    """How the runtime value is put in canonical form before it is compared with `expected`:
    `exact` as is; `axes` negative axes + `rank`, then sorted; `reshape` -1 (and 0 unless
    allowzero) resolved against `fill` (the compiled target shape) and `zero` (input dims);
    `expand` 1 replaced by the right-aligned input dims `fill`; `ignore` entries the op does
    not use (`zero` is a 0/1 mask of the used ones) replaced by `fill`."""

    kind: str = "exact"
    rank: int = 0
    fill: tuple[int, ...] = ()
    zero: tuple[int, ...] = ()


@dataclass(frozen=True)
class Specialization:
    index: int                 # node input replaced
    expected: np.ndarray       # the value compiled in (same shape and dtype as the runtime input)
    canon: Canon = field(default_factory=Canon)


_REDUCE = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}


def _int_attr(node: ir.Node, name: str, default: int) -> int:
    a = node.attributes.get(name)
    return default if a is None or a.is_ref() else a.as_int()


def _ints_attr(node: ir.Node, name: str) -> list[int] | None:
    a = node.attributes.get(name)
    return None if a is None or a.is_ref() else list(a.as_ints())


def _str_attr(node: ir.Node, name: str, default: str) -> str:
    a = node.attributes.get(name)
    return default if a is None or a.is_ref() else a.as_string()


def removals(longer: Shape, shorter: Shape, k: int, only_ones: bool = False) -> list[tuple[int, ...]]:
    """Every set of `k` positions of `longer` whose removal leaves `shorter` (positions of
    size-1 dims only, if `only_ones`)."""
    if len(longer) - k != len(shorter):
        return []
    out = []
    for drop in combinations(range(len(longer)), k):
        if only_ones and any(longer[i] != 1 for i in drop):
            continue
        kept = tuple(d for i, d in enumerate(longer) if i not in drop)
        if kept == shorter:
            out.append(drop)
    return out


def _like(values, param: tuple[Shape, ir.DataType]) -> np.ndarray | None:
    """`values` as an array of the runtime input's shape and dtype (None if they cannot be)."""
    shape, dtype = param
    arr = np.asarray(values)
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        return None
    return arr.astype(dtype.numpy()).reshape(shape)


def _reduce(node, ins, outs, param, opset):
    if node.op_type == "ReduceSum" and opset < 13 or node.op_type != "ReduceSum" and opset < 18:
        return None  # axes is an attribute
    x, y = ins[0], outs[0]
    if x is None or y is None:
        return None
    k = int(np.prod(param[0], dtype=np.int64))
    r = len(x)
    if k == 0:  # an empty axes tensor: its value is its (static) shape
        return [Specialization(1, np.zeros(param[0], param[1].numpy()))]
    if _int_attr(node, "keepdims", 1):
        if len(y) != r or any(o != 1 and o != i for i, o in zip(x, y)):
            return None
        axes = [i for i in range(r) if y[i] == 1 and x[i] != 1]
        if len(axes) != k:  # some reduced axes are size-1 dims: which ones is not determined
            return None
    else:
        cands = removals(x, y, k)
        if len(cands) != 1:
            return None
        axes = list(cands[0])
    exp = _like(axes, param)
    return None if exp is None else [Specialization(1, exp, Canon("axes", rank=r))]


def _reshape(node, ins, outs, param, opset):
    x, y = ins[0], outs[0]
    if x is None or y is None or param[0] != (len(y),):
        return None
    allowzero = _int_attr(node, "allowzero", 0)
    zero = tuple(x[i] if i < len(x) else -2 for i in range(len(y))) if not allowzero else ()
    exp = _like(y, param)
    return None if exp is None else [Specialization(1, exp, Canon("reshape", fill=y, zero=zero))]


def _expand(node, ins, outs, param, opset):
    x, y = ins[0], outs[0]
    if x is None or y is None or len(param[0]) != 1:
        return None
    m = param[0][0]
    if max(len(x), m) != len(y):
        return None
    aligned = (1,) * (m - len(x)) + tuple(x[max(0, len(x) - m):])
    exp = _like(y[len(y) - m:], param)
    return None if exp is None else [Specialization(1, exp, Canon("expand", fill=aligned))]


def _tile(node, ins, outs, param, opset):
    x, y = ins[0], outs[0]
    if x is None or y is None or len(x) != len(y) or any(d == 0 or o % d for d, o in zip(x, y)):
        return None
    exp = _like([o // d for d, o in zip(x, y)], param)
    return None if exp is None else [Specialization(1, exp)]


def _dim_of(index: int, axis_attr: str, default_axis: int, which: str = "out"):
    """The parameter at input `index` is one dim of the output (or input) at an axis attribute."""

    def derive(node, ins, outs, param, opset):
        s = outs[0] if which == "out" else ins[0]
        if s is None or not s:
            return None
        axis = _int_attr(node, axis_attr, default_axis) if axis_attr else default_axis
        if not -len(s) <= axis < len(s):
            return None
        exp = _like([s[axis]], param)
        return None if exp is None else [Specialization(index, exp)]

    return derive


def _split(node, ins, outs, param, opset):
    if opset < 13 or any(o is None for o in outs) or not outs:
        return None
    axis = _int_attr(node, "axis", 0)
    r = len(outs[0])
    if not -r <= axis < r:
        return None
    exp = _like([o[axis] for o in outs], param)
    return None if exp is None else [Specialization(1, exp)]


def _center_crop_pad(node, ins, outs, param, opset):
    y = outs[0]
    if y is None:
        return None
    axes = _ints_attr(node, "axes") or list(range(len(y)))
    if any(not -len(y) <= a < len(y) for a in axes):
        return None
    exp = _like([y[a] for a in axes], param)
    return None if exp is None else [Specialization(1, exp)]


def _unsqueeze(node, ins, outs, param, opset):
    x, y = ins[0], outs[0]
    if opset < 13 or x is None or y is None:
        return None
    k = int(np.prod(param[0], dtype=np.int64))
    cands = removals(y, x, k, only_ones=True)
    if len(cands) != 1:
        return None
    exp = _like(list(cands[0]), param)
    return None if exp is None else [Specialization(1, exp, Canon("axes", rank=len(y)))]


def _squeeze(node, ins, outs, param, opset):
    x, y = ins[0], outs[0]
    if opset < 13 or x is None or y is None:
        return None
    k = int(np.prod(param[0], dtype=np.int64))
    if k == 0:
        return None  # no axes: every size-1 dim goes (the shapes say so; nothing to compile in)
    cands = removals(x, y, k, only_ones=True)
    if len(cands) != 1:
        return None
    exp = _like(list(cands[0]), param)
    return None if exp is None else [Specialization(1, exp, Canon("axes", rank=len(x)))]


def _constant_of_shape(node, ins, outs, param, opset):
    y = outs[0]
    exp = None if y is None else _like(list(y), param)
    return None if exp is None else [Specialization(0, exp)]


def _resize(node, ins, outs, param, opset):
    # only `sizes` (input 3): `scales` also move sampling coordinates, the shapes do not fix them
    x, y = ins[0], outs[0]
    if x is None or y is None or _str_attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        return None
    axes = _ints_attr(node, "axes") or list(range(len(y)))
    if any(not -len(y) <= a < len(y) for a in axes):
        return None
    exp = _like([y[a] for a in axes], param)
    return None if exp is None else [Specialization(3, exp)]


def _affine_grid(node, ins, outs, param, opset):
    # size = [N, C, (D,) H, W] -> output [N, (D,) H, W, r]: C does not change the output
    y = outs[0]
    if y is None or len(y) not in (4, 5) or param[0] != (len(y),) or y[-1] != len(y) - 2:
        return None
    values = [y[0], 1, *y[1:-1]]
    exp = _like(values, param)
    used = tuple(0 if i == 1 else 1 for i in range(len(values)))
    return None if exp is None else [Specialization(1, exp, Canon("ignore", fill=tuple(values), zero=used))]


# op -> (input index of the parameter, derivation(node, in_shapes, out_shapes, (param shape, dtype), opset))
DERIVATIONS: dict[str, tuple[int, Callable]] = {
    **{op: (1, _reduce) for op in _REDUCE},
    "Reshape": (1, _reshape),
    "Expand": (1, _expand),
    "Tile": (1, _tile),
    "TopK": (1, _dim_of(1, "axis", -1)),
    "OneHot": (1, _dim_of(1, "axis", -1)),
    "Split": (1, _split),
    "CenterCropPad": (1, _center_crop_pad),
    "Unsqueeze": (1, _unsqueeze),
    "Squeeze": (1, _squeeze),
    "ConstantOfShape": (0, _constant_of_shape),
    "HannWindow": (0, _dim_of(0, "", 0)),
    "HammingWindow": (0, _dim_of(0, "", 0)),
    "BlackmanWindow": (0, _dim_of(0, "", 0)),
    "Resize": (3, _resize),
    "AffineGrid": (1, _affine_grid),
}
