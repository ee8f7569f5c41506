"""The Pass contract: a kebab-case name, a one-line doc, options, and run(model, ctx).

edgec's `Pass` is an `onnx_ir.passes.PassBase`: onnx-ir's call protocol checks the in-place /
functional contract (an in-place pass returns the model it got, a functional one a new model),
runs the invariant hooks `requires(model)` before and `ensures(model)` after the pass (a failure
raises onnx-ir's PreconditionError / PostconditionError), and checks the result type. edgec adds
what onnx-ir has no notion of: a registry name, options (resolved once per run, see
`configure`), and the `PassContext` handed to `run`. `PassResult` is onnx-ir's, so edgec passes
and onnx-ir passes return the same thing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

import onnx_ir as ir

from edgec.errors import PipelineError

if TYPE_CHECKING:
    from edgec.infra.context import PassContext

_KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

PassResult = ir.passes.PassResult  # (model, modified), shared with onnx-ir's passes


class Pass(ir.passes.PassBase):
    """Base class. Subclasses set `name` (kebab-case), a docstring whose first line is the summary,
    `options` (name → default) and implement `run(model, ctx)`. `in_place` passes (the default)
    change and return the model they got; `in_place = False` marks a functional pass, which
    returns a new model and leaves its input alone. Override `requires` / `ensures` (onnx-ir's
    invariant hooks) to check what the pass needs and guarantees.
    """

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    in_place: ClassVar[bool] = True
    # True for a pass that changes the model's numbers by design (quantization): --verify does not
    # compare across it but takes its output, run by onnxruntime, as the new reference
    changes_numerics: ClassVar[bool] = False

    def __init__(self, **opts: Any):
        self.given = dict(opts)  # the options written in the pipeline text (or passed here)
        self.opts = self._merge({})
        self._configured_for: object = None

    def configure(self, ctx: PassContext | None) -> None:
        """Resolve `self.opts` for a run under `ctx`, the one place options are merged: the
        defaults, overridden by `ctx.options[name]`, overridden by the options given to the
        constructor (the pipeline text). The PassManager calls it once per run for every pass
        before any runs; an unknown option name is a one-line PipelineError naming the pass."""
        self.opts = self._merge(ctx.options.get(self.name, {}) if ctx is not None else {})
        self._configured_for = ctx

    def _merge(self, from_ctx: dict[str, Any]) -> dict[str, Any]:
        unknown = (set(from_ctx) | set(self.given)) - set(self.options)
        if unknown:
            raise PipelineError(f"pass '{self.name}' has no option(s) {sorted(unknown)}; known: {sorted(self.options)}")
        merged = {**from_ctx, **self.given}
        try:
            return {**self.options, **{k: _coerce(self.options[k], v) for k, v in merged.items()}}
        except PipelineError as e:
            raise PipelineError(f"pass '{self.name}': {e}") from None

    def float_arithmetic(self, ctx) -> bool:
        """With changes_numerics: whether the result still computes in float (weight-only
        quantization with float activations), so that what follows is held to --verify's float
        tolerance rather than to quantization steps."""
        return False

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def changes_input(self) -> bool:
        """onnx-ir's contract: an in-place pass changes its input, a functional one does not."""
        return self.in_place

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def call(self, model: ir.Model) -> PassResult:
        """onnx-ir's entry point, reached through `__call__`: runs `run` under the current context."""
        return self.run(model, self._ctx)

    def __call__(self, model: ir.Model, ctx: PassContext | None = None) -> PassResult:
        """Run the pass under `ctx` through onnx-ir's protocol (requires, call, ensures, contract)."""
        if ctx is None:
            from edgec.infra.context import PassContext

            ctx = PassContext()
        if getattr(self, "_configured_for", None) is not ctx:  # called directly, not through a PassManager
            self.configure(ctx)
        self._ctx = ctx
        try:
            return super().__call__(model)
        finally:
            self._ctx = None

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
