"""Weight-only int4/int8 GEMV kernels alone (M = 1, GPT-2 124M's shapes): edgec's MatMulNBits kernels
next to onnxruntime's MatMulNBits on the same ONNX, in GB/s of weight bytes streamed.

    python benchmarks/bench_nbits_gemv.py [--bits 4 8] [--level 4] [--rounds 3] [--threads 2]
        [--workdir build/nbits-gemv] [--shapes 768x2304 ...] [--baseline OTHER_WORKDIR]

`--baseline DIR` also times the artifacts of the same names in DIR (compiled by another commit
with its own --workdir) as "edgec before", in the same rounds: a before/after table in one run.

Per (bits, K x N): one ONNX of R MatMulNBits nodes with R distinct random weight matrices, all reading
the same x [1, 1, K] (asymmetric, block 32, `--level` accuracy_level: 4 is what `edgec quantize`
writes and bench_llm runs; on a VNNI/dotprod host edgec then runs its int8-activation kernel, with
0 the float one), R chosen so the weights total >= 64 MB: they come from memory, not from the 32 MB
L3, as in a decode step that streams the whole model. One call runs all R; the time per kernel is
the call's (median over `--runs`) / R, so the Python call is amortized and the per-kernel dispatch
(output allocation) is counted, as in a decode step. GB/s = the node's initializer bytes (packed
weights, scales, zero points: what both runtimes read) / time per kernel. Each runtime times every
shape in its own process (thread pools spinning as by default), rounds interleaved (edgec, ORT,
edgec, ...), medians over rounds; the 2-thread copy bandwidth (read + write, bench_llm's) is
measured in its own process each round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# GPT-2 124M's matmuls at decode (K x N): qkv, attention out, MLP up, MLP down, vocabulary head
SHAPES = ("768x2304", "768x768", "768x3072", "3072x768", "768x50257")
BLOCK = 32
TARGET_BYTES = 64 << 20


def node_bytes(k: int, n: int, bits: int) -> int:
    kb = -(-k // BLOCK)
    zp = n * (-(-kb * bits // 8))
    return n * kb * BLOCK * bits // 8 + n * kb * 4 + zp


def gemv_model(k: int, n: int, bits: int, level: int, copies: int, seed: int = 0):
    """x [batch, seq, k] (symbolic, as a decoder's; run at 1 x 1) -> `copies` MatMulNBits nodes (distinct random weights, zero points, scales)."""
    from onnx import TensorProto as TP
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(seed)
    kb = -(-k // BLOCK)
    zpb = -(-kb * bits // 8)
    nodes, inits, outs = [], [], []
    for i in range(copies):
        b = rng.integers(0, 256, (n, kb, BLOCK * bits // 8), dtype=np.uint8)
        s = (rng.random(n * kb, dtype=np.float32) * 0.02 + 0.001).astype(np.float32)
        z = rng.integers(0, 256, n * zpb, dtype=np.uint8)
        inits += [nh.from_array(b, f"b{i}"), nh.from_array(s, f"s{i}"), nh.from_array(z, f"z{i}")]
        nodes.append(h.make_node("MatMulNBits", ["x", f"b{i}", f"s{i}", f"z{i}"], [f"y{i}"], domain="com.microsoft",
                                 K=k, N=n, bits=bits, block_size=BLOCK, accuracy_level=level))
        outs.append(h.make_tensor_value_info(f"y{i}", TP.FLOAT, ["batch", "seq", n]))
    g = h.make_graph(nodes, "gemv", [h.make_tensor_value_info("x", TP.FLOAT, ["batch", "seq", k])], outs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)])
    m.ir_version = 10
    return m


def prepare(work: Path, shapes, bits_list, level: int, threads: int) -> list[dict]:
    import onnx

    from edgec.api import CompileOptions, compile_model

    work.mkdir(parents=True, exist_ok=True)
    cases = []
    for bits in bits_list:
        for shape in shapes:
            k, n = (int(v) for v in shape.split("x"))
            per = node_bytes(k, n, bits)
            copies = max(2, min(256, -(-TARGET_BYTES // per)))
            path = work / f"gemv_{k}x{n}_int{bits}_l{level}_r{copies}.onnx"
            if not path.exists():
                onnx.save(gemv_model(k, n, bits, level, copies), path)
            art = path.with_suffix(".art")
            if not (art / "metadata.json").exists() and not art.exists():
                t0 = time.perf_counter()
                compile_model(path, art, CompileOptions(target="host", symbolic_dims=True, threads=threads))
                print(f"compiled {path.name}: {time.perf_counter() - t0:.0f} s", flush=True)
            cases.append({"k": k, "n": n, "bits": bits, "copies": copies, "bytes": per, "model": str(path)})
    return cases


def worker(runtime: str, cases: list[dict], threads: int, runs: int, art_dir: Path | None = None) -> list[float]:
    """Seconds per kernel (median call / copies) of each case, in this process (edgec: the
    artifacts beside the ONNX files, or those of the same name in `art_dir`)."""
    out = []
    for c in cases:
        x = np.random.default_rng(1).standard_normal((1, 1, c["k"])).astype(np.float32)
        if runtime == "edgec":
            from edgec.artifact import load_artifact
            from edgec.targets.tvm.execute import load

            art = Path(c["model"]).with_suffix(".art")
            m = load(load_artifact(art_dir / art.name if art_dir else art), threads)
            ts = m.bench({"x": x}, 3, runs)
            del m
        else:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            sess = ort.InferenceSession(c["model"], so, providers=["CPUExecutionProvider"])
            for _ in range(3):
                sess.run(None, {"x": x})
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                sess.run(None, {"x": x})
                ts.append(time.perf_counter() - t0)
            del sess
        out.append(float(np.median(ts)) / c["copies"])
    return out


def _spawn(args: list[str]):
    env = {k: v for k, v in os.environ.items() if k != "TVM_THREAD_POOL_SPIN_COUNT"}  # default spinning
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode:
        raise RuntimeError(f"worker {args} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--level", type=int, default=4, help="MatMulNBits accuracy_level (4: int8 activations allowed)")
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=ROOT / "build" / "nbits-gemv")
    ap.add_argument("--baseline", type=Path, help="also time the edgec artifacts of the same names in this "
                    "directory (another commit's --workdir), as 'edgec before', in the same rounds")
    ap.add_argument("--worker", choices=["edgec", "ort", "bandwidth"], help=argparse.SUPPRESS)
    ap.add_argument("--cases", help=argparse.SUPPRESS)
    ap.add_argument("--art-dir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker == "bandwidth":
        from benchmarks.bench_llm import copy_bandwidth

        print(json.dumps(copy_bandwidth(a.threads)))
        return 0
    if a.worker:
        print(json.dumps(worker(a.worker, json.loads(Path(a.cases).read_text()), a.threads, a.runs, a.art_dir)))
        return 0
    cases = prepare(a.workdir, a.shapes, a.bits, a.level, a.threads)
    spec = a.workdir / f"cases_l{a.level}.json"
    spec.write_text(json.dumps(cases))
    runners = {"edgec": [], **({"edgec before": ["--art-dir", str(a.baseline)]} if a.baseline else {}), "ort": []}
    times: dict[str, list[list[float]]] = {rt: [] for rt in runners}
    bw = []
    load0 = os.getloadavg()[0]
    for _ in range(a.rounds):
        bw.append(_spawn(["--worker", "bandwidth", "--threads", str(a.threads)]))
        for rt, extra in runners.items():
            times[rt].append(_spawn(["--worker", rt.split()[0], "--cases", str(spec), "--threads", str(a.threads),
                                     "--runs", str(a.runs), *extra]))
    band = float(np.median(bw))
    print(f"\n{a.rounds} rounds, {a.threads} threads, accuracy_level {a.level}, load {load0:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; copy bandwidth {band / 1e9:.1f} GB/s (read + write)")
    cols = [rt for rt in runners]
    print("| bits | K x N | copies | weight KB | " + " | ".join(f"{rt} us (GB/s)" for rt in cols)
          + " | edgec / ORT speed | edgec % of copy bw |")
    print("|---:|---|---:|---:|" + "---:|" * (len(cols) + 2))
    for i, c in enumerate(cases):
        med = {rt: float(np.median([r[i] for r in times[rt]])) for rt in cols}
        cells = " | ".join(f"{med[rt] * 1e6:.1f} ({c['bytes'] / med[rt] / 1e9:.1f})" for rt in cols)
        e = med["edgec"]
        print(f"| {c['bits']} | {c['k']}x{c['n']} | {c['copies']} | {c['bytes'] / 1024:.0f} | {cells} | "
              f"{med['ort'] / e:.2f}x | {100 * c['bytes'] / e / band:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
