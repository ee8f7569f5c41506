"""`edgec inspect`, `edgec passes`, `edgec targets`: what a model, the pass registry and the
target registry hold."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("model", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(model, as_json):
    """Print MODEL's op histogram, parameters, FLOPs and I/O."""
    from edgec.infra.manager import PassManager
    from edgec.infra.pipeline import parse_pipeline
    from edgec.ir import (
        flops,
        graph_inputs,
        graph_outputs,
        load_model,
        op_histogram,
        parameter_count,
    )

    m = load_model(model)
    m = PassManager(parse_pipeline("infer-shapes"), fixpoint=False).run(m).model  # shapes for FLOP counts
    info = {
        "file": model, "opsets": dict(m.opset_imports), "producer": m.producer_name or "",
        "inputs": [t.to_json() for t in graph_inputs(m)], "outputs": [t.to_json() for t in graph_outputs(m)],
        "nodes": sum(op_histogram(m).values()), "parameters": parameter_count(m), "flops": flops(m),
        "ops": dict(op_histogram(m).most_common()),
    }
    # FLOPs count a symbolic dimension (a batch) as 1: per sample
    info["flops_symbolic_dims_as_1"] = any(not isinstance(d, int) for t in info["inputs"] for d in t["shape"] or [])
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{model}: {info['nodes']} nodes, {info['parameters']:,} parameters, {info['flops'] / 1e6:,.2f} MFLOP"
               + (" (symbolic dimensions counted as 1)" if info["flops_symbolic_dims_as_1"] else ""))
    opsets = ", ".join(f"{k or 'ai.onnx'}={v}" for k, v in info["opsets"].items())
    click.echo(f"opsets: {opsets}")
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            click.echo(f"{kind[:-1]:6s} {t['name']}: {t['dtype']}{t['shape']}")
    for op, n in info["ops"].items():
        click.echo(f"  {op:28s} {n}")


@click.command("passes")
@click.option("--plugin", "plugins", multiple=True, type=click.Path(), metavar="FILE.py",
              help="Also load @register_pass classes from this Python file (repeatable).")
def passes_cmd(plugins):
    """List the available passes (built-in, installed plugins, --plugin files) with their docs."""
    from edgec.infra.registry import default_registry, load_plugin_file

    for plugin in plugins:
        load_plugin_file(plugin)
    for name, cls in default_registry().items():
        opts = f"  {{{', '.join(f'{k}={v}' for k, v in cls.options.items())}}}" if cls.options else ""
        click.echo(f"{name:34s} {cls.summary()}{opts}")


@click.command("targets")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--board", "boards", multiple=True, type=click.Path(), metavar="FILE",
              help="Also check and list this board file (.toml / .json, docs/boards.md; repeatable).")
def targets_cmd(as_json, boards):
    """List the targets with their features: built-in, boards of installed packages (`edgec.targets`
    entry points) and --board files."""
    from edgec.targets.registry import all_targets, get_target

    ts = all_targets() + [get_target(b) for b in boards]
    if as_json:
        click.echo(json.dumps([{**t.to_json(), **({"source": t.source} if t.source else {})} for t in ts], indent=2))
        return
    for t in ts:
        origin = f"  [{t.source}]" if t.source else ""
        click.echo(f"{t.name:14s} {t.arch:8s} {','.join(t.features):34s} {t.description}{origin}")


@click.command("ops")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ops_cmd(as_json):
    """List the ops edgec lowers itself (targets/tvm/ops); any other ONNX op goes to TVM's ONNX
    importer, and `edgec compile` says how many nodes each took ("lowering: ...")."""
    from edgec.targets.tvm.ops import builtin_lowerings  # imports TVM

    ops = builtin_lowerings().ops()
    if as_json:
        click.echo(json.dumps(ops))
        return
    for op in ops:
        click.echo(op)
