"""Do the graph passes pay off? Compile the ResNet-, MobileNetV2- and BERT-style test models with
the -O0 and the -O2 pipeline (`edgec compile --passes ...`) for a target (default `host`), and
time each artifact and onnxruntime on the same inputs, every measurement in its own subprocess
with thread spinning off (onnxruntime `session.intra_op.allow_spinning=0`,
`TVM_THREAD_POOL_SPIN_COUNT=0`) and the same thread count.

    python benchmarks/bench_passes.py [--target host] [--threads 1] [--repeat 200]

Prints a table of median latencies (ms) and ratios; the claim checked is "compiled latency with
the passes (-O2) is not worse than without them (-O0)".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _env() -> dict:
    return {**os.environ, "TVM_THREAD_POOL_SPIN_COUNT": "0", "PYTHONPATH": str(ROOT)}


def _seeded(infos):
    from edgec.reference import seeded_inputs

    return {k: __import__("numpy").asarray(v) for k, v in seeded_inputs(infos, 0).items()}


def worker_tvm(artifact: str, threads: int, warmup: int, repeat: int) -> list[float]:
    from edgec.artifact import load_artifact
    from edgec.targets.tvm.execute import load

    art = load_artifact(artifact)
    m = load(art, threads)
    return m.bench(_seeded(art.inputs), warmup, repeat)


def worker_ort(model: str, threads: int, warmup: int, repeat: int) -> list[float]:
    from edgec.ir import graph_inputs, load_model
    from edgec.reference import ort_session

    feeds = _seeded(graph_inputs(load_model(model)))
    sess = ort_session(Path(model).read_bytes(), threads, optimized=True)  # allow_spinning=0 is set there
    names = [o.name for o in sess.get_outputs()]
    for _ in range(warmup):
        sess.run(names, feeds)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sess.run(names, feeds)
        times.append(time.perf_counter() - t0)
    return times


def measure(kind: str, path: Path, args) -> float:
    cmd = [sys.executable, __file__, "--worker", kind, str(path), "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--repeat", str(args.repeat)]
    out = subprocess.run(cmd, env=_env(), check=True, capture_output=True, text=True).stdout
    return statistics.median(json.loads(out.strip().splitlines()[-1])) * 1e3


def compile_level(model: Path, level: int, target: str, out: Path) -> None:
    from edgec.pipelines import default_pipeline
    from edgec.targets.registry import get_target

    passes = default_pipeline(get_target(target), level)
    cmd = [sys.executable, "-m", "edgec.cli", "compile", str(model), "-o", str(out), "-t", target, "--passes", passes]
    subprocess.run(cmd, env=_env(), check=True, capture_output=True, text=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--target", default="host")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--models", default="resnet,mobilenetv2,bert")
    args = ap.parse_args()
    if args.worker:
        kind, path = args.worker
        fn = worker_tvm if kind == "tvm" else worker_ort
        print(json.dumps(fn(path, args.threads, args.warmup, args.repeat)))
        return

    import onnx

    from tests.passes.models import MODELS

    rows = []
    with tempfile.TemporaryDirectory(prefix="edgec-bench-") as tmp:
        tmp = Path(tmp)
        for name in args.models.split(","):
            model = tmp / f"{name}.onnx"
            onnx.save(MODELS[name](), model)
            for level in (0, 2):
                compile_level(model, level, args.target, tmp / f"{name}-O{level}")
            ort = measure("ort", model, args)
            o0 = measure("tvm", tmp / f"{name}-O0", args)
            o2 = measure("tvm", tmp / f"{name}-O2", args)
            rows.append((name, ort, o0, o2))
    print(f"target {args.target}, {args.threads} thread(s), median of {args.repeat} runs (ms)")
    print("| model | onnxruntime | -O0 | -O2 | -O0/ORT | -O2/ORT | -O2/-O0 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ort, o0, o2 in rows:
        print(f"| {name} | {ort:.3f} | {o0:.3f} | {o2:.3f} | {o0 / ort:.2f} | {o2 / ort:.2f} | {o2 / o0:.2f} |")
    worse = [name for name, _, o0, o2 in rows if o2 > o0 * 1.05]
    print("passes not worse than without them: " + ("yes" if not worse else f"NO for {', '.join(worse)}"))


if __name__ == "__main__":
    main()
