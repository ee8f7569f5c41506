"""Latency of the benchmark models: onnxruntime vs TVM's default build vs edgec (untuned).

    python benchmarks/bench_models.py                 # resnet18, mobilenetv2, bert and the odd shapes
    python benchmarks/bench_models.py --odd           # only the odd shapes nobody tuned for
    python benchmarks/bench_models.py --standard      # only resnet18, mobilenetv2, bert
    python benchmarks/bench_models.py --tvm-default skip --repeat 30
    python benchmarks/bench_models.py --models resnet_block --tuned-trials 64   # + "edgec tuned" row
    python benchmarks/bench_models.py --tuned-trials 400 --chart chart.png     # + PNG bar chart

--tuned-trials B runs `edgec tune --trials B --space knobs --time-budget 20m` (`--tune-space`,
`--tune-budget`) into OUT/<model>.tuning.json (resumed if it exists) and adds a row for a fresh
compile with those records (no tuning in the timed process). `--chart` needs matplotlib
(`pip install -e '.[bench]'`).

Every runtime is timed in its own subprocess (idle worker threads of one runtime would steal the
other's core), each with its default thread-pool spinning; onnxruntime gets 2 intra-op threads.
`--rounds R` (default 3) repeats ORT / edgec / edgec tuned in turn, each in a fresh process on
the same build; the medians are over all R x `--repeat` runs, so a slow phase of this shared
machine lands on every runtime alike. The machine's matmul peak is numpy's 2048^2
fp32 matmul, measured in the same run; "%peak" is a model's GFLOP/s as a fraction of it.

Every runtime is timed with the same loop: one whole call per run, inputs copied in and outputs
copied out (onnxruntime's `run`, edgec's and TVM's `bench`). "TVM, no schedules" is TVM's ONNX
frontend + plain `tvm.compile`: what TVM gives with no schedule at all (naive loops), not TVM's
best; it is timed in this run or its row says why not. edgec's outputs are compared with
onnxruntime's (edgec.compare: NaN/Inf, missing outputs, shapes are mismatches) before timing,
and a model whose outputs do not match never gets MET.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from models import MODELS, ODD_MODELS, flops_of, sample_inputs, write_all  # noqa: E402

# both runtimes keep their default thread-pool spinning (onnxruntime allow_spinning=1, TVM's spin
# count): each runs in its own process, so idle spinning workers cannot steal the other's cores
ENV = {k: v for k, v in os.environ.items() if k != "TVM_THREAD_POOL_SPIN_COUNT"}
ENV.update({"TVM_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"})
TVM_ROW = "TVM, no schedules"


def time_calls(run, warmup: int, repeat: int, warmup_s: float = 0.0) -> list[float]:
    """Seconds of each of `repeat` calls of `run`, after `warmup` untimed ones, and more untimed
    ones until `warmup_s` seconds have passed (whole calls, I/O included)."""
    t_end = time.perf_counter() + warmup_s
    for _ in range(warmup):
        run()
    while time.perf_counter() < t_end:
        run()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t0)
    return ts

def worker(kind: str, model_path: str, warmup: int, repeat: int, artifact: str = "") -> dict:
    import onnx

    model = onnx.load(model_path)
    inputs = sample_inputs(model)
    out = {}
    if kind == "peak":
        a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
        a @ a
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            a @ a
            ts.append(time.perf_counter() - t0)
        return {"gflops": 2 * 2048 ** 3 / np.median(ts) / 1e9}
    if kind == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        return {"times": time_calls(lambda: sess.run(None, inputs), warmup, repeat)}
    from edgec.targets.registry import get_target

    spec = get_target("host")
    t0 = time.perf_counter()
    if kind == "tvm":
        from edgec.targets.tvm.baseline import DefaultBuild

        m = DefaultBuild(model_path, spec)
    else:
        import onnxruntime as ort

        from edgec.api import CompileOptions, compile_model
        from edgec.artifact import load_artifact
        from edgec.targets.tvm.execute import load

        records = kind.split(":", 1)[1] if kind.startswith("edgec-tuned:") else None
        if artifact and (Path(artifact) / "metadata.json").exists():  # a later round: same build
            m = load(load_artifact(artifact), threads=2)
            return {"times": m.bench(inputs, warmup, repeat)}
        art = compile_model(model_path, Path(artifact or Path(tempfile.mkdtemp()) / "a"),
                            CompileOptions(target="host", records=records))
        if records:
            rec = art.metadata["lowering"]["records"]
            kernels = rec["applied"] + sum(art.metadata["lowering"]["schedules"].values())
            out["note"] = (f"{rec['applied']}/{kernels} kernels from records ({rec['tuned']} tuned, "
                           f"{rec.get('knobs', 0)} knobs)")
        from edgec.compare import Tolerance, all_match, compare_outputs, summary, worst_error
        from edgec.reference import run_ort

        m = load(art, threads=2)
        diffs = compare_outputs(m.run(inputs), run_ort(model_path, inputs), Tolerance(1e-4, 1e-4))
        out["max_abs_err"] = worst_error(diffs)
        out["outputs_match"] = all_match(diffs)
        if not out["outputs_match"]:
            out["note"] = f"OUTPUTS DO NOT MATCH: {summary(diffs)[:100]} " + out.get("note", "")
    out["build_s"] = time.perf_counter() - t0
    out["times"] = m.bench(inputs, warmup, repeat)
    return out


def spawn(kind, path, warmup, repeat, timeout, artifact=""):
    cmd = [sys.executable, __file__, "--worker", kind, str(path), "--warmup", str(warmup), "--repeat", str(repeat),
           "--artifact", str(artifact)]
    try:
        p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout}s"}
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def tune(path, records, trials, timeout, space="knobs", budget="20m") -> str | None:
    # the default pass pipeline, as the "edgec untuned" row (and `edgec compile`): kernels and keys match
    cmd = [sys.executable, "-m", "edgec.cli", "tune", str(path), "--records", str(records),
           "--trials", str(trials), "--space", space, "--time-budget", budget,
           "--threads", "2", "--seed", "0"]
    try:
        p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"tune timeout after {timeout}s"
    sys.stderr.write(p.stderr)
    return None if p.returncode == 0 else (p.stderr.strip().splitlines() or ["tune failed"])[-1][:120]


def fmt_row(name, runtime, r, ort_med, flops, peak):
    if "error" in r and "times" not in r:
        return f"{name:<14}{runtime:<22}{'-':>9}{'-':>9}{'-':>8}{'-':>8}{'-':>7}  {r['error']}"
    ts = np.array(r["times"]) * 1e3
    med, p90 = np.median(ts), np.percentile(ts, 90)
    gf = flops / (med / 1e3) / 1e9
    note = r.get("note", "")
    if "max_abs_err" in r:
        note = f"err {r['max_abs_err']:.1e}, build {r['build_s']:.0f}s " + note
    return (f"{name:<14}{runtime:<22}{med:9.2f}{p90:9.2f}{med / ort_med:8.2f}x{gf:8.1f}"
            f"{100 * gf / peak:6.1f}%  {note}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=2)
    ap.add_argument("--odd", action="store_true", help="only the odd-shape models")
    ap.add_argument("--standard", action="store_true", help="only resnet18, mobilenetv2, bert")
    ap.add_argument("--models", default="")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds (ORT, edgec, ... each in a fresh process); medians over all runs")
    ap.add_argument("--artifact", default="", help=argparse.SUPPRESS)
    ap.add_argument("--tvm-default", choices=["run", "skip"], default="run")
    ap.add_argument("--tvm-timeout", type=int, default=300)
    ap.add_argument("--out", default="/tmp/edgec-bench")
    ap.add_argument("--chart", default="")
    ap.add_argument("--tuned-trials", type=int, default=0, help="also tune with this many trials and time it")
    ap.add_argument("--tune-space", choices=["knobs", "metaschedule"], default="knobs")
    ap.add_argument("--tune-budget", default="20m", help="edgec tune --time-budget per model")
    ap.add_argument("--tune-timeout", type=int, default=3600)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], a.worker[1], a.warmup, a.repeat, a.artifact)))
        return
    default = list(ODD_MODELS) if a.odd else list(MODELS) if a.standard else [*MODELS, *ODD_MODELS]
    names = [n for n in a.models.split(",") if n] or default
    paths = write_all(Path(a.out), names)
    import onnx

    peak = spawn("peak", paths[names[0]], 0, 0, 120)["gflops"]
    print(f"machine matmul peak (numpy 2048^2 fp32, same run): {peak:.1f} GFLOP/s; {os.cpu_count()} cores\n")
    head = f"{'model':<14}{'runtime':<22}{'median':>9}{'p90':>9}{'vs ORT':>9}{'GFLOP/s':>8}{'%peak':>7}  notes"
    print(head + "\n" + "-" * len(head))
    results = {}
    for name in names:
        flops = flops_of(onnx.load(str(paths[name]), load_external_data=False))
        builds = Path(tempfile.mkdtemp(prefix=f"edgec-bench-{name}-"))
        ort_r = spawn("ort", paths[name], a.warmup, a.repeat, 600)
        rows = {"onnxruntime (2 thr)": ort_r}
        if a.tvm_default == "run":
            rows[TVM_ROW] = spawn("tvm", paths[name], 1, 3, a.tvm_timeout)
        else:
            rows[TVM_ROW] = {"error": "not timed in this run (--tvm-default skip)"}
        timed = {"onnxruntime (2 thr)": ("ort", "")}
        rows["edgec untuned"] = spawn("edgec", paths[name], a.warmup, a.repeat, 1200, builds / "untuned")
        timed["edgec untuned"] = ("edgec", builds / "untuned")
        if a.tuned_trials:
            records = Path(a.out) / f"{name}.tuning.json"
            t0 = time.perf_counter()
            err = tune(paths[name], records, a.tuned_trials, a.tune_timeout, a.tune_space, a.tune_budget)
            kind = f"edgec-tuned:{records}"
            tuned = spawn(kind, paths[name], a.warmup, a.repeat, 1200, builds / "tuned") if not err else {"error": err}
            tuned["note"] = tuned.get("note", "") + f", {a.tune_space} tune+compile {time.perf_counter() - t0:.0f}s"
            rows[f"edgec tuned ({a.tuned_trials})"] = tuned
            if not err:
                timed[f"edgec tuned ({a.tuned_trials})"] = (kind, builds / "tuned")
        for _ in range(a.rounds - 1):  # interleaved: a slow phase of the machine hits every runtime alike
            for rt, (kind, art) in timed.items():
                if "times" in rows[rt]:
                    more = spawn(kind, paths[name], a.warmup, a.repeat, 600, art)
                    rows[rt]["times"] = rows[rt]["times"] + more.get("times", [])
        ort_med = np.median(rows["onnxruntime (2 thr)"]["times"]) * 1e3
        for rt, r in rows.items():
            print(fmt_row(name, rt, r, ort_med, flops, peak))
        results[name] = {rt: r for rt, r in rows.items()}
    print("\n" + "\n".join(goal_lines(results)))
    if a.chart:
        chart(results, a.chart)


GOALS = (("edgec untuned", 2.0), ("edgec tuned", 1.25))  # latency / onnxruntime's, issue 6


def goal_lines(results) -> list[str]:
    """MET / MISSED per model and goal, with the measured ratio (a missing row says so)."""
    out = ["goals (median latency / onnxruntime's, same run): untuned <= 2x, tuned <= 1.25x"]
    for name, rows in results.items():
        ort_med = np.median(rows["onnxruntime (2 thr)"]["times"])
        parts = []
        for prefix, limit in GOALS:
            rt = next((k for k in rows if k.startswith(prefix)), None)
            if rt is None:
                continue
            if "times" not in rows[rt]:
                parts.append(f"{prefix}: MISSED (no timing: {rows[rt].get('error', '?')})")
                continue
            if not rows[rt].get("outputs_match", False):
                parts.append(f"{prefix}: MISSED (outputs do not match onnxruntime)")
                continue
            ratio = np.median(rows[rt]["times"]) / ort_med
            parts.append(f"{prefix} {ratio:.2f}x <= {limit}x: {'MET' if ratio <= limit else 'MISSED'}")
        out.append(f"  {name:<14}" + "; ".join(parts))
    return out


def chart(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib not importable: no chart written)")
        return
    names = list(results)
    # bars relative to onnxruntime (1.0), one group per model, for every measured runtime but TVM
    # with no schedules (50-170x: it would flatten the rest); the label on each bar is its median in ms
    runtimes = [rt for rt in dict.fromkeys(k for n in names for k in results[n]) if rt != TVM_ROW]
    fig, ax = plt.subplots(figsize=(1.2 + 1.6 * len(names), 4))
    width = 0.8 / len(runtimes)
    for i, rt in enumerate(runtimes):
        ms = [np.median(results[n][rt]["times"]) * 1e3 if "times" in results[n].get(rt, {}) else np.nan for n in names]
        ort = [np.median(results[n]["onnxruntime (2 thr)"]["times"]) * 1e3 for n in names]
        rel = [m / o for m, o in zip(ms, ort)]
        bars = ax.bar(np.arange(len(names)) + i * width, rel, width, label=rt)
        ax.bar_label(bars, labels=[f"{m:.1f}" if m == m else "-" for m in ms], fontsize=7, padding=2)
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(names)) + width * (len(runtimes) - 1) / 2, names)
    ax.set_ylabel("latency / onnxruntime (lower is better)")
    ax.set_title("median latency, 2 threads, fp32 (bar labels: ms)", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    print(f"\nchart: {path}")


if __name__ == "__main__":
    main()
