"""Lowerings that take shape parameters as runtime values when the declared output shape is
static: Reduce* axes (candidate axes sets selected at run time), CumSum/CumProd axis, Slice
starts/ends/axes/steps, Pad pads. Each is compared with onnxruntime for several runtime values,
a disagreeing runtime value must raise GuardError (file, node, op), and a case without a declared
output shape must be declined."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.errors import GuardError, UnsupportedOpError
from edgec.reference import run_ort
from tests.targets.lowering_util import model, rand, reference


def _compile(proto, tmp_path):
    from edgec.ir import graph_inputs, load_model
    from edgec.targets import get_target
    from edgec.targets.tvm.build import build_library
    from edgec.targets.tvm.lower import lower_model
    from edgec.targets.tvm.runtime import LoadedModel

    m = load_model(proto)
    mod, report = lower_model(m)
    lib = build_library(mod, get_target("x86-64"), tmp_path / "m.so").library
    return LoadedModel(lib, [t.name for t in graph_inputs(m)], [v.name for v in m.graph.outputs], threads=1), report


def _same(lm, proto, feed, atol=1e-5, engine="ort"):
    got = lm.run(feed)
    want = run_ort(proto, feed) if engine == "ort" else reference(proto, feed, engine)
    for name, e in want.items():
        assert got[name].shape == e.shape and got[name].dtype == e.dtype, (name, got[name].shape, e.shape)
        np.testing.assert_allclose(got[name], e, atol=atol, rtol=1e-5, err_msg=f"{name} {feed}")


def _i64(*v):
    return np.array(v, np.int64)


def test_reduce_runtime_axes_ambiguous_keepdims0(tmp_path):
    # [3, 2, 2] -> [3, 2]: axis 1 or 2 (or -1, -2); both are compiled, the runtime value selects
    proto = model(18, """
        agraph (float[3, 2, 2] x, int64[1] axes) => (float[3, 2] y) {
            y = ReduceLogSumExp <keepdims: int = 0> (x, axes) }""")
    lm, report = _compile(proto, tmp_path)
    assert report.by_edgec["ReduceLogSumExp"] == 1
    x = rand(3, 2, 2, lo=-2, hi=2)
    for a in (1, 2, -1, -2):
        _same(lm, proto, {"x": x, "axes": _i64(a)})
    with pytest.raises(GuardError, match=r"\(ReduceLogSumExp\) input 'axes'.*declared output shape \[3, 2\]"):
        lm.run({"x": x, "axes": _i64(0)})


def test_reduce_runtime_axes_size1_dims_keepdims1(tmp_path):
    proto = model(18, """
        agraph (float[3, 1, 4] x, int64[2] axes) => (float[1, 1, 4] y) {
            y = ReduceL2 <keepdims: int = 1> (x, axes) }""")
    lm, _ = _compile(proto, tmp_path)
    x = rand(3, 1, 4)
    for a in ((0, 1), (1, 0), (-3, -2)):
        _same(lm, proto, {"x": x, "axes": _i64(*a)})
    with pytest.raises(GuardError):
        lm.run({"x": x, "axes": _i64(0, 2)})


def test_reduce_runtime_axes_needs_declared_shape(tmp_path):
    proto = model(18, """
        agraph (float[3, 2, 2] x, int64[1] axes) => (float[?, ?] y) { y = ReduceSum <keepdims: int = 0> (x, axes) }""")
    with pytest.raises(UnsupportedOpError, match="ReduceSum"):
        _compile(proto, tmp_path)


def test_cumsum_cumprod_runtime_axis(tmp_path):
    proto = model(14, """
        agraph (float[2, 3] x, int32 axis) => (float[2, 3] s, float[2, 3] p) {
            s = CumSum <exclusive: int = 1, reverse: int = 1> (x, axis)
            p = CumProd (x, axis) }""")
    proto.opset_import[0].version = 26  # CumProd
    lm, report = _compile(proto, tmp_path)
    assert report.by_edgec["CumSum"] == 1 and report.by_edgec["CumProd"] == 1
    x = rand(2, 3, lo=0.5, hi=1.5)
    for a in (0, 1, -1, -2):
        got = lm.run({"x": x, "axis": np.array(a, np.int32)})
        ax = a % 2
        want_s = np.flip(np.cumsum(np.flip(x, ax), axis=ax), ax) - x
        np.testing.assert_allclose(got["s"], want_s, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["p"], np.cumprod(x, axis=ax), rtol=1e-5)
    with pytest.raises(GuardError, match=r"\(CumSum\) input 'axis'.*outside \[-2, 1\]"):
        lm.run({"x": x, "axis": np.array(2, np.int32)})


def test_slice_runtime_params(tmp_path):
    proto = model(18, """
        agraph (float[5, 6] x, int64[2] starts, int64[2] ends, int64[2] axes, int64[2] steps) => (float[2, 3] y) {
            y = Slice (x, starts, ends, axes, steps) }""")
    lm, report = _compile(proto, tmp_path)
    assert report.by_edgec["Slice"] == 1
    x = rand(5, 6)
    for st, en, ax, sp in (((1, 0), (3, 6), (0, 1), (1, 2)),      # plain
                           ((0, 1), (5, 3), (1, 0), (2, 1)),      # axes swapped
                           ((-1, -2), (-7, 1), (1, 0), (-2, -1)),  # negative steps, clamped ends
                           ((3, 0), (100, 6), (-2, -1), (1, 2))):  # out-of-range end, negative axes
        _same(lm, proto, {"x": x, "starts": _i64(*st), "ends": _i64(*en), "axes": _i64(*ax), "steps": _i64(*sp)})
    with pytest.raises(GuardError, match=r"\(Slice\).*declared output shape \[2, 3\]"):
        lm.run({"x": x, "starts": _i64(0, 0), "ends": _i64(3, 6), "axes": _i64(0, 1), "steps": _i64(1, 2)})


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_runtime_pads(tmp_path, mode):
    proto = model(19, f"""
        agraph (float[3, 4] x, int64[4] pads, float v) => (float[5, 6] y) {{
            y = Pad <mode: string = "{mode}"> (x, pads, v) }}""")
    lm, report = _compile(proto, tmp_path)
    assert report.by_edgec["Pad"] == 1
    x, v = rand(3, 4), np.array(-7.5, np.float32)
    for p in ((1, 2, 1, 0), (2, 0, 0, 2), (0, 1, 2, 1)):
        _same(lm, proto, {"x": x, "pads": _i64(*p), "v": v})
    with pytest.raises(GuardError, match=r"\(Pad\) input 'pads'"):
        lm.run({"x": x, "pads": _i64(1, 1, 1, 0), "v": v})


def test_pad_runtime_pads_needs_declared_shape(tmp_path):
    proto = model(19, """
        agraph (float[3, 4] x, int64[4] pads) => (float[?, ?] y) { y = Pad (x, pads) }""")
    with pytest.raises(UnsupportedOpError, match="Pad"):
        _compile(proto, tmp_path)


@pytest.mark.parametrize("mode,ctm,extra", [
    ("nearest", "half_pixel", ""),
    ("nearest", "asymmetric", ', nearest_mode: string = "floor"'),
    ("linear", "half_pixel", ""),
    ("linear", "align_corners", ""),
    ("linear", "half_pixel_symmetric", ""),
    ("cubic", "pytorch_half_pixel", ""),
    ("cubic", "half_pixel", ", cubic_coeff_a: float = -0.5, exclude_outside: int = 1"),
])
def test_resize_runtime_scales(tmp_path, mode, ctm, extra):
    # [1, 1, 4, 5] -> [1, 1, 7, 3]: several scales give these sizes, and they sample differently
    proto = model(19, f"""
        agraph (float[1, 1, 4, 5] x, float[2] scales) => (float[1, 1, 7, 3] y) {{
            y = Resize <mode: string = "{mode}", coordinate_transformation_mode: string = "{ctm}",
                        axes: ints = [2, 3]{extra}> (x, , scales) }}""")
    lm, report = _compile(proto, tmp_path)
    assert report.by_edgec["Resize"] == 1
    x = rand(1, 1, 4, 5)
    # onnx's reference implementation (which the backend node tests' data come from): for
    # align_corners with a non-integral scale * size it uses the float output width, onnxruntime
    # the integer one; edgec follows the reference, also for constant scales (resize.py)
    for sc in ((1.75, 0.6), (1.9, 0.75), (1.76, 0.7)):
        _same(lm, proto, {"x": x, "scales": np.array(sc, np.float32)}, atol=1e-5, engine="reference")
        if ctm != "align_corners":
            _same(lm, proto, {"x": x, "scales": np.array(sc, np.float32)}, atol=1e-5)
    with pytest.raises(GuardError, match=r"\(Resize\) input 'scales'.*declared output shape \[1, 1, 7, 3\]"):
        lm.run({"x": x, "scales": np.array((2.0, 0.6), np.float32)})


def test_resize_runtime_scales_antialias_declined(tmp_path):
    proto = model(19, """
        agraph (float[1, 1, 4, 4] x, float[4] scales) => (float[1, 1, 2, 2] y) {
            y = Resize <mode: string = "linear", antialias: int = 1> (x, , scales) }""")
    with pytest.raises(UnsupportedOpError, match="Resize"):
        _compile(proto, tmp_path)


@pytest.mark.parametrize("dtype,vals", [("float", (1.5, 4.0, 0.5)), ("int32", (10, 2, -3))])
def test_range_runtime_for_declared_length(tmp_path, dtype, vals):
    n = int(max(np.ceil((vals[1] - vals[0]) / vals[2]), 0))
    proto = model(11, f"""
        agraph ({dtype} start, {dtype} limit, {dtype} delta) => ({dtype}[{n}] y) {{ y = Range (start, limit, delta) }}""")
    lm, report = _compile(proto, tmp_path)
    assert report.by_edgec["Range"] == 1
    np_dt = np.float32 if dtype == "float" else np.int32
    feed = {k: np.array(v, np_dt) for k, v in zip(("start", "limit", "delta"), vals)}
    _same(lm, proto, feed)
    shifted = dict(feed, limit=np.array(vals[1] + 2 * vals[2], np_dt))  # two more elements
    with pytest.raises(GuardError, match=r"\(Range\).*declared length"):
        lm.run(shifted)


def test_range_runtime_needs_declared_length(tmp_path):
    # no declared length: edgec's lowering declines (TVM's frontend takes it, with a dynamic shape)
    proto = model(11, """agraph (float start, float limit, float delta) => (float[?] y) { y = Range (start, limit, delta) }""")
    try:
        _, report = _compile(proto, tmp_path)
    except UnsupportedOpError:
        return
    assert report.by_edgec["Range"] == 0 and report.by_frontend["Range"] == 1


@pytest.mark.parametrize("policy,out", [("not_larger", [1, 1, 7, 5]), ("not_smaller", [1, 1, 9, 7])])
def test_resize_runtime_sizes_keep_aspect_ratio(tmp_path, policy, out):
    # the output shape follows from min/max(sizes / dims): the shapes alone do not give sizes
    proto = model(19, f"""
        agraph (float[1, 1, 4, 3] x, int64[2] sizes) => (float{out} y) {{
            y = Resize <mode: string = "linear", keep_aspect_ratio_policy: string = "{policy}", axes: ints = [2, 3]>
                (x, , , sizes) }}""")
    lm, report = _compile(proto, tmp_path)
    assert report.by_edgec["Resize"] == 1
    x = rand(1, 1, 4, 3)
    good = (7, 6) if policy == "not_larger" else (8, 7)
    _same(lm, proto, {"x": x, "sizes": _i64(*good)}, engine="reference")
    _same(lm, proto, {"x": x, "sizes": _i64(*good)})
    with pytest.raises(GuardError, match=r"\(Resize\) input 'sizes'"):
        lm.run({"x": x, "sizes": _i64(20, 20)})


def test_zero_size_outputs_slice_guard_and_split(tmp_path):
    proto = model(18, """
        agraph (float[4, 3] x, int64[1] starts, int64[1] ends) => (float[0, 3] y, float[4, 0] a, float[4, 3] b)
        <int64[2] parts = {0, 3}> {
            y = Slice (x, starts, ends)
            a, b = Split <axis: int = 1> (x, parts) }""")
    lm, report = _compile(proto, tmp_path)
    assert report.by_edgec["Slice"] == 1 and report.by_edgec["Split"] == 1
    x = rand(4, 3)
    _same(lm, proto, {"x": x, "starts": _i64(10), "ends": _i64(20)})  # past the end: empty
    with pytest.raises(GuardError, match=r"\(Slice\)"):
        lm.run({"x": x, "starts": _i64(1), "ends": _i64(3)})
