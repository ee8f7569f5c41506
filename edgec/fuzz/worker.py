"""Fuzz worker: one JSON job per stdin line ({"seed", "family", "target", "level"}), one JSON
record per stdout line (`edgec.fuzz.run.fuzz_one`). Everything else the libraries print goes to
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
            rec = fuzz_one(job["seed"], job["family"], job["target"], (job["level"],), workdir=work)[0]
            protocol.write(json.dumps(rec) + "\n")
            protocol.flush()


if __name__ == "__main__":
    main()
