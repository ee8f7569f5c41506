"""LLM benchmark (issue 14): prefill latency and decode tokens/s of a decoder with a KV cache,
for edgec fp32 / int8-weight / int4-weight and onnxruntime on the same ONNX files, in one run.

    python benchmarks/bench_llm.py --arch gpt2 --size 100m [--prompt 128] [--steps 32] [--rounds 3]
        [--threads 2] [--workdir build/llm-bench] [--kv-cache MAX]

What is measured, per (runtime, weights) pair, each in its own process (thread pools spinning as they
do by default: nothing else runs), rounds interleaved:
- prefill: one call on a `--prompt`-token prompt from an empty cache (ms, median over rounds);
- decode: `--steps` greedy steps of one token each (tokens/s from the median step time);
- peak RSS of the process (MiB): over the whole run, and while decoding (the peak restarted after
  the timed prefill, edgec.memory.reset_peak), each also above the RSS before the model was loaded
  (both runtimes imported);
- issue 14's memory bar: the decode peak above that baseline / (weight bytes + KV cache bytes at
  the last step) <= 1.2 (weight bytes: all the model's initializers);
- the decode rate as a fraction of the machine's memory-bandwidth limit: copy bandwidth (2 threads,
  measured here in its own process) / weight bytes read per token = the best tokens/s. An
  embedding table read only by Gather counts one row per token (the lookup), not its whole size.
The int4/int8 ONNX are written once by `edgec quantize --mode int4-weight/int8-weight` (com.microsoft
MatMulNBits, accuracy_level 4) and run by both edgec and onnxruntime (its MatMulNBits kernel).
Accuracy: the int4/int8 logits against fp32's on fp32's greedy path (the same prompt, the same tokens
fed), cosine per step (goal >= 0.99 on every step). The int4w model is quantized with `--int4-method`
(default gptq: `edgec quantize --method gptq`, calibrated on seeded random prompts of another seed
than the benchmark's) and `--int4-int8-weights` (weights kept at 8 bits; default the first
transformer block's, the recipe that reaches cosine 0.99: GPT-2 124M, gptq alone 0.988, with block 0
at 8 bits 0.993).

Goals printed with MET / MISSED: edgec fp32 decode >= onnxruntime fp32; edgec int4 decode >=
onnxruntime int4 and >= 2.5x edgec fp32; edgec int4 at >= 50% of the bandwidth limit; the memory
bar for each edgec variant (onnxruntime's ratio printed for reference).

`--kv-cache MAX`: the edgec artifacts are compiled with the in-place KV cache (<stem>.kv<MAX>.art):
buffers of MAX rows allocated once per decode and written in place, no presents returned; their
KV bytes in the memory bar are the buffers' (MAX rows).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("fp32", "int8w", "int4w")
RUNTIMES = ("edgec", "ort")
# the first transformer block's weights (export names): int4 errors there grow through every later
# block (GPT-2 124M, random weights: rtn block 0 alone costs 0.0085 of logits cosine, block 11 0.0007)
FIRST_BLOCK = {"gpt2": "model.transformer.h.0.*", "llama": "model.model.layers.0.*"}


def _paths(work: Path, arch: str, size: str, int4: str = "rtn") -> dict[str, Path]:
    base = work / f"{arch}_{size}"
    return {"fp32": base.with_suffix(".onnx"), "int8w": Path(f"{base}.int8w.onnx"),
            "int4w": Path(f"{base}.int4w{'' if int4 == 'rtn' else '-' + int4}.onnx")}


def int4_options(method: str, int8_weights: str, samples: int):
    """`edgec quantize --mode int4-weight` settings of the int4w variant: `method` rtn or gptq
    (calibrated on `samples` seeded random 128-token prompts, another seed than the benchmark's),
    `int8_weights` a glob of weights kept at 8 bits ('' for none)."""
    from edgec.quantize import QuantizeOptions

    return QuantizeOptions(mode="int4-weight", method=method, samples=samples, seed=0,
                           int8_weights=tuple(p for p in int8_weights.split(",") if p))


def int4_label(method: str, int8_weights: str) -> str:
    import zlib

    return method + (f"-int8-{zlib.crc32(int8_weights.encode()):08x}" if int8_weights else "")


def artifact_dir(model: Path, kv_cache: int | None = None) -> Path:
    """Where the edgec artifact of `model` goes (`--kv-cache MAX`: its own directory)."""
    return model.parent / f"{model.stem}{f'.kv{kv_cache}' if kv_cache else ''}.art"


def prepare(work: Path, arch: str, size: str, threads: int, int4=None, kv_cache: int | None = None) -> dict[str, Path]:
    """Export the model, quantize it, compile the three artifacts (reused when present).
    `int4`: (QuantizeOptions, label) of the int4w variant (default: round to nearest)."""
    from benchmarks.llm_models import export
    from edgec.api import CompileOptions, compile_model
    from edgec.quantize import QuantizeOptions, quantize_model

    work.mkdir(parents=True, exist_ok=True)
    int4_opts, label = int4 or (QuantizeOptions(mode="int4-weight"), "rtn")
    paths = _paths(work, arch, size, label)
    if not paths["fp32"].exists():
        export(arch, size, paths["fp32"])
    for v, o in (("int8w", QuantizeOptions(mode="int8-weight")), ("int4w", int4_opts)):
        if not paths[v].exists():
            t0 = time.perf_counter()
            quantize_model(paths["fp32"], paths[v], o)
            print(f"quantized {paths[v].name}: {time.perf_counter() - t0:.0f} s", flush=True)
    for v, p in paths.items():
        art = artifact_dir(p, kv_cache)
        if not (art / "metadata.json").exists():
            t0 = time.perf_counter()
            compile_model(p, art, CompileOptions(target="host", symbolic_dims=True, threads=threads, kv_cache=kv_cache))
            print(f"compiled {p.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return paths


def _runner(runtime: str, model: Path, threads: int, worker: bool = False, kv_cache: int | None = None):
    """(run, input names, input shapes, output shapes, the in-place cache length or None)."""
    from edgec.artifact import load_artifact
    from edgec.reference import ort_session

    if runtime == "edgec":
        from edgec.llm_decode import kv_max_length
        from edgec.targets.tvm.execute import load

        art = load_artifact(artifact_dir(model, kv_cache))
        m = load(art, threads)
        return (m.run, [t.name for t in art.inputs], {t.name: t.shape for t in art.inputs},
                {t.name: t.shape for t in art.outputs}, kv_max_length(art.metadata))
    if worker:  # timed: onnxruntime's defaults (all graph optimizations, spinning workers), as bench_models
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    else:
        sess = ort_session(str(model), threads=threads, optimized=True)
    outs = {o.name: tuple(o.shape) for o in sess.get_outputs()}  # shapes: a builder model's head size is on present
    ins = {i.name: tuple(i.shape) for i in sess.get_inputs()}
    return (lambda feed: dict(zip(outs, sess.run(list(outs), feed)))), list(ins), ins, outs, None


def worker(runtime: str, model: Path, threads: int, prompt: int, steps: int, vocab: int,
           kv_cache: int | None = None) -> dict:
    """One timed decode in this process: prefill seconds, step seconds, peak RSS."""
    import numpy as np
    import onnxruntime  # noqa: F401 - both runtimes imported before the baseline

    import edgec.targets.tvm.runtime  # noqa: F401 - TVM itself (imported only inside edgec.targets.tvm)
    from edgec.artifact import load_artifact  # noqa: F401 - imported by _runner: before the baseline
    from edgec.generate import peak_after_first_call
    from edgec.llm_decode import cache_inputs, greedy_decode
    from edgec.memory import kv_cache_bytes, peak_rss_mib, status_mib
    from edgec.reference import ort_session  # noqa: F401 - as above

    before = status_mib().get("VmRSS", peak_rss_mib())
    run, names, shapes, outs, kv_max = _runner(runtime, model, threads, worker=True, kv_cache=kv_cache)
    cache = cache_inputs(shapes, outs, in_place=kv_max is not None)
    ids = np.random.default_rng(prompt).integers(0, vocab, (1, prompt))
    greedy_decode(run, cache, names, ids[:, :4], 2, keep_steps=False, kv_max=kv_max)  # warm-up
    whole = peak_rss_mib()
    timed, peaks = peak_after_first_call(run)
    res = greedy_decode(timed, cache, names, ids, steps, keep_steps=False, kv_max=kv_max)
    decode_peak = peak_rss_mib()
    return {"prefill_s": res.seconds[0], "step_s": float(np.median(res.seconds[1:])),
            "rss_mib": max([whole, decode_peak, *peaks]), "rss_model_mib": max([whole, decode_peak, *peaks]) - before,
            "decode_rss_mib": decode_peak, "baseline_mib": before, "kv_bytes": kv_cache_bytes(cache, 1, kv_max or prompt + steps)}


def accuracy(paths: dict[str, Path], threads: int, prompt: int, steps: int, vocab: int,
             kv_cache: int | None = None) -> dict[str, float]:
    """Worst per-step cosine of each quantized model's logits against fp32's, both fed fp32's
    greedy tokens (edgec artifacts)."""
    import numpy as np

    from edgec.llm_decode import cache_inputs, greedy_decode

    run, names, shapes, outs, kv_max = _runner("edgec", paths["fp32"], threads, kv_cache=kv_cache)
    cache = cache_inputs(shapes, outs, in_place=kv_max is not None)
    ids = np.random.default_rng(prompt).integers(0, vocab, (1, prompt))
    ref = greedy_decode(run, cache, names, ids, steps, kv_max=kv_max)
    out = {}
    for v in ("int8w", "int4w"):
        qrun = _runner("edgec", paths[v], threads, kv_cache=kv_cache)[0]
        forced = _forced(qrun, cache, names, ids, ref.tokens, kv_max)
        cos = [_cosine(a["logits"][:, -1], b["logits"][:, -1]) for a, b in zip(forced, ref.steps)]
        out[v] = float(np.min(cos))  # NaN in any step propagates (Python min would skip it): MISSED
    return out


def _forced(run, cache, names, prompt, tokens, kv_max: int | None = None):
    """Decode feeding the given tokens (teacher forcing) instead of the model's own; `kv_max`:
    the model writes cache buffers of kv_max rows in place."""
    import numpy as np

    from edgec.llm_decode import allocate_caches, step_feed

    batch = prompt.shape[0]
    past = ({c.name: np.zeros((batch, c.kv_heads, 0, c.head_dim), np.float32) for c in cache} if kv_max is None
            else allocate_caches(cache, batch, kv_max))
    ids, past_len, steps = prompt.astype(np.int64), 0, []
    for t in range(tokens.shape[1]):
        out = run(step_feed(names, ids, past, past_len))
        steps.append(out)
        if kv_max is None:
            past = {c.name: out[c.present] for c in cache}
        past_len += ids.shape[1]
        ids = tokens[:, t:t + 1].astype(np.int64)
    return steps


def _cosine(a, b) -> float:
    import numpy as np

    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def copy_bandwidth(threads: int) -> float:
    """Bytes/s of a large memory copy (read + write counted) on `threads` threads."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    n = 256 << 20
    src, dst = [np.ones(n // 4, np.float32) for _ in range(threads)], [np.empty(n // 4, np.float32) for _ in range(threads)]
    best = 0.0
    with ThreadPoolExecutor(threads) as ex:
        for _ in range(5):
            t0 = time.perf_counter()
            list(ex.map(lambda i: np.copyto(dst[i], src[i]), range(threads)))
            best = max(best, 2 * n * threads / (time.perf_counter() - t0))
    return best


def weight_bytes(model: Path) -> tuple[int, int]:
    """(bytes of the model's initializers, bytes a decode step reads of them): a table read only
    by Gather (an embedding lookup) gives one row per token, not its whole size; everything else is
    read whole once per step."""
    import onnx

    m = onnx.load(str(model), load_external_data=True)
    readers: dict[str, list[tuple[str, int]]] = {}
    for n in m.graph.node:
        for i, name in enumerate(n.input):
            readers.setdefault(name, []).append((n.op_type, i))
    total = read = 0
    for t in m.graph.initializer:
        size = len(t.raw_data) or onnx.numpy_helper.to_array(t).nbytes
        total += size
        lookups = readers.get(t.name, [])
        gathered = bool(lookups) and all(r == ("Gather", 0) for r in lookups) and t.dims
        read += size // t.dims[0] if gathered else size
    return total, read


def _spawn(args: list[str]) -> dict:
    # both runtimes keep their thread pools' default spinning (TVM's spin count, onnxruntime's
    # allow_spinning=1), as in bench_models: each worker process runs alone on the cores
    env = {k: v for k, v in os.environ.items() if k != "TVM_THREAD_POOL_SPIN_COUNT"}
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"worker {args} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="gpt2")
    ap.add_argument("--size", default="100m")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=Path("build/llm-bench"))
    ap.add_argument("--int4-method", choices=("rtn", "gptq"), default="gptq",
                    help="how the int4w variant is quantized (gptq: calibrated on seeded random prompts)")
    ap.add_argument("--int4-int8-weights", default=None, metavar="GLOBS",
                    help="int4w: weights (comma-separated globs) kept at 8 bits, as `--int8-weights` "
                         "(default: the first transformer block's, '' for none)")
    ap.add_argument("--calibration-samples", type=int, default=32)
    ap.add_argument("--kv-cache", type=int, default=None, metavar="MAX",
                    help="edgec artifacts with the in-place KV cache of MAX rows (--prompt + --steps must fit)")
    ap.add_argument("--worker", nargs=2, metavar=("RUNTIME", "MODEL"), help=argparse.SUPPRESS)
    ap.add_argument("--vocab", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--bandwidth", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]), args.threads, args.prompt, args.steps,
                                args.vocab, args.kv_cache)))
        return 0
    if args.bandwidth:
        print(json.dumps({"bytes_per_s": copy_bandwidth(args.threads)}))
        return 0
    import numpy as np

    from edgec.artifact import load_artifact
    from edgec.memory import BAR, MemoryBar

    if args.int4_int8_weights is None:
        args.int4_int8_weights = FIRST_BLOCK[args.arch]
    int4 = (int4_options(args.int4_method, args.int4_int8_weights, args.calibration_samples),
            int4_label(args.int4_method, args.int4_int8_weights))
    paths = prepare(args.workdir, args.arch, args.size, args.threads, int4, args.kv_cache)
    vocab = int(load_artifact(artifact_dir(paths["fp32"], args.kv_cache)).outputs[0].shape[-1])
    common = ["--threads", str(args.threads), "--prompt", str(args.prompt), "--steps", str(args.steps),
              "--vocab", str(vocab), *(["--kv-cache", str(args.kv_cache)] if args.kv_cache else [])]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.arch} {args.size}, prompt {args.prompt}, "
          f"{args.steps} decode steps, {args.threads} threads, {args.rounds} rounds"
          + (f", edgec with the in-place KV cache of {args.kv_cache} rows" if args.kv_cache else ""))
    runs: dict[tuple[str, str], list[dict]] = {}
    bw = []
    for _ in range(args.rounds):
        bw.append(_spawn(["--bandwidth", "--threads", str(args.threads)])["bytes_per_s"])
        for v in VARIANTS:
            for rt in RUNTIMES:
                runs.setdefault((rt, v), []).append(_spawn(["--worker", rt, str(paths[v]), *common]))
    bandwidth = float(np.median(bw))
    acc = accuracy(paths, args.threads, args.prompt, args.steps, vocab, args.kv_cache)
    table = {}
    print(f"\ncopy bandwidth (2 x read+write, {args.threads} threads): {bandwidth / 1e9:.1f} GB/s")
    print("| runtime | weights | weight MB (read per token) | prefill ms | decode tok/s | % of bandwidth limit | peak RSS MiB "
          "| above the runtimes' import MiB | decode peak above it MiB | / (weights + KV) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    bars = {}
    sizes = {v: weight_bytes(paths[v]) for v in VARIANTS}
    wbytes = {v: sizes[v][1] for v in VARIANTS}  # read per decode step
    for v in VARIANTS:
        wb = wbytes[v]
        for rt in RUNTIMES:
            r = runs[rt, v]
            pre = float(np.median([x["prefill_s"] for x in r])) * 1e3
            tps = 1.0 / float(np.median([x["step_s"] for x in r]))
            frac = tps * wb / bandwidth
            rss = float(np.median([x["rss_mib"] for x in r]))
            model_rss = float(np.median([x["rss_model_mib"] for x in r]))
            bar = MemoryBar(float(np.median([x["decode_rss_mib"] for x in r])),
                            float(np.median([x["baseline_mib"] for x in r])), sizes[v][0], r[0]["kv_bytes"])
            table[rt, v], bars[rt, v] = tps, bar
            print(f"| {rt} | {v} | {sizes[v][0] / 1e6:.0f} ({wb / 1e6:.0f}) | {pre:.1f} | {tps:.1f} | {100 * frac:.0f}% "
                  f"| {rss:.0f} | {model_rss:.0f} | {bar.model_mib:.0f} | {bar.ratio:.2f} |")
    print(f"\nint4w: {int4[1]}; int8w / int4w logits vs fp32 (worst cosine over {args.steps + 1} steps, edgec): "
          f"{acc['int8w']:.5f} / {acc['int4w']:.5f}")
    goals = [("edgec fp32 decode >= onnxruntime fp32", table["edgec", "fp32"] >= table["ort", "fp32"]),
             ("edgec int4 decode >= onnxruntime int4", table["edgec", "int4w"] >= table["ort", "int4w"]),
             ("edgec int4 decode >= 2.5x edgec fp32", table["edgec", "int4w"] >= 2.5 * table["edgec", "fp32"]),
             ("edgec int4 at >= 50% of the bandwidth limit",
              table["edgec", "int4w"] * wbytes["int4w"] / bandwidth >= 0.5),
             ("int4 logits cosine >= 0.99 on every step", acc["int4w"] >= 0.99)]
    goals += [(f"edgec {v} peak RSS while decoding <= {BAR} x (weights + KV cache): {bars['edgec', v].ratio:.2f} x "
               f"(onnxruntime {bars['ort', v].ratio:.2f} x)", bars["edgec", v].met) for v in VARIANTS]
    ratio = table["edgec", "int4w"] / table["edgec", "fp32"]
    print(f"edgec int4 / fp32 decode: {ratio:.2f}x; edgec / onnxruntime decode: fp32 "
          f"{table['edgec', 'fp32'] / table['ort', 'fp32']:.2f}x, int4 {table['edgec', 'int4w'] / table['ort', 'int4w']:.2f}x")
    for name, ok in goals:
        print(f"  {name}: {'MET' if ok else 'MISSED'}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
