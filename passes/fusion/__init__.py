"""Fusion passes: fold constants into weights, fuse activations, recognize composite ops.

Every edgec-domain op they emit comes with a model-local function (see edgec.ir.edgec_ops and
docs/edgec-ops.md), so onnxruntime can still run the model.
"""

FUSION_PIPELINE = (
    "fold-transposes,fuse-pad,fold-batchnorm,fold-scale-bias,fuse-matmul-add,"
    "recognize-gelu,recognize-layernorm,recognize-rmsnorm,recognize-attention,"
    "recognize-silu,recognize-hardswish,fuse-activation"
)
"""Recommended order: structural cleanups first, then weight folding (so later fusions see one
Conv/Gemm with bias), then composite-op recognition, activation fusion last (it needs the final
producer and would otherwise hide Sigmoid/Mul chains from the recognizers)."""
