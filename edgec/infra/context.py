"""PassContext: everything that configures a pipeline run. No module-level settings.

Every field is read: `disabled` and `max_iterations` by the PassManager, `options` by
`Pass.configure`, `instruments` by the manager and rewrite passes, `max_tensor_bytes` by the
manager's size check and the passes that reveal values (fold-constants, fix-input-shapes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgec.ir.safety import DEFAULT_MAX_TENSOR_BYTES


@dataclass
class PassContext:
    disabled: frozenset[str] = frozenset()
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # pass name -> options
    instruments: list = field(default_factory=list)
    max_iterations: int = 8
    # No value a pass creates or reveals (folded constants, unrolled loops, fixed input shapes)
    # may be larger than this: the same limit as the model's declared sizes (--max-tensor-bytes).
    max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES
