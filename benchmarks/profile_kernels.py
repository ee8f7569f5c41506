"""Per-kernel time of an edgec build next to onnxruntime's per-node profile (2 threads each).

    python benchmarks/profile_kernels.py /tmp/edgec-bench/mobilenetv2.onnx [--records R] [--top 25]

With `--records R` the model is built twice (rules only, and with the records) and both are
profiled in the same run, rounds interleaved with onnxruntime's (`--rounds`).

edgec: every VM call of the compiled model is timed through the Relax VM's instrument hook
(before/after each call); a call site's time is its minimum over `--runs` runs, summed per kernel.
onnxruntime: `SessionOptions.enable_profiling`, node durations (minimum over the same runs per
node), summed per op type. Both run in this process one after the other (ORT first), so compare
them as ratios of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from models import sample_inputs  # noqa: E402


def ort_profile(path: str, inputs, runs: int) -> tuple[dict, float]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.enable_profiling = True
    # idle spinning ORT workers would steal the cores edgec's kernels run on next (2-core machine)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    for _ in range(5):
        sess.run(None, inputs)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, inputs)
        ts.append(time.perf_counter() - t0)
    prof = json.load(open(sess.end_profiling()))
    per_node: dict[str, list[float]] = defaultdict(list)
    op_of = {}
    for ev in prof:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            node = ev["name"][: -len("_kernel_time")]
            per_node[node].append(ev["dur"])
            op_of[node] = ev["args"].get("op_name", "?")
    by_op: dict[str, float] = defaultdict(float)
    for node, d in per_node.items():
        by_op[op_of[node]] += min(d)
    return dict(by_op), float(np.median(ts) * 1e3)


def edgec_profile(path: str, inputs, runs: int, records: str | None) -> tuple[dict, dict, float]:
    from edgec.api import CompileOptions, compile_model
    from edgec.targets.tvm.execute import load

    art = compile_model(path, Path(tempfile.mkdtemp()) / "a",
                        CompileOptions(target="host", records=records))
    m = load(art, threads=2)
    ts = m.bench(inputs, 5, runs)
    per_kernel: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for name, secs in m.profile(inputs, runs):
        per_kernel[name] += secs * 1e3
        calls[name] += 1
    return dict(per_kernel), dict(calls), float(np.median(ts) * 1e3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--records", default=None)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole comparison; sums are per round")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", "0")
    import onnx

    inputs = sample_inputs(onnx.load(a.model))
    variants = [None] + ([a.records] if a.records else [])
    for rnd in range(a.rounds):
        by_op, ort_ms = ort_profile(a.model, inputs, a.runs)
        print(f"round {rnd + 1}: onnxruntime median {ort_ms:.2f} ms, per-node minimums sum "
              f"{sum(by_op.values()) / 1e3:.2f} ms")
        if rnd == 0:
            for op, us in sorted(by_op.items(), key=lambda kv: -kv[1]):
                print(f"  {op:<28}{us / 1e3:8.3f} ms")
        for rec in variants:
            kern, calls, edgec_ms = edgec_profile(a.model, inputs, a.runs, rec)
            label = "edgec with records" if rec else "edgec rules only"
            print(f"round {rnd + 1}: {label}: median {edgec_ms:.2f} ms, per-call minimums sum {sum(kern.values()):.2f} ms")
            if rnd == 0:
                for name, ms in sorted(kern.items(), key=lambda kv: -kv[1])[: a.top]:
                    print(f"  {name:<60}{calls[name]:4d}x {ms:8.3f} ms")


if __name__ == "__main__":
    main()
