"""prune-channels through the ops that move the channel axis or work along others (Unsqueeze,
Squeeze, Resize, Softmax): pruned where they keep the channels one to one, left alone where they
mix or resize them. Every case runs the pruned graph (tests/passes/test_prune_channels._prune:
onnx.checker, onnxruntime, the zeroed original computes the same)."""

from tests.passes.test_prune_channels import HEAD, _prune, _shape, _w

HEAD18 = '<ir_version: 8, opset_import: ["" : 18]>'


def _two_convs(middle: str, head: str = HEAD, extra: str = "", out: str = "float[1,2,8,8] y") -> str:
    """x -> Conv w0 (8 channels) -> `middle` (reads `a`, writes `m`) -> Conv w1 -> y."""
    return f"""{head}
    g (float[1,3,4,4] x) => ({out}) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('w1', (2, 8, 1, 1), 2)}{extra}> {{
      a = Conv (x, w0)
      {middle}
      y = Conv (m, w1)
    }}"""


def test_resize_with_unit_channel_scale_carries_the_channels():
    model, p, _, _ = _prune(_two_convs("m = Resize <mode = \"nearest\"> (a, , sc)", HEAD18,
                                       ", float[4] sc = {1.0, 1.0, 2.0, 2.0}"), ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1] and _shape(model, "w1") == [2, 4, 1, 1], p.last_report


def test_resize_with_sizes_gets_the_new_channel_count():
    model, p, _, _ = _prune(_two_convs("m = Resize <mode = \"linear\"> (a, , , sz)", HEAD18,
                                       ", int64[4] sz = {1, 8, 8, 8}"), ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1], p.last_report
    assert [_resize_sizes(model)] == [[1, 4, 8, 8]] and "sz" not in model.graph.initializers  # the old one is unread


def test_resize_with_sizes_on_spatial_axes_only():
    model, _, _, _ = _prune(_two_convs("m = Resize <mode = \"nearest\", axes = [2, 3]> (a, , , sz)", HEAD18,
                                       ", int64[2] sz = {8, 8}"), ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1]
    assert list(model.graph.initializers["sz"].const_value.numpy()) == [8, 8]


def test_resize_of_the_channels_is_not_pruned():
    text = f"""{HEAD18}
    g (float[1,3,4,4] x) => (float[1,2,8,8] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('w1', (2, 4, 1, 1), 2)},
        float[4] sc = {{1.0, 0.5, 2.0, 2.0}}> {{
      a = Conv (x, w0)
      m = Resize <mode = "nearest"> (a, , sc)
      y = Conv (m, w1)
    }}"""
    model, p, _, _ = _prune(text, ratio=0.5)
    assert _shape(model, "w0") == [8, 3, 1, 1]
    assert any("scales the channels" in g.get("reason", "") for g in p.last_report), p.last_report


def test_resize_with_shared_sizes_gets_a_copy_each():
    """Two Resizes read one sizes constant: each gets its own copy with the new count."""
    text = f"""{HEAD18}
    g (float[1,3,4,4] x) => (float[1,2,8,8] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('w1', (2, 8, 1, 1), 2)},
        int64[4] sz = {{1, 8, 8, 8}}> {{
      a = Conv (x, w0)
      m1 = Resize <mode = "nearest"> (a, , , sz)
      m2 = Resize <mode = "linear"> (a, , , sz)
      m = Add (m1, m2)
      y = Conv (m, w1)
    }}"""
    model, p, _, _ = _prune(text, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1], p.last_report
    assert _resize_sizes(model, 2) == [[1, 4, 8, 8]] * 2


def _resize_sizes(model, count=1):
    sizes = [list(n.inputs[3].const_value.numpy()) for n in model.graph if n.op_type == "Resize"]
    assert len(sizes) == count
    return sizes if count > 1 else sizes[0]


def test_squeeze_and_unsqueeze_move_the_channel_axis():
    """A 1-D conv stack written as 2-D: [1, C, 1, W] -> Squeeze(2) -> [1, C, W] -> Unsqueeze(2)."""
    text = f"""{HEAD}
    g (float[1,3,1,6] x) => (float[1,2,1,6] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('w1', (2, 8, 1, 1), 2)},
        int64[1] ax = {{2}}> {{
      a = Conv (x, w0)
      s = Squeeze (a, ax)
      r = Relu (s)
      m = Unsqueeze (r, ax)
      y = Conv (m, w1)
    }}"""
    model, p, _, _ = _prune(text, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1] and _shape(model, "w1") == [2, 4, 1, 1], p.last_report


def test_unsqueeze_in_front_shifts_the_channel_axis():
    """[1, C, W] -> Unsqueeze(0) -> [1, 1, C, W]: the channels move to axis 2, where a Conv does not
    read them as channels, so the group is left alone (the must-not-fire case)."""
    text = f"""{HEAD}
    g (float[1,3,6] x) => (float[1,2,8,6] y) <{_w('w0', (8, 3, 1), 1)}, {_w('w1', (2, 1, 1, 1), 2)},
        int64[1] ax = {{0}}> {{
      a = Conv (x, w0)
      m = Unsqueeze (a, ax)
      y = Conv (m, w1)
    }}"""
    model, p, _, _ = _prune(text, ratio=0.5)
    assert _shape(model, "w0") == [8, 3, 1]
    assert p.last_report and all(not g["pruned"] for g in p.last_report), p.last_report


def test_squeeze_of_the_channel_axis_is_not_pruned():
    text = f"""{HEAD}
    g (float[1,3,4,4] x) => (float[1,4,4] y) <{_w('w0', (1, 3, 1, 1), 1)}, int64[1] ax = {{1}}> {{
      a = Conv (x, w0)
      y = Squeeze (a, ax)
    }}"""
    model, p, _, _ = _prune(text, ratio=0.5)
    assert _shape(model, "w0") == [1, 3, 1, 1]


def test_softmax_along_the_channels_is_not_pruned_and_along_others_is():
    over_w = _two_convs("m = Softmax <axis = -1> (a)", out="float[1,2,4,4] y")
    model, _, _, _ = _prune(over_w, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1]
    over_c = _two_convs("m = Softmax <axis = 1> (a)", out="float[1,2,4,4] y")
    model, p, _, _ = _prune(over_c, ratio=0.5)
    assert _shape(model, "w0") == [8, 3, 1, 1]
    assert any("normalizes over the channels" in g.get("reason", "") for g in p.last_report), p.last_report


def test_reshape_keeping_the_channels_gets_the_new_count():
    """[1, 8, 4, 4] -> (1, 8, -1) -> Softmax over the pixels -> (1, 8, 4, 4): both targets name the
    channel count; each gets a copy with the new one (they share one constant here)."""
    text = _two_convs("f = Reshape (a, s3)\n      sm = Softmax <axis = -1> (f)\n      m = Reshape (sm, s4)",
                      extra=", int64[3] s3 = {1, 8, -1}, int64[4] s4 = {1, 8, 4, 4}", out="float[1,2,4,4] y")
    model, p, _, _ = _prune(text, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1] and _shape(model, "w1") == [2, 4, 1, 1], p.last_report
    targets = [list(n.inputs[1].const_value.numpy()) for n in model.graph if n.op_type == "Reshape"]
    assert targets == [[1, 4, -1], [1, 4, 4, 4]]


def test_reshape_moving_the_channels_last_before_a_matmul():
    """open_nsfw's head: GAP [N, C, 1, 1] -> (-1, 1, 1, C) -> (-1, C) -> MatMul; a symbolic batch."""
    text = f"""{HEAD}
    g (float[N,3,4,4] x) => (float[N,5] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('fc', (8, 5), 2)},
        int64[4] t4 = {{-1, 1, 1, 8}}, int64[2] t2 = {{-1, 8}}> {{
      a = Conv (x, w0)
      p = GlobalAveragePool (a)
      r4 = Reshape (p, t4)
      r2 = Reshape (r4, t2)
      y = MatMul (r2, fc)
    }}"""
    model, p, _, _ = _prune(text, batch=3, infer=True, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1] and _shape(model, "fc") == [4, 5], p.last_report


def test_reshape_splitting_the_channels_is_not_pruned():
    """[1, 8, 2, 2] -> (2, 8, 2): an 8 in the target, but not the channels (the prefix and suffix
    element counts differ), so the group is left whole."""
    text = f"""{HEAD}
    g (float[1,3,2,2] x) => (float[2,8,2] y) <{_w('w0', (8, 3, 1, 1), 1)}, int64[3] t = {{2, 8, 2}}> {{
      a = Conv (x, w0)
      r = Reshape (a, t)
      y = Relu (r)
    }}"""
    model, p, _, _ = _prune(text, ratio=0.5)
    assert _shape(model, "w0") == [8, 3, 1, 1]
    assert any("mixes the channels" in g.get("reason", "") for g in p.last_report), p.last_report


ATTENTION = f"""{HEAD}
g (float[1,5,16] x) => (float[1,5,16] y) <{_w('wq', (16, 16), 1)}, {_w('wk', (16, 16), 2)}, {_w('wv', (16, 16), 3)},
    {_w('bq', (16,), 4)}, {_w('wo', (16, 16), 5)}, int64[4] split = {{1, 5, 4, 4}}, int64[3] merge = {{1, 5, 16}},
    float scale = {{0.5}}, float fill = {{-10000.0}},
    bool[1,1,5,5] mask = {{1,0,0,0,0, 1,1,0,0,0, 1,1,1,0,0, 1,1,1,1,0, 1,1,1,1,1}}> {{
  q0 = MatMul (x, wq)
  q1 = Add (q0, bq)
  k0 = MatMul (x, wk)
  v0 = MatMul (x, wv)
  q2 = Reshape (q1, split)
  k2 = Reshape (k0, split)
  v2 = Reshape (v0, split)
  q = Transpose <perm = [0, 2, 1, 3]> (q2)
  kt = Transpose <perm = [0, 2, 3, 1]> (k2)
  v = Transpose <perm = [0, 2, 1, 3]> (v2)
  s0 = MatMul (q, kt)
  s1 = Mul (s0, scale)
  s2 = Where (mask, s1, fill)
  p = Softmax <axis = -1> (s2)
  c0 = MatMul (p, v)
  c1 = Transpose <perm = [0, 2, 1, 3]> (c0)
  c2 = Reshape (c1, merge)
  o = MatMul (c2, wo)
  y = Add (o, x)
}}"""


def test_attention_heads_are_pruned_whole():
    """Q/K/V columns, the query bias and the output projection's rows of the removed heads go; the
    split target gets the new head count, the merge target the new width (4 heads of 4 -> 2)."""
    model, p, _, _ = _prune(ATTENTION, ratio=0.5)
    assert [_shape(model, w) for w in ("wq", "wk", "wv", "bq", "wo")] == [[16, 8], [16, 8], [16, 8], [8], [8, 16]]
    targets = [list(n.inputs[1].const_value.numpy()) for n in model.graph if n.op_type == "Reshape"]
    assert targets == [[1, 5, 2, 4]] * 3 + [[1, 5, 8]], targets
    heads = next(g for g in p.last_report if g.get("pruned"))
    assert heads["units"] == 4 and heads["pruned"] == 2 and len(heads["layers"]) == 3


def test_heads_multiplied_as_rows_are_not_pruned():
    """Without the transposes, Q @ K^T multiplies [1, S, H, D] by [1, S, D, H]: the heads are rows
    and columns of the product, mixed together, so the group is left whole."""
    text = ATTENTION.replace("q = Transpose <perm = [0, 2, 1, 3]> (q2)", "q = Identity (q2)").replace(
        "kt = Transpose <perm = [0, 2, 3, 1]> (k2)", "kt = Transpose <perm = [0, 1, 3, 2]> (k2)")
    text = text.replace("bool[1,1,5,5] mask", "bool[1,1,4,4] mask").replace(
        "1,0,0,0,0, 1,1,0,0,0, 1,1,1,0,0, 1,1,1,1,0, 1,1,1,1,1", "1,0,0,0, 1,1,0,0, 1,1,1,0, 1,1,1,1")
    text = text.replace("c0 = MatMul (p, v)", "c0 = MatMul (p, q2)").replace(
        "c1 = Transpose <perm = [0, 2, 1, 3]> (c0)", "c1 = Identity (c0)")
    model, p, _, _ = _prune(text, ratio=0.5)
    assert _shape(model, "wq") == [16, 16] and _shape(model, "wk") == [16, 16]
    assert any("rows or columns" in g.get("reason", "") for g in p.last_report), p.last_report


def test_round_to_counts_channels_not_heads():
    """--round-to 8 with heads of 4 channels keeps a multiple of 2 heads (8 channels): 4 -> 2. As
    a multiple of 8 units it would have kept all 4."""
    model, _, _, _ = _prune(ATTENTION, ratio=0.5, round_to=8)
    assert _shape(model, "wq") == [16, 8] and _shape(model, "wo") == [8, 16]


def _run_time_targets(batch_piece: str) -> str:
    """[N, 8, 4, 4] -> (N, 8, -1) -> Softmax over the pixels -> (N, 8, 4, 4), both targets built at
    run time (as torch exports `x.reshape(x.shape[0], 8, -1)`): each reads the batch of the tensor
    it reshapes from its Shape (`batch_piece` turns `sh` into `nb`, the batch as a 1-D piece)."""
    second = batch_piece.replace("sh", "sh2").replace("nb", "nb2")
    for v in ("i0", "g0", "ax", "s0", "s1"):
        second = second.replace(f"{v} ", f"{v}_2 ").replace(f"{v})", f"{v}_2)").replace(f"{v},", f"{v}_2,")
    return f"""{HEAD}
    g (float[N,3,4,4] x) => (float[N,2,4,4] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('w1', (2, 8, 1, 1), 2)},
        int64[1] c = {{8}}, int64[1] rest = {{-1}}, int64[2] hw = {{4, 4}}> {{
      a = Conv (x, w0)
      sh = Shape (a)
      {batch_piece}
      t3 = Concat <axis = 0> (nb, c, rest)
      f = Reshape (a, t3)
      sm = Softmax <axis = -1> (f)
      sh2 = Shape (sm)
      {second}
      t4 = Concat <axis = 0> (nb2, c, hw)
      m = Reshape (sm, t4)
      y = Conv (m, w1)
    }}"""


def test_run_time_reshape_targets_get_the_new_count():
    """A dynamic batch read back with Shape (Gather + Unsqueeze, or a Slice of the shape): the
    channel count is a constant piece of each Concat, rewritten after pruning (a copy per Concat:
    both read one constant here); the Shape reads the batch only, so the group is pruned."""
    for piece in ("i0 = Constant <value = int64 {0}> ()\n      g0 = Gather (sh, i0)\n"
                  "      ax = Constant <value = int64[1] {0}> ()\n      nb = Unsqueeze (g0, ax)",
                  "s0 = Constant <value = int64[1] {0}> ()\n      s1 = Constant <value = int64[1] {1}> ()\n"
                  "      nb = Slice (sh, s0, s1)"):
        model, p, _, _ = _prune(_run_time_targets(piece), batch=3, infer=True, ratio=0.5)
        assert _shape(model, "w0") == [4, 3, 1, 1] and _shape(model, "w1") == [2, 4, 1, 1], p.last_report
        pieces = [list(n.inputs[1].const_value.numpy()) for n in model.graph if n.op_type == "Concat"]
        assert pieces == [[4], [4]], pieces


def _reading_the_channel_count(shape_of: str) -> str:
    """`x.reshape(*x.shape[:2], -1)` at run time: a Slice of Shape(`shape_of`) gives the batch and
    the channel count; Softmax over the pixels; back to [N, 8, 4, 4] by a constant target."""
    return f"""{HEAD}
    g (float[N,3,4,4] x) => (float[N,2,4,4] y) <{_w('w0', (8, 3, 1, 1), 1)}, {_w('w1', (2, 8, 1, 1), 2)},
        {_w('w2', (8, 3, 1, 1), 3)}, int64[1] rest = {{-1}}, int64[4] t4 = {{0, 8, 4, 4}}> {{
      a = Conv (x, w0)
      other = Conv (x, w2)
      sh = Shape ({shape_of})
      s0 = Constant <value = int64[1] {{0}}> ()
      s2 = Constant <value = int64[1] {{2}}> ()
      nc = Slice (sh, s0, s2)
      t3 = Concat <axis = 0> (nc, rest)
      f = Reshape (a, t3)
      sm = Softmax <axis = -1> (f)
      m0 = Reshape (sm, t4)
      m = Add (m0, other)
      y = Conv (m, w1)
    }}"""


def test_run_time_channel_count_of_the_reshaped_tensor_follows_the_pruning():
    """The count read from the Shape of the tensor the Reshape reshapes follows the pruned tensor
    by itself: the group is pruned and that target is left as it is (the constant one gets the new
    count)."""
    model, p, _, _ = _prune(_reading_the_channel_count("a"), batch=3, infer=True, ratio=0.5)
    assert _shape(model, "w0") == [4, 3, 1, 1] and _shape(model, "w2") == [4, 3, 1, 1], p.last_report
    targets = [n.inputs[1] for n in model.graph if n.op_type == "Reshape"]
    assert targets[0].const_value is None and list(targets[1].const_value.numpy()) == [0, 4, 4, 4]


def test_run_time_channel_count_of_another_tensor_is_not_pruned():
    """The same count read from the Shape of another tensor of the group (`other`, added to the
    reshaped one): nothing ties it to this Reshape, so the group is left whole with the reason."""
    model, p, _, _ = _prune(_reading_the_channel_count("other"), batch=3, infer=True, ratio=0.5)
    assert _shape(model, "w0") == [8, 3, 1, 1]
    assert any("reads the channel count" in g.get("reason", "") for g in p.last_report), p.last_report


def test_attention_heads_with_run_time_targets():
    """vit_s_focus's attention: a dynamic batch, the split and merge targets built at run time
    from the Shape of the residual stream; the heads are pruned whole as with constant targets."""
    text = ATTENTION.replace("float[1,5,16] x) => (float[1,5,16] y)", "float[N,5,16] x) => (float[N,5,16] y)")
    text = text.replace("int64[4] split = {1, 5, 4, 4}, int64[3] merge = {1, 5, 16}",
                        "int64[3] rest4 = {5, 4, 4}, int64[2] rest3 = {5, 16}, int64 zero = {0}, int64[1] ax = {0}")
    text = text.replace("  q0 = MatMul (x, wq)", "  sh = Shape (x)\n  b0 = Gather (sh, zero)\n  b1 = Unsqueeze (b0, ax)\n"
                        "  split = Concat <axis = 0> (b1, rest4)\n  merge = Concat <axis = 0> (b1, rest3)\n  q0 = MatMul (x, wq)")
    # each Reshape reads its own Concat (a target read by several Reshapes is left alone)
    for name in ("k2", "v2"):
        text = text.replace(f"  {name} = Reshape ({name[0]}0, split)",
                            f"  split_{name} = Concat <axis = 0> (b1, rest4)\n  {name} = Reshape ({name[0]}0, split_{name})")
    model, p, _, _ = _prune(text, batch=2, infer=True, ratio=0.5)
    assert [_shape(model, w) for w in ("wq", "wk", "wv", "bq", "wo")] == [[16, 8], [16, 8], [16, 8], [8], [8, 16]]


def test_shape_read_through_a_cast():
    """Shape -> Cast -> Slice of the batch only: the group is pruned (the batch does not change);
    a Slice that takes the channel entry too leaves it whole."""
    for end, pruned in ((1, True), (2, False)):
        middle = ("m = Relu (a)\n      sh = Shape (a)\n      s32 = Cast <to = 6> (sh)\n"
                  "      nb = Slice (s32, z, e)")
        text = _two_convs(middle, extra=f", int64[1] z = {{0}}, int64[1] e = {{{end}}}",
                          out=f"float[1,2,4,4] y, int32[{end}] nb")
        model, p, _, _ = _prune(text, ratio=0.5)
        assert _shape(model, "w0") == ([4, 3, 1, 1] if pruned else [8, 3, 1, 1]), p.last_report
        if not pruned:
            assert any("reads the channel count" in g.get("reason", "") for g in p.last_report), p.last_report
