"""Permutation helpers shared by the layout passes."""

from __future__ import annotations

import numpy as np

TO_NHWC = (0, 2, 3, 1)  # NCHW -> NHWC
TO_NCHW = (0, 3, 1, 2)  # NHWC -> NCHW


def compose(p1, p2) -> list[int]:
    """Transpose(Transpose(x, p1), p2) == Transpose(x, compose(p1, p2))."""
    return [int(p1[i]) for i in p2]


def inverse(p) -> list[int]:
    inv = [0] * len(p)
    for i, a in enumerate(p):
        inv[int(a)] = i
    return inv


def is_identity(p) -> bool:
    return list(p) == list(range(len(p)))


def perm_of(node, rank: int | None) -> list[int] | None:
    """A Transpose node's permutation (default: reversed axes, needs the rank)."""
    a = node.attributes.get("perm")
    if a is None:
        return None if rank is None else list(range(rank))[::-1]
    return [int(v) for v in a.value]


def only_moves_unit_dims(perm, shape) -> bool:
    """True if transposing `shape` by `perm` keeps the order of the dims larger than 1 (a reshape)."""
    big = [a for a in perm if shape[a] != 1]
    return big == sorted(big)


def permute_constant(c: np.ndarray, perm, rank: int) -> np.ndarray | None:
    """`c` (broadcastable against a rank-`rank` tensor) transposed by `perm` after padding its rank."""
    if c.ndim > rank:
        return None
    return np.transpose(c.reshape((1,) * (rank - c.ndim) + c.shape), perm)
