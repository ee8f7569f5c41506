"""Where does a pruned model's latency ratio differ from its FLOPs ratio? Per layer, same run.

    python benchmarks/prune_layer_profile.py ORIGINAL.onnx PRUNED.onnx [--threads 1] [--runs 100]
        [--block 10] [--artifacts ORIG_ART PRUNED_ART]

Both models are compiled for the host (or `--artifacts` are loaded) and profiled in this process,
alternating blocks of `--block` runs (so that a slow spell of a shared machine falls on both, not on
one model's whole profile): every kernel call's minimum over `--runs` runs (the Relax VM's
instrument hook). The conv / matmul kernels are matched in order to the ONNX Conv / Gemm /
MatMul nodes (edgec fuses each such node with its epilogue into one kernel, and a depthwise conv
with the 1x1 conv after it: such a kernel is one row for both layers; the script stops if the
counts differ). Printed:
per layer the time and FLOPs ratios and the attained GFLOP/s, then three whole-model figures:

- measured: the pruned model's summed kernel time / the original's;
- per-layer-proportional: what that ratio would be if every layer's time shrank exactly by its
  own FLOPs ratio (other kernels unchanged) — a compiler whose every kernel scales perfectly
  gets this figure, not the FLOPs ratio, because layers differ in GFLOP/s;
- FLOPs: edgec.ir.analysis.flops of the pruned model / the original's (what bench_prune's bar uses).

Then two bounds on what faster kernels could reach: the per-layer-proportional figure if the
layers the pruning left whole (FLOPs ratio 1: protected stems, layers under `--keep`) took no time
in either model, and if the depthwise convs (memory-bound, FLOPs linear in the channels) took none
either. A bound above the FLOPs ratio means no kernel speed-up reaches the bar unless pruned
layers run faster per FLOP than the same layers unpruned.

and the layers that pull the ratio up most: time share x (own FLOPs ratio - model FLOPs ratio).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYER_OPS = ("Conv", "Gemm", "MatMul")


def layer_flops(path: str) -> tuple[list[tuple[str, int]], int]:
    """([(description, FLOPs) of each Conv/Gemm/MatMul in graph order], FLOPs of the whole model)."""
    import onnx
    import onnx_ir as ir

    from edgec.ir.analysis import flops, node_flops

    proto = onnx.shape_inference.infer_shapes(onnx.load(path))
    model = ir.serde.deserialize_model(proto)
    rows = []
    for n in model.graph:
        if n.op_type in LAYER_OPS:
            w = n.inputs[1].shape if len(n.inputs) > 1 and n.inputs[1] is not None else None
            rows.append((f"{n.op_type} {list(w.dims) if w is not None else '?'}", node_flops(n)))
    return rows, flops(model)


def kernel_times(artifacts: list[str], threads: int, runs: int, block: int = 10) -> list[list[tuple[str, float]]]:
    """Per artifact, [(kernel name, seconds)] per call site in call order, VM builtins left out:
    each site's minimum over `runs` runs, the artifacts taking turns in blocks of `block` runs."""
    from edgec.artifact import load_artifact
    from edgec.reference import seeded_inputs
    from edgec.targets.tvm.execute import load

    loaded = []
    for path in artifacts:
        art = load_artifact(path)
        m = load(art, threads)
        feed = seeded_inputs(art.inputs, 0)
        m.run(feed)
        loaded.append((m, feed))
    best: list[list[tuple[str, float]] | None] = [None] * len(loaded)
    for start in range(0, runs, block):
        for i, (m, feed) in enumerate(loaded):
            got = [(n.split("(")[0], t) for n, t in m.profile(feed, min(block, runs - start))
                   if not n.startswith("vm.builtin")]
            best[i] = got if best[i] is None else [(n, min(t, u)) for (n, t), (_, u) in zip(best[i], got)]
    return best


def is_layer_kernel(name: str) -> bool:
    return "conv" in name or "matmul" in name or "dense" in name or "depthwise" in name


def layers_per_kernel(name: str) -> int:
    """ONNX layers one kernel computes: 2 for a depthwise conv fused with its 1x1 conv."""
    return 2 if "depthwise_pointwise" in name else 1


def match_layers(flops_rows, kernels) -> list[tuple[str, int, str, float]] | None:
    """[(layers' description, their FLOPs, kernel name, seconds)] in order, or None when the
    kernels do not cover the layers exactly."""
    out, i = [], 0
    for k, t in kernels:
        n = layers_per_kernel(k)
        part = flops_rows[i:i + n]
        if len(part) < n:
            return None
        out.append((" + ".join(d for d, _ in part), sum(f for _, f in part), k, t))
        i += n
    return out if i == len(flops_rows) else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("original")
    ap.add_argument("pruned")
    ap.add_argument("--artifacts", nargs=2, metavar=("ORIG_ART", "PRUNED_ART"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--block", type=int, default=10, help="runs per turn of each model (default 10)")
    ap.add_argument("--top", type=int, default=8)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="prune-layers-") as d:  # the compiled artifacts, unless given
        arts = a.artifacts
        if not arts:
            import edgec

            arts = [str(edgec.compile(p, output=Path(d) / n, threads=a.threads).path)
                    for n, p in (("original", a.original), ("pruned", a.pruned))]
        ka, kb = kernel_times(list(arts), a.threads, a.runs, a.block)
    (fa, total_a), (fb, total_b) = layer_flops(a.original), layer_flops(a.pruned)
    ma, mb = (match_layers(f, [k for k in ks if is_layer_kernel(k[0])]) for f, ks in ((fa, ka), (fb, kb)))
    if ma is None or mb is None or len(ma) != len(mb):
        print(f"cannot match layers to kernels: {len(fa)} / {len(fb)} ONNX layers")
        return 1
    other_a = sum(t for k, t in ka if not is_layer_kernel(k))
    other_b = sum(t for k, t in kb if not is_layer_kernel(k))
    tot_a, tot_b = sum(t for _, t in ka), sum(t for _, t in kb)
    F = total_b / total_a
    print(f"{a.threads} thread(s), per-call minimum of {a.runs} runs (the models alternating every {a.block})")
    print("| # | pruned layer | kernel | ms (orig -> pruned) | time ratio | FLOPs ratio | GFLOP/s (orig -> pruned) |")
    print("|---|---|---|---|---|---|---|")
    ideal, pull, whole, depthwise = other_a, [], [0.0, 0.0], [0.0, 0.0]  # [original time, proportional]
    for i, ((_, f0, k, t0), (desc, f1, _, t1)) in enumerate(zip(ma, mb)):
        r = f1 / f0 if f0 else 1.0
        ideal += t0 * r
        pull.append((t0 * (r - F) / tot_a, i, desc))
        # a fused depthwise + 1x1 kernel counts with neither bound group unless left whole
        group = whole if r == 1.0 else depthwise if desc.startswith("Conv [") and desc.split(", ")[1] == "1" \
            and "+" not in desc else None
        if group is not None:
            group[0] += t0
            group[1] += t0 * r
        print(f"| {i} | {desc} | {k[:32]} | {t0 * 1e3:.3f} -> {t1 * 1e3:.3f} | {t1 / t0:.2f} | {r:.2f} | "
              f"{f0 / t0 / 1e9:.0f} -> {f1 / t1 / 1e9:.0f} |")
    pull.append((other_a * (1 - F) / tot_a, -1, "other kernels (layout, pooling, ...)"))
    print(f"\nother kernels {other_a * 1e3:.3f} -> {other_b * 1e3:.3f} ms; all kernels {tot_a * 1e3:.3f} -> "
          f"{tot_b * 1e3:.3f} ms")
    print(f"latency ratio: measured {tot_b / tot_a:.3f}, per-layer-proportional {ideal / tot_a:.3f}, FLOPs {F:.3f}")
    free = (ideal - whole[1]) / (tot_a - whole[0])
    print(f"bounds: per-layer-proportional with the layers left whole taking no time {free:.3f}; "
          f"with the depthwise convs too {(ideal - whole[1] - depthwise[1]) / (tot_a - whole[0] - depthwise[0]):.3f}")
    print("layers pulling the ratio above the FLOPs ratio (time share x (own FLOPs ratio - model's)):")
    for p, i, desc in sorted(pull, reverse=True)[:a.top]:
        print(f"  {p:+.4f}  #{i} {desc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
