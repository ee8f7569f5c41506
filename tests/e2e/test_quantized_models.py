"""End to end: the bundled examples quantized by onnxruntime's quantizer (static QOperator with a
seeded calibration reader, static QDQ, dynamic, and a dynamic model after onnxruntime's own graph
fusions), compiled by edgec for x86-64 with the default pipeline and compared with onnxruntime
running the same quantized model on seeded inputs.

The reference is onnxruntime with the model's int8 weights of uint8 x int8 products re-encoded as
uint8 (tests.targets.qlinear_util.exact_ort_model): on x86 CPUs without VNNI (AVX2) onnxruntime's
u8s8 kernels add pairs of products in saturating int16 (vpmaddubsw), e.g. 4 output steps of error
on small_cnn qop; its u8u8 kernels are exact everywhere. Where its u8s8 products are exact
(`ort_u8s8_exact`: VNNI, ...) edgec is compared with the model as written as well."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnxruntime import quantization

from edgec.reference import run_ort
from tests.conftest import EXAMPLES
from tests.targets.qlinear_util import exact_ort_model, ort_u8s8_exact

SHAPES = {"small_cnn": {"input": (1, 3, 32, 32)}, "tiny_transformer": {"tokens": (1, 16, 64), "mask": (1, 1, 16, 16)}}


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, shapes, n=8, seed=0):
        rng = np.random.default_rng(seed)
        self._it = iter([{k: rng.uniform(-1, 1, s).astype(np.float32) for k, s in shapes.items()} for _ in range(n)])

    def get_next(self):
        return next(self._it, None)


def _quantize(kind: str, name: str, d) -> str:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, pre, out = EXAMPLES / f"{name}.onnx", d / f"{name}_pre.onnx", d / f"{name}_{kind}.onnx"
    if kind.startswith("dynamic"):
        quantize_dynamic(src, out, weight_type=QuantType.QInt8 if name != "small_cnn" else QuantType.QUInt8)
        if kind == "dynamic-ortopt":  # onnxruntime's fusions: DynamicQuantizeMatMul, MatMulIntegerToFloat, ...
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            so.optimized_model_filepath = str(d / f"{name}_{kind}_opt.onnx")
            ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
            out = d / f"{name}_{kind}_opt.onnx"
        return str(out)
    if not pre.exists():
        quant_pre_process(str(src), str(pre))
    fmt = QuantFormat.QDQ if kind.startswith("qdq") else QuantFormat.QOperator
    act = {"qop-s8": QuantType.QInt8, "qdq16": QuantType.QUInt16}.get(kind, QuantType.QUInt8)
    extra = {"UseQDQContribOps": True} if kind == "qdq16" else {}  # com.microsoft Q/DQ (16-bit)
    quantize_static(str(pre), str(out), _Reader(SHAPES[name]), quant_format=fmt, per_channel=kind != "qop-s8",
                    activation_type=act, weight_type=QuantType.QInt8, extra_options=extra)
    return str(out)


# (model, quantization) -> ops that must appear in the quantized model and be lowered by edgec
CASES = {
    ("small_cnn", "qop"): {"QLinearConv", "QLinearAdd", "QLinearGlobalAveragePool", "QGemm"},
    ("small_cnn", "qop-s8"): {"QLinearConv", "QLinearAdd", "QLinearGlobalAveragePool", "QGemm"},
    ("small_cnn", "qdq"): {"QuantizeLinear", "DequantizeLinear"},
    ("small_cnn", "qdq16"): {"QuantizeLinear", "DequantizeLinear"},  # com.microsoft, uint16 activations
    ("tiny_transformer", "qdq"): {"QuantizeLinear", "DequantizeLinear"},
    ("small_cnn", "dynamic"): {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"},
    ("tiny_transformer", "qop"): {"QGemm", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearSoftmax"},
    ("tiny_transformer", "dynamic"): {"DynamicQuantizeLinear", "MatMulInteger"},
    ("tiny_transformer", "dynamic-ortopt"): {"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "FusedMatMul"},
}


def _reference(proto, inputs, name, kind):
    """onnxruntime's outputs. For the QDQ transformer its default session fuses DQ -> MatMul -> Q
    into integer kernels, a different rounding than the graph's float ops; edgec computes the graph
    as written, so the reference is onnxruntime without those fusions (basic graph optimizations)."""
    if (name, kind) != ("tiny_transformer", "qdq"):
        return run_ort(proto, inputs)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs)))


def _output_scale(proto) -> float | None:
    """The scale of the DequantizeLinear producing the (first) graph output, if any."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "DequantizeLinear" and n.output[0] == proto.graph.output[0].name and n.input[1] in inits:
            return float(inits[n.input[1]].reshape(-1)[0])
    return None


@pytest.mark.parametrize("name,kind", sorted(CASES))
def test_quantized_model_matches_onnxruntime(name, kind, tmp_path):
    from edgec.api import CompileOptions, compile_model, run_artifact

    path = _quantize(kind, name, tmp_path)
    proto = onnx.load(path)
    ops = {n.op_type for n in proto.graph.node}
    assert CASES[(name, kind)] <= ops, ops
    art = compile_model(path, tmp_path / "art", CompileOptions(target="x86-64"))
    lowered = art.metadata["lowering"]
    if kind != "qdq":  # ONNX QuantizeLinear / DequantizeLinear are lowered by TVM's frontend (relax quantize)
        assert not (CASES[(name, kind)] & set(lowered.get("tvm-onnx-frontend", {}))), lowered
    scale = _output_scale(proto)
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        inputs = {k: rng.uniform(-1, 1, s).astype(np.float32) for k, s in SHAPES[name].items()}
        actual = run_artifact(art, inputs)
        expected = [(out, "", e) for out, e in _reference(*exact_ort_model(proto, inputs), name, kind).items()]
        if ort_u8s8_exact():
            expected += [(out, " (onnxruntime as written)", e) for out, e in _reference(proto, inputs, name, kind).items()]
        for out, label, e in expected:
            err = float(np.max(np.abs(actual[out].astype(np.float64) - e)))
            # static QOperator / 8-bit QDQ models: identical outputs. 16-bit QDQ: the float convs between
            # DQ and Q sum in another order than onnxruntime's, which its 65536-step grid can resolve (1 step
            # measured). Dynamic ones end in float products: float32 rounding (their int8 parts are exact)
            if scale is not None:
                tol = 2 * scale if kind == "qdq16" else 0.0
            else:
                tol = 1e-5 * max(1.0, float(np.max(np.abs(e))))
            assert err <= tol, f"{name} {kind} seed {seed} {out}{label}: max abs error {err} (output scale {scale})"
