"""Default pass pipelines per optimization level (and target layout), as text."""

from __future__ import annotations

from edgec.targets.registry import TargetSpec

CLEANUP = ("fix-input-shapes,infer-shapes,fold-constants,remove-identity-ops,"
           "eliminate-common-subexpressions,eliminate-dead-code,infer-shapes")

LEVELS: dict[int, str] = {
    0: "fix-input-shapes,infer-shapes",
    1: CLEANUP,
    2: CLEANUP,
    3: CLEANUP,
}


def default_pipeline(spec: TargetSpec | None, opt_level: int) -> str:
    if opt_level not in LEVELS:
        from edgec.errors import PipelineError

        raise PipelineError(f"optimization level must be one of {sorted(LEVELS)}, got {opt_level}")
    return LEVELS[opt_level]
