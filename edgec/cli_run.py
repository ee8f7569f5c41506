"""`edgec run` and `edgec bench`: an artifact on inputs (given, or seeded random), its outputs
compared with onnxruntime on request; its latency over repeated runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from edgec.cli_checks import compare_with_onnx
from edgec.cli_exit import EXIT_MISMATCH
from edgec.tensor_files import load_tensor_arg, save_npz_atomic, summarize


@click.command()
@click.argument("artifact", type=click.Path())
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=FILE", help="Input tensor (.npy or TensorProto .pb).")
@click.option("--output", "out", type=click.Path(), default=None, help="Save all outputs to this .npz file.")
@click.option("--compare-onnx", type=click.Path(), default=None, help="Compare outputs with onnxruntime on this model.")
@click.option("--atol", type=float, default=1e-4, show_default=True,
              help="Max abs error accepted by --compare-onnx (exit 3 above it).")
@click.option("--rtol", type=float, default=0.0, show_default=True,
              help="Plus this times max|reference| per output.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random inputs when none are given.")
@click.option("--threads", type=click.IntRange(1), default=None, help="Runtime threads (default: all cores).")
@click.option("--dim", "dims", multiple=True, metavar="NAME=N",
              help="Size of a symbolic input dim for the random inputs (default 1).")
def run(artifact, inputs, out, compare_onnx, atol, rtol, seed, threads, dims):
    """Run a compiled ARTIFACT on inputs (seeded random ones when none are given)."""
    from edgec.artifact import load_artifact
    from edgec.artifact_run import run_artifact
    from edgec.reference import seeded_inputs

    if out:  # before running: the inputs, the model and the artifact's files are never overwritten
        from edgec.output_paths import check_output_file

        art_dir = Path(artifact)
        mine = [(s.split("=", 1)[1], "input") for s in inputs if "=" in s] + [(compare_onnx, "model")]
        mine += [(f, "artifact file") for f in art_dir.rglob("*") if f.is_file()] if art_dir.is_dir() else []
        check_output_file(out, "outputs file", inputs=mine)
    art = load_artifact(artifact)
    from edgec.artifact_run import symbolic_dims

    sizes = symbolic_dims(art, parse_dims(dims))
    feed = dict(load_tensor_arg(s) for s in inputs) if inputs else seeded_inputs(art.inputs, seed, dims=sizes)
    if not inputs:
        click.echo(f"inputs: seeded random (seed {seed})")
    outputs = run_artifact(art, feed, threads)
    for name, a in outputs.items():
        click.echo(summarize(name, a))
    if out:
        save_npz_atomic(out, outputs)
        click.echo(f"saved {len(outputs)} output(s) to {out}")
    if compare_onnx:
        if not compare_with_onnx(compare_onnx, feed, outputs, atol, rtol,
                                 (art.metadata.get("pipeline") or {}).get("io_layout")):
            sys.exit(EXIT_MISMATCH)


@click.command()
@click.argument("artifact", type=click.Path())
@click.option("--repeat", "-n", type=click.IntRange(1), default=50, show_default=True, help="Timed runs.")
@click.option("--warmup", type=click.IntRange(0), default=5, show_default=True, help="Untimed runs first.")
@click.option("--threads", type=click.IntRange(1), default=None, help="Runtime threads (default: all cores).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the random inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=N", help="Size of a symbolic input dim (default 1).")
def bench(artifact, repeat, warmup, threads, seed, as_json, dims):
    """Time a host-architecture ARTIFACT: median / p90 / min latency over --repeat runs."""
    from edgec.artifact import load_artifact
    from edgec.artifact_run import bench_artifact

    art = load_artifact(artifact)
    times = np.array(bench_artifact(art, warmup, repeat, threads, seed, parse_dims(dims))) * 1e3
    stats = {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
             "min_ms": float(times.min()), "runs": repeat, "warmup": warmup, "threads": threads}
    if as_json:
        click.echo(json.dumps(stats))
        return
    click.echo(f"{art.path} ({art.target['name']}): median {stats['median_ms']:.3f} ms, "
               f"p90 {stats['p90_ms']:.3f} ms, min {stats['min_ms']:.3f} ms over {repeat} runs")


def parse_dims(items: tuple[str, ...]) -> dict[str, int]:
    """`--dim NAME=N` options -> {NAME: N} (N >= 0)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise click.BadParameter(f"expected NAME=N with N a non-negative integer, got '{item}'", param_hint="--dim")
        out[name] = int(value)
    return out
