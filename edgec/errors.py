"""Errors edgec reports to users.

`EdgecError` and its subclasses are printed by the CLI as one line and exit with `exit_code`:
2 for the user's input, options or environment (bad model, unsupported op, missing toolchain),
1 for `InternalError` and `VerificationError`, which are edgec's own bugs (a pass or the backend
crashed or changed the results). Any other exception is an internal error too (exit 1, traceback
with --debug).
"""

from __future__ import annotations


class EdgecError(Exception):
    """An error caused by the user's input or environment; printed as one line."""

    exit_code = 2

    def one_line(self) -> str:
        return " ".join(str(self).split())


class ConfigError(EdgecError):
    """A --config file that is unreadable, not TOML, or has an unknown key or a value of the wrong type."""


class ModelLoadError(EdgecError):
    """The model file is missing, unreadable, not ONNX, truncated, or unsafe."""


class ModelValidationError(EdgecError):
    """The model parsed but is inconsistent (checker, shapes, graph structure)."""


class UnsupportedOpError(EdgecError):
    """A node edgec cannot lower for the chosen target."""

    def __init__(self, node_name: str, op_type: str, domain: str, opset: int | None, file: str = "", detail: str = ""):
        where = f"{file}: " if file else ""
        dom = domain or "ai.onnx"
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{where}unsupported operator: node '{node_name}' op '{op_type}' domain '{dom}' opset {opset}{extra}"
        )
        self.node_name, self.op_type, self.domain, self.opset = node_name, op_type, domain, opset


class UnsupportedTypeError(EdgecError):
    """A graph input or output has a data type the target cannot compute with (e.g. int4, float8)."""


class PipelineError(EdgecError):
    """A pipeline text names an unknown pass, has bad options, or a pass failed."""


class InternalError(EdgecError):
    """edgec's own bug: a pass, the lowering or a schedule crashed. The message names the pass
    (or node and op) where it happened; `--debug` shows the traceback."""

    exit_code = 1

    def one_line(self) -> str:
        return f"{super().one_line()} (an edgec bug; rerun with --debug for the traceback)"


class CalibrationRunError(InternalError):
    """onnxruntime could not run the (prepared) float model over the calibration samples. edgec's
    bug unless onnxruntime cannot run the user's model either: `edgec.quantize.blame_calibration`
    decides which, with the model file at hand."""


class VerificationError(EdgecError):
    """--verify found that a pass (or the backend) changed the model's outputs, or produced a model
    onnxruntime cannot run: edgec's bug, not the model's."""

    exit_code = 1

    def one_line(self) -> str:
        return f"{super().one_line()} (an edgec bug; `edgec reduce` shrinks the model to a minimal repro)"


class TargetError(EdgecError):
    """Unknown target, bad target JSON, or a missing cross toolchain."""


class ArtifactError(EdgecError):
    """An artifact directory is missing or malformed."""


class GuardError(EdgecError):
    """A runtime input differs from the value the artifact was specialized for (edgec.AssertEqual),
    or fails a run-time check of the compiled code (an index out of range)."""


#: Prefix of the runtime message of a failing edgec.AssertEqual guard (see GuardError).
GUARD_PREFIX = "edgec guard failed: "
