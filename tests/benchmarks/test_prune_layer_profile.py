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
