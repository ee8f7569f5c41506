"""Python API: the same operations as the CLI (compile, optimize, run)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx_ir as ir

from edgec import __version__
from edgec.artifact import (
    FORMAT,
    Artifact,
    host_info,
    load_artifact,
    package_versions,
    sha256_file,
    write_metadata,
)
from edgec.artifact_run import run_artifact
from edgec.atomic_output import atomic_directory, check_destination
from edgec.c_header import c_header
from edgec.errors import PipelineError
from edgec.infra.context import PassContext
from edgec.infra.instruments import Statistics
from edgec.infra.manager import PassManager
from edgec.infra.pipeline import parse_pipeline
from edgec.infra.verify import VerifyAgainstOnnxRuntime
from edgec.ir.analysis import TensorInfo, graph_inputs, graph_outputs, node_count, op_histogram
from edgec.ir.loader import load_model, save_model
from edgec.pipelines import default_pipeline
from edgec.targets.registry import TargetSpec, get_target
from edgec.weights import AUTO_SYMBOLIC_BYTES, AUTO_TOTAL_BYTES, MIN_TENSOR_BYTES, initializer_bytes


@dataclass
class CompileOptions:
    target: str = "host"
    passes: str | None = None           # pipeline text; None = the target's default for opt_level
    opt_level: int = 2
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    disabled: tuple[str, ...] = ()
    verify: bool = False
    verify_allow_unrunnable: bool = False  # --verify: count passes onnxruntime cannot run instead of failing
    verify_tolerance: tuple[float, float] = (1e-4, 1e-4)  # --verify: atol, rtol (x max|output|)
    instruments: list = field(default_factory=list)
    mcpu: str | None = None
    mattr: str | None = None
    max_tensor_bytes: int = 4 << 30
    max_nodes: int = 100_000            # graph-bomb guard: nodes in the model, subgraphs included
    symbolic_dims: bool = False         # dynamic input dims stay symbolic (experimental: the fuzzer still breaks it)
    dim_bounds: dict[str, tuple[int, int]] = field(default_factory=dict)  # --dim NAME=LO..HI (symbolic dims only)
    bundle: bool | None = None          # None: bundle when the target is not this host's architecture
    io_layout: str = "nchw"             # "nhwc": to-nhwc also makes 4-D graph inputs/outputs NHWC
    records: str | None = None          # tuning-records file from `edgec tune` (applied where keys match)
    threads: int | None = None          # runtime threads: sizes the schedules, default for run/bench
    weights_file: str = "auto"          # big initializers in weights.bin: "auto" (api.weight_min_bytes), "always", "never"
    plugins: tuple[str, ...] = ()       # single-file pass plugins (--plugin FILE.py), loaded before parsing the pipeline
    quantize: tuple | None = None       # (pass, options) from edgec.quantize.quantize_options: runs before the pipeline
    kv_cache: int | None = None         # --kv-cache MAX: decoder caches as buffers written in place (kv-cache-in-place)
    prune: tuple | None = None          # (pass, options) from edgec.prune.prune_options: runs first (before quantize)
    emit: frozenset[str] | None = None  # --emit: files beside the library and metadata (EMITS); None: header (+ bundle)


@dataclass
class TuneOptions:
    records: str = "tuning.json"        # written and resumed from
    trials: int = 64                    # total new measurements, split over tasks by FLOPs
    time_budget_s: float | None = None  # stop (resumably) after this long
    seed: int = 0
    space: str = "metaschedule"         # "knobs": search the rule schedules' own knobs instead
    threads: int | None = None          # threads of the timed kernels (local runner) and schedules
    rpc_tracker: str | None = None      # "host:port": time on a device behind a TVM RPC tracker
    rpc_key: str | None = None


def parse_dim_bounds(items) -> dict[str, tuple[int, int]]:
    """`--dim NAME=LO..HI` options -> {NAME: (LO, HI)} with 0 <= LO <= HI."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        lo, dots, hi = value.partition("..")
        if not sep or not name or not dots or not lo.strip().isdigit() or not hi.strip().isdigit() or int(lo) > int(hi):
            raise PipelineError(f"--dim: expected NAME=LO..HI with 0 <= LO <= HI, got '{item}'")
        out[name] = (int(lo), int(hi))
    return out


def parse_input_shapes(items: tuple[str, ...] | list[str]) -> dict[str, list[int]]:
    from edgec.errors import PipelineError

    out = {}
    for item in items:
        if "=" not in item:
            raise PipelineError(f"--input-shape '{item}' must look like name=1,3,224,224")
        name, dims = item.rsplit("=", 1)
        try:
            out[name] = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            raise PipelineError(f"--input-shape '{item}': dimensions must be integers") from None
    return out


def optimize(model: ir.Model, spec: TargetSpec | None, opts: CompileOptions,
             pass_options: dict[str, dict] | None = None) -> tuple[ir.Model, dict]:
    """Run the pipeline; `pass_options` ({pass name: options}) reach passes through the context
    (values the pipeline text cannot hold: paths, name lists)."""
    from edgec.infra.registry import load_plugin_file

    for plugin in opts.plugins:
        load_plugin_file(plugin)
    text = opts.passes if opts.passes is not None else default_pipeline(spec, opts.opt_level, opts.io_layout)
    if opts.quantize is not None:
        from edgec.quantize import BEFORE, PREPARE

        qpass, qopts = opts.quantize
        text = f"fix-input-shapes,{PREPARE},{BEFORE.get(qpass, '')}{qpass},{text}"
        pass_options = {**(pass_options or {}), qpass: qopts}
    if opts.kv_cache:
        if opts.verify:  # the pass changes the interface (cache buffers in, no presents out)
            raise PipelineError("--verify compares each pass on the model's own interface, which --kv-cache "
                                "changes; verify the compile without --kv-cache, and check the in-place artifact's "
                                "decode loop with benchmarks/llm_decode_check.py --kv-cache MAX")
        text = f"{text},kv-cache-in-place,eliminate-dead-code"
        pass_options = {**(pass_options or {}), "kv-cache-in-place": {"max_length": int(opts.kv_cache)}}
    if opts.prune is not None:
        from edgec.prune import PREPARE as PRUNE_PREPARE

        ppass, popts = opts.prune
        text = f"fix-input-shapes,{PRUNE_PREPARE},{ppass},infer-shapes,{text}"
        if ppass == "prune-channels" and "round_to" not in popts and spec is not None and spec.is_cpu:
            popts = {**popts, "round_to": spec.prune_channel_multiple}  # channel counts the conv tiles divide
        pass_options = {**(pass_options or {}), ppass: popts}
    pipeline = parse_pipeline(text)
    if opts.io_layout == "nhwc" and not any(p.name == "to-nhwc" for p in pipeline.passes):
        raise PipelineError("--io-layout nhwc needs the to-nhwc pass in the pipeline")
    if opts.input_shapes and not any(p.name == "fix-input-shapes" for p in pipeline.passes):
        raise PipelineError("--input-shape needs the fix-input-shapes pass in the pipeline (it would be ignored)")
    stats = Statistics()
    instruments = [stats, *opts.instruments]
    verifier = None
    if opts.verify:
        verifier = VerifyAgainstOnnxRuntime(*opts.verify_tolerance, allow_unrunnable=opts.verify_allow_unrunnable)
        instruments.append(verifier)
    options = {"fix-input-shapes": {"shapes": opts.input_shapes}} if opts.input_shapes else {}
    if opts.io_layout != "nchw":
        options["to-nhwc"] = {"io_layout": opts.io_layout}
    if spec is not None and spec.is_cpu:
        options["pad-channels"] = {"block": max(int(spec.vector_bits) // 32, 1)}
        options["decompose-rnn"] = {"native": True}  # the CPU backend runs LSTM/GRU/RNN as one kernel
    for name, extra in (pass_options or {}).items():
        options.setdefault(name, {}).update(extra)
    ctx = PassContext(disabled=frozenset(opts.disabled), options=options, instruments=instruments,
                      max_tensor_bytes=opts.max_tensor_bytes)
    nodes_before, ops_before = node_count(model), op_histogram(model)
    model = PassManager(pipeline).run(model, ctx).model
    info = {
        "text": pipeline.text(), "opt_level": opts.opt_level, "disabled": sorted(opts.disabled),
        "nodes_before": nodes_before, "nodes_after": node_count(model),
        "ops_before": dict(ops_before.most_common()), "ops_after": dict(op_histogram(model).most_common()),
        "io_layout": json.loads(model.metadata_props.get("edgec.io_layout", "{}")),
        "passes": [r.to_json() for r in stats.records],
        "_pass_seconds": [round(r.seconds, 6) for r in stats.records],  # popped: build info, not artifact bytes
    }
    if verifier is not None:
        info["verified_passes"] = verifier.checked
        info["verify_skipped"] = verifier.skipped
        info["verify_rebaselined"] = verifier.rebaselined
        info["verify_in_steps"] = bool(verifier.quant_atol)
        info["verify_unrunnable_from"] = verifier.unrunnable_by_design
        info["_verifier"] = verifier  # popped by compile_model, which also checks the artifact
    return model, info


def optimize_file(model_path: str | os.PathLike, spec: TargetSpec | None, opts: CompileOptions) -> tuple[ir.Model, dict]:
    """`optimize` of the model in a file; a calibration that onnxruntime cannot run is blamed on
    the model only when onnxruntime cannot run the file either (`blame_calibration`)."""
    model = load_model(model_path, max_tensor_bytes=opts.max_tensor_bytes, max_nodes=opts.max_nodes)
    if opts.quantize is None:
        return optimize(model, spec, opts)
    from edgec.quantize import blame_calibration

    with blame_calibration(model_path):
        return optimize(model, spec, opts)


def compile_model(model_path: str | os.PathLike, out_dir: str | os.PathLike, opts: CompileOptions) -> Artifact:
    spec = get_target(opts.target, opts.mcpu, opts.mattr)
    if opts.quantize is not None:
        from edgec.quantize import check_target

        check_target(opts.quantize, spec)
    if opts.dim_bounds and not opts.symbolic_dims:
        raise PipelineError("--dim NAME=LO..HI bounds a symbolic dim: it needs --symbolic-dims")
    if opts.kv_cache and not opts.symbolic_dims:
        raise PipelineError("--kv-cache needs symbolic dims (symbolic_dims=True): the past and new lengths vary per call")
    check_destination(out_dir, [model_path])  # before any work: a careless -o is refused at once
    model, pipeline_info = optimize_file(model_path, spec, opts)
    verifier = pipeline_info.pop("_verifier", None)
    t0 = time.perf_counter()
    build = {"pass_seconds": pipeline_info.pop("_pass_seconds", [])}
    from edgec.targets.tvm.backend import compile_to, make_bundle  # heavy: imports tvm
    from edgec.targets.tvm.emulate import host_arch

    inputs, outputs = graph_inputs(model), graph_outputs(model)
    emit = emitted(opts, spec.arch != host_arch())
    bundle = "bundle" in emit
    weight_min = weight_min_bytes(model, spec, opts.weights_file, opts.symbolic_dims)
    with atomic_directory(out_dir, [model_path]) as tmp:
        if "onnx" in emit:  # as the pipeline left it, before lowering reads it
            save_model(model, tmp / "model.onnx")
        result = compile_to(model, spec, tmp, records=opts.records, threads=opts.threads, weight_min_bytes=weight_min,
                            symbolic=opts.symbolic_dims, dim_bounds=opts.dim_bounds)
        outputs = compiled_outputs(outputs, result.output_shapes,
                                   {v.name for v in model.graph.outputs if v.shape is None})
        meta = {
            "format": FORMAT,
            "model": {"file": os.path.basename(str(model_path)), "sha256": sha256_file(model_path),
                      "graph": model.graph.name or "", "weight_bytes": initializer_bytes(model)},
            "target": {**spec.to_json(), "tvm_target": result.tvm_target},
            "library": result.library,
            "runtime_files": list(result.extra_files),
            "inputs": [t.to_json() for t in inputs],
            "outputs": [t.to_json() for t in outputs],
            "pipeline": pipeline_info,
            "lowering": result.lowering,
            "runtime": {"threads": opts.threads},
            **({"dim_bounds": {k: list(v) for k, v in sorted(opts.dim_bounds.items())}} if opts.dim_bounds else {}),
            **({"weights": result.weights} if result.weights else {}),
            **({"kv_cache": kv_cache_metadata(model)} if opts.kv_cache else {}),
            "versions": {**package_versions(), "edgec": __version__},
        }
        if "header" in emit:
            (tmp / "model.h").write_text(c_header(Path(model_path).stem, inputs, outputs))
        if bundle and spec.is_cpu:
            make_bundle(spec, tmp, meta, result.library)
            meta["bundle"] = "bundle"
        write_metadata(tmp, meta)
        if verifier is not None:  # the artifact as it will be committed, bundle included
            pipeline_info["artifact_verified"] = verify_artifact(load_artifact(tmp), verifier)
            write_metadata(tmp, meta)
    art = load_artifact(out_dir)
    art.build_info = {**build, "backend_seconds": round(time.perf_counter() - t0, 3), **host_info()}
    return art


EMITS = ("library", "header", "metadata", "bundle", "onnx")


def emitted(opts: CompileOptions, cross: bool) -> frozenset[str]:
    """What the artifact holds: library and metadata always (the library is the artifact, the
    metadata its manifest), the C header by default, the bundle by default for another
    architecture (or as --bundle/--no-bundle say), the optimized ONNX (model.onnx) on request."""
    if opts.emit is None:
        emit = {"library", "header", "metadata"} | ({"bundle"} if (cross if opts.bundle is None else opts.bundle) else set())
        return frozenset(emit)
    unknown = set(opts.emit) - set(EMITS)
    if unknown:
        raise PipelineError(f"--emit: unknown kind(s) {', '.join(sorted(unknown))}; choose from {', '.join(EMITS)}")
    missing = {"library", "metadata"} - set(opts.emit)
    if missing:
        raise PipelineError(f"--emit must include library and metadata (the artifact and its manifest); missing "
                            f"{', '.join(sorted(missing))}")
    if opts.bundle is not None and opts.bundle != ("bundle" in opts.emit):
        raise PipelineError("--emit and --bundle/--no-bundle disagree about the bundle: use one of them")
    return frozenset(opts.emit)


def kv_cache_metadata(model: ir.Model) -> dict:
    """--kv-cache: the cache buffers' rows (the tokens they hold: `max_length`, the buffer length
    that the caller allocates; MAX or MAX + 1, passes/shapes/kv_cache_in_place.cache_rows), the
    requested MAX and the cache inputs (in input order), for generate / bundle / docs."""
    caches = [v for v in model.graph.inputs if v.name.startswith("past_key_values.")]
    return {"max_length": int(caches[0].shape[2]), "requested": int(model.metadata_props["edgec.kv_cache"]),
            "caches": [v.name for v in caches]}


def compiled_outputs(outputs: list[TensorInfo], shapes: list | None, unknown: set[str] = frozenset()) -> list[TensorInfo]:
    """The graph outputs with the shapes the compiled code returns. A dim the ONNX graph left
    symbolic is taken from the compiled code (a size, or an expression of the symbolic input dims),
    and so is the whole shape of an output in `unknown` (no shape on the graph: an op ONNX shape
    inference does not know, e.g. com.microsoft MatMulNBits after --input-shape); a static dim that
    disagrees with it is edgec's bug; a data-dependent shape is refused."""
    from edgec.errors import InternalError, ModelValidationError

    if shapes is None or len(shapes) != len(outputs):
        return outputs
    out = []
    for t, compiled in zip(outputs, shapes):
        if t.name in unknown and compiled is not None:
            out.append(dataclasses.replace(t, shape=tuple(compiled)))
            continue
        declared = list(t.shape)
        if compiled is None:
            if all(isinstance(d, int) for d in declared):
                out.append(t)
                continue
            raise ModelValidationError(f"output '{t.name}' has a data-dependent shape {declared}; edgec's "
                                       "outputs have shapes computed from the input shapes only")
        if len(compiled) != len(declared) or any(isinstance(d, int) and isinstance(c, int) and d != c
                                                 for d, c in zip(declared, compiled)):
            raise InternalError(f"output '{t.name}': the graph says shape {declared}, the compiled code returns "
                                f"{compiled}")
        # a dim the compiled code computes from symbolic input dims is its expression ("seq * 2")
        # unless the graph knew it statically
        merged = [d if isinstance(d, int) else c for d, c in zip(declared, compiled)]
        out.append(dataclasses.replace(t, shape=tuple(merged)))
    return out


def verify_artifact(art: Artifact, verifier: VerifyAgainstOnnxRuntime) -> str:
    """--verify's last check: the compiled artifact against the original model in onnxruntime.
    Returns "checked" (ARM artifacts run under qemu), or why it could not run here."""
    from edgec.targets.tvm.execute import why_not_runnable

    why = why_not_runnable(art)
    if why:
        return f"not run: {why}"
    layout = (art.metadata.get("pipeline") or {}).get("io_layout") or {}
    verifier.check_artifact(run_artifact(art, verifier.artifact_inputs(layout)), layout)
    return "checked"


def weight_min_bytes(model: ir.Model, spec: TargetSpec, mode: str, symbolic: bool = False) -> int | None:
    """Initializers at least this big go to the artifact's weights.bin (None: all stay in the
    library). "auto" separates them on a CPU VM target (a bundle maps the file through its C API
    too) when they total >= AUTO_TOTAL_BYTES, or >= AUTO_SYMBOLIC_BYTES in a `symbolic` build
    (LLMs: the weights then live once in memory, mapped, instead of in the mapped library and
    again as the runtime's copies of its constants); "always" insists (an error where
    unsupported); "never" embeds."""
    from edgec.errors import PipelineError

    if mode not in ("auto", "always", "never"):
        raise PipelineError(f"--weights-file must be auto, always or never, not '{mode}'")
    if mode == "never":
        return None
    supported = spec.is_cpu_vm
    if mode == "always":
        if not supported:
            raise PipelineError(f"--weights-file always needs a CPU target with the VM runtime "
                                f"(target '{spec.name}')")
        return MIN_TENSOR_BYTES
    total = initializer_bytes(model) if supported else 0
    return MIN_TENSOR_BYTES if supported and (total >= AUTO_TOTAL_BYTES or symbolic and total >= AUTO_SYMBOLIC_BYTES) \
        else None


def tune_model(model_path: str | os.PathLike, opts: CompileOptions, tune: TuneOptions, progress=None) -> dict:
    """Tune the kernels `compile_model(model_path, ..., opts)` would build; records go to
    `tune.records` (resumed when it exists). Returns a summary dict."""
    spec = get_target(opts.target, opts.mcpu, opts.mattr)
    model, _ = optimize_file(model_path, spec, opts)
    from edgec.targets.tvm.backend import tune as backend_tune  # heavy: imports tvm

    # lowered as compile_model lowers it, so the tuned kernels are the ones a compile builds
    weight_min = weight_min_bytes(model, spec, opts.weights_file, opts.symbolic_dims)
    return backend_tune(model, spec, tune.records, tune.trials, weight_min_bytes=weight_min,
                time_budget_s=tune.time_budget_s, seed=tune.seed, space=tune.space,
                threads=tune.threads or opts.threads, rpc_tracker=tune.rpc_tracker, rpc_key=tune.rpc_key,
                progress=progress).to_json()


def optimize_to_file(model_path, out_path, opts: CompileOptions) -> dict:
    spec = get_target(opts.target, opts.mcpu, opts.mattr) if opts.target else None
    model, info = optimize_file(model_path, spec, opts)
    save_model(model, out_path)
    info["pass_seconds"] = info.pop("_pass_seconds", [])
    return info
