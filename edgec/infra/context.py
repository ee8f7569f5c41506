"""PassContext: everything that configures a pipeline run. No module-level settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PassContext:
    target: str | None = None
    opt_level: int = 2
    disabled: frozenset[str] = frozenset()
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # pass name -> options
    instruments: list = field(default_factory=list)
    seed: int = 0
    max_iterations: int = 8

    def options_for(self, pass_name: str) -> dict[str, Any]:
        return dict(self.options.get(pass_name, {}))
