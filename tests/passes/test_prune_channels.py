"""prune-channels: coupled structures are pruned together (the pruned graph runs in onnxruntime,
passes onnx.checker, has the right shapes), unsafe ones are left alone with a reason."""

import numpy as np
import onnx
import pytest

from edgec.ir.loader import to_proto
from edgec.passes.pruning._common import set_constant
from edgec.passes.pruning.prune_channels import PruneChannels
from edgec.rewrite.testing import assert_same_outputs, inputs_for, parse, run, text


def _floats(shape, seed):
    r = np.random.default_rng(seed)
    return ", ".join(f"{v:.5f}" for v in r.uniform(-1, 1, int(np.prod(shape))))


def _w(name, shape, seed):
    return f"float[{','.join(map(str, shape))}] {name} = {{{_floats(shape, seed)}}}"


def _prune(model_text, batch=1, infer=False, **opts):
    """(model, pass, outputs before, outputs after): the pruned model checked and run (a symbolic
    dimension of the inputs given `batch`). `infer`: edgec's infer-shapes first, as `edgec prune`
    runs it (data propagation: shapes behind Reshape targets built at run time)."""
    from edgec.infra.context import PassContext
    from edgec.ir.analysis import graph_inputs
    from edgec.reference import seeded_inputs

    model = parse(model_text)
    if infer:
        from edgec.passes.cleanup.infer_shapes import InferShapes

        InferShapes()(model, PassContext())
    feeds = inputs_for(model) if batch == 1 else seeded_inputs(graph_inputs(model), 0, default_dim=batch)
    before = run(model, feeds)
    p = PruneChannels(**{"protect_ends": False, **opts})
    p(model, PassContext())
    proto = to_proto(model)
    onnx.checker.check_model(proto, full_check=True)
    after = run(model, feeds)
    assert set(after) == set(before)
    for k in before:  # the graph outputs keep their shapes; pruning changes values inside
        assert after[k].shape == before[k].shape and np.isfinite(after[k]).all()
    # the original with the removed channels' consumer weights zeroed computes what the pruned model does
    zeroed = parse(model_text)
    for (name, axis), idx in p.last_removed_inputs.items():
        v = zeroed.graph.initializers[name]
        arr = v.const_value.numpy().copy()
        np.moveaxis(arr, axis, 0)[idx] = 0
        set_constant(v, arr)
    assert_same_outputs(run(zeroed, feeds), after, rtol=1e-4, atol=1e-4)
    return model, p, before, after


def _shape(model, name):
    return list(model.graph.initializers[name].const_value.shape)


HEAD = '<ir_version: 8, opset_import: ["" : 17]>'

RESIDUAL = f"""{HEAD}
g (float[1,4,6,6] x) => (float[1,3] y) <{_w('w0', (8, 4, 3, 3), 1)}, {_w('b0', (8,), 2)},
    {_w('w1', (8, 8, 3, 3), 3)}, {_w('w2', (8, 8, 1, 1), 4)}, {_w('s', (8,), 5)}, {_w('bb', (8,), 6)},
    {_w('m', (8,), 7)}, float[8] v = {{{', '.join(['1.5'] * 8)}}}, {_w('fc', (8, 3), 8)}, int64[2] shp = {{1, -1}}> {{
  a = Conv <pads = [1,1,1,1]> (x, w0, b0)
  ar = Relu (a)
  c = Conv <pads = [1,1,1,1]> (ar, w1)
  cb = BatchNormalization (c, s, bb, m, v)
  cr = Relu (cb)
  d = Conv (cr, w2)
  e = Add (d, ar)
  p = GlobalAveragePool (e)
  f = Reshape (p, shp)
  y = MatMul (f, fc)
}}"""


def test_residual_add_prunes_both_producers_and_every_consumer():
    model, p, _, _ = _prune(RESIDUAL, ratio=0.5)
    assert _shape(model, "w0") == [4, 4, 3, 3] and _shape(model, "b0") == [4]  # residual group: w0 and w2 rows
    assert _shape(model, "w2") == [4, 4, 1, 1]
    assert _shape(model, "w1") == [4, 4, 3, 3]  # its input (residual) and output (BN group) channels
    assert _shape(model, "s") == [4] and _shape(model, "v") == [4]
    assert _shape(model, "fc") == [4, 3]
    assert [g["pruned"] for g in p.last_report] == [4, 4, 0], p.last_report
    assert "graph output" in p.last_report[2]["reason"]


def _symbolic_batch(model_text):
    return model_text.replace("float[1,", "float[N,")


def test_a_symbolic_batch_prunes_as_a_static_one():
    """Exported models usually have a symbolic batch: only the channel axis has to be static. The
    pruned model runs at batch 3 (a batch mixed into the channels would show there)."""
    sym = _symbolic_batch(RESIDUAL).replace("int64[2] shp = {1, -1}", "int64[2] shp = {0, -1}")
    assert "float[N,4,6,6] x" in sym and "float[N,3] y" in sym
    model, p, before, _ = _prune(sym, batch=3, ratio=0.5)
    assert before["y"].shape == (3, 3)
    assert _shape(model, "w0") == [4, 4, 3, 3] and _shape(model, "w1") == [4, 4, 3, 3] and _shape(model, "fc") == [4, 3]
    assert [g["pruned"] for g in p.last_report] == [4, 4, 0], p.last_report


def test_a_symbolic_batch_flatten_before_gemm():
    model_text = _symbolic_batch(f"""{HEAD}
    g (float[1,3,4,4] x) => (float[1,5] y) <{_w('w0', (6, 3, 3, 3), 1)}, {_w('fc', (5, 24), 2)}, {_w('fb', (5,), 3)}> {{
      a = Conv (x, w0)
      r = Relu (a)
      f = Flatten (r)
      y = Gemm <transB = 1> (f, fc, fb)
    }}""")
    model, _, _, _ = _prune(model_text, batch=2, ratio=0.5)
    assert _shape(model, "w0") == [3, 3, 3, 3] and _shape(model, "fc") == [5, 12]


def test_a_fixed_reshape_of_a_symbolic_batch_is_not_pruned():
    """Reshape to [1, -1] folds a symbolic batch into the features: the channels no longer map to
    features one to one, so the group must be left whole."""
    model, p, _, _ = _prune(_symbolic_batch(RESIDUAL).replace("float[N,3] y", "float[1,?] y"), batch=1, ratio=0.5)
    assert _shape(model, "w0") == [8, 4, 3, 3] and _shape(model, "fc") == [8, 3]
    assert any("mixes the channels" in g.get("reason", "") for g in p.last_report), p.last_report


def test_ratio_zero_is_identity():
    model = parse(RESIDUAL)
    before = text(model)
    _, p, out0, out1 = _prune(RESIDUAL, ratio=0.0)
    for k in out0:
        np.testing.assert_array_equal(out0[k], out1[k])
    assert not any(g["pruned"] for g in p.last_report)
    assert before  # parse ok


def test_removing_a_zero_channel_keeps_outputs():
    """A channel whose weights are all zero contributes nothing: pruning it (l1 picks it first)
    leaves the outputs equal up to float rounding."""
    w = np.random.default_rng(0).uniform(-1, 1, (4, 3, 3, 3))
    w[2] = 0
    model_text = f"""{HEAD}
    g (float[1,3,5,5] x) => (float[1,2,5,5] y) <float[4,3,3,3] w = {{{', '.join(f'{v:.5f}' for v in w.ravel())}}},
        {_w('w2', (2, 4, 1, 1), 3)}> {{
      a = Conv <pads = [1,1,1,1]> (x, w)
      r = Relu (a)
      y = Conv (r, w2)
    }}"""
    model, _, before, after = _prune(model_text, ratio=0.25)
    assert _shape(model, "w") == [3, 3, 3, 3] and _shape(model, "w2") == [2, 3, 1, 1]
    np.testing.assert_allclose(after["y"], before["y"], rtol=1e-5, atol=1e-5)


def test_depthwise_ties_input_and_output_channels():
    model_text = f"""{HEAD}
    g (float[1,3,6,6] x) => (float[1,2,6,6] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('dw', (8, 1, 3, 3), 2)},
        {_w('db', (8,), 3)}, {_w('w2', (2, 8, 1, 1), 4)}> {{
      a = Conv (x, w0)
      ar = Clip (a)
      d = Conv <group = 8, pads = [1,1,1,1]> (ar, dw, db)
      dr = Relu (d)
      y = Conv (dr, w2)
    }}"""
    model, _, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1] and _shape(model, "dw") == [4, 1, 3, 3] and _shape(model, "db") == [4]
    assert _shape(model, "w2") == [2, 4, 1, 1]
    dw = next(n for n in model.graph if n.op_type == "Conv" and n.inputs[1].name == "dw")
    assert dw.attributes["group"].as_int() == 4


def test_grouped_conv_removes_whole_groups():
    model_text = f"""{HEAD}
    g (float[1,3,6,6] x) => (float[1,2,6,6] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('gw', (8, 2, 3, 3), 2)},
        {_w('w2', (2, 8, 1, 1), 4)}> {{
      a = Conv (x, w0)
      d = Conv <group = 4, pads = [1,1,1,1]> (a, gw)
      y = Conv (d, w2)
    }}"""
    model, _, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1] and _shape(model, "gw") == [4, 2, 3, 3]
    g = next(n for n in model.graph if n.inputs[1].name == "gw")
    assert g.attributes["group"].as_int() == 2


def test_concat_offsets_channels():
    model_text = f"""{HEAD}
    g (float[1,3,5,5] x) => (float[1,2,5,5] y) <{_w('wa', (4, 3, 1, 1), 1)}, {_w('wb', (6, 3, 3, 3), 2)},
        {_w('w2', (2, 10, 1, 1), 3)}> {{
      a = Conv (x, wa)
      b = Conv <pads = [1,1,1,1]> (x, wb)
      c = Concat <axis = 1> (a, b)
      r = Relu (c)
      y = Conv (r, w2)
    }}"""
    model, _, _, _ = _prune(model_text, ratio=0.5)
    wa, wb = _shape(model, "wa")[0], _shape(model, "wb")[0]
    assert (wa, wb) in ((2, 3),), (wa, wb)  # each producer its own units: 2 of 4 and 3 of 6
    assert _shape(model, "w2") == [2, wa + wb, 1, 1]


def test_split_along_channels_gets_new_sizes():
    model_text = f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[1,3,5,5] x) => (float[1,2,5,5] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('wa', (2, 4, 1, 1), 2)},
        {_w('wb', (2, 4, 1, 1), 3)}, int64[2] sp = {{4, 4}}> {{
      a = Conv (x, w0)
      s1, s2 = Split <axis = 1> (a, sp)
      p = Conv (s1, wa)
      q = Conv (s2, wb)
      y = Add (p, q)
    }}"""
    model, _, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0")[0] == 4
    assert _shape(model, "wa")[1] + _shape(model, "wb")[1] == 4


def test_splits_sharing_their_sizes_get_one_new_constant_each():
    """Two Splits read one sizes initializer (exporters share equal constants: YOLOv8's C2f blocks);
    each gets its own rewritten copy (the old code registered one name twice: an internal error)."""
    model_text = f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[1,3,5,5] x) => (float[1,2,5,5] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('w1', (8, 3, 1, 1), 4)},
        {_w('wa', (2, 4, 1, 1), 2)}, {_w('wb', (2, 4, 1, 1), 3)}, {_w('wc', (2, 4, 1, 1), 5)},
        {_w('wd', (2, 4, 1, 1), 6)}, int64[2] sp = {{4, 4}}> {{
      a = Conv (x, w0)
      s1, s2 = Split <axis = 1> (a, sp)
      b = Conv (x, w1)
      t1, t2 = Split <axis = 1> (b, sp)
      p = Conv (s1, wa)
      q = Conv (s2, wb)
      u = Conv (t1, wc)
      v = Conv (t2, wd)
      pq = Add (p, q)
      uv = Add (u, v)
      y = Add (pq, uv)
    }}"""
    model, _, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0")[0] == 4 and _shape(model, "w1")[0] == 4
    sizes = [n.inputs[1] for n in model.graph if n.op_type == "Split"]
    assert len({v.name for v in sizes}) == 2 and all(int(v.const_value.numpy().sum()) == 4 for v in sizes)


def test_slice_along_channels_gets_new_bounds():
    model_text = f"""{HEAD}
    g (float[1,3,5,5] x) => (float[1,2,5,5] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('wa', (2, 5, 1, 1), 2)},
        {_w('wb', (2, 8, 1, 1), 3)}, int64[1] st = {{2}}, int64[1] en = {{7}}, int64[1] ax = {{1}}> {{
      a = Conv (x, w0)
      s = Slice (a, st, en, ax)
      p = Conv (s, wa)
      q = Conv (a, wb)
      y = Add (p, q)
    }}"""
    model, _, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0")[0] == 4 and _shape(model, "wb")[1] == 4
    lo, hi = (int(model.graph.initializers[n].const_value.numpy()[0]) for n in ("st", "en"))
    assert _shape(model, "wa")[1] == hi - lo and 0 <= lo <= hi <= 4


def test_flatten_before_gemm_maps_channels_to_features():
    model_text = f"""{HEAD}
    g (float[1,3,4,4] x) => (float[1,5] y) <{_w('w0', (6, 3, 3, 3), 1)}, {_w('fc', (5, 24), 2)}, {_w('fb', (5,), 3)}> {{
      a = Conv (x, w0)
      r = Relu (a)
      f = Flatten (r)
      y = Gemm <transB = 1> (f, fc, fb)
    }}"""
    model, _, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0") == [3, 3, 3, 3] and _shape(model, "fc") == [5, 12]


MLP = f"""{HEAD}
g (float[1,4,8] x) => (float[1,4,8] y) <{_w('w1', (8, 16), 1)}, {_w('b1', (16,), 2)}, {_w('w2', (16, 8), 3)},
    {_w('b2', (8,), 4)}, float c = {{0.70710678}}, float one = {{1.0}}, float half = {{0.5}}> {{
  h = MatMul (x, w1)
  hb = Add (h, b1)
  t = Mul (hb, c)
  e = Erf (t)
  e1 = Add (e, one)
  g1 = Mul (hb, e1)
  gl = Mul (g1, half)
  o = MatMul (gl, w2)
  ob = Add (o, b2)
  y = Add (ob, x)
}}"""


def test_transformer_mlp_prunes_the_hidden_dim():
    model, p, _, _ = _prune(MLP, ratio=0.25)
    assert _shape(model, "w1") == [8, 12] and _shape(model, "b1") == [12] and _shape(model, "w2") == [12, 8]
    assert _shape(model, "b2") == [8]  # the residual stream is a graph input: left alone
    assert any("graph input" in g.get("reason", "") or "adds 'x'" in g.get("reason", "") for g in p.last_report)


def test_residual_with_graph_input_branch_is_not_pruned():
    model_text = f"""{HEAD}
    g (float[1,4,5,5] x) => (float[1,2,5,5] y) <{_w('w0', (4, 4, 3, 3), 1)}, {_w('w2', (2, 4, 1, 1), 2)}> {{
      a = Conv <pads = [1,1,1,1]> (x, w0)
      e = Add (a, x)
      y = Conv (e, w2)
    }}"""
    model, p, before, after = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0") == [4, 4, 3, 3]
    np.testing.assert_array_equal(before["y"], after["y"])
    assert "adds 'x'" in p.last_report[0]["reason"]


def test_reshape_mixing_channels_is_not_pruned():
    model_text = f"""{HEAD}
    g (float[1,3,4,4] x) => (float[1,2,8,4] y) <{_w('w0', (4, 3, 1, 1), 1)}, int64[4] shp = {{1, 2, 8, 4}}> {{
      a = Conv (x, w0)
      y0 = Reshape (a, shp)
      y = Relu (y0)
    }}"""
    model, p, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1]
    assert "mixes the channels" in p.last_report[0]["reason"]


def test_graph_output_channels_are_not_pruned():
    model_text = f"""{HEAD}
    g (float[1,3,4,4] x) => (float[1,4,4,4] y, float[1,2,4,4] z) <{_w('w0', (4, 3, 1, 1), 1)}, {_w('w1', (2, 4, 1, 1), 2)}> {{
      y = Conv (x, w0)
      z = Conv (y, w1)
    }}"""
    model, p, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1]
    assert any("graph output" in g["reason"] for g in p.last_report)


def test_shape_read_blocks_the_group():
    model_text = f"""{HEAD}
    g (float[1,3,4,4] x) => (float[1,2,4,4] y, int64[4] s) <{_w('w0', (4, 3, 1, 1), 1)}, {_w('w1', (2, 4, 1, 1), 2)}> {{
      a = Conv (x, w0)
      s = Shape (a)
      y = Conv (a, w1)
    }}"""
    model, p, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1]
    assert any("Shape node" in g["reason"] for g in p.last_report)


def test_first_layer_protected_by_default_and_keep():
    model = parse(RESIDUAL)
    from edgec.infra.context import PassContext

    p = PruneChannels(ratio=0.5)
    p(model, PassContext())
    assert _shape(model, "w0") == [8, 4, 3, 3] and _shape(model, "w1") == [4, 8, 3, 3]
    model, p, _, _ = _prune(RESIDUAL, ratio=0.5, keep="cb*,w1")
    assert _shape(model, "w1") == [8, 4, 3, 3]  # its output group kept, its input (residual) group pruned
    assert any("kept" in g.get("reason", "") for g in p.last_report)


@pytest.mark.parametrize("importance", ["l2", "bn", "sensitivity"])
def test_importances_run(importance):
    model, p, _, _ = _prune(RESIDUAL, ratio=0.5, importance=importance, samples=2)
    assert _shape(model, "w1")[0] == 4


def test_pruned_once_per_pipeline():
    from edgec.infra.context import PassContext

    model = parse(RESIDUAL)
    PruneChannels(ratio=0.5, protect_ends=False)(model, PassContext())
    again = PruneChannels(ratio=0.5, protect_ends=False)(model, PassContext())
    assert not again.modified and _shape(model, "w1") == [4, 4, 3, 3]


@pytest.mark.parametrize("body, reason", [
    ("  m, idx = MaxPool <kernel_shape = [2,2], strides = [2,2]> (a)\n  y = Conv (m, w1)", "second output read"),
    ("  s = Softmax <axis = 1> (a)\n  y = Conv (s, w1)", "Softmax node"),
])
def test_unknown_readers_of_the_channels_block_the_group(body, reason):
    extra = ", int64[1,4,2,2] idx" if "idx" in body else ""
    hw = 2 if "MaxPool" in body else 4
    model_text = f"""{HEAD}
    g (float[1,3,4,4] x) => (float[1,2,{hw},{hw}] y{extra}) <{_w('w0', (4, 3, 1, 1), 1)}, {_w('w1', (2, 4, 1, 1), 2)}> {{
      a = Conv (x, w0)
    {body}
    }}"""
    model, p, before, after = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1]
    assert reason in p.last_report[0]["reason"], p.last_report


def test_round_to_keeps_a_multiple_of_channels():
    text_ = f"""{HEAD}
    g (float[1,3,4,4] x) => (float[1,2,4,4] y) <{_w('w0', (24, 3, 1, 1), 1)}, {_w('w1', (2, 24, 1, 1), 2)}> {{
      a = Conv (x, w0)
      r = Relu (a)
      y = Conv (r, w1)
    }}"""
    model, _, _, _ = _prune(text_, ratio=0.3)
    assert _shape(model, "w0")[0] == 17  # 24 - floor(7.2)
    model, _, _, _ = _prune(text_, ratio=0.3, round_to=8)
    assert _shape(model, "w0")[0] == 16  # 17 to the nearest multiple of 8 (16 >= 90% of 17)
    model, _, _, _ = _prune(text_, ratio=0.2, round_to=8)
    assert _shape(model, "w0")[0] == 24  # 20 (24 - floor(4.8)) is nearer 24 than 16: nothing removed
    model, _, _, _ = _prune(text_, ratio=0.55, round_to=8)
    assert _shape(model, "w0")[0] == 16  # 11 is nearest 8, but 8 < 90% of 11: 16
    model, _, _, _ = _prune(text_, ratio=0.5, round_to=8)
    assert _shape(model, "w0")[0] == 16 and _shape(model, "w1") == [2, 16, 1, 1]
    model, _, _, _ = _prune(text_, ratio=0.5, round_to=16)  # 16 does not divide 24: multiples of 8
    assert _shape(model, "w0")[0] == 16


def test_pad_of_spatial_axes_passes_channels():
    def model_text(pads):
        return f"""{HEAD}
        g (float[1,3,4,4] x) => (float[1,2,6,6] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('w1', (2, 8, 1, 1), 2)},
            int64[8] pads = {{{pads}}}> {{
          a = Conv (x, w0)
          p = Pad (a, pads)
          y = Conv (p, w1)
        }}"""
    model, _, _, _ = _prune(model_text("0, 0, 1, 1, 0, 0, 1, 1"), ratio=0.5)
    assert _shape(model, "w0")[0] == 4 and _shape(model, "w1") == [2, 4, 1, 1]


def test_conv_transpose_is_a_source_and_a_consumer():
    """An upsampling head (DB-style text detectors): Conv -> ConvTranspose (stride 2) -> Conv. The
    ConvTranspose weight is [C_in, C_out, kH, kW]: its rows follow the Conv before it, its columns
    (and bias) make its own prunable output."""
    model_text = f"""{HEAD}
    g (float[1,3,4,4] x) => (float[1,2,8,8] y) <{_w('w0', (8, 3, 3, 3), 1)}, {_w('wt', (8, 6, 2, 2), 2)},
        {_w('bt', (6,), 3)}, {_w('w2', (2, 6, 1, 1), 4)}> {{
      a = Conv <pads = [1,1,1,1]> (x, w0)
      ar = Relu (a)
      t = ConvTranspose <strides = [2, 2]> (ar, wt, bt)
      tr = Relu (t)
      y = Conv (tr, w2)
    }}"""
    model, p, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 3, 3] and _shape(model, "wt") == [4, 3, 2, 2] and _shape(model, "bt") == [3]
    assert _shape(model, "w2") == [2, 3, 1, 1], p.last_report


def test_grouped_conv_transpose_is_not_pruned():
    model_text = f"""{HEAD}
    g (float[1,3,4,4] x) => (float[1,2,8,8] y) <{_w('w0', (8, 3, 3, 3), 1)}, {_w('wt', (8, 1, 2, 2), 2)},
        {_w('w2', (2, 4, 1, 1), 4)}> {{
      a = Conv <pads = [1,1,1,1]> (x, w0)
      t = ConvTranspose <strides = [2, 2], group = 4> (a, wt)
      y = Conv (t, w2)
    }}"""
    model, p, _, _ = _prune(model_text, ratio=0.5)
    assert _shape(model, "w0") == [8, 3, 3, 3] and _shape(model, "wt") == [8, 1, 2, 2]
    assert any("ConvTranspose" in g.get("reason", "") for g in p.last_report), p.last_report
