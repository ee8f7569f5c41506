"""Decode-loop check of >= 100M-parameter decoders: edgec (one artifact, symbolic dims) against
onnxruntime on the same ONNX, prefill at 1, 17 and 128 tokens then 32 greedy decode steps.

    python benchmarks/llm_models.py --arch gpt2 --size 100m -o /tmp/llm/gpt2_100m.onnx
    python benchmarks/llm_decode_check.py /tmp/llm/gpt2_100m.onnx [/tmp/llm/llama_100m.onnx ...]
        [--artifact-dir /tmp/llm/art] [--threads 2] [--steps 32] [--prompts 1,17,128] [--kv-cache 256]

Per model and prompt length: the worst max abs error over every step's outputs (logits and
presents; goal <= 1e-3 at each step), whether the greedy tokens are identical, and the median
seconds per call of each runtime (prefill, decode). The reference session has onnxruntime's graph
optimizations off (edgec.reference); a second, optimized session is timed for the decode-speed
line (same process, spinning off in both runtimes). Exit 1 when any step misses the bound or the
tokens differ. `--kv-cache MAX`: the artifact is compiled with the in-place KV cache (buffers of
MAX rows allocated once; artifact DIR/<stem>.kv<MAX>); its presents compared are the buffers' valid
rows [0, T) after each step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", "0")  # before TVM loads: two runtimes share the cores

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgec.api import CompileOptions, compile_model  # noqa: E402
from edgec.artifact import load_artifact  # noqa: E402
from edgec.llm_decode import cache_inputs, compare_decodes, greedy_decode, kv_max_length  # noqa: E402
from edgec.reference import ort_session  # noqa: E402


def _ort_runner(sess):
    names = [o.name for o in sess.get_outputs()]
    return lambda feed: dict(zip(names, sess.run(names, feed)))


def check(model: Path, art_dir: Path, threads: int, prompts: list[int], steps: int, kv_cache: int | None = None) -> bool:
    from edgec.targets.tvm.execute import load

    t0 = time.perf_counter()
    if (art_dir / "metadata.json").exists():
        art = load_artifact(art_dir)
        compile_s = float("nan")
    else:
        art = compile_model(model, art_dir, CompileOptions(target="host", symbolic_dims=True, threads=threads,
                                                           kv_cache=kv_cache))
        compile_s = time.perf_counter() - t0
    sched = art.metadata["lowering"].get("schedules", {})
    kv_max = kv_max_length(art.metadata)
    mode = f", in-place KV cache of {kv_max} rows" if kv_max else ""
    print(f"\n## {model.name}: compiled once ({compile_s:.0f} s){mode}, kernels by rule {sched}")
    edgec_model = load(art, threads)
    ref = ort_session(str(model), threads=threads)
    fast = ort_session(str(model), threads=threads, optimized=True)
    cache = cache_inputs({t.name: t.shape for t in art.inputs}, {t.name: t.shape for t in art.outputs},
                         in_place=kv_max is not None)
    names = [t.name for t in art.inputs]
    vocab = art.outputs[0].shape[-1]
    print("| prompt | steps | max abs (worst step) | steps within 1e-3 | tokens identical | edgec prefill ms | "
          "ORT prefill ms | edgec decode ms/token | ORT decode ms/token | ORT-opt decode ms/token |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    ok = True
    for n in prompts:
        prompt = np.random.default_rng(n).integers(0, vocab, (1, n))
        got = greedy_decode(edgec_model.run, cache, names, prompt, steps, kv_max=kv_max)
        want = greedy_decode(_ort_runner(ref), cache, names, prompt, steps)
        opt = greedy_decode(_ort_runner(fast), cache, names, prompt, steps, keep_steps=False)
        checks, same = compare_decodes(got, want, atol=1e-3)
        good = sum(c.ok for c in checks)
        worst = max(c.max_abs for c in checks)
        ok &= good == len(checks) and same
        print(f"| {n} | {steps} | {worst:.2e} | {good}/{len(checks)} | {'yes' if same else 'NO'} | "
              f"{got.seconds[0] * 1e3:.1f} | {want.seconds[0] * 1e3:.1f} | {np.median(got.seconds[1:]) * 1e3:.1f} | "
              f"{np.median(want.seconds[1:]) * 1e3:.1f} | {np.median(opt.seconds[1:]) * 1e3:.1f} |", flush=True)
    return ok


def time_only(model: Path, art_dir: Path, runtime: str, threads: int, prompt_len: int, steps: int) -> None:
    """One runtime in this process (edgec or onnxruntime's optimized session): prints the prefill
    ms and the median decode ms/token. Run it per runtime in separate processes, interleaved
    (worker-thread spinning off in both, as in the check)."""
    art = load_artifact(art_dir)
    kv_max = kv_max_length(art.metadata) if runtime == "edgec" else None
    cache = cache_inputs({t.name: t.shape for t in art.inputs}, {t.name: t.shape for t in art.outputs},
                         in_place=kv_max_length(art.metadata) is not None)
    names = [t.name for t in art.inputs]
    if runtime == "edgec":
        from edgec.targets.tvm.execute import load

        run = load(art, threads).run
    else:
        sess = ort_session(str(model), threads=threads, optimized=True)
        run = _ort_runner(sess)
    prompt = np.random.default_rng(prompt_len).integers(0, art.outputs[0].shape[-1], (1, prompt_len))
    greedy_decode(run, cache, names, prompt, 2, keep_steps=False, kv_max=kv_max)  # warm-up
    d = greedy_decode(run, cache, names, prompt, steps, keep_steps=False, kv_max=kv_max)
    print(f"{runtime} {model.name} prompt {prompt_len}: prefill {d.seconds[0] * 1e3:.1f} ms, decode "
          f"{np.median(d.seconds[1:]) * 1e3:.1f} ms/token (load {os.getloadavg()[0]:.2f})")


def _art_dir(root: Path, model: Path, kv_cache: int | None) -> Path:
    return root / (model.stem + (f".kv{kv_cache}" if kv_cache else ""))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--artifact-dir", type=Path, default=Path("build/llm"),
                    help="artifacts go to DIR/<model stem> (reused when present)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--prompts", default="1,17,128")
    ap.add_argument("--kv-cache", type=int, default=None, metavar="MAX",
                    help="compile with the in-place KV cache of MAX rows (artifact DIR/<stem>.kv<MAX>)")
    ap.add_argument("--time-only", choices=["edgec", "ort"],
                    help="only time one runtime on the first prompt length (an existing artifact; no check)")
    args = ap.parse_args(argv)
    if args.time_only:
        for m in args.models:
            time_only(m, _art_dir(args.artifact_dir, m, args.kv_cache), args.time_only, args.threads, int(args.prompts.split(",")[0]),
                      args.steps)
        return 0
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    ok = True
    for m in args.models:
        ok &= check(m, _art_dir(args.artifact_dir, m, args.kv_cache), args.threads,
                    [int(p) for p in args.prompts.split(",")], args.steps, args.kv_cache)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
