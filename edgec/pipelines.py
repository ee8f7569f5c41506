"""Default pass pipelines per optimization level, as text (`edgec compile --print-pipeline`).

-O0  shapes only: what the backend needs (static input shapes, inferred value shapes)
-O1  cleanup: constant folding (incl. shape subgraphs), identity removal, CSE, DCE
-O2  cleanup + fusion: BatchNorm/scale folding, MatMul+Add→Gemm, GELU/LayerNorm/RMSNorm/SiLU/
     HardSwish recognition, activation fusion into Conv/Gemm/MatMul; then cleanup again
-O3  as -O2 (reserved for layout and schedule choices that trade compile time for speed)
"""

from __future__ import annotations

from edgec.errors import PipelineError
from edgec.passes.cleanup import CLEANUP_PIPELINE
from edgec.passes.fusion import FUSION_PIPELINE
from edgec.targets.registry import TargetSpec

_AFTER_FUSION = "eliminate-dead-code,infer-shapes"

LEVELS: dict[int, str] = {
    0: "fix-input-shapes,infer-shapes",
    1: CLEANUP_PIPELINE,
    2: f"{CLEANUP_PIPELINE},{FUSION_PIPELINE},{_AFTER_FUSION}",
    3: f"{CLEANUP_PIPELINE},{FUSION_PIPELINE},{_AFTER_FUSION}",
}


def default_pipeline(spec: TargetSpec | None, opt_level: int) -> str:
    if opt_level not in LEVELS:
        raise PipelineError(f"optimization level must be one of {sorted(LEVELS)}, got {opt_level}")
    return LEVELS[opt_level]
