"""`edgec quantize`: calibrated QDQ quantization of an ONNX model (edgec/quantize.py)."""

from __future__ import annotations

import json
import math

import click

from edgec.quantize import MODES, WEIGHT_ONLY

MODE_NAMES = list(MODES)


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.4f}" if abs(x) < 1e4 else f"{x:.3g}"


def print_report(rep: dict, top: int) -> None:
    click.echo(f"report: {rep['samples']} samples from {rep['source']}")
    for name, s in rep["outputs"].items():
        agree = f", top-1 agreement {s['top1_agreement']:.4f}" if "top1_agreement" in s else ""
        bad = " MISMATCH (shape or NaN pattern differs)" if s["mismatch"] else ""
        click.echo(f"  output {name}: cosine {_fmt(s['cosine'])}, SNR {_fmt(s['snr_db'])} dB, "
                   f"max abs {s['max_abs']:.3g}{agree}{bad}")
    worst = sorted(rep["tensors"].items(), key=lambda kv: kv[1]["snr_db"])
    click.echo(f"  {len(worst)} quantized tensors; lowest SNR first:")
    for name, s in worst[:top]:
        click.echo(f"    {name}: cosine {_fmt(s['cosine'])}, SNR {_fmt(s['snr_db'])} dB")


def compile_quantize_options(f):
    """`edgec compile --quantize MODE --calibration-data DIR ...` (quantize-static before the pipeline)."""
    opts = [
        click.option("--quantize", "quantize", type=click.Choice(MODE_NAMES), default=None,
                     help="Quantize Conv/MatMul/Gemm first (as `edgec quantize`), then compile the QDQ model; "
                          "fp16/bf16: mixed precision (no calibration)."),
        click.option("--calibration-data", type=click.Path(), default=None,
                     help="With --quantize: .npy/.npz inputs or images (default: seeded random, with a warning)."),
        click.option("--calibration-method", type=click.Choice(["minmax", "percentile", "entropy", "mse"]),
                     default="minmax", show_default=True, help="With --quantize: how activation ranges are chosen."),
        click.option("--calibration-samples", type=click.IntRange(1), default=64, show_default=True),
        click.option("--group-size", type=click.IntRange(16), default=None,
                     help="With --quantize int4-weight / int8-weight: rows of K sharing a scale (power of 2; default 32)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def quantize_settings(mode, data, method, samples, group_size=None) -> tuple | None:
    """(pass, options) for `CompileOptions.quantize`, or None without --quantize."""
    if mode is None:
        if data or group_size is not None:
            raise click.UsageError(f"{'--calibration-data' if data else '--group-size'} needs --quantize")
        return None
    from edgec.quantize import QuantizeOptions, quantize_options

    return quantize_options(QuantizeOptions(mode=mode, calibration_data=data, method=method, samples=samples,
                                            group_size=group_size))


@click.command("quantize")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Quantized (QDQ) .onnx to write.")
@click.option("--mode", type=click.Choice(MODE_NAMES), default="int8", show_default=True,
              help="int8: uint8 asymmetric activations; int8-symmetric: int8 activations, zero point 0; "
                   "int16: int16 symmetric activations (16-bit fixed point); dynamic: MatMul/Gemm only, "
                   "activations quantized at run time (no calibration). Weights: int8 symmetric. "
                   "fp16 / bf16: compute and weights in float16 / bfloat16, Softmax, norms and sums in float32 "
                   "(no calibration; bf16 models do not run in onnxruntime). int4-weight / int8-weight: "
                   "MatMul/Gemm weights only, per block of --group-size rows (com.microsoft MatMulNBits; "
                   "activations stay float; calibration only with --method gptq).")
@click.option("--calibration-data", type=click.Path(), default=None,
              help="Directory of .npy/.npz inputs or images; without it, seeded random inputs (with a warning).")
@click.option("--preprocess", default="", help="For image folders: 'resize=H,W;mean=..;std=..;scale=255;layout=NCHW;channels=RGB'.")
@click.option("--samples", type=click.IntRange(1), default=64, show_default=True, help="Calibration samples.")
@click.option("--method", type=click.Choice(["minmax", "percentile", "entropy", "mse", "rtn", "gptq"]), default="minmax",
              show_default=True, help="How an activation's range is chosen from its streamed histogram; "
                                      "int4-weight / int8-weight: rtn (round to nearest, the default) or gptq "
                                      "(weights fitted to their inputs on --calibration-data: token ids for a decoder, "
                                      "else seeded random tokens over its vocabulary).")
@click.option("--percentile", type=click.FloatRange(50, 100), default=99.99, show_default=True)
@click.option("--per-tensor", is_flag=True, help="One weight scale per tensor instead of per output channel.")
@click.option("--symmetric/--asymmetric", "symmetric", default=None, help="Activation zero point (default: the mode's).")
@click.option("--exclude", multiple=True, metavar="NODE", help="Leave this node in float (repeatable).")
@click.option("--input-shape", multiple=True, metavar="NAME=D1,D2,...", help="Fix a dynamic input's shape.")
@click.option("--report", "report", is_flag=True, help="Compare with the float model: per tensor and per output.")
@click.option("--eval-data", type=click.Path(), default=None, help="Inputs for --report (default: the calibration data).")
@click.option("--eval-samples", type=click.IntRange(1), default=16, show_default=True)
@click.option("--max-accuracy-drop", type=click.FloatRange(0, 1), default=None,
              help="Keep the most sensitive nodes in float until top-1 accuracy (0-1) drops at most this much.")
@click.option("--labels", type=click.Path(), default=None,
              help="With --max-accuracy-drop: integer labels of the evaluation samples (.npy or text); "
                   "without: agreement with the float model's top-1.")
@click.option("--keep-float", "keep_float", default=None, metavar="OPS",
              help="fp16/bf16: op types that stay float32, comma-separated ('' for none; default: Softmax, "
                   "LogSoftmax, the normalizations and the summing reductions).")
@click.option("--group-size", type=click.IntRange(16), default=None,
              help="int4-weight / int8-weight: rows of K sharing one scale (power of 2; default 32).")
@click.option("--accuracy-level", type=click.IntRange(0, 4), default=None,
              help="int4-weight / int8-weight: MatMulNBits' accuracy_level; 4 (default) lets kernels quantize "
                   "activations to int8 per block for integer dot products (onnxruntime and edgec), 0 keeps float32.")
@click.option("--int8-weights", "int8_weights", multiple=True, metavar="GLOB",
              help="int4-weight: MatMul/Gemm whose node or weight name matches this pattern get 8-bit weights "
                   "(repeatable; e.g. 'model.transformer.h.0.*' for a decoder's most sensitive first block).")
@click.option("--json", "as_json", is_flag=True, help="Print the result (and report) as JSON.")
@click.option("--seed", type=int, default=0, show_default=True)
def quantize_cmd(model, out, mode, calibration_data, preprocess, samples, method, percentile, per_tensor, symmetric,
                 exclude, input_shape, report, eval_data, eval_samples, max_accuracy_drop, labels, keep_float, group_size,
                 accuracy_level, int8_weights, as_json, seed):
    """Quantize MODEL's Conv/MatMul/Gemm to a calibrated QDQ model that onnxruntime and edgec run."""
    from edgec.api import parse_input_shapes
    from edgec.output_paths import check_output_file
    from edgec.quantize import QuantizeOptions, quantize_model

    check_output_file(out, "quantized model", inputs=((model, "input model"),))
    o = QuantizeOptions(mode=mode, method=method, percentile=percentile, calibration_data=calibration_data,
                        preprocess=preprocess, samples=samples, per_channel=not per_tensor, symmetric=symmetric,
                        exclude=tuple(exclude), seed=seed, eval_data=eval_data, eval_samples=eval_samples,
                        input_shapes=parse_input_shapes(input_shape), max_accuracy_drop=max_accuracy_drop,
                        labels=labels, keep=keep_float, group_size=group_size,
                        accuracy_level=accuracy_level, int8_weights=tuple(int8_weights))
    res = quantize_model(model, out, o, report=report)
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    if "narrow_nodes" in res:
        click.echo(f"converted {model} -> {out} ({mode}): {res['narrow_nodes']} nodes in "
                   f"{'float16' if mode == 'fp16' else 'bfloat16'}, {res['float32_nodes']} in float32, "
                   f"{res['casts']} Casts")
        if report:
            print_report(res["report"], 10)
        return
    if mode in WEIGHT_ONLY:
        how = res["options"].get("method", "rtn")
        click.echo(f"quantized {model} -> {out} ({mode}, {how}, group size {res['options'].get('group_size', 32)}): "
                   f"{res['weights']} MatMul/Gemm weights")
        if report:
            print_report(res["report"], 10)
        return
    how = "run time" if mode == "dynamic" else method
    click.echo(f"quantized {model} -> {out} ({mode}, {how}): {res['activations']} activation tensors, "
               f"{res['weights']} weights/biases")
    b = res.get("accuracy_budget")
    if b:
        kept = ", ".join(b["kept_float"]) or "none"
        click.echo(f"accuracy ({b['metric']}, {b['samples']} samples): float {b['float_accuracy']:.4f}, "
                   f"quantized {b['quantized_accuracy']:.4f} (budget {b['budget']}); kept in float: {kept}")
    if report:
        print_report(res["report"], 10)
