"""PassContext: everything that configures a pipeline run. No module-level settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgec.ir.safety import DEFAULT_MAX_TENSOR_BYTES


@dataclass
class PassContext:
    target: str | None = None
    opt_level: int = 2
    disabled: frozenset[str] = frozenset()
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # pass name -> options
    instruments: list = field(default_factory=list)
    seed: int = 0
    max_iterations: int = 8
    # No value a pass creates or reveals (folded constants, unrolled loops, fixed input shapes)
    # may be larger than this: the same limit as the model's declared sizes (--max-tensor-bytes).
    max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES

    def options_for(self, pass_name: str) -> dict[str, Any]:
        return dict(self.options.get(pass_name, {}))
