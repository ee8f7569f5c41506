"""Shared test helpers: run the CLI in-process, build small ONNX models from text."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import onnx
import pytest

from edgec.cli import main

# The compile cache is on by default for users; tests that compile the same model twice (or patch
# edgec's internals between compiles) must compile, so it is off here unless a test passes --cache-dir.
os.environ["EDGEC_COMPILE_CACHE"] = "off"

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self):
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def run_cli(capsys):
    def _run(*argv: str) -> CliResult:
        code = 0
        try:
            main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

    return _run


def model_from_text(text: str, ir_version: int = 8) -> onnx.ModelProto:
    m = onnx.parser.parse_model(text)
    m.ir_version = ir_version
    return m


@pytest.fixture
def examples_dir(tmp_path) -> Path:
    """A private copy of the bundled example models."""
    d = tmp_path / "examples"
    d.mkdir()
    for f in EXAMPLES.glob("*.onnx"):
        shutil.copy(f, d / f.name)
    return d


def require_target_tools(target: str):
    """The target's spec; skips the test when its cross compiler or emulator is not installed."""
    from edgec.targets import get_target
    from edgec.targets.tvm import emulate

    spec = get_target(target)
    tools = [spec.cross_compiler, *([spec.emulator[0]] if spec.emulator and spec.arch != emulate.host_arch() else [])]
    missing = [t for t in tools if t and shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install -y $(cat .ci/apt-packages.txt))")
    return spec
