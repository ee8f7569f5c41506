"""Each schedule rule is numerically right vs onnxruntime (atol 1e-4) on small and odd shapes, and
picks only the kernels it is meant for. No timing asserts."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.targets.registry import get_target
from edgec.targets.tvm.build import build_library
from edgec.targets.tvm.lower import lower_model
from edgec.targets.tvm.runtime import LoadedModel

RNG = np.random.default_rng(0)


def _w(name, shape, scale=0.3):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def _model(nodes, inputs, out_name, inits, out_shape=None):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return onnx.shape_inference.infer_shapes(m)


def _check(model, tmp_path, spec="host", threads=None):
    """Compile with edgec (kernels split for `threads`, default the host's cores), compare with
    onnxruntime; returns the schedule-rule counts."""
    feeds = {i.name: RNG.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
             for i in model.graph.input}
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    lib = tmp_path / f"m{len(list(tmp_path.glob('*.so')))}.so"  # a new path: dlopen caches by name
    res = build_library(mod, get_target(spec) if isinstance(spec, str) else spec, lib, threads=threads)
    got = LoadedModel(res.library, list(feeds), [o.name for o in model.graph.output], threads=2).run(feeds)
    for r, g in zip(ref, got.values()):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, atol=1e-4, rtol=1e-4, equal_nan=False)  # NaN is a mismatch
    return res.schedules


def _conv(x, cin, cout, k, stride=1, group=1, pad=None, bias=True, tag="c"):
    pad = k // 2 if pad is None else pad
    ins = [x, f"{tag}.w"] + ([f"{tag}.b"] if bias else [])
    inits = [_w(f"{tag}.w", (cout, cin // group, k, k))] + ([_w(f"{tag}.b", (cout,))] if bias else [])
    node = helper.make_node("Conv", ins, [f"{tag}.y"], kernel_shape=[k, k], strides=[stride, stride],
                            pads=[pad] * 4, group=group)
    return node, inits, f"{tag}.y"


@pytest.mark.parametrize("cin,cout,k,stride,hw", [(16, 32, 3, 1, (13, 11)), (32, 16, 1, 1, (7, 9)),
                                                  (16, 64, 3, 2, (15, 15)), (64, 64, 3, 1, (5, 5)),
                                                  (128, 128, 3, 1, (7, 7)), (64, 32, 3, 1, (14, 14)),
                                                  # odd channel-block counts (what pruning leaves): 3 x 7 / 5 x 2 x 2 tiles
                                                  (32, 48, 1, 1, (14, 14)), (16, 80, 1, 1, (14, 14)),
                                                  (32, 80, 1, 1, (7, 7)),
                                                  # 11 blocks on 14 rows: 22 parallel tasks (halves of the rows)
                                                  (32, 176, 3, 1, (14, 14)),
                                                  # 42 blocks on 7-pixel rows: 3 x 7 tiles
                                                  (112, 672, 1, 1, (7, 7))])
def test_conv_nchwc_with_epilogue(tmp_path, cin, cout, k, stride, hw):
    conv, inits, y = _conv("x", cin, cout, k, stride)
    relu = helper.make_node("Relu", [y], ["out"])
    used = _check(_model([conv, relu], [("x", [1, cin, *hw])], "out", inits), tmp_path)
    assert used.get("conv2d-nchwc") == 1


@pytest.mark.parametrize("ocb, tile", [(60, (3, 7)), (42, (3, 7)), (10, (2, 7)), (20, (2, 7)), (56, (2, 7))])
def test_short_rows_take_three_channel_blocks_when_four_do_not_fit(ocb, tile):
    """7-pixel rows: 4 blocks x 7 would need 28 accumulators (24 available); 3 x 7 when 3 divides
    the blocks (MobileNetV2's 960- and 672-channel 7x7 expand convs), else 2 x 7."""
    from edgec.targets.tvm.schedules.conv_nchwc import _tile

    assert _tile(ocb, 7, 7 * 16 * 16 * 4, 24) == tile


def test_conv_residual_chain_stays_blocked(tmp_path):
    c1, i1, y1 = _conv("x", 16, 16, 3, tag="a")
    c2, i2, y2 = _conv(y1, 16, 16, 3, tag="b")
    nodes = [c1, c2, helper.make_node("Add", [y2, "x"], ["s"]), helper.make_node("Relu", ["s"], ["out"])]
    used = _check(_model(nodes, [("x", [1, 16, 10, 12])], "out", i1 + i2), tmp_path)
    assert used.get("conv2d-nchwc") == 2


@pytest.mark.parametrize("stride,hw", [(1, (14, 14)), (2, (13, 17))])
def test_depthwise_nchwc(tmp_path, stride, hw):
    c1, i1, y1 = _conv("x", 32, 32, 1, tag="pw")
    dw, i2, y2 = _conv(y1, 32, 32, 3, stride, group=32, tag="dw")
    clip = helper.make_node("Clip", [y2, "lo", "hi"], ["out"])
    inits = i1 + i2 + [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
    used = _check(_model([c1, dw, clip], [("x", [1, 32, *hw])], "out", inits), tmp_path)
    assert used.get("depthwise-nchwc") == 1


@pytest.mark.parametrize("cin,cout,k,stride,hw", [(3, 37, 5, 2, (19, 19)), (5, 7, 3, 1, (9, 6))])
def test_conv_nchw_packed_odd_channels(tmp_path, cin, cout, k, stride, hw):
    conv, inits, y = _conv("x", cin, cout, k, stride)
    used = _check(_model([conv, helper.make_node("Relu", [y], ["out"])], [("x", [1, cin, *hw])], "out", inits),
                  tmp_path)
    assert used.get("conv2d-nchw-packed") == 1


def _scheduled(model, spec, name_part: str, threads=2) -> str:
    """TVMScript of the scheduled kernel of `model` whose name contains `name_part`."""
    import tvm

    from edgec.targets.tvm.build import optimize_relax, schedule, tvm_target

    target = tvm_target(spec)
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    mod = schedule(optimize_relax(mod, target, spec), spec, target, threads=threads)
    (script,) = [f.script() for gv, f in mod.functions.items()
                 if isinstance(f, tvm.tirx.PrimFunc) and name_part in gv.name_hint]
    return script


@pytest.mark.parametrize("k,stride,pad,hw", [(3, 2, 1, (30, 30)),   # MobileNetV2's stem: the bottom row is never read
                                             (7, 2, 3, (23, 21)),   # ResNet's: every side padded
                                             (3, 1, 0, (9, 9))])    # no padding: no pad stage at all
def test_nchw_stem_pads_only_the_rows_each_task_reads(tmp_path, k, stride, pad, hw):
    """A 3-channel stem zero-pads, inside its one parallel loop, only the input rows each output row
    reads, into a local buffer: no padded copy of the whole input as a stage of its own (one
    fork-join less, no pass over memory). Same results as onnxruntime."""
    conv, inits, y = _conv("x", 3, 32, k, stride, pad=pad)
    model = _model([conv, helper.make_node("Relu", [y], ["out"])], [("x", [1, 3, *hw])], "out", inits)
    script = _scheduled(model, get_target("x86-64-avx512"), "conv2d_nchw")
    assert script.count("T.parallel(") == 1
    assert ('T.sblock("edgec_pad_nchwc")' in script) == (pad > 0)
    if pad:
        assert 'edgec_pad_nchwc = T.sblock_alloc_buffer(' not in script  # not a global padded copy
    used = _check(model, tmp_path)
    assert used.get("conv2d-nchw-packed") == 1


@pytest.mark.parametrize("k, stride, hw, tasks", [(3, 2, (64, 64), 8),    # 32 rows: 4 per task, all channel tiles
                                                  (7, 2, (23, 21), 12),  # ResNet's: 12 rows, one per task
                                                  (3, 2, (12, 40), 12)])  # 6 rows: x 2 channel tiles
def test_nchw_stem_task_pads_its_rows_once_for_every_channel_tile(tmp_path, k, stride, hw, tasks):
    """A stem task computes whole output rows (`yt` of them) for every output-channel tile, so the
    zero-padded input rows it reads are built once per task: a task per channel tile and row had
    built them once per tile, a third of MobileNetV2's stem time on AVX2 (in the model 0.171 ->
    0.147 ms, ResNet-18's 7x7 stem 1.83 -> 1.56 ms, 2 threads). With too few rows for the threads the
    channel tiles join the parallel loop. Same results as onnxruntime."""
    from tvm import s_tir, tirx

    from edgec.targets.tvm.build import optimize_relax, schedule, tvm_target

    conv, inits, y = _conv("x", 3, 32, k, stride)
    model = _model([conv, helper.make_node("Relu", [y], ["out"])], [("x", [1, 3, *hw])], "out", inits)
    spec = get_target("x86-64")  # AVX2: 4 channel blocks of 8 in tiles of 2
    target = tvm_target(spec)
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    mod = schedule(optimize_relax(mod, target, spec), spec, target, threads=2)
    (func,) = [f for gv, f in mod.functions.items() if "conv2d_nchw" in gv.name_hint]
    sch = s_tir.Schedule(func)
    pad_loops = {sch.get(lp) for lp in sch.get_loops(sch.get_sblock("edgec_pad_nchwc"))}
    conv_loops = [sch.get(lp) for lp in sch.get_loops(sch.get_sblock("edgec_conv_nchw_acc_update"))]
    shared = [lp for lp in conv_loops if lp in pad_loops]
    assert len(shared) == 1 and shared[0].kind == tirx.ForKind.PARALLEL  # the task loop, no channel loop
    assert int(shared[0].extent) == tasks
    assert _check(model, tmp_path, spec="x86-64", threads=2).get("conv2d-nchw-packed") == 1


@pytest.mark.parametrize("m,k,n", [(7, 33, 40), (128, 64, 96), (1, 50, 1000)])
def test_matmul_bias_activation(tmp_path, m, k, n):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Add", ["y", "b"], ["z"]),
             helper.make_node("Relu", ["z"], ["out"])]
    used = _check(_model(nodes, [("x", [1, m, k])], "out", [_w("w", (k, n)), _w("b", (n,))]), tmp_path)
    assert used.get("matmul") == 1


def test_batch_matmul_odd(tmp_path):
    nodes = [helper.make_node("MatMul", ["a", "b"], ["out"])]
    used = _check(_model(nodes, [("a", [2, 3, 5, 24]), ("b", [2, 3, 24, 12])], "out", []), tmp_path)
    assert used.get("matmul") == 1


@pytest.mark.parametrize("row", [77, 128, 200])
def test_softmax_layernorm_rowwise(tmp_path, row):
    nodes = [helper.make_node("Softmax", ["x"], ["s"], axis=-1),
             helper.make_node("LayerNormalization", ["s", "g", "be"], ["out"], axis=-1)]
    used = _check(_model(nodes, [("x", [1, 4, 9, row])], "out", [_w("g", (row,)), _w("be", (row,))]), tmp_path)
    assert used.get("rowwise") == 2


@pytest.mark.parametrize("axis, shape", [(1, [2, 7, 5]), (0, [6, 3]), (1, [1, 16, 4, 21]), (-3, [2, 3, 4, 5])])
def test_softmax_other_axis_is_rowwise_between_transposes(tmp_path, axis, shape):
    """Softmax over another axis is the row softmax between two transposes (TOPI's strided one
    was 2.6 ms on YOLOv8's DFL head), still matching onnxruntime."""
    nodes = [helper.make_node("Softmax", ["x"], ["out"], axis=axis)]
    used = _check(_model(nodes, [("x", shape)], "out", []), tmp_path)
    assert used.get("rowwise") == 1, used


def test_pool(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["p"], ["out"])]
    _check(_model(nodes, [("x", [1, 5, 15, 13])], "out", []), tmp_path)


def test_rules_do_not_misfire(tmp_path):
    """Elementwise and a plain sum reduction must not be taken for conv or matmul kernels."""
    nodes = [helper.make_node("Mul", ["x", "y"], ["m"]), helper.make_node("Tanh", ["m"], ["out"])]
    used = _check(_model(nodes, [("x", [1, 6, 7, 33]), ("y", [1, 6, 7, 33])], "out", []), tmp_path)
    assert set(used) == {"parallel-vectorize"}
    nodes = [helper.make_node("ReduceSum", ["x", "ax"], ["out"], keepdims=0)]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "ax")]
    used = _check(_model(nodes, [("x", [3, 40, 8])], "out", inits), tmp_path)
    assert not {"matmul", "conv2d-nchwc", "depthwise-nchwc", "conv2d-nchw-packed", "depthwise-nchw",
                "rowwise"} & set(used)


def test_avx2_target_lanes(tmp_path):
    """8-lane vectors (AVX2 target) on the same kernels."""
    conv, inits, y = _conv("x", 8, 24, 3)
    used = _check(_model([conv], [("x", [1, 8, 9, 10])], y, inits), tmp_path, spec="x86-64-avx2")
    assert used.get("conv2d-nchwc") == 1


def _loop_kinds(func) -> set[int]:
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    return {int(sch.get(lp).kind) for b in sch.get_child_blocks(sch.get_sblock("root")) for lp in sch.get_loops(b)}


@pytest.mark.parametrize("n, k, parallel", [(8, 64, False), (16, 32, False), (256, 256, True)])
def test_small_kernels_run_on_one_thread(n, k, parallel):
    """A kernel of fewer than SERIAL_WORK iterations is scheduled without parallel loops (a
    fork-join of the thread pool costs more than its work); a larger one keeps them."""
    from tvm import te, tirx

    from edgec.targets.tvm.schedules import SERIAL_WORK, context_for, kernel_work, schedule_func

    a = te.placeholder((n, k), name="a")
    w = te.placeholder((k, 32), name="w")
    r = te.reduce_axis((0, k), name="r")
    c = te.compute((n, 32), lambda i, j: te.sum(a[i, r] * w[r, j], axis=r), name="c")
    func = te.create_prim_func([a, w, c])
    assert (kernel_work(func) < SERIAL_WORK) != parallel
    new, rule = schedule_func(func, context_for(get_target("x86-64"), threads=2))
    assert rule != "none"
    assert (int(tirx.ForKind.PARALLEL) in _loop_kinds(new)) == parallel, rule


def test_matmul_with_broadcasting_epilogue(tmp_path):
    """oskut's attention: a [B, 1, K] x [K, N] matmul + bias, added to a [B, T, N] tensor, then Tanh.
    The epilogue writes T times the matmul's elements: the matmul rule still takes the kernel and
    runs the broadcast as its own nest (DLight's reduction rule took it before: 30 ms for 2.4M MACs)."""
    nodes = [helper.make_node("MatMul", ["q", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["mb"]),
             helper.make_node("Add", ["k", "mb"], ["s"]), helper.make_node("Tanh", ["s"], ["out"])]
    inits = [_w("w", (48, 40)), _w("b", (40,))]
    used = _check(_model(nodes, [("q", [6, 1, 48]), ("k", [6, 7, 40])], "out", inits), tmp_path)
    assert used.get("matmul") == 1 and not used.get("reduction(dlight)"), used


@pytest.mark.parametrize("ocb,oh,ow,tile", [(3, 14, 14, (3, 1, 7)), (9, 56, 56, (3, 1, 7)), (5, 14, 14, (5, 2, 2)),
                                            (5, 112, 112, (5, 1, 4)), (5, 7, 7, None), (17, 14, 14, None),
                                            (7, 56, 56, None)])
def test_odd_channel_blocks_get_a_multi_block_tile(ocb, oh, ow, tile):
    """A pointwise conv with an odd number of channel blocks tiles 3 or 5 of them (not 1, which is
    bound by broadcast loads), accumulators plus weights within 26 registers; None where neither
    divides or the tile would be small."""
    from edgec.targets.tvm.schedules.conv_nchwc import _odd_blocks_tile

    got = _odd_blocks_tile(ocb, oh, ow, panel_bytes=64 * 16 * 4, step_bytes=16 * 16 * 4, vregs=26)
    assert (None if got is None else (got["ot"], got["yt"], got["wt"])) == tile


@pytest.mark.parametrize("k, stride, hw", [(3, 2, 224), (7, 2, 64)])
def test_nchw_pad_fill_runs_in_the_parallel_row_loop(k, stride, hw):
    """An NCHW image stem's zero-padded input: each task fills its own padded rows with zeros and
    then copies the interior, inside one parallel loop. The fill had been a serial loop over the
    whole padded buffer before the parallel copy (MobileNetV2's 3x224x224 stem: 0.26 -> 0.21 ms,
    2 threads)."""
    from tvm import s_tir, tirx

    from edgec.targets.tvm.build import optimize_relax, schedule, tvm_target

    conv, inits, y = _conv("x", 3, 32, k, stride)
    relu = helper.make_node("Relu", [y], ["out"])
    model = _model([conv, relu], [("x", [1, 3, hw, hw])], "out", inits)
    spec = get_target("x86-64")
    target = tvm_target(spec)
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    mod = schedule(optimize_relax(mod, target, spec), spec, target, threads=2)
    funcs = [f for gv, f in mod.functions.items() if "conv2d_nchw" in gv.name_hint]
    assert len(funcs) == 1
    sch = s_tir.Schedule(funcs[0])
    fill_outer = sch.get(sch.get_loops(sch.get_sblock("edgec_pad_nchwc_pad_const"))[0])
    copy_outer = sch.get(sch.get_loops(sch.get_sblock("edgec_pad_nchwc"))[0])
    assert fill_outer.kind == tirx.ForKind.PARALLEL
    assert fill_outer.same_as(copy_outer)  # one parallel loop: fill, then copy, per task


def test_three_block_3x3_tile_with_a_large_l1(tmp_path):
    """ResNet-18's pruned 64 -> 48 3x3 conv: with a 48 KiB L1 the 3-block x 7-pixel tile (its inner
    weight sweep is 27 KiB); numerically the same as onnxruntime."""
    from dataclasses import replace

    from edgec.targets.tvm.schedules import context_for
    from edgec.targets.tvm.schedules.conv_nchwc import default_knobs

    spec = replace(get_target("host"), l1d_bytes=48 * 1024)
    conv, inits, y = _conv("x", 64, 48, 3)
    relu = helper.make_node("Relu", [y], ["out"])
    model = _model([conv, relu], [("x", [1, 64, 14, 14])], "out", inits)
    assert _check(model, tmp_path, spec).get("conv2d-nchwc") == 1
    if spec.vector_bits == 512:  # 48 channels are 3 blocks of 16 (an AVX2 host has 6 of 8)
        from tvm import s_tir

        from edgec.targets.tvm.build import optimize_relax, tvm_target

        mod, _ = lower_model(ir.serde.deserialize_model(model))
        mod = optimize_relax(mod, tvm_target(spec), spec)
        func = next(f for gv, f in mod.functions.items() if "conv2d_nchwc" in gv.name_hint)
        knobs = default_knobs(s_tir.Schedule(func), context_for(spec, threads=2))
        assert (knobs["ot"], knobs["wt"]) == (3, 7)


@pytest.mark.parametrize("spec_name", ["x86-64-avx2", "x86-64-avx512"])
def test_pointwise_2d_tile_fits_the_register_file(spec_name, tmp_path):
    """MobileNetV2's 64 -> 384 expand conv on 14x14 rows takes the 2-D pointwise tile (channel
    vectors x 2 rows x 2 pixels). Its accumulators and weight vectors fit the target's register
    file: 4 x 2 x 2 with AVX-512's 32 registers, 2 x 2 x 2 with AVX2's 16 (4 x 2 x 2 spilled there:
    1.65-1.75x slower on Zen 3). The host's build matches onnxruntime."""
    from tvm import s_tir

    from edgec.targets.tvm.build import optimize_relax, tvm_target
    from edgec.targets.tvm.schedules import context_for
    from edgec.targets.tvm.schedules.conv_nchwc import default_knobs

    conv, inits, y = _conv("x", 64, 384, 1)
    model = _model([conv, helper.make_node("Relu", [y], ["out"])], [("x", [1, 64, 14, 14])], "out", inits)
    spec = get_target(spec_name)
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    mod = optimize_relax(mod, tvm_target(spec), spec)
    func = next(f for gv, f in mod.functions.items() if "conv2d_nchwc" in gv.name_hint)
    ctx = context_for(spec, threads=2)
    knobs = default_knobs(s_tir.Schedule(func), ctx)
    assert (knobs["yt"], knobs["wt"]) == (2, 2)
    assert knobs["ot"] * knobs["yt"] * knobs["wt"] + knobs["ot"] <= ctx.registers - 2, knobs
    assert _check(model, tmp_path).get("conv2d-nchwc") == 1


def _scheduled_convs(model, spec):
    from edgec.targets.tvm.build import optimize_relax, schedule, tvm_target

    target = tvm_target(spec)
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    mod = schedule(optimize_relax(mod, target, spec), spec, target, threads=2)
    return [f for gv, f in mod.functions.items() if "conv2d" in gv.name_hint]


def _parallel_extents(func) -> list[int]:
    from tvm import s_tir, tirx

    sch = s_tir.Schedule(func)
    return [int(sch.get(lp).extent) for b in sch.get_child_blocks(sch.get_sblock("root"))
            for lp in sch.get_loops(b) if sch.get(lp).kind == tirx.ForKind.PARALLEL]


@pytest.mark.parametrize("cout, group, hw, tasks", [(352, 1, 7, 77), (128, 1, 14, 56), (272, 272, 14, 17)])
def test_parallel_tasks_split_evenly_over_two_threads(cout, group, hw, tasks):
    """TVM gives each thread a contiguous ceil(n / threads) chunk of a parallel loop. ResNet-18's
    pruned 352-channel conv on 7x7 (22 blocks, 2 per tile) had 11 tasks, 6 and 5 on 2 threads; it
    now runs 77 (11 x 7 rows: 7 has no smaller factor). 4 blocks x 14 rows stay as they were;
    depthwise convs keep the plain fusion (17 blocks: finer tasks measured 7-25% slower on those
    small kernels)."""
    from edgec.targets.tvm.schedules.common import idle_share

    assert idle_share(11, 2) == pytest.approx(1 / 12) and idle_share(22, 2) == 0 and idle_share(5, 1) == 0
    cin = cout if group > 1 else 32
    conv, inits, y = _conv("x", cin, cout, 3, group=group)
    model = _model([conv, helper.make_node("Relu", [y], ["out"])], [("x", [1, cin, hw, hw])], "out", inits)
    funcs = _scheduled_convs(model, get_target("x86-64-avx512"))
    assert len(funcs) == 1
    assert _parallel_extents(funcs[0])[-1] == tasks


def _conv_blocks(model, spec) -> list[int]:
    """Output-channel blocks the blocked conv of `model` computes (lowered for `spec`)."""
    from tvm import s_tir

    from edgec.targets.tvm.build import optimize_relax, tvm_target
    from edgec.targets.tvm.layout import CONV_BLOCK

    mod, _ = lower_model(ir.serde.deserialize_model(model))
    mod = optimize_relax(mod, tvm_target(spec), spec)
    out = []
    for gv, func in mod.functions.items():
        if "conv2d_nchwc" in gv.name_hint:
            sch = s_tir.Schedule(func)
            out.append(int(sch.get(sch.get_sblock(CONV_BLOCK)).iter_vars[1].dom.extent))
    return out


@pytest.mark.parametrize("cout, blocks", [(176, 12), (272, 18), (160, 10), (48, 3)])
def test_prime_block_counts_get_a_zero_block(tmp_path, cout, blocks):
    """A dense conv with 11 or 17 channel blocks (176 / 272 channels: what pruning leaves) computes
    one more block of zero weights, so the register tile can take 2 blocks, and crops it before the
    epilogue (ResNet-18's pruned 176-channel convs 5-8% faster, MobileNetV2's 272-channel ones
    8-10%); 10 and 3 blocks are left alone. With a residual add after it, numerically the same as
    onnxruntime."""
    conv, inits, y = _conv("x", 32, cout, 3, tag="a")
    nodes = [conv, helper.make_node("Add", [y, "r"], ["s"]), helper.make_node("Relu", ["s"], ["out"])]
    model = _model(nodes, [("x", [1, 32, 14, 14]), ("r", [1, cout, 14, 14])], "out", inits)
    assert _conv_blocks(model, get_target("x86-64-avx512")) == [blocks]
    used = _check(model, tmp_path)
    assert used.get("conv2d-nchwc") == 1


def test_runtime_weights_are_not_padded(tmp_path):
    """The zero block is added to constant weights only (folded at compile time): a conv whose
    weights are a graph input keeps its 11 blocks, and runs right."""
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    model = _model([conv, helper.make_node("Relu", ["y"], ["out"])], [("x", [1, 32, 14, 14]), ("w", [176, 32, 3, 3])],
                   "out", [])
    assert _conv_blocks(model, get_target("x86-64-avx512")) == [11]
    _check(model, tmp_path)


def _conv_knobs(model, spec, threads=2) -> list[tuple[str, dict]]:
    """(rule module name, default knobs) of each conv kernel of `model` lowered for `spec`."""
    import tvm
    from tvm import s_tir

    from edgec.targets.tvm.build import context_for, optimize_relax, tvm_target
    from edgec.targets.tvm.schedules import conv_nchwc, dwconv_nchwc

    target = tvm_target(spec)
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    mod = optimize_relax(mod, target, spec)
    ctx = context_for(spec, target, threads)
    out = []
    for gv, func in sorted(mod.functions.items(), key=lambda kv: kv[0].name_hint):
        if not isinstance(func, tvm.tirx.PrimFunc):
            continue
        for rule in (dwconv_nchwc, conv_nchwc):
            sch = s_tir.Schedule(func)
            if "conv2d" in gv.name_hint and rule.match(sch, ctx):
                out.append((rule.NAME, rule.default_knobs(sch, ctx)))
                break
    return out


@pytest.mark.parametrize("cin, cout, hw, pw_order, dw_order", [
    (16, 64, 56, "rows", "rows"),           # activations outweigh the weights: rows first
    (112, 672, 7, "channels", "channels"),  # deep layer on a small image: the weights outweigh them
    (32, 96, 14, "rows", "channels"),       # a 14x14 depthwise plane: the channel split measured faster
    (16, 64, 27, "channels", "channels"),   # 27 rows do not split evenly over 2 threads
])
def test_parallel_order_follows_the_larger_operand(tmp_path, cin, cout, hw, pw_order, dw_order):
    """A pointwise conv and the depthwise conv after it split their parallel loop by output rows
    when the activations outweigh the weights (each core then reads what it wrote itself), by
    output-channel blocks otherwise; both orders compute the same as onnxruntime."""
    pw, i1, y1 = _conv("x", cin, cout, 1, tag="pw")
    dw, i2, y2 = _conv(y1, cout, cout, 3, group=cout, tag="dw")
    model = _model([pw, dw, helper.make_node("Relu", [y2], ["out"])], [("x", [1, cin, hw, hw])], "out", i1 + i2)
    knobs = dict(_conv_knobs(model, get_target("x86-64-avx512")))
    assert knobs["conv2d-nchwc"]["order"] == pw_order
    assert knobs["depthwise-nchwc"]["order"] == dw_order
    used = _check(model, tmp_path)
    assert used.get("conv2d-nchwc") == 1 and used.get("depthwise-nchwc") == 1


def test_pixel_tiles_join_the_parallel_loop_when_rows_split_unevenly(tmp_path):
    """Pruned MobileNetV2's 400 -> 64 pointwise conv on 14x14 (one 4-block x 2-row x 2-pixel tile
    across the channels) had 7 tasks, 4 and 3 on two threads; the pixel tiles now join the fusion:
    49 tasks (about 10% faster), computing the same as onnxruntime."""
    conv, inits, y = _conv("x", 400, 64, 1)
    model = _model([conv, helper.make_node("Relu", [y], ["out"])], [("x", [1, 400, 14, 14])], "out", inits)
    funcs = _scheduled_convs(model, get_target("x86-64-avx512"))
    assert len(funcs) == 1 and _parallel_extents(funcs[0])[-1] == 49
    assert _check(model, tmp_path).get("conv2d-nchwc") == 1


@pytest.mark.parametrize("hw, tile_epilogue", [((48, 48), True),    # 24-pixel rows: three whole 8-pixel tiles
                                               ((46, 46), False)])  # 23 pixels: tiles over a row padded to 24
def test_blocked_stem_output_leaves_from_register_tiles(tmp_path, hw, tile_epilogue):
    """A 3-channel stem whose output stays blocked (a conv follows) runs its epilogue on each
    register tile (inside the tile loop: the tile never goes to memory); over a row padded to whole
    tiles the epilogue stays per row (per tile it would need a per-lane bounds test). Same results
    as onnxruntime either way."""
    import tvm
    from tvm import s_tir

    from edgec.targets.tvm.build import optimize_relax, schedule, tvm_target
    from edgec.targets.tvm.layout import CONV_NCHW_BLOCK
    from edgec.targets.tvm.schedules import common as C

    stem, i1, y1 = _conv("x", 3, 32, 3, 2, tag="stem")
    pw, i2, y2 = _conv(y1, 32, 32, 1, tag="pw")
    model = _model([stem, pw, helper.make_node("Relu", [y2], ["out"])], [("x", [1, 3, *hw])], "out", i1 + i2)
    spec = get_target("x86-64-avx512")
    target = tvm_target(spec)
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    mod = schedule(optimize_relax(mod, target, spec), spec, target, threads=2)
    (sch,) = [s_tir.Schedule(f) for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc)
              and C.find_block(s_tir.Schedule(f), CONV_NCHW_BLOCK + "_update") is not None]
    conv = sch.get_sblock(CONV_NCHW_BLOCK + "_update")
    tail = C.root_blocks(sch)[-1]
    shared = {sch.get(lp) for lp in sch.get_loops(conv)} & {sch.get(lp) for lp in sch.get_loops(tail)}
    # (task, row of the task, channel tile, pixel tile), or without the pixel tile: per row
    assert len(shared) == (4 if tile_epilogue else 3)
    used = _check(model, tmp_path)
    assert used.get("conv2d-nchw-packed") == 1
