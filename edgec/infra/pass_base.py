"""The Pass contract: a kebab-case name, a one-line doc, options, and run(model, ctx)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import onnx_ir as ir

from edgec.errors import PipelineError

if TYPE_CHECKING:
    from edgec.infra.context import PassContext

_KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass
class PassResult:
    model: ir.Model
    modified: bool


class Pass:
    """Base class. Subclasses set `name` (kebab-case), a docstring whose first line is the summary,
    `options` (name → default) and implement `run`. `in_place` passes must return the model they got.
    """

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    in_place: ClassVar[bool] = True
    # True for a pass that changes the model's numbers by design (quantization): --verify does not
    # compare across it but takes its output, run by onnxruntime, as the new reference
    changes_numerics: ClassVar[bool] = False

    def __init__(self, **opts: Any):
        unknown = set(opts) - set(self.options)
        if unknown:
            raise PipelineError(f"pass '{self.name}' has no option(s) {sorted(unknown)}; known: {sorted(self.options)}")
        self.opts = {**self.options, **{k: _coerce(self.options[k], v) for k, v in opts.items()}}
        self.given = dict(opts)

    def float_arithmetic(self, ctx) -> bool:
        """With changes_numerics: whether the result still computes in float (weight-only
        quantization with float activations), so that what follows is held to --verify's float
        tolerance rather than to quantization steps."""
        return False

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, model: ir.Model, ctx: PassContext) -> PassResult:
        result = self.run(model, ctx)
        if not isinstance(result, PassResult):
            raise TypeError(f"pass '{self.name}' returned {type(result).__name__}, expected PassResult")
        if self.in_place and result.model is not model:
            raise TypeError(f"pass '{self.name}' is in-place but returned a different model object")
        if not self.in_place and result.model is model and result.modified:
            raise TypeError(f"pass '{self.name}' is functional but modified and returned its input")
        return result

    def spec(self) -> str:
        """Pipeline text for this pass instance: `name` or `name{k=v,...}`."""
        if not self.given:
            return self.name
        body = ",".join(f"{k}={_format(v)}" for k, v in sorted(self.given.items()))
        return f"{self.name}{{{body}}}"


def _coerce(default: Any, value: Any) -> Any:
    if not isinstance(value, str) or isinstance(default, str):
        return value
    if isinstance(default, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise PipelineError(f"expected a boolean, got '{value}'")
    try:
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise PipelineError(f"expected a {type(default).__name__}, got '{value}'") from None
    return value


def _format(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Mark a Pass subclass for discovery by a `PassRegistry` (validates its name and doc)."""
    if not issubclass(cls, Pass):
        raise TypeError(f"{cls!r} is not a Pass")
    if not _KEBAB.match(cls.name or ""):
        raise TypeError(f"pass class {cls.__name__} needs a kebab-case `name`, got {cls.name!r}")
    if not cls.summary():
        raise TypeError(f"pass '{cls.name}' needs a docstring (its first line is the summary)")
    cls.__edgec_pass__ = True
    return cls


def is_registered_pass(obj: object) -> bool:
    return isinstance(obj, type) and obj.__dict__.get("__edgec_pass__", False) is True
