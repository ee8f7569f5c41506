"""`edgec tune`: extract the kernels of the module edgec's compile path builds, time edgec's rule
schedule for each, search on top — MetaSchedule's generic space (`space="metaschedule"`) or the
rule's own knobs (`space="knobs"`, `knobs.py`) — and keep the fastest per task in a records file."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from edgec.targets.registry import TargetSpec
from edgec.targets.tvm.build import tvm_target
from edgec.targets.tvm.schedules import context_for
from edgec.targets.tvm.tune.knobs import search_knobs, space_of
from edgec.targets.tvm.tune.measure import (
    MeasureConfig,
    TuneError,
    make_builder,
    make_runner,
    measure_module,
    tuning_target,
)
from edgec.targets.tvm.tune.progress import Progress, fmt_us
from edgec.targets.tvm.tune.records import Records, best_knobs_us, decide, knobs_settled
from edgec.targets.tvm.tune.search import trace_to_json, tune_task
from edgec.targets.tvm.tune.tasks import Task, extract_tasks


@dataclass
class TuneSummary:
    tasks: int = 0
    trials_run: int = 0
    skipped: int = 0                                   # tasks already finished by an earlier run
    rules_us: float = 0.0                              # sum over tasks of rule latency x call sites
    best_us: float = 0.0                               # same with the per-task best
    per_task: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"tasks": self.tasks, "trials_run": self.trials_run, "skipped": self.skipped,
                "rules_us": self.rules_us, "best_us": self.best_us, "per_task": self.per_task}


def allot(tasks: list[Task], trials: int) -> list[int]:
    """Split the trial budget over tasks in proportion to FLOPs x call sites (largest remainder);
    kernels with a negligible share get none (they keep edgec's rules)."""
    total = sum(t.cost for t in tasks) or float(len(tasks))
    shares = [trials * ((t.cost or 1.0) if total else 1.0) / total for t in tasks]
    out = [math.floor(s) for s in shares]
    for i in sorted(range(len(tasks)), key=lambda i: (out[i] - shares[i], i))[:trials - sum(out)]:
        out[i] += 1
    return out


def allot_capped(tasks: list[Task], caps: list[int], trials: int) -> list[int]:
    """`allot`, but no task gets more than its cap (its knob space); what a capped task cannot use
    goes to the others, again in proportion to FLOPs x call sites."""
    out = [0] * len(tasks)
    left = trials
    while left > 0:
        open_ = [i for i in range(len(tasks)) if out[i] < caps[i]]
        if not open_:
            break
        share = allot([tasks[i] for i in open_], left)
        if not any(share):
            share = [1 if j < left else 0 for j in range(len(open_))]
        for i, s in zip(open_, share):
            add = min(s, caps[i] - out[i])
            out[i] += add
            left -= add
    return out


def _measure_rule(task: Task, entry: dict, target, ctx, builder, runner) -> None:
    """Time edgec's rule schedule of the task with the same builder/runner as the candidates."""
    from tvm import s_tir

    from edgec.targets.tvm.schedules import RULES

    rule = {"name": "none", "latency_us": None}
    mod = task.workload
    for r in RULES:  # as schedule_func, but keeping the schedule's trace (it seeds the search)
        sch = s_tir.Schedule(task.workload)
        try:
            if not r.match(sch, ctx):
                continue
            sch = r.apply(sch, ctx) or sch
        except Exception:  # noqa: BLE001 - a rule that cannot apply falls through to the next
            continue
        rule.update(name=r.NAME, trace=trace_to_json(sch.trace))
        mod = sch.mod
        break
    rule["latency_us"], err = measure_module(mod, target, builder, runner)
    if err:
        rule["error"] = err
    entry["rule"] = rule
    decide(entry)


def tune_model(mod, spec: TargetSpec, records_path, trials: int, *, time_budget_s: float | None = None,
               seed: int = 0, threads: int | None = None, rpc_tracker: str | None = None,
               rpc_key: str | None = None, progress: Progress | None = None, space: str = "metaschedule") -> TuneSummary:
    """Tune the kernels of a lowered Relax module `mod`; records go to (and resume from) `records_path`."""
    if not spec.is_cpu_vm:
        raise TuneError(f"edgec tune supports CPU targets with the TVM VM runtime; '{spec.name}' is "
                        f"{spec.tvm.get('kind')}/{spec.runtime}")
    if trials < 0:
        raise TuneError("--trials must be >= 0")
    if space not in ("metaschedule", "knobs"):
        raise TuneError(f"--space must be 'metaschedule' or 'knobs', not '{space}'")
    progress = progress or Progress()
    deadline = time.monotonic() + time_budget_s if time_budget_s else None
    records = Records.load(records_path, missing_ok=True)
    target = tvm_target(spec)
    ctx = context_for(spec, target, threads)
    tasks, _ = extract_tasks(mod, spec, target, ctx)
    if not tasks:
        raise TuneError("no tuning tasks: the model has no kernels after fusion")
    cfg = MeasureConfig(threads=threads, rpc_tracker=rpc_tracker, rpc_key=rpc_key)
    runner = make_runner(cfg)
    builder = make_builder(cfg)
    ms_target = tuning_target(target, threads)
    knobs = space == "knobs"
    if knobs:  # the rule's default is the rule schedule itself: not a trial
        budgets = allot_capped(tasks, [max(len(space_of(t, ctx)) - 1, 0) for t in tasks], trials)
    else:
        budgets = allot(tasks, trials)
    done_key = "knob_trials" if knobs else "trials"
    summary = TuneSummary(tasks=len(tasks))
    progress.message(f"{len(tasks)} tasks, {trials} trials ({space}), target {spec.name}"
                     + (f", via RPC {rpc_tracker} key {rpc_key}" if rpc_tracker else "")
                     + (f", time budget {time_budget_s:.0f}s" if time_budget_s else ""))
    n = len(tasks)
    for i, (task, budget) in enumerate(zip(tasks, budgets), 1):
        entry = records.entry(task.key, name=task.name, target=str(target), weight=task.weight, flops=task.flops)
        left = budget - entry.get(done_key, 0)
        confirmed = knobs_settled(entry)
        finished = left <= 0 and (not knobs or confirmed or not budget)
        if (entry.get("rule") or {}).get("latency_us") is not None and finished:
            summary.skipped += 1
            progress.done(i, n, task.name, entry, budget, "done earlier" if budget else "rules (no trials)")
            summary.per_task.append(_task_json(task, entry, budget))
            continue
        if deadline is not None and time.monotonic() >= deadline:
            progress.message(f"time budget spent: {n - i + 1} task(s) left for a resumed run")
            break
        if (entry.get("rule") or {}).get("latency_us") is None:
            progress.update(i, n, task.name, entry, budget, "timing rules")
            _measure_rule(task, entry, ms_target, ctx, builder, runner)
            records.save()
        if knobs and (left > 0 or not confirmed) and budget:
            progress.update(i, n, task.name, entry, budget)
            summary.trials_run += search_knobs(
                task, records, budget, ctx, ms_target, builder, runner, deadline=deadline,
                on_update=lambda e, i=i, t=task, b=budget: progress.update(i, n, t.name, e, b))
        elif left > 0 and not knobs:
            before = entry["trials"]
            progress.update(i, n, task.name, entry, budget)
            tune_task(task, records, left, ms_target, builder, runner, seed=seed, threads=ctx.threads,
                      deadline=deadline, per_iter=8,
                      on_update=lambda e, i=i, t=task, b=budget: progress.update(i, n, t.name, e, b))
            summary.trials_run += entry["trials"] - before
        decide(entry)
        records.save()
        progress.done(i, n, task.name, entry, budget)
        summary.per_task.append(_task_json(task, entry, budget))
    records.save()
    es = [records.tasks[t.key] for t in tasks if t.key in records.tasks]
    rules = sum(((e.get("rule") or {}).get("latency_us") or 0) * e.get("weight", 1) for e in es)
    best = sum((_best(e) or 0) * e.get("weight", 1) for e in es)
    summary.rules_us, summary.best_us = rules, best
    progress.message(f"records: {records.path} ({sum(1 for t in tasks if records.best_for(t.key))}/{n} tasks); "
                     f"kernel time per inference: rules {fmt_us(rules)}, best {fmt_us(best)}")
    return summary


def _best(e: dict) -> float | None:
    vals = [x for x in ((e.get("rule") or {}).get("latency_us"), e["tuned"][0]["latency_us"] if e.get("tuned") else None,
                        best_knobs_us(e))
            if x is not None]
    return min(vals) if vals else None


def _task_json(task: Task, e: dict, budget: int) -> dict:
    return {"name": task.name, "key": task.key, "weight": task.weight, "trials": e.get("trials", 0), "budget": budget,
            "knob_trials": e.get("knob_trials", 0), "rule_us": (e.get("rule") or {}).get("latency_us"),
            "tuned_us": e["tuned"][0]["latency_us"] if e.get("tuned") else None,
            "knobs_us": e["knobs"][0]["latency_us"] if e.get("knobs") else None,
            "knobs_verdict": e.get("knobs_verdict"), "best": e.get("best")}
