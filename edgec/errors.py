"""Errors edgec reports to users.

`EdgecError` and its subclasses are *user* errors: bad input, unsupported op, missing toolchain.
The CLI prints them as one line and exits with `exit_code` (2). Anything else is an internal
error (exit 1, traceback with --debug).
"""

from __future__ import annotations


class EdgecError(Exception):
    """An error caused by the user's input or environment; printed as one line."""

    exit_code = 2

    def one_line(self) -> str:
        return " ".join(str(self).split())


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


class VerificationError(EdgecError):
    """--verify found that a pass changed the model's outputs."""


class TargetError(EdgecError):
    """Unknown target, bad target JSON, or a missing cross toolchain."""


class ArtifactError(EdgecError):
    """An artifact directory is missing or malformed."""


class GuardError(EdgecError):
    """A runtime input differs from the value the artifact was specialized for (edgec.AssertEqual)."""


#: Prefix of the runtime message of a failing edgec.AssertEqual guard (see GuardError).
GUARD_PREFIX = "edgec guard failed: "
