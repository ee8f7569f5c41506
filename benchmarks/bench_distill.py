"""Issue 15's distillation bar, timed: a CNN trained on scikit-learn's digits, channel-pruned at 0.5
by `edgec prune`, loses accuracy; `edgec distill` on the unlabeled training images wins it back
within 1 point of the original, in under 3 minutes on 2 CPU cores (the wall time of the command).

    python benchmarks/bench_distill.py                 # 3 timed runs of the distill command
    python benchmarks/bench_distill.py --rounds 5 --epochs 10

The teacher is tests/models/digits_torch.py's (torch, seeded), with a symbolic batch as exported
models have. Each `edgec distill` run is a
fresh process (its wall time includes starting Python, importing torch and onnxruntime, running
the teacher on the data, training and writing the model); the median is reported with the
machine's load average. Accuracies are on the held-out 20% of the digits."""

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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EDGEC = [sys.executable, "-m", "edgec.cli"]


def _edgec(*args) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    r = subprocess.run([*EDGEC, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    dt = time.perf_counter() - t
    if r.returncode:
        sys.exit(f"edgec {args[0]} failed ({r.returncode}): {r.stderr.strip()}")
    return r, dt


def _accuracy(model, x, y) -> float:
    from edgec.distill import run_ort_batched

    return float(np.mean(run_ort_batched(str(model), {"x": x}, batch1=True)["logits"].argmax(1) == y))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--ratio", type=float, default=0.5)
    a = ap.parse_args(argv)
    import onnx

    from tests.models.digits_cnn import digits_split
    from tests.models.digits_torch import onnx_model

    xtr, _, xte, yte = digits_split()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "train").mkdir()
        np.save(d / "train" / "images.npy", xtr)
        (d / "eval").mkdir()
        np.save(d / "eval" / "images.npy", xte)
        np.save(d / "labels.npy", yte)
        onnx.save(onnx_model(), d / "teacher.onnx")
        _, prune_s = _edgec("prune", d / "teacher.onnx", "--mode", "channel", "--ratio", a.ratio, "-o", d / "pruned.onnx")
        base, pruned = _accuracy(d / "teacher.onnx", xte, yte), _accuracy(d / "pruned.onnx", xte, yte)
        params = [sum(int(np.prod(t.dims)) for t in onnx.load(d / f).graph.initializer)
                  for f in ("teacher.onnx", "pruned.onnx")]
        walls, accs, trains = [], [], []
        load = [os.getloadavg()[0]]
        for i in range(a.rounds):
            out = d / f"distilled{i}.onnx"
            r, wall = _edgec("distill", "--teacher", d / "teacher.onnx", "--student", d / "pruned.onnx",
                             "--data", d / "train", "-o", out, "--epochs", a.epochs, "--json")
            walls.append(wall)
            trains.append(json.loads(r.stdout)["train_seconds"])
            accs.append(_accuracy(out, xte, yte))
            load.append(os.getloadavg()[0])
    after = accs[0]
    wall = statistics.median(walls)
    print(f"digits CNN: {params[0]} parameters; channel-pruned at {a.ratio}: {params[1]} "
          f"({1 - params[1] / params[0]:.0%} fewer; edgec prune {prune_s:.1f} s)")
    print(f"held-out accuracy ({len(yte)} images): teacher {base:.4f}, pruned {pruned:.4f}, "
          f"distilled {after:.4f} (runs: {', '.join(f'{x:.4f}' for x in accs)})")
    print(f"edgec distill ({len(xtr)} unlabeled images x {a.epochs} epochs): wall {wall:.1f} s median of "
          f"{a.rounds} ({', '.join(f'{x:.1f}' for x in walls)}), of which teacher + training "
          f"{statistics.median(trains):.1f} s; {os.cpu_count()} cores, load average {min(load):.2f}-{max(load):.2f}")
    within = base - after <= 0.01
    fast = wall < 180
    print(f"bar: within 1 point of the original {'MET' if within else 'MISSED'} ({(base - after) * 100:+.2f} points); "
          f"under 3 minutes {'MET' if fast else 'MISSED'}")
    return 0 if within and fast else 1


if __name__ == "__main__":
    sys.exit(main())
