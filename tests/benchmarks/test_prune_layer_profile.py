"""benchmarks/prune_layer_profile.py matches kernels to ONNX layers: one layer per kernel, two for
a depthwise conv fused with the 1x1 conv after it, and refuses a partial cover."""

from __future__ import annotations

from tests.benchmark_scripts import load_benchmark


def _script():
    return load_benchmark("prune_layer_profile.py", "edgec_prune_layer_profile")


LAYERS = [("Conv [32, 3, 3, 3]", 10), ("Conv [32, 1, 3, 3]", 2), ("Conv [16, 32, 1, 1]", 5), ("Gemm [10, 16]", 1)]


def test_a_fused_depthwise_pointwise_kernel_covers_two_layers():
    kernels = [("fused_conv2d_nchw_add", 1.0), ("fused_depthwise_pointwise0", 2.0), ("fused_matmul_add", 0.5)]
    rows = _script().match_layers(LAYERS, kernels)
    assert rows == [("Conv [32, 3, 3, 3]", 10, "fused_conv2d_nchw_add", 1.0),
                    ("Conv [32, 1, 3, 3] + Conv [16, 32, 1, 1]", 7, "fused_depthwise_pointwise0", 2.0),
                    ("Gemm [10, 16]", 1, "fused_matmul_add", 0.5)]


def test_kernels_that_do_not_cover_the_layers_are_refused():
    m = _script()
    assert m.match_layers(LAYERS, [("fused_conv2d_nchw_add", 1.0), ("fused_depthwise_pointwise0", 2.0)]) is None
    assert m.match_layers(LAYERS[:2], [("fused_conv2d_nchw_add", 1.0), ("fused_depthwise_pointwise0", 2.0)]) is None
    assert m.is_layer_kernel("fused_depthwise_pointwise3") and not m.is_layer_kernel("mean")


def test_kernel_times_alternate_the_models_in_one_process(tmp_path, monkeypatch):
    """Both artifacts are profiled in turns of `block` runs (a slow spell falls on both): each
    gets per-site minimums over all its runs, in call order, VM builtins left out."""
    import os

    # with TVM's pool (EDGEC_PARALLEL_POOL=tvm, or no C++ compiler for edgec's), loading with
    # threads=1 writes TVM_NUM_THREADS=1 into this process's environment (runtime.set_threads) and
    # binds this thread to one CPU: both are restored after the test, or later tests (and their
    # subprocesses: the C API bundle checks) see one core
    monkeypatch.setenv("TVM_NUM_THREADS", os.environ.get("TVM_NUM_THREADS", "2"))
    cpus = os.sched_getaffinity(0)
    try:
        _profile_two(tmp_path, monkeypatch)
    finally:
        os.sched_setaffinity(0, cpus)


def _profile_two(tmp_path, monkeypatch):
    """Two conv models compiled and profiled by kernel_times on 1 thread."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    import edgec

    arts = []
    for c in (8, 4):
        w = numpy_helper.from_array(np.ones((c, 3, 3, 3), np.float32), "w")
        g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 16, 16])], [w])
        save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / f"m{c}.onnx")
        arts.append(str(edgec.compile(tmp_path / f"m{c}.onnx", output=tmp_path / f"a{c}", threads=1).path))
    from edgec.targets.tvm.runtime import LoadedModel

    calls = []
    real = LoadedModel.profile
    monkeypatch.setattr(LoadedModel, "profile", lambda self, feed, runs: calls.append(runs) or real(self, feed, runs))
    got = _script().kernel_times(arts, threads=1, runs=5, block=2)
    assert calls == [2, 2, 2, 2, 1, 1]  # the two models taking turns: 2 + 2 + 1 runs each
    assert len(got) == 2 and all(got[0]) and all(got[1])
    for sites in got:
        assert all(not n.startswith("vm.builtin") and t > 0 for n, t in sites)
    assert [n for n, _ in got[0]] == [n for n, _ in got[1]]  # same kernels, in call order
