"""Textual pipelines: `fold-constants,eliminate-dead-code{max_iterations=2}`.

Printing a parsed pipeline gives back the same (normalized) text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgec.errors import PipelineError
from edgec.infra.pass_base import Pass
from edgec.infra.registry import PassRegistry, default_registry

_ITEM = re.compile(r"\s*([a-z][a-z0-9-]*)\s*(?:\{([^{}]*)\})?\s*")


@dataclass
class Pipeline:
    passes: list[Pass]

    def text(self) -> str:
        return ",".join(p.spec() for p in self.passes)

    __str__ = text


def parse_pipeline(text: str, registry: PassRegistry | None = None) -> Pipeline:
    registry = registry or default_registry()
    passes: list[Pass] = []
    pos = 0
    text = text.strip()
    if not text:
        return Pipeline([])
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise PipelineError(f"cannot parse pipeline at column {pos + 1}: '{text[pos:pos + 30]}'")
        name, body = m.group(1), m.group(2)
        opts = {}
        if body:
            for kv in body.split(","):
                if "=" not in kv:
                    raise PipelineError(f"pass '{name}': option '{kv.strip()}' must be key=value")
                k, v = kv.split("=", 1)
                opts[k.strip()] = v.strip()
        passes.append(registry.get(name)(**opts))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise PipelineError(f"expected ',' at column {pos + 1} of pipeline '{text}'")
            pos += 1
    return Pipeline(passes)
