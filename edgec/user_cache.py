"""edgec's cache directory: $EDGEC_CACHE, else ~/.cache/edgec. Everything edgec keeps between runs
(target runtimes, built runners, onnxruntime's session file) lives there and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(override: str | Path | None = None) -> Path:
    """`override`, else $EDGEC_CACHE, else ~/.cache/edgec (created)."""
    d = Path(override or os.environ.get("EDGEC_CACHE") or Path.home() / ".cache" / "edgec")
    d.mkdir(parents=True, exist_ok=True)
    return d


def import_onnxruntime():
    """`import onnxruntime`, with its temporary directory pointed into edgec's cache for the
    import: onnxruntime writes a telemetry session file (`.ses`) into $TMPDIR when it loads, which
    would otherwise be left in the user's temporary directory by every `edgec run --compare-onnx`."""
    import sys

    if "onnxruntime" in sys.modules:
        return sys.modules["onnxruntime"]
    saved = {k: os.environ.get(k) for k in ("TMPDIR", "TMP", "TEMP")}
    d = cache_dir() / "onnxruntime"
    d.mkdir(exist_ok=True)
    try:
        for k in saved:
            os.environ[k] = str(d)
        import onnxruntime
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return onnxruntime
