"""A compile killed mid-way (SIGINT or SIGKILL) leaves no artifact; the next compile cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import EXAMPLES, ROOT


def _compile_args(out):
    return [sys.executable, "-m", "edgec.cli", "compile", str(EXAMPLES / "small_cnn.onnx"), "-t", "x86-64", "-o", str(out)]


def _default_sigint():
    # Something earlier in a pytest session (TVM's popen pools, RPC servers) may leave SIGINT
    # ignored in this process; a child inherits SIG_IGN, and edgec rightly keeps ignoring it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_compile(out):
    return subprocess.Popen(_compile_args(out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def _wait_for_temp_dir(parent, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        temps = list(parent.glob(".art.tmp-*"))
        if temps:  # created just before the backend starts building: we are mid-compile
            return temps[0]
        if proc.poll() is not None:
            pytest.fail(f"compile finished before it could be interrupted: {proc.communicate()}")
        time.sleep(0.005)
    pytest.fail("compile never created its temporary directory")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_compile_leaves_no_artifact(tmp_path, sig):
    out = tmp_path / "art"
    proc = _start_compile(out)
    _wait_for_temp_dir(tmp_path, proc)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert not out.exists()
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and err.strip().splitlines()[-1] == "edgec: interrupted"
        assert not list(tmp_path.glob(".art.*"))  # cleaned up on the way out
    # the next compile into the same place succeeds and removes what a SIGKILL left behind
    done = subprocess.run(_compile_args(out), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (out / "metadata.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
