"""The `edgec` command line. User errors: one line on stderr, exit 2. Internal errors: exit 1."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import click

from edgec import __version__
from edgec.cli_checks import lowering_summary, verify_summary
from edgec.cli_exit import (
    ENVIRONMENT_ERRNOS,
    EXIT_INTERNAL,
    EXIT_USER,
    internal,
    interrupted,
    os_error_line,
)
from edgec.cli_prune import compile_prune_option, prune_settings
from edgec.cli_quantize import compile_quantize_options, quantize_settings
from edgec.errors import EdgecError
from edgec.signals import INTERRUPTS, Interrupted


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgec")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.option("--cmake-dir", is_flag=True, is_eager=True, expose_value=False, callback=lambda ctx, param, value: (
    value and (click.echo(Path(__file__).parent / "cmake"), ctx.exit())),
    help="Print the directory of edgec's CMake package (find_package(edgec) with -Dedgec_DIR=...) and exit.")
@click.pass_context
def cli(ctx, debug):
    """edgec: compile ONNX models to fast, verified code for edge devices."""
    ctx.obj = {"debug": debug}


def _compile_options(target, passes, opt_level, input_shape, disable, verify, verify_allow_unrunnable, mcpu, mattr,
                     timing=False, dump_ir=None, max_tensor_bytes=4 << 30, io_layout="nchw", trace=None):
    from edgec.api import CompileOptions, parse_dim_bounds, parse_input_shapes
    from edgec.infra.instruments import DumpIR, Timing

    inst = []
    if timing:
        inst.append(Timing(sys.stderr))
    if dump_ir:
        inst.append(DumpIR(Path(dump_ir)))
    if trace is not None:
        inst.append(trace)
    return CompileOptions(target=target, passes=passes, opt_level=opt_level,
                          input_shapes=parse_input_shapes(input_shape),
                          disabled=tuple(d for item in disable for d in item.split(",") if d), verify=verify,
                          verify_allow_unrunnable=verify_allow_unrunnable,
                          instruments=inst, mcpu=mcpu, mattr=mattr, max_tensor_bytes=max_tensor_bytes,
                          io_layout=io_layout, plugins=_plugins(),
                          max_nodes=click.get_current_context().meta.get("edgec.max_nodes", 100_000),
                          symbolic_dims=click.get_current_context().meta.get("edgec.symbolic_dims", False)
                          or bool(click.get_current_context().meta.get("edgec.kv_cache")),
                          kv_cache=click.get_current_context().meta.get("edgec.kv_cache"),
                          dim_bounds=parse_dim_bounds(click.get_current_context().meta.get("edgec.dim_bounds", ())))


def _new_trace(enabled: bool):
    if not enabled:
        return None
    from edgec.rewrite import RewriteTrace

    return RewriteTrace()


def _print_trace(trace) -> None:
    if trace is not None:
        click.echo(trace.format(), err=True)


def _plugins(ctx=None, param=None, value=None) -> tuple[str, ...]:
    """--plugin's callback (records the files) and, without arguments, the files recorded."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is not None and value is not None:
        ctx.meta["edgec.plugins"] = tuple(value)
    return tuple(ctx.meta.get("edgec.plugins", ())) if ctx is not None else ()


_pipeline_opts = [
    click.option("--target", "-t", default="host", show_default=True, help="Target name (see `edgec targets`), a board file (board.toml / .json: docs/boards.md) or TVM target JSON."),
    click.option("--passes", default=None, help="Pipeline text, e.g. 'fold-constants,eliminate-dead-code'."),
    click.option("-O", "opt_level", type=click.IntRange(0, 3), default=2, show_default=True, help="Optimization level."),
    click.option("--input-shape", multiple=True, metavar="NAME=D0,D1,..", help="Fix a dynamic input shape."),
    click.option("--disable", multiple=True, metavar="PASS", help="Skip a pass of the pipeline (repeatable)."),
    click.option("--verify", is_flag=True,
                 help="Check outputs against onnxruntime after each pass that modified the graph, and the "
                      "compiled artifact where it can run here (ARM under qemu)."),
    click.option("--verify-allow-unrunnable", is_flag=True,
                 help="With --verify: count a pass whose output onnxruntime cannot run as unchecked instead of failing."),
    click.option("--mcpu", default=None,
                 help="Override the LLVM CPU of a CPU target; an unknown name for the target's triple is an error."),
    click.option("--mattr", default=None,
                 help="Override LLVM features, comma separated (+neon,+dotprod); unknown features are an error."),
    click.option("--timing", is_flag=True, help="Print each pass's time to stderr."),
    click.option("--dump-ir", type=click.Path(), default=None, metavar="DIR",
                 help="Write the model after each pass into DIR as NNN-pass.txt. DIR must be new, empty or an "
                      "earlier dump (its NNN-*.txt files are replaced); any other directory is refused."),
    click.option("--symbolic-dims", is_flag=True, expose_value=False,
                 callback=lambda ctx, param, value: ctx.meta.__setitem__("edgec.symbolic_dims", value),
                 help="Keep dynamic input dims symbolic (one artifact for every size; experimental) instead of "
                      "asking for --input-shape."),
    click.option("--dim", "dim_bounds", multiple=True, metavar="NAME=LO..HI", expose_value=False,
                 callback=lambda ctx, param, value: ctx.meta.__setitem__("edgec.dim_bounds", value),
                 help="With --symbolic-dims: sizes a symbolic dim may take (memory planning; runs outside are "
                      "refused)."),
    click.option("--kv-cache", type=click.IntRange(1), default=None, metavar="MAX", expose_value=False,
                 callback=lambda ctx, param, value: ctx.meta.__setitem__("edgec.kv_cache", value),
                 help="Decoders: past_key_values become KV-cache buffers of MAX rows that the caller allocates once "
                      "and the model writes in place; present.* outputs are dropped (implies --symbolic-dims)."),
    click.option("--max-nodes", type=click.IntRange(1), default=100_000, show_default=True, expose_value=False,
                 callback=lambda ctx, param, value: ctx.meta.__setitem__("edgec.max_nodes", value),
                 help="Reject models with more nodes than this, subgraphs included (graph-bomb guard)."),
    click.option("--max-tensor-bytes", type=click.IntRange(1), default=4 << 30, show_default=True,
                 help="Reject models declaring any tensor larger than this (memory-bomb guard)."),
    click.option("--io-layout", type=click.Choice(["nchw", "nhwc"]), default="nchw", show_default=True,
                 help="nhwc: to-nhwc also makes the graph's 4-D inputs/outputs NHWC (recorded in metadata)."),
    click.option("--trace-rewrites", is_flag=True, help="Print rewrite-rule hit counts and decline reasons to stderr."),
    click.option("--plugin", multiple=True, type=click.Path(), metavar="FILE.py", expose_value=False, callback=_plugins,
                 help="Load @register_pass classes from this Python file for the pipeline (repeatable)."),
]


def pipeline_options(f):
    for opt in reversed(_pipeline_opts):
        f = opt(f)
    return f


@cli.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(), default=None, help="Artifact directory to write (required).")
@click.option("--config", type=click.Path(dir_okay=False), default=None, is_eager=True, expose_value=False,
              callback=lambda ctx, param, value: __import__("edgec.config_file").config_file.use_config(ctx, param, value),
              help="Settings from a TOML file (edgec.toml, or [tool.edgec] of a pyproject.toml); options given "
                   "here override it (docs/build-systems.md).")
@pipeline_options
@click.option("--print-pipeline", is_flag=True, help="Print the pipeline text that will run, and exit.")
@click.option("--bundle/--no-bundle", default=None,
              help="Also write bundle/ (runner, C API, TVM runtime) [default: on for non-host architectures].")
@click.option("--report", type=click.Path(), default=None,
              help="Write an HTML report: per pass time, node counts, rules fired and where; op-count chart.")
@click.option("--records", type=click.Path(), default=None,
              help="Tuning records from `edgec tune`: kernels with a record use the recorded (faster) schedule.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Runtime threads the schedules are sized for; the default of run/bench [default: all cores].")
@click.option("--weights-file", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Store initializers >= 1 MiB (and repacked weights >= 64 KiB) in weights.bin beside the library, "
                   "mapped at run time (auto: when they total >= 512 MiB, or >= 16 MiB with --symbolic-dims; CPU "
                   "targets without a bundle).")
@click.option("--depfile", type=click.Path(), default=None, expose_value=False,
              callback=lambda ctx, param, value: ctx.meta.__setitem__("edgec.depfile", value),
              help="Write a Make/Ninja depfile: OUT/metadata.json depends on the model, its external data, "
                   "--records, plugins and calibration data (docs/build-systems.md).")
@click.option("--emit", default=None, metavar="KINDS", expose_value=False,
              callback=lambda ctx, param, value: ctx.meta.__setitem__("edgec.emit", value),
              help="What the artifact holds, comma separated from library,header,metadata,bundle,onnx (onnx: the "
                   "optimized model.onnx) [default: library,header,metadata, plus bundle for another architecture].")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, expose_value=False,
              callback=lambda ctx, param, value: ctx.meta.__setitem__("edgec.cache_dir", value),
              help="Compile cache directory [default: edgec's cache dir, $EDGEC_CACHE or ~/.cache/edgec]; "
                   "unchanged inputs and options reuse the artifact (docs/build-systems.md).")
@click.option("--no-cache", is_flag=True, expose_value=False,
              callback=lambda ctx, param, value: ctx.meta.__setitem__("edgec.no_cache", value),
              help="Neither read nor fill the compile cache.")
@compile_quantize_options
@compile_prune_option
def compile(model, out, target, passes, opt_level, input_shape, disable, verify, verify_allow_unrunnable, mcpu, mattr, timing, dump_ir,
            max_tensor_bytes, io_layout, trace_rewrites, print_pipeline, bundle, report, records, threads,
            weights_file, quantize, calibration_data, calibration_method, calibration_samples, group_size, prune):
    """Compile MODEL (.onnx) for a target into an artifact directory."""
    if print_pipeline:
        from edgec.pipelines import default_pipeline
        from edgec.targets.registry import get_target

        click.echo(passes if passes is not None else default_pipeline(get_target(target, mcpu, mattr), opt_level, io_layout))
        return
    if out is None:
        raise click.UsageError("Missing option '-o' / '--output'.")
    depfile = click.get_current_context().meta.get("edgec.depfile")
    if report or dump_ir or depfile:  # a careless path fails now, not after the compile
        from edgec.output_paths import check_output_file, check_outside

        for path, what in ((report, "report"), (dump_ir, "IR dump directory"), (depfile, "depfile")):
            if path:
                check_outside(path, what, out, "artifact directory")
        for path, what in ((report, "report"), (depfile, "depfile")):
            if path:
                check_output_file(path, what, inputs=((model, "input model"),))
    cache = _compile_cache(model, report or dump_ir or timing or trace_rewrites)
    if cache is not None and _cache_hit(cache, model, out, depfile, records, calibration_data, target):
        return
    from edgec.api import compile_model

    trace = _new_trace(trace_rewrites)
    opts = _compile_options(target, passes, opt_level, input_shape, disable, verify, verify_allow_unrunnable, mcpu, mattr, timing, dump_ir,
                            max_tensor_bytes, io_layout, trace)
    opts.bundle = bundle
    emit = click.get_current_context().meta.get("edgec.emit")
    opts.emit = frozenset(k.strip() for k in emit.split(",") if k.strip()) if emit is not None else None
    opts.records, opts.threads, opts.weights_file = records, threads, weights_file
    opts.quantize = quantize_settings(quantize, calibration_data, calibration_method, calibration_samples, group_size)
    opts.prune = prune_settings(prune)
    art = compile_model(model, out, opts)
    _print_trace(trace)
    if cache is not None:
        cache[0].store(cache[1], art.path, model)
    if depfile:
        from edgec.depfile import compile_dependencies, write_depfile

        write_depfile(depfile, Path(out) / "metadata.json",
                      compile_dependencies(model, records, _plugins(), calibration_data,
                                           config=click.get_current_context().meta.get("edgec.config"), target=target))
    if report:
        from edgec.report import write_report

        write_report(report, art.metadata, art.build_info)
    m = art.metadata
    p = m["pipeline"]
    weights = f", {len(m['weights']['tensors'])} weights in {m['weights']['file']}" if m.get("weights") else ""
    click.echo(f"compiled {model} for {m['target']['name']} -> {art.path} "
               f"({p['nodes_before']} -> {p['nodes_after']} nodes; library {m['library']}{weights})")
    click.echo(lowering_summary(m["lowering"]))
    if verify:
        click.echo(verify_summary(p))
    rec = m["lowering"].get("records")
    if rec:
        total = sum(m["lowering"].get("schedules", {}).values()) + rec["applied"]
        click.echo(f"records {rec['file']}: {rec['applied']} of {total} kernels from records "
                   f"({rec['tuned']} tuned, {rec.get('knobs', 0)} rule with tuned knobs, "
                   f"{rec['rule']} rule schedule was faster)"
                   + (f"; {rec['failed']} stale record(s) ignored" if rec["failed"] else ""))


def _compile_cache(model, runs_the_pipeline) -> tuple | None:
    """(CompileCache, key) unless --no-cache, EDGEC_COMPILE_CACHE=off without --cache-dir, or an
    option that asks for the pipeline's own output (--report, --dump-ir, --timing, --trace-rewrites)."""
    ctx = click.get_current_context()
    cache_dir = ctx.meta.get("edgec.cache_dir")
    if ctx.meta.get("edgec.no_cache") or runs_the_pipeline or not os.path.isfile(model):
        return None
    if cache_dir is None and os.environ.get("EDGEC_COMPILE_CACHE", "").lower() in ("off", "0", "no"):
        return None
    from edgec.compile_cache import CompileCache, cli_key

    key, _ = cli_key(ctx.params, ctx.meta)
    return CompileCache(cache_dir), key


def _cache_hit(cache, model, out, depfile, records, calibration_data, target) -> bool:
    """Copy a cached artifact to `out` (and write the depfile) when there is one; report it."""
    import time

    from edgec.compile_cache import copy_artifact

    t0 = time.perf_counter()
    hit = cache[0].lookup(cache[1], model)
    if hit is None:
        return False
    src, external = hit
    copy_artifact(src, out, model)
    if depfile:
        from edgec.depfile import compile_dependencies, write_depfile

        write_depfile(depfile, Path(out) / "metadata.json",
                      compile_dependencies(model, records, _plugins(), calibration_data, external,
                                           config=click.get_current_context().meta.get("edgec.config"), target=target))
    click.echo(f"compiled {model} -> {out} (cache hit {cache[1][:12]} in {cache[0].root}, "
               f"{(time.perf_counter() - t0) * 1e3:.0f} ms)")
    return True


def _duration(text: str | None) -> float | None:
    """'90', '90s', '20m', '1h', '1h30m' -> seconds."""
    import re

    from edgec.errors import EdgecError

    if text is None:
        return None
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or parts is None or not any(parts.groups()):
        raise EdgecError(f"--time-budget '{text}' must look like 90s, 20m or 1h30m")
    h, m, sec = (float(x) if x else 0.0 for x in parts.groups())
    return h * 3600 + m * 60 + sec


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--records", required=True, type=click.Path(), help="Records file to write; an existing one is resumed.")
@click.option("--trials", type=click.IntRange(0), default=64, show_default=True,
              help="New measurements in total, split over the kernels by FLOPs.")
@click.option("--time-budget", default=None, metavar="DURATION", help="Stop after this long (90s, 20m, 1h); resumable.")
@click.option("--space", type=click.Choice(["metaschedule", "knobs"]), default="metaschedule", show_default=True,
              help="knobs: time the rule schedules' own settings (tile shapes, parallel grain) per kernel; "
                   "metaschedule: MetaSchedule's generic search seeded with the rule schedules.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the search.")
@click.option("--threads", type=click.IntRange(1), default=None, help="Threads of the timed kernels [default: all cores].")
@click.option("--rpc-tracker", default=None, metavar="HOST:PORT", help="Time on devices registered with this TVM RPC tracker.")
@click.option("--rpc-key", default=None, help="Device key of the RPC servers to use (with --rpc-tracker).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pipeline_options
def tune(model, records, trials, time_budget, space, seed, threads, rpc_tracker, rpc_key, as_json, target, passes, opt_level,
         input_shape, disable, verify, verify_allow_unrunnable, mcpu, mattr, timing, dump_ir, max_tensor_bytes, io_layout, trace_rewrites):
    """Tune MODEL's kernels on top of edgec's rule schedules (the rules' own knobs, or MetaSchedule);
    write a records file for `edgec compile --records`."""
    from edgec.api import TuneOptions, tune_model
    from edgec.targets.tvm.tune.records import check_records_output

    budget = _duration(time_budget)
    check_records_output(records, inputs=((model, "input model"),))
    opts = _compile_options(target, passes, opt_level, input_shape, disable, verify, verify_allow_unrunnable, mcpu, mattr, timing, dump_ir,
                            max_tensor_bytes, io_layout)
    summary = tune_model(model, opts, TuneOptions(records=records, trials=trials, time_budget_s=budget, seed=seed,
                                                  space=space, threads=threads, rpc_tracker=rpc_tracker, rpc_key=rpc_key))
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"tuned {model}: {summary['tasks']} tasks, {summary['trials_run']} new trials "
               f"({summary['skipped']} task(s) already done) -> {records}")


@cli.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Optimized .onnx to write.")
@pipeline_options
def optimize(model, out, target, passes, opt_level, input_shape, disable, verify, verify_allow_unrunnable, mcpu, mattr, timing, dump_ir,
             max_tensor_bytes, io_layout, trace_rewrites):
    """Run the pass pipeline on MODEL and write the optimized ONNX graph."""
    from edgec.api import optimize_to_file
    from edgec.output_paths import check_output_file, output_error

    check_output_file(out, "optimized model", inputs=((model, "input model"),))
    trace = _new_trace(trace_rewrites)
    opts = _compile_options(target, passes, opt_level, input_shape, disable, verify, verify_allow_unrunnable, mcpu, mattr, timing, dump_ir,
                            max_tensor_bytes, io_layout, trace)
    try:
        info = optimize_to_file(model, out, opts)
    except OSError as e:  # writing beside `out` (ENOSPC, ...): name the user's path
        if e.filename and Path(e.filename).resolve().parent == Path(out).resolve().parent:
            raise output_error(e, out, "optimized model") from None
        raise
    _print_trace(trace)
    click.echo(f"optimized {model} -> {out} ({info['nodes_before']} -> {info['nodes_after']} nodes)")


# the other commands live beside their helpers: edgec/cli_<module>.py, command object <name>
for _module, _names in (("info", ("inspect", "passes_cmd", "targets_cmd", "ops_cmd")), ("reduce", ("reduce_cmd",)),
                        ("quantize", ("quantize_cmd",)), ("distill", ("distill_cmd",)), ("generate", ("generate_cmd",)),
                        ("prune", ("prune_cmd",)), ("run", ("run", "bench"))):
    for _name in _names:
        cli.add_command(getattr(__import__(f"edgec.cli_{_module}", fromlist=[_name]), _name))


def main(argv=None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    INTERRUPTS.install()
    try:
        cli.main(args=argv, prog_name="edgec", standalone_mode=False)
        INTERRUPTS.raise_if_seen()  # a library swallowed the KeyboardInterrupt
    except click.exceptions.Abort as e:  # click's wrapper of a KeyboardInterrupt
        interrupted(e.__cause__)
    except click.ClickException as e:
        click.echo(f"edgec: error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(EXIT_USER)
    except EdgecError as e:
        if debug:
            traceback.print_exc()
        kind = "internal error" if e.exit_code == EXIT_INTERNAL else "error"
        click.echo(f"edgec: {kind}: {e.one_line()}", err=True)
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, Interrupted) as e:
        interrupted(e)
    except SystemExit:
        raise
    except OSError as e:
        if debug:
            traceback.print_exc()
        if e.errno in ENVIRONMENT_ERRNOS:
            click.echo(f"edgec: error: {' '.join(os_error_line(e).split())}", err=True)
            sys.exit(EXIT_USER)
        internal(e)
    except BaseException as e:  # internal error
        if debug:
            traceback.print_exc()
        internal(e)


if __name__ == "__main__":
    main()
