"""Fuzz worker: one JSON job per stdin line ({"seed", "family", "target", "level"}: a generated
model, `edgec.fuzz.run.fuzz_one`; or {"model": path, ...}: `check_model` on a file, for `edgec
reduce`), one JSON record per stdout line. Everything else the libraries print goes to
stderr, so the protocol stays clean. Run by `edgec.fuzz.run.Runner`."""

from __future__ import annotations

import json
import os
import sys
import tempfile


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)             # native and Python prints go to stderr
    sys.stdout = sys.stderr
    from edgec.fuzz.run import fuzz_one

    with tempfile.TemporaryDirectory(prefix="edgec-fuzz-") as work:
        for line in sys.stdin:
            if not line.strip():
                continue
            job = json.loads(line)
            if "model" in job:
                rec = check_file(job, work)
            else:
                rec = fuzz_one(job["seed"], job["family"], job["target"], (job["level"],), workdir=work)[0]
            protocol.write(json.dumps(rec) + "\n")
            protocol.flush()


def check_file(job: dict, work: str) -> dict:
    """A {"model": path, ...} job (`Runner.check`): check_model's Outcome as a dict."""
    from edgec.differential import check_model
    from edgec.errors import EdgecError
    from edgec.infra.registry import load_plugin_file

    try:
        for plugin in job.get("plugins", []):
            load_plugin_file(plugin)
    except EdgecError as e:
        return {"kind": "rejected", "stage": "", "detail": e.one_line()}
    out = check_model(job["model"], job["target"], job["level"], job.get("passes"), tuple(job.get("disabled", ())),
                      job.get("atol", 1e-4), job.get("rtol", 1e-4), workdir=work)
    return out.to_json()


if __name__ == "__main__":
    main()
