"""ARM int8 check (issue 13): a benchmark model quantized to static int8, compiled for an ARM target
and for x86, the ARM artifact run under qemu: does it equal the x86 one, and which instructions does
each library use?

    python benchmarks/check_int8_arm.py                                   # resnet18, armv8.2 vs x86-64-vnni
    python benchmarks/check_int8_arm.py --models resnet18,mobilenetv2 --arm armv8,armv7 --inputs 3

Per model (benchmarks/models.py, seeded weights): `edgec quantize` (static int8, minmax, --calib
seeded samples); `edgec compile` for each --arm target and for --x86 (default pipeline: fuse-qdq
and the int8 kernels where the target has them); per library the count of the integer
instructions of interest in its disassembly and the schedule rules used; then --inputs seeded
inputs (other seeds than calibration) through every artifact (ARM under qemu: correctness, not
speed) and onnxruntime's run of the QDQ model with exact integer products
(`edgec.reference_exact`). Reports per ARM target the largest difference to x86 and to onnxruntime
in units of the output's quantization step (the final layer's scale; none: max|y| / 127) and the
cosine against x86. An x86 target this CPU cannot run is compiled and disassembled only.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_quantize import calibration_dir  # noqa: E402
from models import sample_inputs, write_all  # noqa: E402

MNEMONICS = {
    "aarch64": ("sdot", "udot", "smull", "smull2", "smlal", "smlal2", "sadalp", "saddw", "saddw2", "mla"),
    "armv7": ("vmovl.s8", "vmull.s8", "vmlal.s8", "vmull.s16", "vmlal.s16", "vpadal.s16", "vaddw.s16", "vmla.i32", "vmla.i16"),
    "x86_64": ("vpdpbusd", "vpmaddwd", "vpmaddubsw", "vpmulld"),
}
OBJDUMP = {"aarch64": "aarch64-linux-gnu-objdump", "armv7": "arm-linux-gnueabihf-objdump", "x86_64": "objdump"}


def instruction_counts(lib: Path, arch: str) -> dict[str, int]:
    asm = subprocess.run([OBJDUMP[arch], "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    counts = {m: len(re.findall(rf"\t{re.escape(m)}\s", asm)) for m in MNEMONICS[arch]}
    return {m: c for m, c in counts.items() if c}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet18")
    ap.add_argument("--arm", default="armv8.2", help="ARM targets, comma-separated")
    ap.add_argument("--x86", default="x86-64-vnni")
    ap.add_argument("--calib", type=int, default=8)
    ap.add_argument("--inputs", type=int, default=2)
    ap.add_argument("--out", default="/tmp/edgec-check-int8-arm")
    a = ap.parse_args()
    import onnx

    from edgec.api import CompileOptions, compile_model, run_artifact
    from edgec.infra.quant_steps import output_steps
    from edgec.ir import load_model
    from edgec.quantize import QuantizeOptions, quantize_model
    from edgec.reference import run_ort
    from edgec.reference_exact import exact_ort_model
    from edgec.targets.registry import get_target, missing_host_features

    out = Path(a.out)
    names = [n for n in a.models.split(",") if n]
    paths = write_all(out, names)
    arms = [t for t in a.arm.split(",") if t]
    x86_runs = not missing_host_features(get_target(a.x86))
    for name in names:
        calib = calibration_dir(paths[name], out / f"{name}.calib", a.calib)
        q = out / f"{name}.int8.onnx"
        quantize_model(paths[name], q, QuantizeOptions(mode="int8", calibration_data=str(calib), samples=a.calib))
        qp = onnx.load(str(q))
        arts = {}
        for t in [a.x86, *arms]:
            t0 = time.time()
            arts[t] = compile_model(q, out / f"{name}.{t}", CompileOptions(target=t))
            spec = get_target(t)
            print(f"{name} {t}: compiled in {time.time() - t0:.0f} s; "
                  f"instructions {instruction_counts(arts[t].library, spec.arch)}; "
                  f"schedules {arts[t].metadata['lowering'].get('schedules', 'not recorded (call plan)')}", flush=True)
        steps = output_steps(load_model(qp))
        worst: dict = {t: {"x86": 0.0, "ort": 0.0, "cos": 1.0, "s": 0.0} for t in arms}
        for s in range(1000, 1000 + a.inputs):
            x = sample_inputs(qp, seed=s)
            ref = run_ort(*exact_ort_model(qp, x))
            base = run_artifact(arts[a.x86], x) if x86_runs else None
            for t in arms:
                t0 = time.time()
                got = run_artifact(arts[t], x)
                w = worst[t]
                w["s"] = max(w["s"], time.time() - t0)
                for k, e in ref.items():
                    step = steps.get(k) or float(np.abs(e).max()) / 127
                    w["ort"] = max(w["ort"], float(np.abs(got[k] - e).max()) / step)
                    if base is not None:
                        b = base[k].astype(np.float64).ravel()
                        g = got[k].astype(np.float64).ravel()
                        w["x86"] = max(w["x86"], float(np.abs(g - b).max()) / step)
                        w["cos"] = min(w["cos"], float(g @ b / (np.linalg.norm(g) * np.linalg.norm(b))))
        for t, w in worst.items():
            vs_x86 = (f"max |{t} - {a.x86}| = {w['x86']:.4g} steps, cosine {w['cos']:.7f}" if x86_runs
                      else f"{a.x86} not run (this CPU lacks {missing_host_features(get_target(a.x86))})")
            print(f"{name} {t} under qemu ({a.inputs} inputs, slowest run {w['s']:.1f} s): {vs_x86}; "
                  f"max |{t} - onnxruntime QDQ (exact products)| = {w['ort']:.4g} steps", flush=True)


if __name__ == "__main__":
    main()
