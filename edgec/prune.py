"""`edgec prune` and `compile --prune`: an ONNX model in, a pruned ONNX model out, and a report.

Three modes, one pass each (passes/pruning/): `channel` (prune-channels: whole channels removed,
the model gets smaller and faster), `unstructured` (prune-magnitude: w = 0 where |w| <= theta)
and `2:4` (prune-2-4: semi-structured masks). The model first goes through shape inference and
constant folding (the channel analysis needs static shapes and constant weights); the result is
checked with onnx.checker and loaded in onnxruntime before it is returned.

The API other parts of edgec use (edgec distill reads it, /work/notes/prune-api.md):
`prune_model(model, PruneOptions(...)) -> (onnx.ModelProto, PruneReport)`."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the CLI imports this module's constants: onnx loads on first use (a second)
    import onnx

PREPARE = "infer-shapes,fold-constants,eliminate-dead-code,infer-shapes"
MODES = {"channel": "prune-channels", "unstructured": "prune-magnitude", "2:4": "prune-2-4"}
IMPORTANCE = ("l1", "l2", "bn", "sensitivity")


@dataclass
class PruneOptions:
    mode: str = "channel"
    ratio: float = 0.3
    importance: str = "l1"                 # channel mode
    threshold: float | None = None         # unstructured: |w| <= threshold instead of a ratio
    scope: str = "global"                  # unstructured: one theta for all layers, or one per layer
    keep: tuple[str, ...] = ()             # node / weight names or globs never pruned
    layer_ratios: dict[str, float] = field(default_factory=dict)
    protect_ends: bool = True              # first layers (and last: their outputs are graph outputs)
    round_to: int | None = None            # channel mode: channels kept per layer a multiple of this
    #                                        (None: 1; `compile --prune` uses TargetSpec.prune_channel_multiple)
    calibration_data: str | None = None    # importance "sensitivity"
    samples: int = 16
    seed: int = 0
    preprocess: str = ""


@dataclass
class PruneReport:
    mode: str
    pass_name: str
    params_before: int
    params_after: int
    nonzero_before: int
    nonzero_after: int
    flops_before: int
    flops_after: int
    bytes_before: int
    bytes_after: int
    layers: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)   # channel mode: coupled groups, pruned or why not
    agreement: dict = field(default_factory=dict)      # output: cosine, SNR, max abs, top-1 (--report)
    latency: dict = field(default_factory=dict)        # compiled, both models (--report --latency; prune_latency)

    def to_json(self) -> dict:
        return asdict(self)


def prune_options(o: PruneOptions) -> tuple[str, dict]:
    """(pass name, its options) for these settings; PipelineError for a bad combination."""
    from edgec.errors import PipelineError

    if o.mode not in MODES:
        raise PipelineError(f"--mode must be one of {', '.join(MODES)}, got '{o.mode}'")
    if not 0 <= o.ratio < 1:
        raise PipelineError(f"--ratio must be in [0, 1), got {o.ratio}")
    for name, r in o.layer_ratios.items():
        if not 0 <= r < 1:
            raise PipelineError(f"--layer-ratio {name}={r}: the ratio must be in [0, 1)")
    if o.importance not in IMPORTANCE:
        raise PipelineError(f"--importance must be one of {', '.join(IMPORTANCE)}, got '{o.importance}'")
    if o.mode != "channel" and (o.importance != "l1" or o.calibration_data):
        raise PipelineError("--importance / --calibration-data apply to --mode channel only")
    if o.round_to is not None and o.mode != "channel":
        raise PipelineError("--round-to applies to --mode channel only")
    if o.threshold is not None and o.mode != "unstructured":
        raise PipelineError("--threshold applies to --mode unstructured only")
    if o.calibration_data and o.importance != "sensitivity":
        raise PipelineError("--calibration-data is used by --importance sensitivity only")
    name = MODES[o.mode]
    opts: dict = {"keep": ",".join(o.keep), "protect_ends": o.protect_ends}
    ratios = ",".join(f"{k}={v}" for k, v in o.layer_ratios.items())
    if o.mode == "2:4":
        if ratios:
            raise PipelineError("--layer-ratio does not apply to --mode 2:4 (always 2 of every 4)")
        return name, opts
    opts.update(ratio=o.ratio, layer_ratios=ratios)
    if o.mode == "unstructured":
        if o.scope not in ("global", "layer"):
            raise PipelineError(f"--scope must be global or layer, got '{o.scope}'")
        opts.update(scope=o.scope, threshold=-1.0 if o.threshold is None else o.threshold)
        if o.threshold is not None and o.threshold < 0:
            raise PipelineError(f"--threshold must be >= 0, got {o.threshold}")
    else:
        opts.update(importance=o.importance, data=o.calibration_data or "", samples=o.samples, seed=o.seed,
                    preprocess=o.preprocess)
        if o.round_to is not None:
            if o.round_to < 1:
                raise PipelineError(f"--round-to must be >= 1, got {o.round_to}")
            opts["round_to"] = o.round_to
    return name, opts


def parse_prune_spec(value: str) -> tuple[str, dict]:
    """`compile --prune` / edgec.compile(prune=...): 'channel', 'channel:0.3', 'unstructured:0.5',
    '2:4' -> (pass name, options); PipelineError for anything else."""
    from edgec.errors import PipelineError

    mode, sep, ratio = ("2:4", "", "") if value == "2:4" else value.partition(":")
    try:
        r = float(ratio) if sep else 0.3
    except ValueError:
        raise PipelineError(f"--prune: expected MODE[:RATIO], got '{value}'") from None
    if mode not in MODES:
        raise PipelineError(f"--prune: mode must be one of {', '.join(MODES)}, got '{mode}'")
    return prune_options(PruneOptions(mode=mode, ratio=r))


def _load(model) -> onnx.ModelProto:
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    import onnx_ir as ir

    from edgec.ir.loader import load_model, to_proto

    # weights in an external data file are read now: the proto travels without the model's directory
    return to_proto(ir.external_data.load_to_model(load_model(model)))


def _stats(proto: onnx.ModelProto) -> tuple[int, int, int, int]:
    """(parameters, non-zero parameters, FLOPs, serialized bytes)."""
    import onnx
    import onnx_ir as ir

    from edgec.ir.analysis import flops, parameter_count

    model = ir.serde.deserialize_model(proto)
    nonzero = sum(int(np.count_nonzero(onnx.numpy_helper.to_array(t))) for t in proto.graph.initializer)
    return parameter_count(model), nonzero, flops(model), proto.ByteSize()


def prune_model(model: onnx.ModelProto | str | os.PathLike, o: PruneOptions | None = None
                ) -> tuple[onnx.ModelProto, PruneReport]:
    """Prune `model` (a ModelProto or a path); the pruned model passes onnx.checker and loads in
    onnxruntime (InternalError naming the pass otherwise: edgec's bug)."""
    import onnx_ir as ir

    from edgec.api import CompileOptions, optimize
    from edgec.infra.context import PassContext
    from edgec.infra.registry import builtin_registry

    o = o or PruneOptions()
    name, opts = prune_options(o)
    proto = _load(model)
    prepared, _ = optimize(ir.serde.deserialize_model(proto), None, CompileOptions(target=None, passes=PREPARE))
    before_proto = ir.serde.serialize_model(prepared)
    before = _stats(before_proto)
    pass_ = builtin_registry().get(name)()
    pass_(prepared, PassContext(options={name: opts}))
    pruned, _ = optimize(prepared, None, CompileOptions(target=None, passes="infer-shapes"))
    pruned.metadata_props.pop("edgec.pruned_channels", None)  # the file may be pruned again (iteratively)
    out = ir.serde.serialize_model(pruned)
    _check(out, name)
    after = _stats(out)
    rows = getattr(pass_, "last_report", [])
    report = PruneReport(o.mode, name, before[0], after[0], before[1], after[1], before[2], after[2], before[3],
                         after[3], layers=_layer_table(before_proto, out) if o.mode == "channel" else rows,
                         groups=rows if o.mode == "channel" else [])
    return out, report


def _check(proto: onnx.ModelProto, pass_name: str) -> None:
    import onnx

    from edgec.errors import InternalError
    from edgec.reference import ort_session

    try:
        onnx.checker.check_model(proto, full_check=True)
        ort_session(proto.SerializeToString())
    except Exception as e:  # edgec wrote a model the checker or onnxruntime refuses: edgec's bug
        raise InternalError(f"{pass_name} wrote an invalid model: {' '.join(str(e).split())[:300]}") from None


def _layer_table(before: onnx.ModelProto, after: onnx.ModelProto) -> list[dict]:
    """Per Conv/Gemm/MatMul weight: shape before and after (channel mode)."""
    shapes = {t.name: list(t.dims) for t in after.graph.initializer}
    old = {t.name: list(t.dims) for t in before.graph.initializer}
    rows = []
    for n in before.graph.node:
        if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1 and n.input[1] in old:
            w = n.input[1]
            rows.append({"layer": n.name or w, "op": n.op_type, "weight": w, "shape_before": old[w],
                         "shape_after": shapes.get(w, old[w])})
    return rows


def agreement(original: onnx.ModelProto, pruned: onnx.ModelProto, samples: int = 8, seed: int = 0,
              data: str | None = None) -> dict:
    """Per graph output of the pruned model against the original on the same inputs (seeded
    random, or `data`): cosine, SNR, max abs error, top-1 agreement; `samples` run."""
    import onnx_ir as ir

    from edgec.ir.analysis import graph_inputs
    from edgec.passes.quantization import _data
    from edgec.passes.quantization._report import compare_models

    feeds = _data.samples(graph_inputs(ir.serde.deserialize_model(original)), data, samples, seed)
    _, outs, n = compare_models(original, pruned, {}, feeds)
    return {"samples": n, "outputs": outs}


def accuracy(original: onnx.ModelProto, pruned: onnx.ModelProto, data: str, labels: str, samples: int) -> dict:
    """Top-1 accuracy of both models against integer `labels` (.npy or text, one per sample of
    `data`, in the order `edgec quantize` reads them): the argmax of the first output per sample."""
    import onnx_ir as ir

    from edgec.ir.analysis import graph_inputs
    from edgec.passes.quantization import _data
    from edgec.quantize_budget import load_labels
    from edgec.reference import ort_session

    feeds = list(_data.samples(graph_inputs(ir.serde.deserialize_model(original)), data, samples))
    truth = load_labels(labels, len(feeds))
    out = {"samples": len(feeds)}
    for key, m in (("original", original), ("pruned", pruned)):
        sess = ort_session(m.SerializeToString())
        names = [i.name for i in sess.get_inputs()]
        pred = [int(np.argmax(sess.run(None, {n: f[n] for n in names})[0])) for f in feeds]
        out[key] = float(np.mean(np.array(pred) == truth)) if feeds else 0.0
    return out


def zero_masks(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """{weight name: boolean keep-mask (w != 0)} for the Conv/Gemm/MatMul weights that hold zeros:
    what fine-tuning must keep at zero to preserve unstructured or 2:4 sparsity."""
    import onnx

    inits = {t.name: t for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1 and n.input[1] in inits:
            a = onnx.numpy_helper.to_array(inits[n.input[1]])
            if a.dtype.kind == "f" and (a == 0).any():
                out[n.input[1]] = a != 0
    return out


def save(proto: onnx.ModelProto, path: str | os.PathLike) -> None:
    import onnx_ir as ir

    from edgec.ir.loader import save_model

    save_model(ir.serde.deserialize_model(proto), Path(path))
