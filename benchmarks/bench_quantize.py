"""Quantization benchmark (issue 13): accuracy and latency of int8 against fp32, edgec against onnxruntime.

    python benchmarks/bench_quantize.py                         # resnet18, mobilenetv2 (static), bert (dynamic)
    python benchmarks/bench_quantize.py --models resnet18 --rounds 5 --calib 64

Per model (benchmarks/models.py, seeded weights):
1. calibration data: --calib seeded inputs (`models.sample_inputs`, seeds 1..N) as .npz files;
2. `edgec quantize` (static int8: uint8 activations, per-channel int8 weights, minmax; bert:
   --mode dynamic) and onnxruntime's quantizer on the same data (quantize_static QDQ per-channel
   QUInt8/QInt8, or quantize_dynamic per-channel QInt8);
3. accuracy: output cosine of each quantized model against fp32 on 8 other seeded inputs (in
   onnxruntime; integer products made exact, `edgec.reference_exact`);
4. latency: onnxruntime fp32, onnxruntime int8 (its quantizer's model), edgec fp32, edgec int8
   (edgec's quantized model compiled for the host), each in a fresh process, --rounds interleaved
   rounds (the loop of bench_models.py: 2 threads, whole calls), medians.
Prints the table and the issue's bars with MET / MISSED, measured in this run:
cosine >= 0.99; static int8 >= 2x edgec fp32 and <= onnxruntime int8; bert dynamic int8 >= 1.5x fp32.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_models import ENV, spawn  # noqa: E402,F401  (ENV: the timed processes' environment)
from models import sample_inputs, write_all  # noqa: E402

MODES = {"resnet18": "int8", "mobilenetv2": "int8", "bert": "dynamic"}
SPEEDUP = {"int8": 2.0, "dynamic": 1.5}


def calibration_dir(model_path: Path, out: Path, n: int) -> Path:
    import onnx

    m = onnx.load(str(model_path), load_external_data=False)
    out.mkdir(parents=True, exist_ok=True)
    for k in range(1, n + 1):
        np.savez(out / f"s{k:03d}.npz", **sample_inputs(m, seed=k))
    return out


def ort_quantize(model_path: Path, calib: Path, mode: str, out: Path) -> str | None:
    """onnxruntime's quantizer on the same data; None or why it failed."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )

        if mode == "dynamic":
            quantize_dynamic(str(model_path), str(out), per_channel=True, weight_type=QuantType.QInt8)
            return None

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.files = sorted(calib.glob("*.npz"))

            def get_next(self):
                if not self.files:
                    return None
                with np.load(self.files.pop(0)) as z:
                    return {k: z[k] for k in z.files}

        quantize_static(str(model_path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return None
    except Exception as e:  # noqa: BLE001 - reported in the table
        return f"{type(e).__name__}: {' '.join(str(e).split())[:100]}"


def cosine(float_path: Path, q_path: Path, seeds=range(100, 108)) -> float:
    import onnx

    from edgec.reference import run_ort
    from edgec.reference_exact import exact_ort_model

    f, q = onnx.load(str(float_path)), onnx.load(str(q_path))
    worst = 1.0
    for s in seeds:
        x = sample_inputs(f, seed=s)
        a = np.concatenate([v.ravel() for v in run_ort(f, x).values()]).astype(np.float64)
        b = np.concatenate([v.ravel() for v in run_ort(*exact_ort_model(q, x)).values()]).astype(np.float64)
        worst = min(worst, float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODES))
    ap.add_argument("--calib", type=int, default=32, help="calibration samples")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", default="/tmp/edgec-bench-quant")
    a = ap.parse_args()
    from edgec.quantize import QuantizeOptions, quantize_model

    names = [n for n in a.models.split(",") if n]
    out = Path(a.out)
    paths = write_all(out, names)
    flags = " ".join(f for f in ("avx512_vnni", "avx_vnni", "avx512f", "avx2")
                     if f in Path("/proc/cpuinfo").read_text().split())
    print(f"host: {os.cpu_count()} cores, CPU flags of interest: {flags or 'none'}\n")
    head = (f"{'model':<12}{'mode':<8}{'cos edgec':>10}{'cos ORT':>9}{'edgec fp32':>11}{'edgec int8':>11}"
            f"{'ORT fp32':>9}{'ORT int8':>9}{'int8 x':>8}{'vs ORT8':>8}")
    print(head + "\n" + "-" * len(head))
    goals = []
    for name in names:
        mode = MODES.get(name, "int8")
        calib = calibration_dir(paths[name], out / f"{name}.calib", a.calib)
        qe, qo = out / f"{name}.edgec-{mode}.onnx", out / f"{name}.ort-{mode}.onnx"
        quantize_model(paths[name], qe, QuantizeOptions(mode=mode, calibration_data=str(calib), samples=a.calib))
        ort_err = ort_quantize(paths[name], calib, mode, qo)
        cos_e = cosine(paths[name], qe)
        cos_o = cosine(paths[name], qo) if ort_err is None else float("nan")
        builds = Path(tempfile.mkdtemp(prefix=f"edgec-bq-{name}-"))
        runs = {"edgec fp32": ("edgec", paths[name], builds / "fp32"), "edgec int8": ("edgec", qe, builds / "int8"),
                "ORT fp32": ("ort", paths[name], ""), "ORT int8": ("ort", qo, "")}
        if ort_err is not None:
            runs.pop("ORT int8")
        times = {k: [] for k in runs}
        errors = {}
        for _ in range(a.rounds):
            for k, (kind, path, art) in runs.items():
                r = spawn(kind, path, a.warmup, a.repeat, 1800, art)
                if "times" in r:
                    times[k] += r["times"]
                else:
                    errors[k] = r.get("error", "?")
        med = {k: float(np.median(v)) * 1e3 if v else float("nan") for k, v in times.items()}
        med.setdefault("ORT int8", float("nan"))
        speedup = med["edgec fp32"] / med["edgec int8"]
        vs_ort = med["edgec int8"] / med["ORT int8"]
        print(f"{name:<12}{mode:<8}{cos_e:10.4f}{cos_o:9.4f}{med['edgec fp32']:11.2f}{med['edgec int8']:11.2f}"
              f"{med['ORT fp32']:9.2f}{med['ORT int8']:9.2f}{speedup:7.2f}x{vs_ort:7.2f}x"
              + (f"  errors: {errors}" if errors else "") + (f"  ORT quantizer: {ort_err}" if ort_err else ""))
        bar = SPEEDUP[mode]
        goals.append(f"  {name:<12} cosine {cos_e:.4f} >= 0.99: {'MET' if cos_e >= 0.99 else 'MISSED'}; "
                     f"int8 {speedup:.2f}x edgec fp32 >= {bar}x: {'MET' if speedup >= bar else 'MISSED'}"
                     + (f"; edgec int8 / ORT int8 {vs_ort:.2f} <= 1: {'MET' if vs_ort <= 1 else 'MISSED'}"
                        if mode == "int8" else ""))
    print("\nissue 13 bars (medians, this run):\n" + "\n".join(goals))


if __name__ == "__main__":
    main()
