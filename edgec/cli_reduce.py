"""`edgec reduce`: the command (the reduction itself is edgec.reduce)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("reduce")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Minimal .onnx to write.")
@click.option("--target", "-t", default="x86-64", show_default=True, help="Target the failure shows on.")
@click.option("-O", "opt_level", type=click.IntRange(0, 3), default=2, show_default=True, help="Optimization level.")
@click.option("--passes", default=None, help="Pipeline text instead of the level's default.")
@click.option("--disable", multiple=True, metavar="PASS", help="Skip a pass of the pipeline (repeatable).")
@click.option("--plugin", "plugins", multiple=True, type=click.Path(), metavar="FILE.py",
              help="Load @register_pass classes from this Python file (repeatable).")
@click.option("--max-checks", type=click.IntRange(2), default=300, show_default=True,
              help="Budget: compile-and-compare checks in total (reduction and pipeline bisection).")
@click.option("--atol", type=float, default=1e-4, show_default=True, help="Absolute tolerance of the comparison.")
@click.option("--rtol", type=float, default=1e-4, show_default=True, help="Plus this times max|output|.")
@click.option("--isolate/--in-process", default=True, show_default=True,
              help="Run each check in a worker process, so native crashes and hangs reduce too.")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="With --isolate: seconds before a check counts as a hang.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def reduce_cmd(model, out, target, opt_level, passes, disable, plugins, max_checks, atol, rtol, isolate, timeout,
               quiet):
    """Shrink MODEL, which edgec compiles wrongly or crashes on, to a minimal model that fails the
    same way, and name the first pass that breaks it (or the backend)."""
    import onnx

    from edgec.infra.registry import load_plugin_file
    from edgec.ir.loader import load_proto
    from edgec.output_paths import check_output_file, write_file_atomic
    from edgec.reduce import ReduceOptions, reduce_model

    check_output_file(out, "reduced model", inputs=((model, "input model"),))  # before the (long) search
    for p in plugins:
        load_plugin_file(p)
    proto = load_proto(model)
    onnx.load_external_data_for_model(proto, str(Path(model).resolve().parent))  # candidates carry their weights
    opts = ReduceOptions(target=target, opt_level=opt_level, passes=passes,
                         disabled=tuple(d for item in disable for d in item.split(",") if d),
                         max_checks=max_checks, atol=atol, rtol=rtol, isolate=isolate, timeout=timeout,
                         plugins=tuple(str(Path(p).resolve()) for p in plugins))
    log = (lambda s: None) if quiet else (lambda s: click.echo(f"reduce: {s}", err=True))
    result = reduce_model(proto, opts, log)
    write_file_atomic(out, result.model.SerializeToString(), "reduced model")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    log(f"{result.checks} checks in {result.seconds:.1f} s")
    click.echo(result.line(out))
