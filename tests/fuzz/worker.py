"""Fuzz worker: compile each model file named on stdin with the real CLI entry point, in this
one process, and print one JSON line per model: exit code and stderr."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

from edgec.cli import main


def run_one(model: str, out: Path) -> dict:
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(["compile", model, "-t", "x86-64", "-o", str(out)])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    produced = out.exists()
    shutil.rmtree(out, ignore_errors=True)
    return {"model": model, "code": code, "stderr": err.getvalue(), "artifact": produced}


if __name__ == "__main__":
    out_root = Path(sys.argv[1])
    for line in sys.stdin:
        model = line.strip()
        if not model:
            continue
        print(json.dumps(run_one(model, out_root / "artifact")), flush=True)
