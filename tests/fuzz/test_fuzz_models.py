"""Fuzzing: 2000 mutated models (bytes and graph structure) through `edgec compile`.

Each must either compile (exit 0, artifact written) or be rejected with exit 2 and exactly one
line on stderr; never a crash, hang, traceback or internal error (exit 1). A model that compiled
is also run and compared with onnxruntime (`edgec run --compare-onnx`) whenever onnxruntime can
run it: a mismatch (exit 3) or any other non-zero exit is a failure. Compiles run in a worker
subprocess so a native crash is caught and attributed to the model that caused it."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path

from tests.fuzz.mutate import mutants

COUNT = int(__import__("os").environ.get("EDGEC_FUZZ_COUNT", "2000"))
HANG_SECONDS = 120
WORKER = Path(__file__).with_name("worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _start(out_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(out_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TVM_NUM_THREADS": "1"})


def run_models(paths: list[Path], out_dir: Path) -> list[dict]:
    results, pending = [], list(paths)
    while pending:
        proc = _start(out_dir)
        try:
            while pending:
                model = pending[0]
                proc.stdin.write(f"{model}\n")
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], HANG_SECONDS)
                line = proc.stdout.readline() if ready else ""
                if not ready:
                    results.append({"model": str(model), "code": "hang", "stderr": "", "artifact": False})
                    pending.pop(0)
                    break
                if not line:  # worker died: a native crash on this model
                    proc.wait(timeout=10)
                    results.append({"model": str(model), "code": f"crash({proc.returncode})",
                                    "stderr": proc.stderr.read()[-2000:], "artifact": False})
                    pending.pop(0)
                    break
                results.append(json.loads(line))
                pending.pop(0)
        finally:
            proc.kill()
            proc.wait()
    return results


def _bad_run(run: dict | None) -> str | None:
    """The compiled artifact's run against onnxruntime: exit 0, or skipped because onnxruntime
    could not run the model (nothing to compare with)."""
    if run is None:
        return "compiled but not run"
    if "skipped" in run or run["code"] == 0:
        return None
    what = "mismatch with onnxruntime" if run["code"] == 3 else f"run exit {run['code']}"
    return f"{what}: {run['stderr'][-400:]}"


def _bad(r: dict) -> str | None:
    lines = r["stderr"].strip().splitlines()
    if r["code"] == 0:
        return _bad_run(r.get("run")) if r["artifact"] else "exit 0 but no artifact"
    if r["code"] != 2:
        return f"exit {r['code']}: {r['stderr'][-400:]}"
    if len(lines) != 1 or not lines[0].startswith("edgec: error: ") or "Traceback" in r["stderr"]:
        return f"not one clean line: {r['stderr'][:400]!r}"
    if r["artifact"]:
        return "exit 2 but an artifact was written"
    return None


def test_mutated_models_compile_or_exit_2(tmp_path):
    models = []
    for name, data in mutants(COUNT, seed=20261122):
        p = tmp_path / f"{name}.onnx"
        p.write_bytes(data)
        models.append(p)
    results = run_models(models, tmp_path / "out")
    assert len(results) == COUNT
    failures = [(Path(r["model"]).name, why) for r in results if (why := _bad(r))]
    compiled = sum(r["code"] == 0 for r in results)
    compared = sum(r["code"] == 0 and "code" in (r.get("run") or {}) for r in results)
    print(f"fuzz: {COUNT} models, {compiled} compiled ({compared} run and compared with onnxruntime), "
          f"{COUNT - compiled - len(failures)} rejected cleanly, {len(failures)} failures")
    assert not failures, "\n".join(f"{n}: {w}" for n, w in failures[:10])
    assert compiled > 0  # the mutator must leave some models valid, or it only tests the parser
    assert compared > 0  # and some of them must run, or miscompiles go unseen
