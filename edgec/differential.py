"""One differential check: compile a model with edgec, run it, compare with onnxruntime.

Shared by the fuzzer (`benchmarks/fuzz.py`, tests/fuzz) and `edgec reduce`. The compile runs with
`--verify` (onnxruntime after every modifying pass, then the artifact), so a wrong result is
attributed to the first pass that changed the outputs, or to the backend.

Outcome kinds:
  match       compiled, ran, every output matches onnxruntime (edgec.compare)
  mismatch    a pass or the backend changed the outputs, or a pass wrote a model onnxruntime
              cannot run (`stage` names which)
  internal    edgec crashed (exit 1): a pass, the lowering or a backend stage
  rejected    edgec refused the model (exit 2): unsupported op, invalid model, ...
  reference   onnxruntime cannot run the original model: nothing to compare with
  unrunnable  compiled, but the artifact cannot run here (GPU, missing qemu)
  crash/hang  (only when run in a worker process, `edgec.fuzz.run.Runner`) the process died or
              took too long: a native crash of edgec or TVM

Runs in-process: callers that must survive a native crash run it in a worker process.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgec.errors import EdgecError, InternalError, VerificationError

_PASS = re.compile(r"pass '([^'{]+)")
_BACKEND_STAGE = re.compile(r"backend stage '([^']+)'")
_ERROR_TYPE = re.compile(r"(?:crashed|rejects): (\w+):")


@dataclass
class Outcome:
    kind: str
    detail: str = ""
    stage: str = ""     # mismatch/internal: the pass name, or "backend" / "backend (<stage>)"

    @property
    def failed(self) -> bool:
        """An edgec bug: a wrong result or a crash."""
        return self.kind in ("mismatch", "internal", "crash", "hang")

    def signature(self) -> str:
        """What makes two failures 'the same bug' for deduplication and for `edgec reduce`: kind,
        stage and, for a crash, the exception type."""
        if not self.failed:
            return self.kind
        m = _ERROR_TYPE.search(self.detail) if self.kind == "internal" else None
        return f"{self.kind}:{self.stage}" + (f":{m.group(1)}" if m else "")

    def to_json(self) -> dict:
        return {"kind": self.kind, "stage": self.stage, "detail": self.detail}


def _stage_of(message: str) -> str:
    m = _PASS.search(message)
    if m:
        return m.group(1)
    m = _BACKEND_STAGE.search(message)
    if m:
        return f"backend ({m.group(1)})"
    if "lowering" in message:
        return "backend (lowering)"
    return "backend" if "the compiled artifact" in message else "unknown"


def check_model(model: onnx.ModelProto | str | Path, target: str = "x86-64", opt_level: int = 2,
                passes: str | None = None, disabled: tuple[str, ...] = (), atol: float = 1e-4,
                rtol: float = 1e-4, workdir: str | Path | None = None) -> Outcome:
    """Compile `model` (a proto or a path) for `target` with --verify semantics and classify the
    result. `passes`: a pipeline text instead of the level's default."""
    from edgec.api import CompileOptions, compile_model

    with tempfile.TemporaryDirectory(prefix="edgec-diff-", dir=workdir) as tmp:
        path = Path(tmp) / "model.onnx"
        if isinstance(model, onnx.ModelProto):
            onnx.save(model, path)
        else:
            path = Path(model)
        opts = CompileOptions(target=target, opt_level=opt_level, passes=passes, disabled=tuple(disabled),
                              verify=True, verify_tolerance=(atol, rtol))
        try:
            art = compile_model(path, Path(tmp) / "out", opts)
        except VerificationError as e:
            text = e.one_line()
            if "cannot run the input model" in text:
                return Outcome("reference", text)
            return Outcome("mismatch", text, _stage_of(text))
        except InternalError as e:
            return Outcome("internal", e.one_line(), _stage_of(str(e)))
        except EdgecError as e:
            if "nothing to verify against" in str(e):
                return Outcome("reference", e.one_line())
            return Outcome("rejected", e.one_line())
        except Exception as e:  # any other exception escaping edgec is its bug too
            text = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
            return Outcome("internal", text, "unknown")
        verdict = (art.metadata.get("pipeline") or {}).get("artifact_verified", "")
        if verdict != "checked":
            return Outcome("unrunnable", verdict)
        return Outcome("match", "all outputs match onnxruntime")

