"""--verify: after every pass, run the model in onnxruntime on seeded inputs and compare with the
outputs of the original model; the first pass that changes them is named in the error."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from edgec.errors import VerificationError
from edgec.infra.instruments import Instrument
from edgec.ir.analysis import graph_inputs
from edgec.reference import compare, run_ort_ir, seeded_inputs


@dataclass
class VerifyAgainstOnnxRuntime(Instrument):
    atol: float = 1e-4
    rtol: float = 1e-4
    seed: int = 0
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    expected: dict[str, np.ndarray] | None = None
    checked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def start(self, model: ir.Model) -> None:
        self.inputs = seeded_inputs(graph_inputs(model), self.seed)
        self.expected = run_ort_ir(model, self.inputs)

    def before_pass(self, pass_, model, ctx):
        if self.expected is None:
            self.start(model)

    def after_pass(self, pass_, model, ctx, result, seconds):
        if not result.modified:
            return
        try:
            actual = run_ort_ir(result.model, self.inputs)
        except Exception as e:  # ops outside onnxruntime's reach (e.g. edgec-domain fusions)
            msg = " ".join(str(e).split())[:160]
            self.skipped.append(f"{pass_.name}: {msg}")
            return
        for d in compare(actual, self.expected):
            tol = self.atol + self.rtol * float(np.max(np.abs(self.expected[d.name]))) if d.shape_ok else 0
            if not d.shape_ok or d.max_abs > tol:
                raise VerificationError(
                    f"--verify: pass '{pass_.spec()}' changed output '{d.name}' "
                    f"(max abs error {d.max_abs:.3g} > {tol:.3g})"
                )
        self.checked.append(pass_.name)
