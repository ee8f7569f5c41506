"""Conv lowering (issue 12): float16 accumulates in float32; 1-D and 3-D convs (R.nn.conv1d /
conv3d), alone and fused with an activation by the default pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from tests.targets.lowering_util import check, edgec_run, model, rand


def _conv64(x, w, b, pads):
    """float64 reference of a 2-D Conv (stride 1, no dilation/groups)."""
    x = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])
    w = w.astype(np.float64)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    cols = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))  # n c h' w' kh kw
    return np.einsum("nchwij,ocij->nohw", cols, w) + b.astype(np.float64)[None, :, None, None]


def test_float16_conv_accumulates_in_float32(tmp_path):
    """K = 3x3x64 products per output: a float16 accumulator is ~1e-2 off, float32 rounds once."""
    proto = model(13, """
        agraph (float16[1, 64, 12, 12] x, float16[32, 64, 3, 3] w, float16[32] b) => (float16[1, 32, 12, 12] y)
        { y = Conv <pads: ints = [1, 1, 1, 1]> (x, w, b) }""")
    x, w, b = rand(1, 64, 12, 12, dtype=np.float16), rand(32, 64, 3, 3, seed=1, dtype=np.float16), \
        rand(32, seed=2, dtype=np.float16)
    out, report = edgec_run(proto, {"x": x, "w": w, "b": b}, tmp_path)
    ref = _conv64(x, w, b, [1, 1, 1, 1])
    assert out["y"].dtype == np.float16
    err = np.abs(out["y"].astype(np.float64) - ref)
    # one float16 rounding of the float32 result: half an ulp of float16 (plus float32's own error)
    bound = 0.5 * np.spacing(np.abs(out["y"])).astype(np.float64) + 2e-5  # float32 over 576 terms of |x*w| <= 1
    assert np.all(err <= bound), float((err / bound).max())
    assert report.by_edgec["Conv"] == 1


@pytest.mark.parametrize("rank", [3, 5])
@pytest.mark.parametrize("dtype", ["float", "float16"])
def test_conv_1d_3d_lowered_by_edgec(rank, dtype, tmp_path):
    xs, ks = {3: ([9], [3]), 5: ([5, 6, 4], [3, 2, 3])}[rank]  # spatial dims of x, of the kernel
    nd = len(xs)
    xshape = ",".join(map(str, [2, 4] + xs))
    wshape = ",".join(map(str, [6, 2] + ks))
    pads = ",".join(["1"] * nd + ["0"] * nd)
    strides = ",".join(["2"] + ["1"] * (nd - 1))
    yshape = ",".join(map(str, [2, 6] + [(d + 1 - k) // (2 if i == 0 else 1) + 1 for i, (d, k) in enumerate(zip(xs, ks))]))
    zshape = ",".join(map(str, [2, 3] + xs))
    proto = model(13, f"""
        agraph ({dtype}[{xshape}] x, {dtype}[{wshape}] w, {dtype}[6] b, {dtype}[{",".join(map(str, [3, 4] + ks))}] v)
               => ({dtype}[{yshape}] y, {dtype}[{zshape}] z)
        {{ y = Conv <group: int = 2, pads: ints = [{pads}], strides: ints = [{strides}]> (x, w, b)
           z = Conv <auto_pad: string = "SAME_UPPER"> (x, v) }}""")
    npdt = np.float16 if dtype == "float16" else np.float32
    inputs = {"x": rand(2, 4, *xs, dtype=npdt), "w": rand(6, 2, *ks, seed=1, dtype=npdt),
              "b": rand(6, seed=2, dtype=npdt), "v": rand(3, 4, *ks, seed=3, dtype=npdt)}
    tol = 2e-3 if dtype == "float16" else 1e-4
    report = check(proto, inputs, tmp_path, atol=tol, rtol=tol)
    assert report.by_edgec["Conv"] == 2, report.to_json()


@pytest.mark.parametrize("rank", [3, 5])
def test_conv_relu_1d_3d_default_pipeline(rank, tmp_path):
    """issue 12: -O2's fuse-activation made an edgec.FusedConv of a 1-D Conv + Relu that the
    backend refused. Now it is fused and lowered by edgec (conv1d / conv3d)."""
    import onnx

    from edgec.api import CompileOptions, compile_model, run_artifact
    from edgec.reference import run_ort

    xs, ks = {3: ([16], [3]), 5: ([4, 6, 5], [3, 3, 3])}[rank]
    nd = len(xs)
    x = ",".join(map(str, [1, 3] + xs))
    proto = model(13, f"""
        agraph (float[{x}] x) => (float[{",".join(map(str, [1, 4] + xs))}] y)
        <float[{",".join(map(str, [4, 3] + ks))}] w = {{{",".join(["0.1", "-0.2", "0.3"] * (4 * 3 * int(np.prod(ks)) // 3))}}},
         float[4] b = {{0.1, -0.1, 0.2, 0.0}}>
        {{ c = Conv <pads: ints = [{",".join(["1"] * 2 * nd)}]> (x, w, b)
           y = Relu (c) }}""")
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    art = compile_model(path, tmp_path / "out", CompileOptions(target="x86-64"))
    assert art.metadata["lowering"]["edgec"].get("FusedConv") == 1, art.metadata["lowering"]
    inputs = {"x": rand(1, 3, *xs)}
    np.testing.assert_allclose(run_artifact(art, inputs)["y"], run_ort(proto, inputs)["y"], atol=1e-5, rtol=1e-5)


def test_conv_1d_runs_on_2d_schedules(tmp_path):
    """A 1-D Conv is a 2-D one of height 1, so it gets edgec's convolution schedules: the STFT
    of openwakeword's melspectrogram (1 -> 257 channels, kernel 512, stride 160) took 14 ms per
    conv as TOPI's unscheduled conv1d, 0.22 ms as a 2-D conv."""
    import onnx
    from onnx import numpy_helper

    from edgec.api import CompileOptions, compile_model, run_artifact
    from edgec.compare import assert_outputs_match
    from edgec.reference import run_ort

    proto = model(13, """
        agraph (float[1, 1, 2000] x) => (float[1, 33, 122] y)
        { y = Conv <strides: ints = [16]> (x, w) }""")
    proto.graph.initializer.append(numpy_helper.from_array(rand(33, 1, 64, seed=1), "w"))
    onnx.save(proto, tmp_path / "stft.onnx")
    art = compile_model(tmp_path / "stft.onnx", tmp_path / "art", CompileOptions(target="x86-64"))
    schedules = art.metadata["lowering"]["schedules"]
    assert any(k.startswith("conv2d") for k in schedules) and "none" not in schedules, schedules
    feeds = {"x": rand(1, 1, 2000)}
    assert_outputs_match(run_artifact(art, feeds), run_ort(proto, feeds), atol=1e-4, rtol=1e-5)
