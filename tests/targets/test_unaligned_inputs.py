"""Graph inputs read in place at any element-aligned address (targets/tvm/unaligned_inputs.py):
the kernels that take a graph input, directly or through a reshape, assume only its element
alignment, and the runtime passes a misaligned caller array without copying it; an input used
any other way keeps the copy."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh
from tvm.script import ir as I  # noqa: E741
from tvm.script import relax as R
from tvm.script import tirx as T

from edgec.api import CompileOptions, compile_model
from edgec.compare import Tolerance, compare_outputs
from edgec.targets.tvm.unaligned_inputs import relax_input_alignment
from tests.targets.test_runtime_io import _placed


@I.ir_module
class _Module:
    @T.prim_func(private=True)
    def add_one(A: T.Buffer((4,), "float32"), B: T.Buffer((4,), "float32")):
        for i in range(4):
            B[i] = A[i] + T.float32(1)

    @T.prim_func(private=True)
    def twice(A: T.Buffer((4,), "float32"), B: T.Buffer((4,), "float32")):
        for i in range(4):
            B[i] = A[i] * T.float32(2)

    @R.function
    def main(x: R.Tensor((4,), "float32"), y: R.Tensor((2, 2), "float32"), z: R.Tensor((4,), "float32")):
        cls = _Module
        a = R.call_tir(cls.add_one, (x,), out_ty=R.Tensor((4,), "float32"))
        yr = R.reshape(y, (4,))
        b = R.call_tir(cls.add_one, (yr,), out_ty=R.Tensor((4,), "float32"))
        c = R.call_tir(cls.twice, (z,), out_ty=R.Tensor((4,), "float32"))
        d = R.call_pure_packed("edgec.test.opaque", z, ty_args=R.Tensor((4,), "float32"))
        return (a, b, c, d)


def test_kernel_inputs_direct_or_through_a_reshape_are_relaxed_opaque_uses_are_not():
    mod, in_place = relax_input_alignment(_Module)
    # x straight into a kernel, y through a reshape (a view): in place; z also reaches a packed
    # call the pass cannot see into, so it keeps the copy although its kernel use is relaxed
    assert in_place == frozenset({0, 1})
    assert mod["add_one"].params[0].ty.data_alignment == 4  # float32: its element size
    assert mod["add_one"].params[1].ty.data_alignment == 64  # the output: the VM allocates it
    assert _Module["add_one"].params[0].ty.data_alignment == 64  # the input module is not mutated


def _conv_model(path):
    """A 3-channel stem conv (what an image model starts with) beside an elementwise kernel that
    loads the input as whole vectors: both read the graph input `x`."""
    rng = np.random.default_rng(0)
    w = nh.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "w")
    b = nh.from_array(rng.standard_normal(16).astype(np.float32), "b")
    g = h.make_graph([h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
                      h.make_node("Relu", ["c"], ["y"]),
                      h.make_node("Mul", ["x", "x"], ["sq"])], "stem",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 32, 32])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 16, 16, 16]),
                      h.make_tensor_value_info("sq", TP.FLOAT, [1, 3, 32, 32])], [w, b])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def test_misaligned_input_runs_in_place_and_matches_onnxruntime(tmp_path):
    from edgec.targets.tvm.execute import load

    _conv_model(tmp_path / "m.onnx")
    art = compile_model(tmp_path / "m.onnx", tmp_path / "art", CompileOptions(target="host"))
    assert art.metadata["lowering"]["inputs_in_place"] == [0]
    lm = load(art, threads=2)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    for misalign in (0, 4, 16, 48):
        xin = _placed(x, misalign)
        got = lm.run({"x": xin})
        want = dict(zip(["y", "sq"], sess.run(None, {"x": x})))
        bad = [d for d in compare_outputs(got, want, Tolerance(atol=1e-4, rtol=1e-4)) if not d.ok]
        assert not bad, (misalign, bad)
    assert lm._staging == {}  # no call copied its input


def test_symbolic_decoder_with_every_input_misaligned_matches_onnxruntime(tmp_path):
    """The tiny GPT-2 decoder (symbolic dims): its reshape kernels on `input_ids` and
    `attention_mask` become views of the caller's memory inside tvm.compile, and the kernels
    reading those views must be relaxed too (the first version faulted on a misaligned
    `input_ids`). Two steps, every input 8 or 16 bytes past a 64-byte boundary."""
    from pathlib import Path

    from edgec.llm_decode import step_feed
    from edgec.reference import ort_session
    from edgec.targets.tvm.execute import load

    model = Path(__file__).resolve().parents[1] / "models" / "tiny_gpt2_kv.onnx"
    art = compile_model(model, tmp_path / "art", CompileOptions(target="host", symbolic_dims=True))
    assert set(art.metadata["lowering"]["inputs_in_place"]) >= {0, 1, 2}  # input_ids, mask, positions
    lm = load(art, threads=2)
    sess = ort_session(str(model))
    names = [t.name for t in art.inputs]
    outs = [o.name for o in sess.get_outputs()]
    past = {n: np.zeros((1, 4, 0, 8), np.float32) for n in names if n.startswith("past_key_values.")}
    ids, past_len = np.array([[5, 17, 200, 3]], np.int64), 0
    for step in range(2):
        feed = step_feed(names, ids, past, past_len)
        placed = {n: _placed(a, 8 + 8 * (step % 2)) if a.size else a for n, a in feed.items()}
        lm._staging.clear()
        got = lm.run(placed)
        assert all(feed[names[i]].size == 0 for i in lm._staging)  # only empty arrays (first-step pasts) copied
        want = dict(zip(outs, sess.run(outs, feed)))
        bad = [d for d in compare_outputs({k: got[k] for k in want}, want, Tolerance(atol=1e-4, rtol=1e-4)) if not d.ok]
        assert not bad, (step, bad)
        past = {n: want[n.replace("past_key_values", "present")] for n in past}
        past_len += ids.shape[1]
        ids = np.argmax(want["logits"][:, -1, :], axis=-1).astype(np.int64)[:, None]
    assert not lm._staging  # the second step (non-empty pasts) copied nothing
