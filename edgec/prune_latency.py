"""`edgec prune --report --latency`: the compiled latency of the original and the pruned model.

Both models are compiled for `target` (a host-architecture target: they are timed here) with the
default pipeline into a temporary directory, then timed in `rounds` alternating rounds of `repeat`
runs each (original, pruned, original, ...: a machine that slows down during the measurement
slows both), on the same seeded inputs. The figures are the medians over all runs and the ratio
pruned / original, printed beside the FLOPs ratio: channel pruning pays off when the latency
ratio is at or below the FLOPs ratio. A thorough comparison (separate processes, onnxruntime in
the same run) is benchmarks/bench_prune.py."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import onnx


def compiled_latency(original: onnx.ModelProto, pruned: onnx.ModelProto, target: str = "host",
                     threads: int | None = None, rounds: int = 3, repeat: int = 20, warmup: int = 3) -> dict:
    """{"target", "threads", "runs", "original_ms", "pruned_ms", "ratio"} (medians, milliseconds)."""
    import edgec

    with tempfile.TemporaryDirectory(prefix="edgec-prune-latency-") as d:
        arts = [edgec.compile(m, target, output=Path(d) / name, threads=threads)
                for name, m in (("original", original), ("pruned", pruned))]
        times: list[list[float]] = [[], []]
        for _ in range(rounds):
            for i, art in enumerate(arts):
                times[i] += art.bench(repeat=repeat, warmup=warmup, threads=threads)
    orig_ms, pruned_ms = (1e3 * statistics.median(t) for t in times)
    return {"target": target, "threads": threads, "runs": rounds * repeat, "original_ms": orig_ms,
            "pruned_ms": pruned_ms, "ratio": pruned_ms / orig_ms}
