"""The fused attention kernel (targets/tvm/attention_kernel.py, schedule rule `attention`): a
decoder's attention over a KV cache with symbolic past and sequence dims, written as exporters
write it (Concat(past, new) -> Transpose(k, [0, 1, 3, 2]) -> MatMul -> Mul -> Add(mask) ->
Softmax -> MatMul with v), recognized as edgec.Attention and compiled once; prefill and decode
shapes checked against onnxruntime on seeded inputs. The fused kernel must not fire for static
shapes or a mask it cannot broadcast by indexing (the op-by-op lowering runs instead)."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.compare import Tolerance, compare_outputs
from edgec.infra.context import PassContext
from edgec.ir.loader import to_proto
from edgec.passes.fusion.recognize_attention import RecognizeAttention
from edgec.reference import run_ort
from edgec.rewrite.testing import op_list, parse
from edgec.targets import get_target
from edgec.targets.tvm.build import build_library
from edgec.targets.tvm.runtime import LoadedModel

H, D = 3, 16

# the causal mask as exporters compute it from the shapes: key j is visible to new token i iff
# j <= past + i; `bias` (when given) adds a per-head term [1, H, 1, 1]
DECODER = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[batch,%(h)d,seq,%(d)d] q, float[batch,%(h)d,past,%(d)d] pk, float[batch,%(h)d,seq,%(d)d] k,
       float[batch,%(h)d,past,%(d)d] pv, float[batch,%(h)d,seq,%(d)d] v%(bias_in)s)
      => (float[batch,%(h)d,seq,%(d)d] y, float[batch,%(h)d,total,%(d)d] kc)
      <float s = {0.25}, int64 two = {2}, int64 zero = {0}, int64 one = {1}, int64[1] ax = {1},
       float visible = {0.0}, float hidden = {-1e9}> {
      kc = Concat <axis = -2> (pk, k)
      vc = Concat <axis = -2> (pv, v)
      pshape = Shape (pk)
      p_len = Gather <axis = 0> (pshape, two)
      qshape = Shape (q)
      s_len = Gather <axis = 0> (qshape, two)
      t_len = Add (p_len, s_len)
      jj = Range (zero, t_len, one)
      ii = Range (p_len, t_len, one)
      iu = Unsqueeze (ii, ax)
      seen = LessOrEqual (jj, iu)
      causal = Where (seen, visible, hidden)
      %(mask_line)s
      kt = Transpose <perm = [0, 1, 3, 2]> (kc)
      qk = MatMul (q, kt)
      sc = Mul (qk, s)
      a = Add (sc, mask)
      p = Softmax <axis = -1> (a)
      y = MatMul (p, vc)
    }"""


def _text(h=H, d=D, bias=False):
    return DECODER % {"h": h, "d": d, "bias_in": f", float[1,{h},1,1] bias" if bias else "",
                      "mask_line": "mask = Add (causal, bias)" if bias else "mask = Identity (causal)"}


def _model(**kw):
    model = parse(_text(**kw))
    assert RecognizeAttention()(model, PassContext()).modified
    assert "edgec.Attention" in op_list(model)
    return model


def _build(model, tmp_path):
    from edgec.targets.tvm.lower import lower_model

    mod, report = lower_model(model)
    res = build_library(mod, get_target("x86-64"), tmp_path / "m.so")
    names = [v.name for v in model.graph.inputs], [v.name for v in model.graph.outputs]
    return LoadedModel(res.library, *names), res.schedules


def _inputs(batch, seq, past, seed, d=D, bias=False):
    rng = np.random.default_rng(seed)

    def r(*s):
        return rng.standard_normal(s).astype(np.float32)

    out = {"q": r(batch, H, seq, d), "pk": r(batch, H, past, d), "k": r(batch, H, seq, d),
           "pv": r(batch, H, past, d), "v": r(batch, H, seq, d)}
    if bias:
        out["bias"] = r(1, H, 1, 1)
    return out


def _check(m, model, inputs):
    diffs = compare_outputs(m.run(inputs), run_ort(to_proto(model), inputs), Tolerance(1e-4))
    assert len(diffs) == 2
    for d in diffs:
        assert d.ok, d


@pytest.mark.parametrize("batch,seq,past", [(1, 1, 150), (1, 17, 0), (2, 5, 33), (1, 1, 0)])
def test_fused_attention_matches_onnxruntime(batch, seq, past, tmp_path, compiled={}):
    if "m" not in compiled:  # one compile for every shape: the point of symbolic dims
        model = _model()
        compiled["m"] = (*_build(model, tmp_path), model)
    m, used, model = compiled["m"]
    assert used.get("attention") == 1, used
    _check(m, model, _inputs(batch, seq, past, seed=batch * 100 + seq + past))


def test_fused_attention_with_a_per_head_mask(tmp_path):
    model = _model(bias=True)
    m, used = _build(model, tmp_path)
    assert used.get("attention") == 1, used
    _check(m, model, _inputs(2, 3, 20, seed=7, bias=True))


@pytest.mark.parametrize("static", [False, True])
def test_fused_attention_does_not_fire(static, tmp_path):
    """A head_dim that is no multiple of 4 (no whole vector lanes), and a model with static
    shapes: the op-by-op lowering, still matching onnxruntime."""
    text = _text(d=6)
    if static:
        text = _text().replace("batch", "1").replace("seq", "1").replace("past", "8").replace("total", "9")
    model = parse(text)
    assert RecognizeAttention()(model, PassContext()).modified
    m, used = _build(model, tmp_path)
    assert "attention" not in used, used
    _check(m, model, _inputs(1, 1, 8, seed=3, d=D if static else 6))
