"""Tuning tasks = the fused TIR kernels of the module edgec's compile path builds.

The model goes through edgec's graph passes, edgec's lowering to Relax and `optimize_relax`
(blocked layout, legalize, fuse) exactly as `edgec compile` does; every PrimFunc left is a kernel.
Identical kernels (same structure) are one task whose weight is the number of call sites.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import tvm
import tvm_ffi
from tvm import relax, tirx

from edgec.targets.registry import TargetSpec
from edgec.targets.tvm.build import optimize_relax
from edgec.targets.tvm.schedules import RuleContext, schedule_func
from edgec.targets.tvm.tune.records import task_key


@dataclass
class Task:
    key: str
    name: str
    func: tirx.PrimFunc          # the unscheduled kernel as it appears in the module
    workload: tvm.IRModule       # {"main": func} with a global symbol: what MetaSchedule tunes
    weight: int = 1
    flops: float = 0.0
    rule: str = "none"           # edgec rule that schedules it

    @property
    def cost(self) -> float:
        return self.flops * self.weight


def workload_of(func: tirx.PrimFunc) -> tvm.IRModule:
    return tvm.IRModule({"main": func.with_attr("global_symbol", "main")})


def key_of(func: tirx.PrimFunc, target_str: str) -> str:
    return task_key(target_str, int(tvm_ffi.structural_hash(workload_of(func))))


def _flops(mod: tvm.IRModule) -> float:
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return float(estimate_tir_flops(mod))
    except Exception:  # noqa: BLE001 - FLOPs only order the tasks
        return 0.0


def _call_counts(mod: tvm.IRModule) -> Counter:
    counts: Counter = Counter()

    @relax.expr_functor.visitor
    class _V(relax.PyExprVisitor):
        def visit_call_(self, call):
            for a in call.args:
                if isinstance(a, relax.GlobalVar):
                    counts[a.name_hint] += 1
            super().visit_call_(call)

    for _, f in mod.functions.items():
        if isinstance(f, relax.Function):
            _V().visit_expr(f)
    return counts


def extract_tasks(mod: tvm.IRModule, spec: TargetSpec, target, ctx: RuleContext) -> tuple[list[Task], tvm.IRModule]:
    """Tasks of a lowered Relax module (before `optimize_relax`), heaviest first; also returns
    the optimized module."""
    opt = optimize_relax(mod, target, spec, threads=ctx.threads)
    calls = _call_counts(opt)
    tstr = str(target)
    tasks: dict[str, Task] = {}
    for gv, func in opt.functions.items():
        if not isinstance(func, tirx.PrimFunc) or (func.attrs is not None and func.attrs.get("tirx.is_scheduled")):
            continue
        key = key_of(func, tstr)
        n = max(calls.get(gv.name_hint, 1), 1)
        if key in tasks:
            tasks[key].weight += n
            continue
        wl = workload_of(func)
        tasks[key] = Task(key, gv.name_hint, func, wl, n, _flops(wl), schedule_func(func, ctx)[1])
    return sorted(tasks.values(), key=lambda t: (-t.cost, t.name)), opt
