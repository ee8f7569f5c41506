"""edgec's rule-based CPU schedules, applied to every PrimFunc after fusion (no search).

Each rule is a module with `NAME`, `match(sch, ctx) -> bool` and `apply(sch, ctx)`; rules are tried
in `RULES` order and the first that matches and applies without error wins (a rule that raises
leaves the function untouched for the next one). `injective` matches everything, so no kernel is
left as the naive single-threaded loop nest.
"""

from __future__ import annotations

import os
from collections import Counter

import tvm
from tvm import s_tir, tirx

from edgec.targets.tvm.schedules import (
    conv_nchw,
    conv_nchwc,
    dwconv_nchw,
    dwconv_nchwc,
    injective,
    matmul,
    reduction,
    rowwise,
)
from edgec.targets.tvm.schedules.common import RuleContext

RULES = (conv_nchwc, conv_nchw, dwconv_nchwc, dwconv_nchw, matmul, rowwise, reduction, injective)


def context_for(spec, target=None, threads: int | None = None) -> RuleContext:
    lanes = max(int(spec.vector_bits) // 32, 1)
    regs = 32 if (int(spec.vector_bits) >= 512 or spec.arch == "aarch64") else 16
    return RuleContext(lanes=lanes, threads=threads or os.cpu_count() or 2, registers=regs, target=target)


def schedule_func(func: tirx.PrimFunc, ctx: RuleContext, rules=RULES) -> tuple[tirx.PrimFunc, str]:
    for rule in rules:
        sch = s_tir.Schedule(func)
        try:
            if not rule.match(sch, ctx):
                continue
            sch = rule.apply(sch, ctx) or sch
        except Exception:  # noqa: BLE001 - a rule that cannot apply falls through to the next
            if os.environ.get("EDGEC_SCHEDULE_DEBUG"):
                raise
            continue
        return sch.mod["main"].with_attr("tirx.is_scheduled", True), rule.NAME
    return func, "none"


def apply_schedules(mod: tvm.IRModule, ctx: RuleContext) -> tuple[tvm.IRModule, Counter]:
    """Schedule every unscheduled PrimFunc in `mod`; returns the module and rule-use counts."""
    used: Counter = Counter()
    for gv, func in list(mod.functions.items()):
        if not isinstance(func, tirx.PrimFunc) or func.attrs is not None and func.attrs.get("tirx.is_scheduled"):
            continue
        new, name = schedule_func(func, ctx)
        used[name] += 1
        mod[gv] = new
    return mod, used
