"""Profile one decode step of a compiled decoder with a KV cache at a given past length.

    python benchmarks/profile_decode.py ARTIFACT_DIR [--past 150] [--runs 20] [--top 30] [--threads 2] [--prefill]

Prefills a random prompt of `--past` tokens (edgec's own run), then times the next one-token step
fed that prefill's presents: the whole call (median over `--runs`, no hook) and every VM call site
through the Relax VM's instrument hook (`LoadedModel.profile`: minimum per site over the runs),
summed per callee. Kernels (the model's PrimFuncs) and the VM's builtins (`vm.builtin.*`: shape
checks, allocations, tuple work) are listed apart, so the step splits into kernel time, builtin
time and the rest (the hook's own cost, the host loop and the Python call). `--prefill` profiles
the prefill call of `--past` tokens instead. An artifact compiled with `--kv-cache MAX` gets its
cache buffers allocated once (llm_decode.allocate_caches); the prefill writes them and the timed
step reads them (every timed run rewrites the same row in place).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def prefill_feed(cache, names, tokens: int, vocab: int, seed: int = 0, buffers=None) -> dict[str, np.ndarray]:
    """The inputs of a `tokens`-token prefill from an empty cache (random token ids); `buffers`:
    a --kv-cache artifact's cache buffers (written in place), else empty pasts."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, (1, tokens)).astype(np.int64)
    pasts = buffers if buffers is not None else {c.name: np.zeros((1, c.kv_heads, 0, c.head_dim), np.float32)
                                                 for c in cache}
    feed = {"input_ids": ids, "attention_mask": np.ones((1, tokens), np.int64), **pasts}
    if "position_ids" in names:
        feed["position_ids"] = np.arange(tokens, dtype=np.int64)[None]
    return feed


def decode_feed(model, cache, names, past: int, vocab: int, seed: int = 0, buffers=None) -> dict[str, np.ndarray]:
    """The inputs of the step after a `past`-token prefill (run here to fill the cache)."""
    out = model.run(prefill_feed(cache, names, past, vocab, seed, buffers))
    pasts = buffers if buffers is not None else {c.name: np.ascontiguousarray(out[c.present]) for c in cache}
    step = {"input_ids": np.argmax(out["logits"][:, -1:], -1).astype(np.int64),
            "attention_mask": np.ones((1, past + 1), np.int64), **pasts}
    if "position_ids" in names:
        step["position_ids"] = np.array([[past]], np.int64)
    return step


def site_times(model, feed, runs: int, totals: list, gap_out: list) -> list[tuple[str, list[float]]]:
    """Per VM call site in call order: (callee, seconds of each run), through the instrument hook;
    appends each hooked call's seconds to `totals` and the summed gaps between call sites (the
    VM's own dispatch) of all runs to `gap_out`."""
    args = model._args(feed)
    f = model.vm["main"]
    sites: dict[int, tuple[str, list[float]]] = {}
    state = {"i": 0, "t": 0.0, "end": None}

    def instrument(func, name, before, ret, *rest):
        if before:
            state["t"] = time.perf_counter()
            if state["end"] is not None:
                gaps.append(state["t"] - state["end"])
        else:
            state["end"] = time.perf_counter()
            sites.setdefault(state["i"], (str(name), []))[1].append(time.perf_counter() - state["t"])
            state["i"] += 1
        return 0

    model.vm.set_instrument(instrument)
    gaps: list[float] = []
    try:
        for _ in range(runs):
            state["i"], state["end"] = 0, None
            t0 = time.perf_counter()
            f(*args)
            totals.append(time.perf_counter() - t0)
    finally:
        model.vm.set_instrument(lambda *rest: 0)
    gap_out.append(sum(gaps) / runs)
    return [sites[i] for i in sorted(sites)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--past", type=int, default=150)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefill", action="store_true", help="profile the prefill of --past tokens instead")
    a = ap.parse_args(argv)
    os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", "0")
    from edgec.artifact import load_artifact
    from edgec.llm_decode import allocate_caches, cache_inputs, kv_max_length
    from edgec.targets.tvm.execute import load

    art = load_artifact(a.artifact)
    model = load(art, a.threads)
    names = [t.name for t in art.inputs]
    kv_max = kv_max_length(art.metadata)
    cache = cache_inputs({t.name: t.shape for t in art.inputs}, {t.name: t.shape for t in art.outputs},
                         in_place=kv_max is not None)
    buffers = allocate_caches(cache, 1, kv_max) if kv_max is not None else None
    vocab = int(art.outputs[[t.name for t in art.outputs].index("logits")].shape[-1])
    feed = (prefill_feed(cache, names, a.past, vocab, buffers=buffers) if a.prefill
            else decode_feed(model, cache, names, a.past, vocab, buffers=buffers))
    step = float(np.median(model.bench(feed, 3, a.runs))) * 1e3
    totals, gaps = [], []
    sites = site_times(model, feed, a.runs, totals, gaps)
    per: dict[str, float] = defaultdict(float)
    med: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for name, ts in sites:
        per[name] += min(ts) * 1e3
        med[name] += float(np.median(ts)) * 1e3
        calls[name] += 1
    builtin = {n: t for n, t in per.items() if n.startswith("vm.") or "." in n and not n.startswith("fused")}
    kernels = {n: t for n, t in per.items() if n not in builtin}
    kb, bb = sum(kernels.values()), sum(builtin.values())
    kmed = sum(med[n] for n in kernels)
    mode = f", in-place KV cache of {kv_max} rows" if kv_max else ""
    print(f"{a.artifact.name}: {'prefill of' if a.prefill else 'decode step at past'} {a.past}, {a.threads} threads{mode}, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"step (median of {a.runs}, no hook): {step:.2f} ms = {1e3 / step:.1f} tok/s")
    print(f"kernels: {sum(calls[n] for n in kernels)} calls of {len(kernels)} functions, {kb:.2f} ms (medians: {kmed:.2f}); "
          f"builtins: {sum(calls[n] for n in builtin)} calls, {bb:.2f} ms; rest {step - kb - bb:.2f} ms")
    print(f"hooked call {np.median(totals) * 1e3:.2f} ms, of it between call sites {gaps[0] * 1e3:.2f} ms (hook included)")
    print("top kernels (calls, ms summed over call sites: per-site minimums, medians):")
    for n, t in sorted(kernels.items(), key=lambda kv: -kv[1])[: a.top]:
        print(f"  {n:<64}{calls[n]:4d}x {t:8.3f} {med[n]:8.3f}")
    print("builtins:")
    for n, t in sorted(builtin.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {n:<64}{calls[n]:4d}x {t:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
