"""MetaSchedule search for one task, seeded with edgec's rule schedule and earlier records.

Each task gets its own MemoryDatabase holding (1) the rule schedule's trace with its measured
latency and (2) the tuned traces kept in the records file, so the evolutionary search starts from
them (its initial population takes the best measured traces) and a resumed run continues instead
of starting over. A measure callback stores every measured candidate in the records file as it
arrives, updates the progress line and stops the task when the time budget is spent.
"""

from __future__ import annotations

import tempfile
import time

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.schedule import Trace

from edgec.targets.tvm.tune.measure import latency_us
from edgec.targets.tvm.tune.records import Records
from edgec.targets.tvm.tune.tasks import Task


def trace_to_json(trace: Trace) -> str:
    return tvm.ir.save_json(trace.as_json(remove_postproc=False))


def replay(mod: tvm.IRModule, trace_json: str):
    """Apply a stored trace to a fresh schedule of `mod` (postprocessing steps included)."""
    from tvm import s_tir

    sch = s_tir.Schedule(mod)
    Trace.apply_json_to_schedule(tvm.ir.load_json(trace_json), sch)
    return sch


def seed_database(task: Task, entry: dict, target) -> ms.database.MemoryDatabase:
    db = ms.database.MemoryDatabase()
    wl = db.commit_workload(task.workload)
    args = ms.arg_info.ArgInfo.from_prim_func(task.workload["main"])
    seeds = list(entry.get("tuned", []))
    rule = entry.get("rule") or {}
    if rule.get("trace") and rule.get("latency_us"):
        seeds.append(rule)
    for r in seeds:
        try:
            trace = replay(task.workload, r["trace"]).trace
        except Exception:  # noqa: BLE001 - a trace that no longer replays is just not a seed
            continue
        db.commit_tuning_record(ms.database.TuningRecord(trace, wl, [r["latency_us"] / 1e6], target, args))
    return db


def _seed_for(seed: int, key: str) -> int:
    return (seed * 1000003 + int(key.split(":")[1][:8], 16)) % (2**31 - 1)


def tune_task(task: Task, records: Records, trials: int, target, builder, runner, *, seed: int = 0,
              threads: int = 2, deadline: float | None = None, on_update=None, per_iter: int = 8) -> None:
    """Measure up to `trials` new candidates for `task`; results go into `records` (saved as they
    arrive)."""
    entry = records.tasks[task.key]
    db = seed_database(task, entry, target)
    pop = max(32, min(256, 8 * trials))
    strategy = ms.search_strategy.EvolutionarySearch(population_size=pop, init_min_unmeasured=min(50, pop // 2),
                                                     genetic_num_iters=2)
    ctx = ms.TuneContext(mod=task.workload, target=target, space_generator="post-order-apply",
                         search_strategy=strategy, task_name=task.name, num_threads=threads,
                         rand_state=_seed_for(seed, task.key)).clone()

    @derived_object
    class _Record(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler, task_id, candidates, builder_results, runner_results):
            for cand, br, rr in zip(candidates, builder_results, runner_results):
                entry["trials"] += 1
                lat = None if (br.error_msg or rr.error_msg) else latency_us(rr.run_secs)
                if lat is None:
                    entry["errors"] = entry.get("errors", 0) + 1
                    entry["last_error"] = " ".join(str(br.error_msg or rr.error_msg or "").split())[-200:]
                else:
                    records.add_tuned(task.key, lat, trace_to_json(cand.sch.trace))
            records.save()
            if on_update:
                on_update(entry)
            if deadline is not None and time.monotonic() >= deadline:
                task_scheduler.terminate_task(task_id)

    with tempfile.TemporaryDirectory(prefix="edgec-tune-") as work_dir:
        ms.tune.tune_tasks(
            tasks=[ctx], task_weights=[1.0], work_dir=work_dir, max_trials_global=trials,
            num_trials_per_iter=max(1, min(per_iter, trials)), builder=builder, runner=runner, database=db,
            cost_model=ms.cost_model.XGBModel(num_tuning_cores=threads),
            measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"), _Record()],
            task_scheduler="round-robin")
