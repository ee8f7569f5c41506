"""Knob search (`edgec tune --space knobs`): time the candidates of edgec's own rule schedule for
one task — register tile shape, tile sizes, parallel grain, padding strategy; the rule module's
`space()` lists them, the rule's default first — on the real machine, with the same builder and
runner as the rule schedule; record every measured setting and keep the fastest.

The space is small (typically 5-15 settings per kernel), so a task's trial budget usually covers
it whole. Candidates are measured in batches in the space's order; `knob_trials` in the record
says how many were measured, so a resumed run continues where the last one stopped. When the
space is exhausted (or the budget spent) and a knob setting beat the rule, the rule and the best
settings are timed once more in one batch (a timing is kept as the faster of its two
measurements), so one lucky measurement on a noisy machine does not decide alone.
"""

from __future__ import annotations

import time

from edgec.targets.tvm.schedules import knob_space, schedule_func
from edgec.targets.tvm.tune.measure import measure_modules
from edgec.targets.tvm.tune.records import Records, decide
from edgec.targets.tvm.tune.tasks import Task, workload_of

CONFIRM = 2  # best knob settings re-timed together with the rule


def space_of(task: Task, ctx) -> list[dict]:
    try:
        return knob_space(task.func, ctx)
    except Exception:  # noqa: BLE001 - a kernel whose rule space cannot be built has no knobs
        return []


def _module(task: Task, ctx, values: dict):
    func, _ = schedule_func(task.func, ctx, knobs=values)
    return workload_of(func.without_attr("tirx.is_scheduled"))


def search_knobs(task: Task, records: Records, budget: int, ctx, target, builder, runner, *,
                 deadline: float | None = None, on_update=None, batch: int = 8) -> int:
    """Measure up to `budget` knob settings of `task` (its space minus the rule default, which
    is the rule schedule already timed); returns how many were measured now."""
    entry = records.tasks[task.key]
    space = space_of(task, ctx)[1:]
    start = entry.get("knob_trials", 0)
    todo = space[start:budget]
    done = 0
    for i in range(0, len(todo), batch):
        if deadline is not None and time.monotonic() >= deadline:
            break
        chunk = todo[i:i + batch]
        mods, ok = [], []
        for values in chunk:
            try:
                mods.append(_module(task, ctx, values))
                ok.append(values)
            except Exception as e:  # noqa: BLE001 - a setting the schedule rejects counts as an error
                entry["errors"] = entry.get("errors", 0) + 1
                entry["last_error"] = f"knobs {values}: {' '.join(str(e).split())[-160:]}"
        for values, (lat, err) in zip(ok, measure_modules(mods, target, builder, runner) if mods else []):
            if lat is None:
                entry["errors"] = entry.get("errors", 0) + 1
                entry["last_error"] = f"knobs {values}: {err}"
            else:
                records.add_knobs(task.key, lat, values)
        entry["knob_trials"] = entry.get("knob_trials", 0) + len(chunk)
        done += len(chunk)
        decide(entry)
        records.save()
        if on_update:
            on_update(entry)
    if entry.get("knob_trials", 0) >= min(budget, len(space)) and not entry.get("knobs_confirmed"):
        confirm(task, records, ctx, target, builder, runner)
    return done


def confirm(task: Task, records: Records, ctx, target, builder, runner) -> None:
    """Re-time the rule and the best knob settings in one batch when a setting beat the rule."""
    entry = records.tasks[task.key]
    rule = entry.get("rule") or {}
    if not entry.get("knobs") or rule.get("latency_us") is None or entry["best"] != "knobs":
        entry["knobs_confirmed"] = True
        records.save()
        return
    best = [k["values"] for k in entry["knobs"][:CONFIRM]]
    rule_func, _ = schedule_func(task.func, ctx)
    mods = [workload_of(rule_func.without_attr("tirx.is_scheduled"))] + [_module(task, ctx, v) for v in best]
    res = measure_modules(mods, target, builder, runner)
    if res[0][0] is not None:
        rule["latency_us"] = min(rule["latency_us"], res[0][0])
    for values, (lat, _) in zip(best, res[1:]):
        if lat is not None:
            records.add_knobs(task.key, lat, values)
    entry["knobs_confirmed"] = True
    decide(entry)
    records.save()
