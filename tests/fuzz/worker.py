"""Fuzz worker: compile each model file named on stdin with the real CLI entry point, in this
one process, then (when it compiled and onnxruntime can run the model) run the artifact with
`edgec run --compare-onnx` to catch miscompiles. Prints one JSON line per model: the compile's
exit code and stderr, and the run's ("run": null when there was nothing to compare with)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

from edgec.cli import main

TOLERANCE = ("--atol", "1e-4", "--rtol", "1e-4")   # as --verify and edgec.differential


def cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, err.getvalue()


def reference_problem(model: str, out: Path) -> str | None:
    """Why onnxruntime cannot run `model` on the artifact's seeded inputs (None: it can)."""
    from edgec.artifact import load_artifact
    from edgec.reference import run_reference_model, seeded_inputs

    try:
        art = load_artifact(out)
        run_reference_model(model, seeded_inputs(art.inputs, 0), (art.metadata.get("pipeline") or {}).get("io_layout"))
    except Exception as e:
        return " ".join(str(e).split())[:200] or type(e).__name__
    return None


def run_one(model: str, out: Path) -> dict:
    code, stderr = cli(["compile", model, "-t", "x86-64", "-o", str(out)])
    produced = out.exists()
    run = None
    if code == 0 and produced:
        why_not = reference_problem(model, out)
        if why_not is None:
            run_code, run_err = cli(["run", str(out), "--compare-onnx", model, *TOLERANCE])
            run = {"code": run_code, "stderr": run_err}
        else:
            run = {"skipped": why_not}
    shutil.rmtree(out, ignore_errors=True)
    return {"model": model, "code": code, "stderr": stderr, "artifact": produced, "run": run}


if __name__ == "__main__":
    out_root = Path(sys.argv[1])
    for line in sys.stdin:
        model = line.strip()
        if not model:
            continue
        print(json.dumps(run_one(model, out_root / "artifact")), flush=True)
