"""Default pass pipelines per optimization level, as text (`edgec compile --print-pipeline`).

-O0  what the backend needs: static input shapes, inferred value shapes, and control flow it cannot
     lower rewritten away: constant folding (If conditions, trip counts), If folding, Loop/Scan
     unrolling, LSTM/GRU/RNN decomposition
-O1  cleanup: constant folding (incl. shape subgraphs), identity removal, CSE, DCE; control flow
     as at -O0
-O2  cleanup + fusion: BatchNorm/scale folding, MatMul+Add→Gemm, GELU/LayerNorm/RMSNorm/SiLU/
     HardSwish recognition, activation fusion into Conv/Gemm/MatMul; then cleanup again
-O3  as -O2 (reserved for layout and schedule choices that trade compile time for speed)
"""

from __future__ import annotations

from edgec.errors import PipelineError
from edgec.passes.cleanup import CLEANUP_PIPELINE
from edgec.passes.control import CONTROL_PIPELINE
from edgec.passes.fusion import FUSION_PIPELINE
from edgec.targets.registry import TargetSpec

_AFTER_FUSION = "eliminate-dead-code,infer-shapes"

# fold-constants runs before fold-if (If conditions are usually shape computations).
LEVELS: dict[int, str] = {
    0: f"fix-input-shapes,infer-shapes,fold-constants,{CONTROL_PIPELINE},infer-shapes",
    1: f"{CLEANUP_PIPELINE},{CONTROL_PIPELINE},{_AFTER_FUSION}",
    2: f"{CLEANUP_PIPELINE},{CONTROL_PIPELINE},{FUSION_PIPELINE},{_AFTER_FUSION}",
    3: f"{CLEANUP_PIPELINE},{CONTROL_PIPELINE},{FUSION_PIPELINE},{_AFTER_FUSION}",
}


def default_pipeline(spec: TargetSpec | None, opt_level: int) -> str:
    if opt_level not in LEVELS:
        raise PipelineError(f"optimization level must be one of {sorted(LEVELS)}, got {opt_level}")
    return LEVELS[opt_level]
