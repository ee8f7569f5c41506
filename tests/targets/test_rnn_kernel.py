"""LSTM / GRU / RNN on CPU targets run as one projection matmul + one recurrence kernel
(targets/tvm/ops/rnn.py), not as S unrolled steps: every variant matches onnxruntime, the
compiled model holds the kernel and no unrolled gates, and what the kernel refuses is still
unrolled by decompose-rnn (the case where it must not fire)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.compare import assert_outputs_match
from edgec.reference import run_ort
from tests.conftest import require_target_tools
from tests.rnn_models import rnn_model

CASES = [
    ("LSTM", dict()),
    ("LSTM", dict(direction="reverse", initial=True, hidden=16)),
    ("LSTM", dict(direction="bidirectional", layout=1, initial=True, outputs=("Y", "Y_h", "Y_c"), hidden=64)),
    ("LSTM", dict(peephole=True, initial=True, outputs=("Y", "Y_h", "Y_c"), hidden=8)),
    ("LSTM", dict(peephole=True, bias=False, direction="bidirectional", seq=9, batch=1, hidden=48)),
    ("LSTM", dict(direction="bidirectional", acts=["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Tanh"])),
    ("GRU", dict(hidden=32)),
    ("LSTM", dict(batch=3, hidden=32, direction="bidirectional", seq=5)),
    ("GRU", dict(batch=4, hidden=16, direction="bidirectional")),
    ("GRU", dict(lbr=1, direction="bidirectional", initial=True, hidden=24)),
    ("GRU", dict(lbr=1, layout=1, seq=7, hidden=128, batch=1)),
    ("GRU", dict(direction="reverse", bias=False, initial=True, layout=1)),
    ("GRU", dict(direction="bidirectional", initial=True, hidden=40, outputs=("", "Y_h"))),
    ("RNN", dict()),
    ("RNN", dict(direction="bidirectional", initial=True, layout=1, hidden=16)),
    ("RNN", dict(acts=["Relu"], direction="reverse")),
]


def _compile(tmp_path, proto: onnx.ModelProto, target: str = "x86-64"):
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    return compile_model(path, tmp_path / f"art-{target}", CompileOptions(target=target))


def _inputs(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    out = {}
    for i in proto.graph.input:
        shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
        out[i.name] = rng.uniform(-1, 1, shape).astype(np.float32)
    return out


def _reference(proto: onnx.ModelProto, feeds: dict[str, np.ndarray], ort_runs_it: bool) -> dict[str, np.ndarray]:
    """onnxruntime; for layout 1, which onnxruntime refuses ("Batchwise recurrent operations are
    not supported") and float64, onnx's reference evaluator."""
    if ort_runs_it:
        return run_ort(proto, feeds)
    from onnx.reference import ReferenceEvaluator

    names = [o.name for o in proto.graph.output]
    return dict(zip(names, ReferenceEvaluator(proto).run(None, feeds)))


@pytest.mark.parametrize("op,kw", CASES, ids=[f"{op}-{i}" for i, (op, _) in enumerate(CASES)])
def test_recurrence_kernel_matches_onnxruntime(tmp_path, op, kw):
    proto = rnn_model(op, **kw)
    art = _compile(tmp_path, proto)
    assert f"edgec_{op.lower()}" in (art.path / "model.so").read_bytes().decode("latin-1")
    feeds = _inputs(proto)
    assert_outputs_match(run_artifact(art, feeds), _reference(proto, feeds, kw.get("layout", 0) == 0), atol=2e-5, rtol=1e-4)


def _as_float64(proto: onnx.ModelProto) -> onnx.ModelProto:
    from onnx import TensorProto, numpy_helper

    for v in [*proto.graph.input, *proto.graph.output]:
        v.type.tensor_type.elem_type = TensorProto.DOUBLE
    for k, init in enumerate(proto.graph.initializer):
        proto.graph.initializer[k].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float64), init.name))
    return proto


def test_kernel_refuses_float64_and_decompose_rnn_unrolls_it(tmp_path):
    """The kernel is float32 only: a float64 LSTM must not reach it; decompose-rnn unrolls it and
    the result still matches onnxruntime."""
    from edgec.targets.lowerable import rnn_lowerable

    proto = _as_float64(rnn_model("LSTM", direction="bidirectional", initial=True, outputs=("Y", "Y_h", "Y_c")))
    import onnx_ir as ir

    node = next(iter(ir.serde.deserialize_model(proto).graph))
    assert "float32" in rnn_lowerable(node)
    art = _compile(tmp_path, proto)
    assert "edgec_lstm" not in (art.path / "model.so").read_bytes().decode("latin-1")
    feeds = {k: v.astype(np.float64) for k, v in _inputs(proto).items()}
    # onnxruntime has no float64 LSTM ("does not support double yet"): onnx's reference evaluator
    assert_outputs_match(run_artifact(art, feeds), _reference(proto, feeds, ort_runs_it=False), atol=1e-9, rtol=1e-9)


def test_gpu_lowering_turns_the_kernel_away():
    """The recurrence kernel is CPU TIR without thread bindings: lowered for a GPU target (a custom
    pipeline without decompose-rnn, whose default unrolls for GPUs) it is refused with a reason,
    never handed to the GPU build."""
    import onnx_ir as ir

    from edgec.errors import UnsupportedOpError
    from edgec.targets.tvm.lower import lower_model

    proto = rnn_model("LSTM", direction="bidirectional")
    with pytest.raises(UnsupportedOpError, match="recurrence kernel is CPU code"):
        lower_model(ir.serde.deserialize_model(proto), cpu=False)
    lower_model(ir.serde.deserialize_model(proto), cpu=True)  # the same node on a CPU target: lowered


@pytest.mark.parametrize("target", ["armv8"])
def test_recurrence_kernel_on_arm(tmp_path, target):
    require_target_tools(target)
    proto = rnn_model("LSTM", direction="bidirectional", initial=True, outputs=("Y", "Y_h", "Y_c"), hidden=32)
    art = _compile(tmp_path, proto, target)
    feeds = _inputs(proto)
    assert_outputs_match(run_artifact(art, feeds), run_ort(proto, feeds), atol=2e-5, rtol=1e-4)
