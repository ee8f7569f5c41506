"""Max abs error vs onnxruntime of the tf2onnx / paddle2onnx models in tests/models/ (the
"Exported models" table of docs/conformance.md).

    python benchmarks/exported_models.py [--targets x86-64,armv8] [--seed 0]

Each model is compiled with `edgec compile --input-shape ...` (batch fixed to 1) and compared with
`edgec run --compare-onnx` on seeded random inputs; armv8 runs under qemu (skipped without it).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.test_exported_models import CASES, MODELS  # noqa: E402

EDGEC = [sys.executable, "-m", "edgec.cli"]


def measure(name: str, target: str, seed: int, tmp: Path) -> str:
    shape = CASES[name][0]
    model = MODELS / f"{name}.onnx"
    art = tmp / f"{name}-{target}"
    c = subprocess.run([*EDGEC, "compile", str(model), "-t", target, "--input-shape", shape, "-o", str(art)],
                       capture_output=True, text=True)
    if c.returncode:
        return f"compile failed: {c.stderr.strip().splitlines()[-1]}"
    r = subprocess.run([*EDGEC, "run", str(art), "--compare-onnx", str(model), "--seed", str(seed)],
                       capture_output=True, text=True)
    if r.returncode == 3:  # --compare-onnx found a mismatch (NaN/Inf, missing output, shape, error)
        return f"MISMATCH: {r.stderr.strip().splitlines()[-1][:160]}"
    if r.returncode:
        return f"run failed: {(r.stderr or r.stdout).strip().splitlines()[-1]}"
    errors = re.findall(r"compare (\S+): max abs error (\S+),", r.stdout)
    return max(float(e) for _, e in errors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="x86-64,armv8")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    targets = args.targets.split(",")
    if "armv8" in targets and not (shutil.which("qemu-aarch64") and shutil.which("aarch64-linux-gnu-g++")):
        targets.remove("armv8")
    print("| model | opset | size | " + " | ".join(f"{t} max abs error" for t in targets) + " |")
    print("|---|---:|---:|" + "---:|" * len(targets))
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            proto = onnx.load(MODELS / f"{name}.onnx")
            opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
            kb = (MODELS / f"{name}.onnx").stat().st_size / 1024
            cells = [measure(name, t, args.seed, Path(tmp)) for t in targets]
            print(f"| {name} | {opset} | {kb:.0f} KB | " + " | ".join(
                f"{c:.2e}" if isinstance(c, float) else c for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
