"""`edgec quantize`: a float ONNX model in, a calibrated QDQ ONNX model out (and a report); or,
with --mode fp16 / bf16, a mixed-precision model (`convert-float16`, no calibration).

The model goes through a short preparation pipeline (shapes, constant folding, BatchNorm folded
into its Conv, so that the folded weights are what gets quantized) and then `quantize-static`
(passes/quantization/). The written model is checked to load and run in onnxruntime; with a
report, it is compared with the float model on evaluation inputs (the calibration source unless
`eval_data` is given)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

PREPARE = "infer-shapes,fold-constants,eliminate-dead-code,fold-batchnorm,eliminate-dead-code,infer-shapes"

MODES = {  # mode -> (pass, its options)
    "int8": ("quantize-static", {"activations": "uint8"}),
    "int8-symmetric": ("quantize-static", {"activations": "int8", "symmetric": True}),
    "int16": ("quantize-static", {"activations": "int16", "symmetric": True}),
    "dynamic": ("quantize-dynamic", {}),
    "fp16": ("convert-float16", {"dtype": "float16"}),   # mixed precision, no calibration
    "bf16": ("convert-float16", {"dtype": "bfloat16"}),
    "int4-weight": ("quantize-weights", {"bits": 4}),  # weight-only, per block along K (MatMulNBits)
    "int8-weight": ("quantize-weights", {"bits": 8}),
}
MIXED = ("fp16", "bf16")
WEIGHT_ONLY = ("int4-weight", "int8-weight")
WEIGHT_METHODS = ("rtn", "gptq")  # int4/int8-weight: round to nearest, or GPTQ on calibration data
# compile --quantize: fusions run before the pass, so that what they make stays float32 whole (an
# edgec.Attention, with its Softmax; a LayerNormalization recognized from its decomposed chain)
BEFORE = {"convert-float16": "recognize-attention,recognize-layernorm,"}


@dataclass
class QuantizeOptions:
    mode: str = "int8"
    method: str = "minmax"
    percentile: float = 99.99
    calibration_data: str | None = None
    preprocess: str = ""
    samples: int = 64
    per_channel: bool = True
    symmetric: bool | None = None       # None: the mode's default
    exclude: tuple[str, ...] = ()
    seed: int = 0
    eval_data: str | None = None
    eval_samples: int = 16
    input_shapes: dict | None = None
    max_accuracy_drop: float | None = None  # keep sensitive nodes float until the drop fits (edgec/quantize_budget.py)
    labels: str | None = None
    keep: str | None = None  # fp16/bf16: op types that stay float32 (comma list; None: the pass's default)
    group_size: int | None = None  # int4/int8-weight: rows of K per scale (None: the pass's default, 32)
    accuracy_level: int | None = None  # int4/int8-weight: MatMulNBits' (4: int8 activations allowed; 0: float)
    int8_weights: tuple[str, ...] = ()  # int4-weight: glob patterns of node/weight names kept at 8 bits


def quantize_options(o: QuantizeOptions) -> tuple[str, dict]:
    """(pass name, its options) for these settings (options go through the pass context)."""
    from edgec.errors import PipelineError

    if o.mode not in MODES:
        raise PipelineError(f"--mode must be one of {', '.join(MODES)}, got '{o.mode}'")
    name, base = MODES[o.mode]
    if o.mode in MIXED:
        if o.calibration_data or o.max_accuracy_drop is not None:
            raise PipelineError(f"--quantize/--mode {o.mode} needs no calibration data and has no accuracy budget "
                                "(choose what stays float32 with --keep-float / --exclude)")
        return name, {**base, "exclude": ",".join(o.exclude), **({"keep": o.keep} if o.keep is not None else {})}
    if o.keep is not None:
        raise PipelineError("--keep-float applies to --mode fp16 / bf16 only")
    if o.mode in WEIGHT_ONLY:
        method = "rtn" if o.method == "minmax" else o.method  # minmax: the CLI's default
        if method not in WEIGHT_METHODS:
            raise PipelineError(f"--mode {o.mode} quantizes weights with --method rtn or gptq, not '{o.method}'")
        if o.calibration_data and method != "gptq":
            raise PipelineError(f"--mode {o.mode} uses calibration data only with --method gptq")
        if not o.per_channel:
            raise PipelineError(f"--quantize/--mode {o.mode} is always per block (choose the block with --group-size)")
        opts = {**base, "exclude": ",".join(o.exclude), **({} if o.symmetric is None else {"symmetric": o.symmetric})}
        if o.int8_weights:
            if o.mode != "int4-weight":
                raise PipelineError("--int8-weights applies to --mode int4-weight only")
            opts["int8"] = ",".join(o.int8_weights)
        if method == "gptq":
            opts.update(method=method, data=o.calibration_data or "", samples=o.samples, seed=o.seed,
                        preprocess=o.preprocess)
        if o.accuracy_level is not None:
            opts["accuracy_level"] = o.accuracy_level
        return name, opts | ({"group_size": o.group_size} if o.group_size is not None else {})
    if o.method in WEIGHT_METHODS:
        raise PipelineError(f"--method {o.method} is for --mode int4-weight / int8-weight")
    if o.group_size is not None or o.accuracy_level is not None:
        raise PipelineError("--group-size / --accuracy-level apply to --mode int4-weight / int8-weight only")
    opts = {**base, "per_channel": o.per_channel, "exclude": ",".join(o.exclude)}
    if name == "quantize-static":
        if o.symmetric is not None:
            opts["symmetric"] = o.symmetric
        opts.update(method=o.method, percentile=o.percentile, samples=o.samples, seed=o.seed,
                    data=o.calibration_data or "", preprocess=o.preprocess)
    return name, opts


def check_target(quantize: tuple | None, spec) -> None:
    """`compile --quantize bf16` is for CPU (llvm) targets: TVM legalizes bfloat16 arithmetic into
    float32 there (16-bit storage, float32 compute, round to nearest even); GPU targets are turned
    away (TargetError) rather than shipped untested. fp16 goes everywhere (half.py decides how)."""
    if quantize is not None and quantize[1].get("dtype") == "bfloat16" and not spec.is_cpu:
        from edgec.errors import TargetError

        raise TargetError(f"--quantize bf16 is for CPU targets; '{spec.name}' is not one (use --quantize fp16)")


@contextlib.contextmanager
def blame_calibration(model_path: str | os.PathLike):
    """Turn a CalibrationRunError into the model's error (exit 2, naming the file) when
    onnxruntime cannot run the user's file either, on seeded inputs; otherwise it stays edgec's
    (exit 1): the model ran before edgec's preparation passes touched it."""
    from edgec.errors import CalibrationRunError, ModelValidationError

    try:
        yield
    except CalibrationRunError:
        why = _ort_refuses(model_path)
        if why is None:
            raise
        raise ModelValidationError(f"{model_path}: onnxruntime cannot run this model, and calibration runs it "
                                   f"(fix the model or quantize it with fixed input shapes): {why}") from None


def _ort_refuses(model_path) -> str | None:
    from edgec.ir.analysis import graph_inputs
    from edgec.ir.loader import load_model
    from edgec.reference import run_ort, seeded_inputs

    try:
        run_ort(str(model_path), seeded_inputs(graph_inputs(load_model(model_path))), exact=False)
        return None
    except Exception as e:  # noqa: BLE001 - onnxruntime's refusal is the answer
        return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"


def quantize_model(model_path: str | os.PathLike, out_path: str | os.PathLike, o: QuantizeOptions,
                   report: bool = False) -> dict:
    from edgec.api import CompileOptions

    qpass = quantize_options(o)[0]
    if report and o.mode == "bf16":
        from edgec.errors import EdgecError

        raise EdgecError("--report runs the model in onnxruntime, which has no bfloat16 kernels: compile the "
                         "bf16 model with edgec and compare it (`edgec run ART --compare-onnx FLOAT_MODEL`)")
    prepare = CompileOptions(target=None, passes=("fix-input-shapes," if o.input_shapes else "") + PREPARE,
                             input_shapes=o.input_shapes or {})
    with blame_calibration(model_path):
        return _quantize_model(model_path, out_path, o, report, qpass, prepare)


def _quantize_model(model_path, out_path, o: QuantizeOptions, report: bool, qpass: str, prepare) -> dict:
    import onnx_ir as ir

    from edgec.api import CompileOptions, optimize
    from edgec.errors import InternalError
    from edgec.ir.analysis import graph_inputs, op_histogram
    from edgec.ir.loader import load_model, save_model

    qopts = quantize_options(o)[1]
    model, _ = optimize(load_model(model_path), None, prepare)
    float_proto = ir.serde.serialize_model(model)  # the reference of the report: same tensor names
    budget = None
    if o.max_accuracy_drop is not None:
        model, budget = _fit_budget(float_proto, qpass, qopts, o, graph_inputs(model))
        info = {"text": qpass, "nodes_after": len(list(model.graph))}
    else:
        model, info = optimize(model, None, CompileOptions(target=None, passes=qpass),
                               pass_options={qpass: qopts})
    save_model(model, out_path)
    from edgec.reference import ort_session

    try:
        if o.mode == "bf16":  # onnxruntime's CPU provider has no bfloat16 MatMul/Add/...: the ONNX checker only
            import onnx

            onnx.checker.check_model(str(out_path), full_check=True)
        else:
            ort_session(str(out_path))
    except Exception as e:  # edgec wrote a model onnxruntime refuses: edgec's bug; it is not left behind
        for p in (Path(out_path), Path(f"{out_path}.data")):
            p.unlink(missing_ok=True)
        raise InternalError(f"{qpass} wrote a model onnxruntime cannot load: {' '.join(str(e).split())[:300]}") from None
    hist = op_histogram(model)  # keys: op, or domain:op outside ai.onnx
    count = lambda op: sum(v for k, v in hist.items() if k.split(":")[-1] == op)  # noqa: E731
    result = {"pipeline": f"{prepare.passes},{info['text']}", "options": qopts, "nodes_after": info["nodes_after"]}
    if o.mode in MIXED:
        result.update(_precision_counts(model, count("Cast")))
    elif o.mode in WEIGHT_ONLY:
        result.update(activations=0, weights=count("MatMulNBits"))
    else:
        result.update(activations=count("QuantizeLinear") + count("DynamicQuantizeLinear"),
                      weights=count("DequantizeLinear") - count("QuantizeLinear") + count("MatMulInteger"))
    if budget is not None:
        result["accuracy_budget"] = budget
    if report:
        result["report"] = _report(float_proto, str(out_path), graph_inputs(model), o)
    return result


def _precision_counts(model, casts: int) -> dict:
    """fp16/bf16: nodes computing in the narrow type, nodes still computing in float32, Casts."""
    import onnx_ir as ir

    narrow = {ir.DataType.FLOAT16, ir.DataType.BFLOAT16}
    low = wide = 0
    for n in model.graph:
        if n.op_type == "Cast":
            continue
        dts = {v.dtype for v in n.outputs if v is not None}
        low += bool(dts & narrow)
        wide += ir.DataType.FLOAT in dts
    return {"narrow_nodes": low, "float32_nodes": wide, "casts": casts}


def _fit_budget(float_proto, qpass: str, qopts: dict, o: QuantizeOptions, inputs):
    """(quantized IR model, info) from edgec.quantize_budget.fit_budget."""
    import onnx_ir as ir

    from edgec.api import CompileOptions, optimize
    from edgec.errors import EdgecError
    from edgec.passes.quantization import _data
    from edgec.passes.quantization.quantize_dynamic import matmul_weight
    from edgec.passes.quantization.quantize_static import quantizable
    from edgec.quantize_budget import fit_budget, load_labels

    if not (o.eval_data or o.calibration_data or o.labels is None):
        raise EdgecError("--labels needs --eval-data (or --calibration-data): labels belong to real samples")
    feeds = list(_data.samples(inputs, o.eval_data or o.calibration_data, o.eval_samples, o.seed + 1, o.preprocess))
    labels = load_labels(o.labels, len(feeds)) if o.labels else None
    cache: dict = {}
    models: dict = {}

    def quantize(exclude):
        m = ir.serde.deserialize_model(float_proto)
        opts = {**qopts, "exclude": ",".join(exclude)}
        if qpass == "quantize-static":
            opts["calibration_cache"] = cache
        m, _ = optimize(m, None, CompileOptions(target=None, passes=qpass), pass_options={qpass: opts})
        proto = ir.serde.serialize_model(m)
        models[id(proto)] = m
        return proto

    base = ir.serde.deserialize_model(float_proto)
    nodes = quantizable(base, set()) if qpass == "quantize-static" else \
        [n for n in base.graph if n.op_type in ("MatMul", "Gemm") and matmul_weight(n) is not None]
    proto, info = fit_budget(float_proto, quantize, [n.name for n in nodes], feeds, o.max_accuracy_drop, labels,
                             tuple(o.exclude))
    return models[id(proto)], info


def _report(float_proto, qpath: str, inputs, o: QuantizeOptions) -> dict:
    import onnx

    from edgec.passes.quantization import _data
    from edgec.passes.quantization._report import compare_models, quantized_tensors

    q = onnx.load(qpath)
    feeds = _data.samples(inputs, o.eval_data or o.calibration_data, o.eval_samples, o.seed + 1, o.preprocess)
    per_tensor, per_output, n = compare_models(float_proto, q, quantized_tensors(q), feeds)
    return {"samples": n, "source": o.eval_data or o.calibration_data or "seeded random",
            "outputs": per_output, "tensors": per_tensor}
