"""--verify: after every pass that modified the model, run it in onnxruntime on seeded inputs and
compare with the outputs of the original model (edgec.compare: NaN/Inf, missing or extra outputs,
shape and dtype changes are mismatches). The first pass that changes them is named in the error.

A pass whose output onnxruntime cannot run is an error too, unless `allow_unrunnable` (CLI:
`--verify-allow-unrunnable`): then it is counted as not checked. Passes are edgec's code, so a pass
that changes the outputs is edgec's bug (exit 1), not the model's.

A pass that changes numerics by design (quantization) re-baselines: later passes and the artifact
are checked against the quantized (QDQ) model in onnxruntime, each output within `QUANT_STEPS`
quantization steps of its own scale (`edgec.infra.quant_steps`; after weight-only quantization,
whose result computes in float, within the float tolerance; integer kernels may round a .5 tie
the other way than the QDQ graph's float product, and such flips propagate a little), or, for an
output with no step, within 2 int8 steps of its largest magnitude. A bfloat16 model
(convert-float16), which onnxruntime has no kernels for, is not an error: the passes from there on
are unchecked and the artifact is compared with the float model, within that magnitude bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
import onnx_ir as ir

from edgec.compare import Tolerance, all_match, compare_outputs, summary
from edgec.errors import EdgecError, VerificationError
from edgec.infra.instruments import Instrument
from edgec.infra.quant_steps import output_steps
from edgec.ir.analysis import graph_inputs
from edgec.reference import run_ort_ir, seeded_inputs, to_artifact_layout, to_model_layout

QUANT_STEPS = 2  # after quantization: accepted error of an output, in its quantization steps
IO_LAYOUT_KEY = "edgec.io_layout"  # written by to-nhwc{io_layout=nhwc}: {name: "NHWC"}


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]


def _io_layout(model: ir.Model) -> dict[str, str]:
    return json.loads(model.metadata_props.get(IO_LAYOUT_KEY, "{}"))


def _bfloat16(model: ir.Model) -> bool:
    """Converted to bfloat16 by convert-float16: onnxruntime has no CPU kernels for it, by design."""
    from edgec.passes.quantization.convert_float16 import MARK

    return model.metadata_props.get(MARK) == "bfloat16"


@dataclass
class VerifyAgainstOnnxRuntime(Instrument):
    atol: float = 1e-4
    rtol: float = 1e-4
    seed: int = 0
    allow_unrunnable: bool = False
    inputs: dict[str, np.ndarray] = field(default_factory=dict)   # in the original model's layout
    expected: dict[str, np.ndarray] | None = None
    checked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rebaselined: list[str] = field(default_factory=list)  # passes that change numerics by design
    quant_atol: dict[str, float] = field(default_factory=dict)  # after quantization: per output (module doc)
    unrunnable_by_design: str = ""  # the numerics-changing pass after which onnxruntime cannot run the model

    @property
    def tolerance(self) -> Tolerance | dict[str, Tolerance]:
        if not self.quant_atol:
            return Tolerance(self.atol, self.rtol)
        return {k: Tolerance(max(self.atol, v), self.rtol) for k, v in self.quant_atol.items()}

    def _quantized_bounds(self, model: ir.Model, actual: dict[str, np.ndarray]) -> dict[str, float]:
        steps = output_steps(model)
        out = {}
        for name, v in actual.items():
            step = steps.get(name)
            if step is not None:
                out[name] = QUANT_STEPS * step
                continue
            finite = v[np.isfinite(v)] if v.dtype.kind == "f" else v
            out[name] = 2 * float(np.max(np.abs(finite.astype(np.float64)))) / 127 if finite.size else 0.0
        return out

    def start(self, model: ir.Model, ctx=None, first_pass=None) -> None:
        """Seeded inputs for `model` (its inputs' dims as fix-input-shapes will pin them: the first
        pass's resolved options when it is fix-input-shapes, pipeline text included, else the
        context's) and onnxruntime's outputs on them."""
        from edgec.passes.cleanup.fix_input_shapes import parse_shapes

        if first_pass is not None and first_pass.name == "fix-input-shapes":
            spec = first_pass.opts.get("shapes")
        else:
            spec = ((ctx.options if ctx else {}).get("fix-input-shapes") or {}).get("shapes")
        fixed = parse_shapes(spec)
        # TensorInfo is frozen: the --input-shape dims replace the declared ones in a copy
        infos = [replace(info, shape=tuple(fixed[info.name])) if info.name in fixed else info
                 for info in graph_inputs(model)]
        self.inputs = seeded_inputs(infos, self.seed)
        try:
            self.expected = run_ort_ir(model, self.inputs)
        except Exception as e:
            raise EdgecError(f"--verify: onnxruntime cannot run the input model, so there is nothing to verify "
                             f"against: {_one_line(e)}") from None

    def before_pass(self, pass_, model, ctx):
        if self.expected is None:
            self.start(model, ctx, pass_)

    def outputs_of(self, model: ir.Model) -> dict[str, np.ndarray]:
        """`model` run in onnxruntime, outputs in the original model's layout."""
        layout = _io_layout(model)
        return to_model_layout(run_ort_ir(model, to_artifact_layout(self.inputs, layout)), layout)

    def after_pass(self, pass_, model, ctx, result, seconds):
        if not result.modified:
            return
        try:
            actual = self.outputs_of(result.model)
        except Exception as e:
            if self.unrunnable_by_design or (pass_.changes_numerics and _bfloat16(result.model)):
                self._keep_float_baseline(pass_, result.model, e)
                return
            if not self.allow_unrunnable:
                raise VerificationError(
                    f"--verify: onnxruntime cannot run the model after pass '{pass_.spec()}' "
                    f"({_one_line(e)}); --verify-allow-unrunnable skips such passes") from None
            self.skipped.append(f"{pass_.name}: {_one_line(e)}")
            return
        if pass_.changes_numerics:  # quantization: later passes and the artifact are checked against its output
            self.expected, self.rebaselined = actual, [*self.rebaselined, pass_.name]
            if not pass_.float_arithmetic(ctx):
                self.quant_atol = self._quantized_bounds(result.model, actual)
            return
        diffs = compare_outputs(actual, self.expected, self.tolerance)
        if not all_match(diffs):
            raise VerificationError(f"--verify: pass '{pass_.spec()}' changed the outputs: {summary(diffs)}")
        self.checked.append(pass_.name)

    def _keep_float_baseline(self, pass_, model: ir.Model, e: Exception) -> None:
        """A numerics-changing pass whose result onnxruntime cannot run by design (bfloat16):
        the following passes are unchecked (listed in `skipped`), and the artifact is checked
        against the float model, each output within 2 steps of 127 of its largest magnitude."""
        if not self.unrunnable_by_design:
            self.quant_atol = self._quantized_bounds(model, self.expected or {})
            self.unrunnable_by_design = pass_.name
        self.skipped.append(f"{pass_.name}: {_one_line(e)}")

    def check_artifact(self, actual: dict[str, np.ndarray], io_layout: dict[str, str]) -> None:
        """The compiled artifact's outputs (run on `artifact_inputs`) against the original model."""
        diffs = compare_outputs(to_model_layout(actual, io_layout), self.expected, self.tolerance)
        if not all_match(diffs):
            raise VerificationError(f"--verify: the compiled artifact (backend: lowering, layout, schedules) "
                                    f"differs from onnxruntime: {summary(diffs)}")

    def artifact_inputs(self, io_layout: dict[str, str]) -> dict[str, np.ndarray]:
        return to_artifact_layout(self.inputs, io_layout)
