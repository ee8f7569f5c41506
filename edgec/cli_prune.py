"""`edgec prune`: channel, unstructured or 2:4 pruning of an ONNX model (edgec/prune.py), and
`edgec compile --prune MODE[:RATIO]`."""

from __future__ import annotations

import json

import click

from edgec.prune import IMPORTANCE, MODES


def _pct(before: int, after: int) -> str:
    return f"{(after / before - 1) * 100:+.1f}%" if before else "n/a"


def _layer_ratios(items) -> dict[str, float]:
    """--layer-ratio NAME=R options, checked by the passes' own parser (one line, exit 2)."""
    from edgec.passes.pruning._common import layer_ratios

    return dict(layer_ratios(",".join(items)))


def print_report(rep: dict, top: int = 40) -> None:
    click.echo(f"  parameters {rep['params_before']:,} -> {rep['params_after']:,} ({_pct(rep['params_before'], rep['params_after'])}), "
               f"non-zero {rep['nonzero_before']:,} -> {rep['nonzero_after']:,} ({_pct(rep['nonzero_before'], rep['nonzero_after'])})")
    click.echo(f"  FLOPs {rep['flops_before']:,} -> {rep['flops_after']:,} ({_pct(rep['flops_before'], rep['flops_after'])}), "
               f"file {rep['bytes_before']:,} -> {rep['bytes_after']:,} bytes ({_pct(rep['bytes_before'], rep['bytes_after'])})")
    if rep["groups"]:
        click.echo(f"  {len(rep['groups'])} channel groups:")
        for g in rep["groups"][:top]:
            names = ", ".join(g["layers"][:4]) + (" ..." if len(g["layers"]) > 4 else "")
            what = (f"{g['channels']} -> {g['channels'] - g['pruned']} channels ({g['pruned']} of {g['units']} units)"
                    if g["pruned"] else f"kept: {g['reason']}")
            click.echo(f"    [{names}] {what}")
    for row in rep["layers"][:top]:
        if "shape_before" in row:
            click.echo(f"    {row['layer']} ({row['op']}): {row['weight']} {row['shape_before']} -> {row['shape_after']}")
        elif "reason" in row and "sparsity" not in row:
            click.echo(f"    {row['layer']}: {row['weight']} not pruned: {row['reason']}")
        else:
            why = f" ({row['reason']})" if "reason" in row else ""
            click.echo(f"    {row['layer']}: {row['weight']} {row['shape']} sparsity "
                       f"{row['sparsity_before']:.3f} -> {row['sparsity']:.3f}{why}")
    if len(rep["layers"]) > top:
        click.echo(f"    ... {len(rep['layers']) - top} more layers (--json for all)")
    lat = rep.get("latency")
    if lat:
        flops = rep["flops_after"] / rep["flops_before"] if rep["flops_before"] else float("nan")
        click.echo(f"  compiled latency ({lat['target']}, {lat['threads'] or 'all'} thread(s), median of {lat['runs']} "
                   f"runs each, alternating): {lat['original_ms']:.3f} -> {lat['pruned_ms']:.3f} ms "
                   f"(ratio {lat['ratio']:.3f}; FLOPs ratio {flops:.3f})")
    ag = rep.get("agreement") or {}
    acc = ag.get("accuracy")
    if acc:
        click.echo(f"  top-1 accuracy on {acc['samples']} labelled samples: original {acc['original']:.4f}, "
                   f"pruned {acc['pruned']:.4f}")
    for name, s in ag.get("outputs", {}).items():
        top1 = f", top-1 agreement {s['top1_agreement']:.4f}" if "top1_agreement" in s else ""
        bad = " MISMATCH (shape or NaN pattern differs)" if s["mismatch"] else ""
        click.echo(f"  output {name} vs the original ({ag['samples']} samples): cosine {s['cosine']:.4f}, "
                   f"SNR {s['snr_db']:.1f} dB, max abs {s['max_abs']:.3g}{top1}{bad}")


def compile_prune_option(f):
    """`edgec compile --prune MODE[:RATIO]` (the pruning pass before the pipeline)."""
    return click.option("--prune", "prune", default=None, metavar="MODE[:RATIO]",
                        help=f"Prune first ({', '.join(MODES)}; ratio default 0.3, as `edgec prune`), "
                             "then compile the pruned model.")(f)


def prune_settings(value: str | None) -> tuple | None:
    """(pass, options) for `CompileOptions.prune`, or None without --prune."""
    if value is None:
        return None
    from edgec.prune import parse_prune_spec

    return parse_prune_spec(value)


@click.command("prune")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Pruned .onnx to write.")
@click.option("--mode", type=click.Choice(list(MODES)), default="channel", show_default=True,
              help="channel: remove whole output channels and their consumers' inputs (smaller, faster model); "
                   "unstructured: zero |w| <= theta (same shapes); 2:4: keep 2 of every 4 weights along K.")
@click.option("--ratio", type=float, default=0.3, show_default=True,
              help="Fraction of channels (channel) or weights (unstructured) to remove, in [0, 1).")
@click.option("--threshold", type=float, default=None, help="unstructured: zero |w| <= THRESHOLD instead of a ratio.")
@click.option("--scope", type=click.Choice(["global", "layer"]), default="global", show_default=True,
              help="unstructured: one theta over all weights, or one per layer.")
@click.option("--importance", type=click.Choice(list(IMPORTANCE)), default="l1", show_default=True,
              help="channel: weight-row norm (l1/l2), BatchNormalization |scale| (bn), or measured contribution to "
                   "the next layers on --calibration-data (sensitivity).")
@click.option("--calibration-data", type=click.Path(), default=None,
              help="--importance sensitivity: .npy/.npz inputs or images (default: seeded random inputs).")
@click.option("--samples", type=click.IntRange(1), default=16, show_default=True)
@click.option("--preprocess", default="", help="For image folders (as `edgec quantize`).")
@click.option("--round-to", "round_to", type=click.IntRange(1), default=None,
              help="channel: keep a multiple of N channels per layer, the one nearest the asked count (not below 90% of it). 16 suits edgec's CPU targets (an AVX-512 block, "
                   "two AVX2 blocks, four NEON blocks: what `compile --prune` uses). Default 1.")
@click.option("--keep", multiple=True, metavar="NAMES",
              help="Node or weight names (comma-separated, globs) never pruned (repeatable).")
@click.option("--layer-ratio", "layer_ratio", multiple=True, metavar="NAME=R",
              help="A layer's own ratio (node or weight name or glob; repeatable).")
@click.option("--protect-ends/--no-protect-ends", default=True, show_default=True,
              help="Keep the first layers (reading a graph input) and the last ones (writing an output).")
@click.option("--report", is_flag=True, help="Parameters, FLOPs, file size before/after, per layer; output agreement.")
@click.option("--eval-data", type=click.Path(), default=None,
              help="--report: inputs (.npy/.npz or images) the outputs are compared on (default: seeded random).")
@click.option("--labels", type=click.Path(), default=None,
              help="--report with --eval-data: integer labels of the samples (.npy or text): top-1 accuracy of "
                   "both models.")
@click.option("--eval-samples", type=click.IntRange(1), default=8, show_default=True,
              help="--report: inputs the outputs are compared on.")
@click.option("--latency", is_flag=True,
              help="--report: compile both models for this machine and time them (alternating rounds, medians).")
@click.option("--threads", type=click.IntRange(1), default=None, help="--latency: runtime threads (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--seed", type=int, default=0, show_default=True)
def prune_cmd(model, out, mode, ratio, threshold, scope, importance, calibration_data, samples, preprocess, round_to, keep,
              layer_ratio, protect_ends, report, eval_data, labels, eval_samples, latency, threads, as_json, seed):
    """Prune MODEL: remove channels (smaller, faster) or zero weights (unstructured, 2:4)."""
    from edgec.output_paths import check_output_file
    from edgec.prune import PruneOptions, _load, agreement, prune_model, save

    if eval_data and not report:
        raise click.UsageError("--eval-data needs --report")
    if labels and not eval_data:
        raise click.UsageError("--labels needs --eval-data (and --report)")
    if (latency or threads) and not report:
        raise click.UsageError("--latency / --threads need --report")
    check_output_file(out, "pruned model", inputs=((model, "input model"),))
    keep_names = tuple(n for item in keep for n in item.split(",") if n.strip())
    o = PruneOptions(mode=mode, ratio=ratio, importance=importance, threshold=threshold, scope=scope, keep=keep_names,
                     layer_ratios=_layer_ratios(layer_ratio), protect_ends=protect_ends, round_to=round_to,
                     calibration_data=calibration_data, samples=samples, seed=seed, preprocess=preprocess)
    original = _load(model)
    pruned, rep = prune_model(original, o)
    save(pruned, out)
    if report:
        rep.agreement = agreement(original, pruned, eval_samples, seed, eval_data)
        if labels:
            from edgec.prune import accuracy

            rep.agreement["accuracy"] = accuracy(original, pruned, eval_data, labels, eval_samples)
        if latency:
            from edgec.prune_latency import compiled_latency

            rep.latency = compiled_latency(original, pruned, threads=threads)
    res = rep.to_json()
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    what = (f"{sum(g['pruned'] for g in res['groups'])} channel units removed in "
            f"{sum(1 for g in res['groups'] if g['pruned'])} of {len(res['groups'])} groups" if mode == "channel"
            else f"{sum(1 for r in res['layers'] if 'sparsity' in r and 'reason' not in r)} layers masked")
    click.echo(f"pruned {model} -> {out} ({mode}): {what}; parameters {_pct(res['params_before'], res['params_after'])}, "
               f"non-zero {_pct(res['nonzero_before'], res['nonzero_after'])}, FLOPs {_pct(res['flops_before'], res['flops_after'])}")
    if report:
        print_report(res)
