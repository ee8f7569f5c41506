"""A depthwise conv fused into the 1x1 conv reading it (targets/tvm/fuse_depthwise.py, rule
schedules/dwconv_pointwise.py): one kernel per pair, numerically what onnxruntime computes, and
no fusion where the depthwise output is needed elsewhere or the next conv is not pointwise."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from .test_schedules import _check, _conv, _model


def _clip(x, out):
    return helper.make_node("Clip", [x, "lo", "hi"], [out])


_BOUNDS = [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]


def _block(c, hidden, cout, hw, stride=1, residual=False):
    """MobileNetV2's inverted residual: 1x1 expand, ReLU6, 3x3 depthwise, ReLU6, 1x1 project."""
    e, i1, y1 = _conv("x", c, hidden, 1, tag="e")
    dw, i2, y2 = _conv("e.a", hidden, hidden, 3, stride, group=hidden, tag="dw")
    p, i3, y3 = _conv("dw.a", hidden, cout, 1, tag="p")
    nodes = [e, _clip(y1, "e.a"), dw, _clip(y2, "dw.a"), p]
    out = y3
    if residual:
        nodes.append(helper.make_node("Add", ["x", y3], ["out"]))
        out = "out"
    return _model(nodes, [("x", [1, c, *hw])], out, i1 + i2 + i3 + _BOUNDS)


@pytest.mark.parametrize("c, hidden, cout, hw, stride, residual, threads", [
    (16, 96, 16, (28, 28), 1, True, 2),    # residual add in the epilogue
    (16, 96, 32, (29, 29), 2, False, 1),   # stride 2: 15 output rows, on one thread
    (32, 48, 176, (14, 14), 1, False, 2),  # pruned widths: 3 depthwise blocks, 11 + 1 zero pointwise blocks (cropped)
    (112, 672, 112, (7, 7), 1, True, 1),   # 7 rows: fused when the kernels run on one thread
    (16, 64, 32, (10, 13), 1, False, 2),   # odd width
])
def test_depthwise_fused_into_pointwise(tmp_path, c, hidden, cout, hw, stride, residual, threads):
    used = _check(_block(c, hidden, cout, hw, stride, residual), tmp_path, threads=threads)
    assert used.get("depthwise-pointwise-nchwc") == 1
    assert "depthwise-nchwc" not in used


def test_rows_that_do_not_split_over_the_threads_are_not_fused(tmp_path):
    """Must not fire: 7 output rows on 2 threads (4 rows against 3 measured no faster fused)."""
    used = _check(_block(112, 672, 112, (7, 7), residual=True), tmp_path, threads=2)
    assert used.get("depthwise-nchwc") == 1 and "depthwise-pointwise-nchwc" not in used


def test_channel_split_computes_the_same(tmp_path, monkeypatch):
    """The `split="channels"` knob (each thread its output-channel tiles, all depthwise rows)."""
    from edgec.targets.tvm.schedules import dwconv_pointwise

    default = dwconv_pointwise.default_knobs
    monkeypatch.setattr(dwconv_pointwise, "default_knobs", lambda sch, ctx: {**default(sch, ctx), "split": "channels"})
    used = _check(_block(16, 96, 128, (14, 14)), tmp_path, threads=2)
    assert used.get("depthwise-pointwise-nchwc") == 1


def test_depthwise_output_used_twice_is_not_fused(tmp_path):
    """Must not fire: the depthwise output also feeds an Add, so it has to be written out."""
    dw, i1, y1 = _conv("x", 32, 32, 3, group=32, tag="dw")
    p, i2, y2 = _conv(y1, 32, 32, 1, tag="p")
    model = _model([dw, p, helper.make_node("Add", [y1, y2], ["out"])], [("x", [1, 32, 14, 14])], "out", i1 + i2)
    used = _check(model, tmp_path)
    assert used.get("depthwise-nchwc") == 1 and used.get("conv2d-nchwc") == 1
    assert "depthwise-pointwise-nchwc" not in used


def test_depthwise_before_a_3x3_conv_is_not_fused(tmp_path):
    """Must not fire: the conv after the depthwise one reads neighbouring rows (3x3)."""
    dw, i1, y1 = _conv("x", 32, 32, 3, group=32, tag="dw")
    c, i2, y2 = _conv("dw.a", 32, 32, 3, tag="c")
    model = _model([dw, _clip(y1, "dw.a"), c], [("x", [1, 32, 14, 14])], y2, i1 + i2 + _BOUNDS)
    used = _check(model, tmp_path)
    assert used.get("depthwise-nchwc") == 1 and used.get("conv2d-nchwc") == 1
    assert "depthwise-pointwise-nchwc" not in used


def _fused_knobs(model, threads=2, spec_name="x86-64-avx512") -> list[dict]:
    """The default knobs of each fused depthwise-pointwise kernel of `model` (AVX-512 target unless
    `spec_name` says otherwise)."""
    import onnx_ir as ir
    import tvm
    from tvm import s_tir

    from edgec.targets.registry import get_target
    from edgec.targets.tvm.build import context_for, optimize_relax, tvm_target
    from edgec.targets.tvm.lower import lower_model
    from edgec.targets.tvm.schedules import dwconv_pointwise

    spec = get_target(spec_name)
    target = tvm_target(spec)
    mod = optimize_relax(lower_model(ir.serde.deserialize_model(model))[0], target, spec, threads=threads)
    ctx = context_for(spec, target, threads)
    out = []
    for func in mod.functions.values():
        if isinstance(func, tvm.tirx.PrimFunc):
            sch = s_tir.Schedule(func)
            if dwconv_pointwise.match(sch, ctx):
                out.append(dwconv_pointwise.default_knobs(sch, ctx))
    return out


@pytest.mark.parametrize("hidden, cout, hw, tile", [
    (96, 32, 28, (2, 1, 7)),    # 28 rows: 14 per thread
    (96, 64, 14, (2, 1, 7)),    # conv_nchwc's 4 x 2 x 2 tile would give 7 row tiles: one-row tiles
])
def test_fused_kernel_rows_split_evenly(hidden, cout, hw, tile):
    knobs = _fused_knobs(_block(16, hidden, cout, (hw, hw)))
    assert [(k["ot"], k["yt"], k["wt"], k["split"]) for k in knobs] == [(*tile, "rows")]


@pytest.mark.parametrize("spec_name, dwt", [("x86-64", 7), ("x86-64-avx512", 16)])
def test_depthwise_tile_fits_the_register_file(tmp_path, spec_name, dwt):
    """An 8-pixel depthwise tile (8 accumulators, the 10 input vectors of its 3-wide window, a
    weight) spilled on AVX2's 16 registers: 7 pixels there, in the fused pair and in the
    standalone depthwise rule; AVX-512 keeps 16. Same results as onnxruntime on this host."""
    import onnx_ir as ir
    import tvm
    from tvm import s_tir

    from edgec.targets.registry import get_target
    from edgec.targets.tvm.build import context_for, optimize_relax, tvm_target
    from edgec.targets.tvm.lower import lower_model
    from edgec.targets.tvm.schedules import dwconv_nchwc

    model = _block(16, 32, 16, (112, 112))
    assert [k["dwt"] for k in _fused_knobs(model, spec_name=spec_name)] == [dwt]
    dw, inits, y = _conv("x", 32, 32, 3, group=32, tag="dw")
    alone = _model([dw, helper.make_node("Relu", [y], ["out"])], [("x", [1, 32, 112, 112])], "out", inits)
    spec = get_target(spec_name)
    target = tvm_target(spec)
    mod = optimize_relax(lower_model(ir.serde.deserialize_model(alone))[0], target, spec, threads=2)
    ctx = context_for(spec, target, 2)
    tiles = [dwconv_nchwc.default_knobs(s_tir.Schedule(f), ctx)["wt"] for f in mod.functions.values()
             if isinstance(f, tvm.tirx.PrimFunc) and dwconv_nchwc.match(s_tir.Schedule(f), ctx)]
    assert tiles == [dwt]
    if spec_name == "x86-64":  # runs on any x86-64 host
        assert _check(model, tmp_path, spec=spec_name, threads=2).get("depthwise-pointwise-nchwc") == 1
        assert _check(alone, tmp_path, spec=spec_name, threads=2).get("depthwise-nchwc") == 1


def test_knob_space_of_the_fused_kernel_schedules():
    """Every candidate `edgec tune --space knobs` would time for a fused kernel schedules (or
    is refused with a reason when its split does not fit the threads), the default first."""
    import onnx_ir as ir
    import tvm

    from edgec.targets.registry import get_target
    from edgec.targets.tvm.build import context_for, optimize_relax, tvm_target
    from edgec.targets.tvm.lower import lower_model
    from edgec.targets.tvm.schedules import dwconv_pointwise, knob_space, schedule_func

    spec = get_target("x86-64-avx512")
    target = tvm_target(spec)
    mod = optimize_relax(lower_model(ir.serde.deserialize_model(_block(16, 96, 32, (14, 14))))[0], target, spec, threads=2)
    ctx = context_for(spec, target, 2)
    funcs = [f for gv, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc) and "depthwise_pointwise" in gv.name_hint]
    assert len(funcs) == 1
    space = knob_space(funcs[0], ctx)
    ours = [k for k in space if k["rule"] == dwconv_pointwise.NAME]
    assert len(ours) >= 4 and {k["split"] for k in ours} == {"rows", "channels"}
    scheduled = 0
    for k in ours:
        try:
            _, rule = schedule_func(funcs[0], ctx, knobs=k)
        except ValueError as e:
            assert "split evenly" in str(e)
            continue
        assert rule == dwconv_pointwise.NAME
        scheduled += 1
    assert scheduled >= len(ours) - 1


def test_an_add_that_broadcasts_the_batch_is_not_fused(tmp_path):
    """Must not fire: an elementwise kernel between the convs that grows the tensor (a batch-2
    constant added to the batch-1 depthwise output) is not the depthwise values row for row."""
    dw, i1, y1 = _conv("x", 32, 32, 3, group=32, tag="dw")
    p, i2, y2 = _conv("dw.g", 32, 32, 1, tag="p")
    grow = numpy_helper.from_array(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32, 1, 1), "grow")
    model = _model([dw, helper.make_node("Add", [y1, "grow"], ["dw.g"]), p], [("x", [1, 32, 14, 14])], y2,
                   i1 + i2 + [grow], out_shape=[2, 32, 14, 14])
    used = _check(model, tmp_path, threads=2)
    assert "depthwise-pointwise-nchwc" not in used


@pytest.mark.parametrize("threads", [1, 2])
def test_depthwise_rows_are_computed_per_row_tile_on_any_thread_count(threads):
    """The depthwise rows sit under the row-tile loop the pointwise tiles sweep, so its buffer is a
    few rows, not the image: with 1 thread the parallel loop once stopped at the batch and the
    buffer held the whole image (MobileNetV2's first block at 1 thread: 160 -> 255 us)."""
    import onnx_ir as ir
    import tvm
    from tvm import s_tir

    from edgec.targets.registry import get_target
    from edgec.targets.tvm.build import context_for, optimize_relax, tvm_target
    from edgec.targets.tvm.layout import CONV_BLOCK, DWCONV_BLOCK
    from edgec.targets.tvm.lower import lower_model
    from edgec.targets.tvm.schedules import common as C
    from edgec.targets.tvm.schedules import dwconv_pointwise

    spec = get_target("x86-64-avx512")
    target = tvm_target(spec)
    mod = optimize_relax(lower_model(ir.serde.deserialize_model(_block(16, 96, 32, (28, 28))))[0], target, spec,
                         threads=threads)
    ctx = context_for(spec, target, threads)
    (func,) = [f for gv, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc) and "depthwise_pointwise" in gv.name_hint]
    sch = s_tir.Schedule(func)
    dwconv_pointwise.apply(sch, ctx)
    dw, pw = (sch.get_sblock(n + "_update") for n in (DWCONV_BLOCK, CONV_BLOCK))
    shared = [lp for lp in sch.get_loops(pw) if any(sch.get(lp).same_as(sch.get(d)) for d in sch.get_loops(dw))]
    assert len(shared) == 1 and C.extents(sch, shared) == [28]  # the row tiles: 28 one-row tiles
