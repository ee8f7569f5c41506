"""Knob search (`edgec tune --space knobs`): time the candidates of edgec's own rule schedule for
one task — register tile shape, tile sizes, parallel grain, padding strategy; the rule module's
`space()` lists them, the rule's default first — on the real machine, with the same builder and
runner as the rule schedule; record every measured setting and keep the fastest.

The space is small (typically 5-15 settings per kernel), so a task's trial budget usually covers
it whole. Candidates are measured in batches in the space's order; `knob_trials` in the record
says how many were measured, so a resumed run continues where the last one stopped.

One timing per candidate is not enough on a shared machine: a lucky measurement used to replace
the rule with a setting that was slower (ResNet-18 compiled with such records ran 24.3 ms vs
21.6 ms on rules). So when the space is exhausted (or the budget spent), the rule and the
`CONFIRM` best settings are re-timed in `ROUNDS` interleaved rounds (the order rotates every
round), and a setting replaces the rule only if it is `significantly_faster`: its median over
the rounds at least `MARGIN` below the rule's AND faster than the rule in at least `WIN_SHARE`
of the paired rounds. The record keeps every round (`confirm`) and the verdict
(`knobs_verdict`: accepted / rejected / none); `records.decide` uses knobs only when accepted, so
an interrupted or unconfirmed search (and records written before this check) compiles with the
rules.
"""

from __future__ import annotations

import math
import statistics
import time

from edgec.targets.tvm.schedules import knob_space, schedule_func
from edgec.targets.tvm.tune.measure import measure_modules
from edgec.targets.tvm.tune.records import Records, decide, knobs_settled
from edgec.targets.tvm.tune.tasks import Task, workload_of

CONFIRM = 2       # best knob settings re-timed together with the rule
ROUNDS = 5        # interleaved confirmation rounds
MARGIN = 0.03     # a knob setting must be this much faster than the rule (median over the rounds)
WIN_SHARE = 0.8   # ... and faster in this share of the paired rounds (4 of 5)


def significantly_faster(rule_us: list, cand_us: list, margin: float = MARGIN, win_share: float = WIN_SHARE) -> bool:
    """Paired rounds (None = a failed timing, dropped with its pair): the candidate's median at
    least `margin` below the rule's and the candidate faster in >= `win_share` of the pairs
    (at least 3 pairs)."""
    pairs = [(r, c) for r, c in zip(rule_us, cand_us) if r is not None and c is not None]
    if len(pairs) < 3:
        return False
    wins = sum(c < r for r, c in pairs)
    rmed = statistics.median(r for r, _ in pairs)
    cmed = statistics.median(c for _, c in pairs)
    return wins >= math.ceil(win_share * len(pairs)) and cmed <= rmed * (1 - margin)


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
    if entry.get("knob_trials", 0) >= min(budget, len(space)) and not knobs_settled(entry):
        confirm(task, records, ctx, target, builder, runner)
    return done


def confirm(task: Task, records: Records, ctx, target, builder, runner, rounds: int = ROUNDS,
            measure=measure_modules) -> None:
    """Re-time the rule and the best knob settings in interleaved rounds; keep a knob setting
    only if it is significantly faster than the rule (see the module docstring)."""
    entry = records.tasks[task.key]
    rule = entry.get("rule") or {}
    knobs = entry.get("knobs") or []
    if not knobs or rule.get("latency_us") is None:
        _verdict(entry, records, "none")
        return
    best = [k["values"] for k in knobs[:CONFIRM]]
    rule_func, _ = schedule_func(task.func, ctx)
    mods = [workload_of(rule_func.without_attr("tirx.is_scheduled"))] + [_module(task, ctx, v) for v in best]
    lat: list[list] = [[] for _ in mods]
    for r in range(rounds):
        order = [(i + r) % len(mods) for i in range(len(mods))]
        for i, (us, _) in zip(order, measure([mods[i] for i in order], target, builder, runner)):
            lat[i].append(us)
    rule_ok = [x for x in lat[0] if x is not None]
    if rule_ok:
        rule["latency_us"] = statistics.median(rule_ok)
    cands = []
    for values, us in zip(best, lat[1:]):
        ok = [x for x in us if x is not None]
        wins = sum(c is not None and r is not None and c < r for r, c in zip(lat[0], us))
        cands.append({"values": values, "us": us, "wins": wins, "median_us": statistics.median(ok) if ok else None,
                      "accepted": significantly_faster(lat[0], us)})
    entry["confirm"] = {"rounds": rounds, "margin": MARGIN, "win_share": WIN_SHARE, "rule_us": lat[0],
                        "candidates": cands}
    accepted = sorted((c for c in cands if c["accepted"]), key=lambda c: c["median_us"])
    if accepted:
        top = accepted[0]
        others = [k for k in knobs if k["values"] != top["values"]]
        entry["knobs"] = [{"latency_us": top["median_us"], "values": top["values"]}, *others]
    _verdict(entry, records, "accepted" if accepted else "rejected")


def _verdict(entry: dict, records: Records, verdict: str) -> None:
    entry["knobs_verdict"] = verdict
    entry["knobs_confirmed"] = True
    decide(entry)
    records.save()
