"""fuse-qdq: QDQ Conv/MatMul/Gemm (+Relu) into QLinearConv / QLinearMatMul / QGemm.

The fused model runs in onnxruntime (with exact integer products, edgec.reference_exact) within
one quantization step of the QDQ model it came from; edgec compiles it and matches onnxruntime
on it; regions it cannot prove (16-bit activations, a shared Conv output, a float bias, per-channel
scales on the wrong axis) are left as they are."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import numpy_helper

from edgec.infra.context import PassContext
from edgec.ir.loader import to_proto
from edgec.passes.quantization.fuse_qdq import FuseQdq
from edgec.passes.quantization.quantize_static import QuantizeStatic
from edgec.reference import run_ort
from edgec.reference_exact import exact_ort_model
from tests.passes.quant_models import cnn, samples, write_npy_dir


def _qdq(tmp_path, proto=None, **opts) -> onnx.ModelProto:
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto or cnn(), strict_mode=True))
    opts.setdefault("data", write_npy_dir(tmp_path / "calib", samples(8)))
    QuantizeStatic()(model, PassContext(options={"quantize-static": opts}))
    return to_proto(model)


def _fuse(proto) -> tuple[onnx.ModelProto, bool]:
    m = ir.serde.deserialize_model(proto)
    r = FuseQdq()(m, PassContext())
    return to_proto(r.model), r.modified


def _ops(proto) -> collections.Counter:
    return collections.Counter(n.op_type for n in proto.graph.node)


def _out_step(qdq) -> float:
    """The largest scale of a QuantizeLinear in the model: one step of any quantized tensor."""
    inits = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}
    return max(float(inits[n.input[1]].max()) for n in qdq.graph.node if n.op_type == "QuantizeLinear")


def test_conv_relu_gemm_matmul_fuse_and_stay_within_a_step_of_the_qdq_model(tmp_path):
    qdq = _qdq(tmp_path)
    fused, modified = _fuse(qdq)
    assert modified
    ops = _ops(fused)
    # conv1 + Relu, conv2 (bias) + Relu, Gemm (bias, output quantized for the MatMul) fuse; the
    # MatMul's output is the graph output (no Q after it): it stays DQ -> MatMul
    assert ops["QLinearConv"] == 2 and ops["QGemm"] == 1 and ops["Max"] == 2, ops
    assert ops["Conv"] == 0 and ops["Gemm"] == 0 and ops["MatMul"] == 1
    onnx.checker.check_model(fused)
    for x in samples(6, seed=21):
        a = run_ort(qdq, {"x": x})["y"]
        b = run_ort(*exact_ort_model(fused, {"x": x}))["y"]
        assert a.shape == b.shape and np.all(np.isfinite(b))
        # the MatMul reads one quantized tensor: a flip of one step there moves y by <= step * sum|w|
        wm = numpy_helper.to_array(next(t for t in fused.graph.initializer if t.name.startswith("wm")))
        scale = numpy_helper.to_array(next(t for t in fused.graph.initializer if t.name.startswith("wm_scale")))
        bound = _out_step(qdq) * float(np.abs(wm * scale).sum(0).max()) + 1e-6
        assert np.abs(a - b).max() <= bound, (np.abs(a - b).max(), bound)


def test_edgec_runs_the_fused_model_as_onnxruntime_does(tmp_path):
    from tests.targets.lowering_util import edgec_run

    fused, _ = _fuse(_qdq(tmp_path))
    x = samples(1, seed=5)[0]
    (tmp_path / "b").mkdir()
    got, report = edgec_run(fused, {"x": x}, tmp_path / "b")
    assert not report.by_frontend.get("QLinearConv") and not report.by_frontend.get("QGemm")
    exp = run_ort(*exact_ort_model(fused, {"x": x}))["y"]
    np.testing.assert_allclose(got["y"], exp, atol=1e-5, rtol=1e-5, equal_nan=False)


def test_second_run_changes_nothing(tmp_path):
    fused, _ = _fuse(_qdq(tmp_path))
    assert not _fuse(fused)[1]


def test_int16_activations_are_not_fused(tmp_path):
    qdq = _qdq(tmp_path, activations="int16", symmetric=True)
    fused, modified = _fuse(qdq)
    assert not modified and _ops(fused)["Conv"] == 2


def test_a_conv_output_used_elsewhere_is_not_fused(tmp_path):
    qdq = _qdq(tmp_path)
    g = qdq.graph
    g.output.append(onnx.helper.make_tensor_value_info("c1", onnx.TensorProto.FLOAT, None))  # conv1's raw output
    fused, _ = _fuse(qdq)
    convs = [n for n in fused.graph.node if n.op_type == "Conv"]
    assert [n.name for n in convs] == ["conv1"]
    x = samples(1, seed=8)[0]
    np.testing.assert_array_equal(run_ort(qdq, {"x": x})["c1"], run_ort(fused, {"x": x})["c1"])


@pytest.mark.parametrize("what", ["float-bias", "bias-scale", "weight-axis"])
def test_unprovable_regions_are_left_alone(tmp_path, what):
    qdq = _qdq(tmp_path)
    g = qdq.graph
    inits = {t.name: t for t in g.initializer}
    conv2 = next(n for n in g.node if n.name == "conv2")
    dqb = next(n for n in g.node if n.output[0] == conv2.input[2])
    if what == "float-bias":  # conv2 reads a float bias directly
        b = numpy_helper.to_array(inits[dqb.input[0]]).astype(np.float32) * numpy_helper.to_array(inits[dqb.input[1]])
        g.initializer.append(numpy_helper.from_array(b.astype(np.float32), "b2_float"))
        conv2.input[2] = "b2_float"
    elif what == "bias-scale":  # a bias scale that is not x_scale * w_scale
        s = numpy_helper.to_array(inits[dqb.input[1]]) * np.float32(1.5)
        inits[dqb.input[1]].CopyFrom(numpy_helper.from_array(s.astype(np.float32), dqb.input[1]))
    else:  # per-channel weight scale declared along the input-channel axis
        dqw = next(n for n in g.node if n.output[0] == conv2.input[1])
        for a in dqw.attribute:
            if a.name == "axis":
                a.i = 1  # 8 input channels = 8 output channels: shapes still agree
    fused, _ = _fuse(qdq)
    assert "conv2" in {n.name for n in fused.graph.node if n.op_type == "Conv"}
    x = samples(1, seed=8)[0]
    np.testing.assert_allclose(run_ort(*exact_ort_model(fused, {"x": x}))["y"], run_ort(qdq, {"x": x})["y"],
                               atol=0.05, rtol=0, equal_nan=False)


def _clip_cnn(lo, hi):
    """cnn() with conv2's Relu replaced by Clip(lo, hi) (ReLU6 when 0, 6)."""
    m = cnn()
    g = m.graph
    i = next(k for k, n in enumerate(g.node) if n.name == "relu2")
    g.initializer.extend([numpy_helper.from_array(np.float32(lo), "clip_lo"), numpy_helper.from_array(np.float32(hi), "clip_hi")])
    g.node[i].CopyFrom(onnx.helper.make_node("Clip", ["c2", "clip_lo", "clip_hi"], ["r2"], name="clip2"))
    return m


@pytest.mark.parametrize("lo,hi", [(0.0, 6.0), (-0.5, 0.75)])
def test_clip_fuses_as_an_integer_clip_at_the_quantized_bounds(tmp_path, lo, hi):
    qdq = _qdq(tmp_path, proto=_clip_cnn(lo, hi))
    fused, modified = _fuse(qdq)
    ops = _ops(fused)
    assert modified and ops["QLinearConv"] == 2 and ops["Conv"] == 0 and ops["Clip"] == 1, ops
    onnx.checker.check_model(fused)
    clip = next(n for n in fused.graph.node if n.op_type == "Clip")
    inits = {t.name: numpy_helper.to_array(t) for t in fused.graph.initializer}
    q = next(n for n in qdq.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "r2")
    qinits = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}
    scale, zp = qinits[q.input[1]], qinits[q.input[2]]
    for name, v in zip(clip.input[1:], (lo, hi)):  # QuantizeLinear of the bound, as onnxruntime computes it
        want = np.clip(np.round(np.float32(v) / scale) + float(zp), 0, 255)
        assert inits[name].dtype == zp.dtype and float(inits[name]) == float(want)
    for x in samples(4, seed=31):
        a = run_ort(qdq, {"x": x})["y"]
        b = run_ort(*exact_ort_model(fused, {"x": x}))["y"]
        assert a.shape == b.shape and np.all(np.isfinite(b))
        wm = numpy_helper.to_array(next(t for t in fused.graph.initializer if t.name.startswith("wm")))
        scale_m = numpy_helper.to_array(next(t for t in fused.graph.initializer if t.name.startswith("wm_scale")))
        assert np.abs(a - b).max() <= _out_step(qdq) * float(np.abs(wm * scale_m).sum(0).max()) + 1e-6


def test_clip_with_runtime_bounds_is_not_fused(tmp_path):
    qdq = _qdq(tmp_path, proto=_clip_cnn(0.0, 6.0))
    g = qdq.graph
    g.input.append(onnx.helper.make_tensor_value_info("hi_in", onnx.TensorProto.FLOAT, []))
    clip = next(n for n in g.node if n.op_type == "Clip")
    clip.input[2] = "hi_in"
    fused, _ = _fuse(qdq)
    assert [n.name for n in fused.graph.node if n.op_type == "Conv"] == ["conv2"]
