"""Use a records file at compile time: each kernel whose (structure, target) key has a record gets
the recorded winner — the tuned trace replayed, edgec's rule with the recorded knob values, or the
rule as is — and is marked scheduled; the rest fall through to the rule-based schedules as usual."""

from __future__ import annotations

import os
from collections import Counter

import tvm
from tvm import tirx

from edgec.targets.tvm.schedules import RuleContext, schedule_func
from edgec.targets.tvm.tune.records import Records
from edgec.targets.tvm.tune.tasks import key_of, workload_of


def apply_records(mod: tvm.IRModule, records: Records, target, ctx: RuleContext) -> tuple[tvm.IRModule, Counter]:
    """Returns the module and counts: 'records:tuned', 'records:knobs', 'records:rule', 'records:failed'."""
    from edgec.targets.tvm.tune.search import replay

    used: Counter = Counter()
    tstr = str(target)
    for gv, func in list(mod.functions.items()):
        if not isinstance(func, tirx.PrimFunc) or (func.attrs is not None and func.attrs.get("tirx.is_scheduled")):
            continue
        entry = records.best_for(key_of(func, tstr))
        if entry is None:
            continue
        if entry["best"] == "rule":
            new, _ = schedule_func(func, ctx)
            used["records:rule"] += 1
            mod[gv] = new
            continue
        if entry["best"] == "knobs":
            try:
                mod[gv], _ = schedule_func(func, ctx, knobs=entry["knobs"][0]["values"])
                used["records:knobs"] += 1
            except Exception:  # noqa: BLE001 - knobs that no longer apply: the rules take it, counted
                if os.environ.get("EDGEC_SCHEDULE_DEBUG"):
                    raise
                used["records:failed"] += 1
            continue
        try:
            sch = replay(workload_of(func), entry["tuned"][0]["trace"])
        except Exception:  # noqa: BLE001 - a stale record: fall back to the rules, count it
            if os.environ.get("EDGEC_SCHEDULE_DEBUG"):
                raise
            used["records:failed"] += 1
            continue
        new = sch.mod["main"].without_attr("global_symbol")
        mod[gv] = new.with_attr("tirx.is_scheduled", True)
        used["records:tuned"] += 1
    return mod, used
