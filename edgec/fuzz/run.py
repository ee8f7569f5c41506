"""Run generated models through edgec and onnxruntime: in-process (`fuzz_one`) or in a worker
process that survives native crashes and hangs (`Runner`). Failures are saved (`save_finding`).

A record is a dict: seed, family, target, level, kind (edgec.differential outcome kinds plus
"crash" and "hang"), stage, detail, seconds, signature.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgec.fuzz.generate import random_model

FAILURE_KINDS = ("mismatch", "internal", "crash", "hang")
KINDS = ("match", "mismatch", "internal", "rejected", "reference", "unrunnable", "crash", "hang")


def _normalize(text: str) -> str:
    """A detail without what varies between models: paths, value names, numbers."""
    text = re.sub(r"(/[\w.+-]+)+\.onnx:?", "", text)
    text = re.sub(r"'(\w+?)_\d+'", r"'\1'", text)          # value and node names: 'relu_12' -> 'relu'
    text = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", text)
    return " ".join(text.split())


def _problem_class(detail: str) -> str:
    for key in ("NaN", "Inf", "shape", "dtype", "missing", "extra", "bound", "cannot run"):
        if key in detail:
            return {"bound": "error above bound"}.get(key, key)
    return _normalize(detail)[:80]


def signature(rec: dict) -> str:
    """What makes two records 'the same bug' (or the same rejection) in the table."""
    kind, stage, detail = rec["kind"], rec.get("stage", ""), rec.get("detail", "")
    if kind == "mismatch":
        return f"mismatch in {stage or 'unknown'}: {_problem_class(detail)}"
    if kind == "internal":
        text = _normalize(detail)
        text = re.sub(r" \(an edgec bug.*", "", text)
        return f"internal in {stage or 'unknown'}: {text[:110]}"
    if kind in ("rejected", "reference", "unrunnable"):
        text = re.sub(r"node '[^']*' ", "", _normalize(detail))
        return f"{kind}: {text[:110]}"
    if kind == "crash":
        return f"crash: {detail.split(';')[0]}"
    return kind


def record(seed: int, family: str, target: str, level: int, kind: str, stage: str = "", detail: str = "",
           seconds: float = 0.0) -> dict:
    rec = {"seed": seed, "family": family, "target": target, "level": level, "kind": kind, "stage": stage,
           "detail": detail, "seconds": round(seconds, 2)}
    rec["signature"] = signature(rec)
    return rec


def fuzz_one(seed: int, family: str, target: str = "x86-64", levels=(0, 2), workdir=None,
             passes: str | None = None) -> list[dict]:
    """Compile the generated model at each level (or with the pipeline `passes`) with --verify
    semantics, run it, compare."""
    from edgec.differential import check_model

    model = random_model(seed, family)
    out = []
    for level in levels:
        start = time.perf_counter()
        o = check_model(model, target, level, passes=passes, workdir=workdir)
        out.append(record(seed, family, target, level, o.kind, o.stage, o.detail, time.perf_counter() - start))
    return out


class Runner:
    """Jobs (seed, family, target, level) in a long-lived worker process (`python -m
    edgec.fuzz.worker`). A worker that dies is a "crash" of the job it was running, one that
    takes longer than `timeout` a "hang"; either way a fresh worker takes the next job."""

    def __init__(self, timeout: float = 240.0, threads: int | None = 1):
        self.timeout, self.threads = timeout, threads
        self.proc: subprocess.Popen | None = None
        self._stderr = None

    def _start(self) -> subprocess.Popen:
        self._stderr = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ)
        if self.threads:  # None: the runtime's default
            env.update(TVM_NUM_THREADS=str(self.threads), OMP_NUM_THREADS=str(self.threads))
        return subprocess.Popen([sys.executable, "-m", "edgec.fuzz.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().splitlines() if ln.strip()]
        return " | ".join(lines[-3:])[-400:]

    def run(self, seed: int, family: str, target: str, level: int, timeout: float | None = None) -> dict:
        """A generated model (seed, family) at one level: a fuzz record."""
        job = {"seed": seed, "family": family, "target": target, "level": level}
        return self.run_job(job, timeout) or {}

    def check(self, model: str, target: str, level: int, passes: str | None = None, disabled=(),
              atol: float = 1e-4, rtol: float = 1e-4, plugins=(), timeout: float | None = None) -> dict:
        """`edgec.differential.check_model` on the model file at `model`, in the worker: a dict of
        the Outcome's fields (kind "crash" or "hang" when the worker died or took too long)."""
        job = {"model": str(model), "target": target, "level": level, "passes": passes, "disabled": list(disabled),
               "atol": atol, "rtol": rtol, "plugins": [str(p) for p in plugins]}
        return self.run_job(job, timeout)

    def run_job(self, job: dict, timeout: float | None = None) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        start = time.perf_counter()
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout or self.timeout)
        line = self.proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        elapsed = time.perf_counter() - start
        if not ready:
            self.close()
            kind, detail = "hang", f"no result after {elapsed:.0f} s"
        else:
            code = self.proc.wait(timeout=30)
            kind, detail = "crash", f"worker exited with {code}; {self._stderr_tail()}"
            self.proc = None
        if "model" in job:
            return {"kind": kind, "stage": "", "detail": detail}
        return record(job["seed"], job["family"], job["target"], job["level"], kind, "", detail, elapsed)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def reproduce_command(rec: dict, model_path: str) -> str:
    return f"edgec compile {model_path} -t {rec['target']} -O{rec['level']} --verify -o /tmp/out"


def save_finding(findings: str | Path, rec: dict) -> Path:
    """Save the failing model (regenerated from its seed) and append a JSON line to findings.jsonl."""
    import onnx

    findings = Path(findings)
    findings.mkdir(parents=True, exist_ok=True)
    path = findings / f"{rec['family']}-{rec['seed']}.onnx"
    if not path.exists():
        onnx.save(random_model(rec["seed"], rec["family"]), path)
    line = {**rec, "model": str(path), "reproduce": reproduce_command(rec, str(path))}
    with open(findings / "findings.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
    return path
