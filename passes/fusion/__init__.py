"""Fusion passes: fold constants into weights, fuse activations, recognize composite ops.

Every edgec-domain op they emit comes with a model-local function (see edgec.ir.edgec_ops and
docs/edgec-ops.md), so onnxruntime can still run the model.
"""

FUSION_PIPELINE = (
    "fold-batchnorm,fold-scale-bias,fuse-pad,recognize-attention,fuse-matmul-add,"
    "recognize-gelu,recognize-layernorm,recognize-rmsnorm,recognize-hardswish,recognize-silu,"
    "fuse-activation"
)
"""Recommended order: weight folding first (so later fusions see one Conv/Gemm with its bias),
zero Pads into Conv/pool pads, attention before MatMul rewrites take its MatMuls apart, then
composite-op recognition (GELU before SiLU/HardSwish so their sub-chains are not taken
apart), activation fusion last (it also absorbs edgec.Silu). Run shape inference before."""
