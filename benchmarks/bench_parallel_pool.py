"""edgec's thread pool against TVM's, on the same artifacts: whole-call latency, interleaved processes.

    python benchmarks/bench_parallel_pool.py [--models mobilenetv2,resnet18,small_block] [--threads 2]
        [--rounds 10] [--repeat 200] [--out DIR]

Each model (benchmarks/models.py, random weights) is compiled once for the host. Every round runs
one process per (model, pool) — `EDGEC_PARALLEL_POOL=tvm` for TVM's, unset for edgec's — in an
order that alternates between rounds; each process times `--repeat` whole calls after 30 untimed
ones and reports its median. Before timing, each process's outputs are compared with onnxruntime's
(edgec.compare, 1e-4), and the two pools' outputs with each other (they must be the same bits: a
task computes the part of a loop its id names, whichever thread runs it).

Printed per model: the median over rounds of each pool's per-process medians, their ratio
(edgec / TVM), and the median and interquartile range of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

POOLS = ("tvm", "edgec")


def worker(model_path: str, artifact: str, threads: int, repeat: int, out_npz: str) -> dict:
    import onnx
    from models import sample_inputs

    from edgec.artifact import load_artifact
    from edgec.compare import Tolerance, all_match, compare_outputs
    from edgec.reference import run_ort
    from edgec.targets.tvm import parallel_pool
    from edgec.targets.tvm.execute import load

    inputs = sample_inputs(onnx.load(model_path))
    m = load(load_artifact(artifact), threads=threads)
    out = m.run(inputs)
    np.savez(out_npz, **out)
    match = all_match(compare_outputs(out, run_ort(model_path, inputs), Tolerance(1e-4, 1e-4)))
    ts = m.bench(inputs, 30, repeat)
    return {"median": float(np.median(ts)), "outputs_match": match,
            "pool": "tvm" if parallel_pool.pool() is None else "edgec"}


def spawn(model: Path, artifact: Path, pool: str, threads: int, repeat: int, out_npz: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "EDGEC_PARALLEL_POOL"}
    env.update(PYTHONPATH=str(ROOT), TVM_NUM_THREADS=str(threads))
    if pool == "tvm":
        env["EDGEC_PARALLEL_POOL"] = "tvm"
    r = subprocess.run([sys.executable, __file__, "--worker", str(model), str(artifact), str(threads), str(repeat),
                        str(out_npz)], env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{model.stem} on {pool}'s pool failed: {r.stderr.strip()[-800:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if res["pool"] != pool:
        raise RuntimeError(f"{model.stem}: asked for {pool}'s pool, ran on {res['pool']}'s")
    return res


def bench(names: list[str], threads: int, rounds: int, repeat: int, out: Path) -> list[dict]:
    import onnx
    from models import EXTRA_MODELS, MODELS

    from edgec.api import CompileOptions, compile_model

    rows = []
    for name in names:
        model = out / f"{name}.onnx"
        onnx.save({**MODELS, **EXTRA_MODELS}[name](), model)
        art = out / f"{name}.host"
        compile_model(model, art, CompileOptions(target="host", threads=threads))
        times: dict[str, list[float]] = {p: [] for p in POOLS}
        matches, same_bits = True, True
        for r in range(rounds):
            got = {}
            for pool in POOLS if r % 2 == 0 else POOLS[::-1]:
                res = spawn(model, art, pool, threads, repeat, out / f"{name}.{pool}.npz")
                times[pool].append(res["median"])
                matches &= res["outputs_match"]
                with np.load(out / f"{name}.{pool}.npz") as z:
                    got[pool] = {k: z[k].copy() for k in z.files}
            same_bits &= got["tvm"].keys() == got["edgec"].keys() and all(
                np.array_equal(got["tvm"][k], got["edgec"][k]) for k in got["tvm"])
        per_round = [e / t for e, t in zip(times["edgec"], times["tvm"])]
        rows.append({"model": name, "tvm_ms": 1e3 * float(np.median(times["tvm"])),
                     "edgec_ms": 1e3 * float(np.median(times["edgec"])),
                     "ratio": float(np.median(times["edgec"]) / np.median(times["tvm"])),
                     "per_round": [float(np.median(per_round)), *map(float, np.percentile(per_round, [25, 75]))],
                     "outputs_match": bool(matches), "same_bits": bool(same_bits)})
    return rows


def table(rows: list[dict], threads: int, rounds: int, repeat: int) -> str:
    lines = [f"whole-call latency, median over {rounds} interleaved rounds of per-process medians of {repeat} "
             f"calls, {threads} thread(s)",
             "| model | TVM's pool ms | edgec's pool ms | edgec / TVM | per round (IQR) | outputs vs ORT | same bits |",
             "|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        med, lo, hi = r["per_round"]
        lines.append(f"| {r['model']} | {r['tvm_ms']:.3f} | {r['edgec_ms']:.3f} | {r['ratio']:.3f} | "
                     f"{med:.3f} ({lo:.3f}-{hi:.3f}) | {'match' if r['outputs_match'] else 'MISMATCH'} | "
                     f"{'yes' if r['same_bits'] else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        model, art, threads, repeat, out_npz = argv[1:6]
        print(json.dumps(worker(model, art, int(threads), int(repeat), out_npz)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenetv2,resnet18")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--out", help="directory for the models and artifacts (default: a temporary one)")
    a = ap.parse_args(argv)
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="edgec-pool-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = bench(a.models.split(","), a.threads, a.rounds, a.repeat, out)
    print(table(rows, a.threads, a.rounds, a.repeat))
    bad = [r["model"] for r in rows if not (r["outputs_match"] and r["same_bits"])]
    if bad:
        print(f"outputs differ: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
