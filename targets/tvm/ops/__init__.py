"""edgec's own op lowerings (ONNX op -> Relax), one module per op family.

A lowering is `fn(ctx, node, inputs) -> relax.Expr | list[relax.Expr] | NotImplemented`;
returning NotImplemented hands the node to TVM's ONNX-frontend converter (the fallback).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from edgec.ir.domains import normalize_domain

LoweringFn = Callable


class Unsupported(ValueError):  # noqa: N818 - reads as `raise Unsupported("...")`
    """Raised by a lowering for a node it cannot lower: attributes or types the backend does not
    support, or an invalid combination. The driver reports it as an unsupported op (exit 2); any
    other exception inside a lowering is edgec's bug (exit 1)."""


class LoweringTable:
    def __init__(self) -> None:
        self._fns: dict[tuple[str, str], LoweringFn] = {}

    def add(self, domain: str, op_type: str, fn: LoweringFn) -> None:
        key = (domain, op_type)
        if key in self._fns:
            raise ValueError(f"duplicate lowering for {domain or 'ai.onnx'}::{op_type}")
        self._fns[key] = fn

    def get(self, domain: str, op_type: str) -> LoweringFn | None:
        return self._fns.get((normalize_domain(domain), op_type))

    def ops(self) -> list[str]:
        return sorted(f"{d}::{o}" if d else o for d, o in self._fns)


def lowers(*op_types: str, domain: str = ""):
    """Mark a function as the lowering of `op_types`; collected by `builtin_lowerings()`."""

    def mark(fn):
        fn.__edgec_lowers__ = getattr(fn, "__edgec_lowers__", []) + [(domain, op) for op in op_types]
        return fn

    return mark


def builtin_lowerings() -> LoweringTable:
    table = LoweringTable()
    for info in pkgutil.iter_modules(__path__):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(mod).values():
            for domain, op in getattr(obj, "__edgec_lowers__", ()):
                if getattr(obj, "__module__", None) == mod.__name__:
                    table.add(domain, op, obj)
    return table
