"""Peak RSS and wall time of `edgec inspect / optimize / compile / run` on a model with more than
2 GiB of external data (written by `large_model.py` unless --model is given).

Each command runs in its own process; its peak resident set (kernel `ru_maxrss` of that child,
from os.wait4, via a small launcher: see measure) is reported next to the size of the model's weights.

    python benchmarks/bench_large_model.py [--dir /tmp/edgec-large] [--model M.onnx] [--keep]
        [--vocab 280000 --hidden 1024 --layers 0] [--steps inspect,optimize,compile,run,run-alone]

`run` is `edgec run --compare-onnx` (onnxruntime in the same process, holding its own copy of the
weights); `run-alone` is `edgec run` on seeded inputs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from large_model import DATA_FILE, write_large_model  # noqa: E402

# Linux folds the forking process's peak RSS into the child's ru_maxrss (fork copies the mm, exec
# keeps its high-water mark): a command started from a big process (pytest, late in a run) would
# report that process's peak. So the command is started from a small launcher, which reports the
# command's own ru_maxrss on the last line.
_LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]); _, s, u = os.wait4(p.pid, 0); "
             "sys.stdout.flush(); print(f'\\nedgec-maxrss-kib={u.ru_maxrss}', flush=True); "
             "sys.exit(os.waitstatus_to_exitcode(s))")


def measure(argv: list[str]) -> tuple[int, int, float, str]:
    """Run `argv`; return (exit code, peak RSS in bytes, wall seconds, combined output tail)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _LAUNCHER, *map(str, argv)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    text = p.stdout.decode(errors="replace")
    head, _, rss = text.rpartition("edgec-maxrss-kib=")
    if not rss.strip().isdigit():
        raise RuntimeError(f"launcher did not report the peak RSS: {text[-500:]}")
    return p.returncode, int(rss.strip()) * 1024, wall, head.rstrip()[-2000:]


def edgec(*args) -> list[str]:
    return [sys.executable, "-m", "edgec.cli", *map(str, args)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/tmp/edgec-large")
    ap.add_argument("--model", help="an existing model (default: write one with large_model.py)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--steps", default="inspect,optimize,compile,run,run-alone")
    ap.add_argument("--vocab", type=int, default=280000)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=0)
    a = ap.parse_args(argv)
    work = Path(a.dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        if a.model:
            model = Path(a.model)
        else:
            t0 = time.perf_counter()
            model = write_large_model(work / "model", a.vocab, a.hidden, layers=a.layers)
            print(f"generated {model} in {time.perf_counter() - t0:.1f} s")
        weights = sum(f.stat().st_size for f in model.parent.iterdir() if f != model)
        print(f"weights: {weights / (1 << 30):.2f} GiB ({weights:,} bytes)")
        steps = {
            "inspect": edgec("inspect", model),
            "optimize": edgec("optimize", model, "-o", work / "opt" / "model.onnx"),
            "compile": edgec("compile", model, "-t", "x86-64", "-o", work / "art"),
            "run": edgec("run", work / "art", "--compare-onnx", model),
            "run-alone": edgec("run", work / "art"),
        }
        (work / "opt").mkdir(exist_ok=True)
        print(f"{'step':<10}{'exit':>5}{'peak RSS':>12}{'x weights':>11}{'wall':>9}")
        for name in a.steps.split(","):
            code, rss, wall, out = measure(steps[name])
            print(f"{name:<10}{code:>5}{rss / (1 << 30):>9.2f} GiB{rss / weights:>10.2f}x{wall:>8.1f}s", flush=True)
            if code != 0:
                print(out)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["DATA_FILE", "measure"]
