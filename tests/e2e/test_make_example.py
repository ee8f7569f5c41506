"""examples/make/Makefile with GNU make: edgec compiles the model for this machine with a depfile,
the C++ program (examples/cmake/main.cpp) is built against the bundle and runs natively, printing
outputs matching onnxruntime. Rebuilds: a touched model reruns edgec, changed EDGEC_FLAGS
recompile, an unchanged tree has nothing to do."""

from __future__ import annotations

import os
import shutil

from tests.conftest import EXAMPLES
from tests.e2e.example_app import EDGEC, REPO, check_against_onnxruntime, needs, run


def test_make_example_builds_runs_and_rebuilds(tmp_path):
    needs("make", "g++")
    work = tmp_path / "make"
    shutil.copytree(REPO / "examples" / "make", work)
    model = tmp_path / "model.onnx"
    shutil.copy(EXAMPLES / "small_cnn.onnx", model)
    env = dict(os.environ)
    env.pop("EDGEC_COMPILE_CACHE", None)  # tests turn the compile cache off; this one uses its own
    cache = f"--cache-dir={tmp_path / 'compile-cache'}"

    def make(flags=cache):
        return run(["make", f"EDGEC={EDGEC}", f"MODEL={model}", f"SRC={REPO / 'examples' / 'cmake' / 'main.cpp'}",
                    f"EDGEC_FLAGS={flags}"], env, cwd=work)

    log = make()
    assert "compiled" in log and "cache hit" not in log, log
    app = work / "build" / "edgec_app"
    check_against_onnxruntime(run([app], env), model)
    assert "Nothing to be done" in make()
    model.touch()
    log = make()
    assert "cache hit" in log, log
    assert "Nothing to be done" in make()
    log = make(f"{cache} -O1")
    assert "compiled" in log and "cache hit" not in log, log
    check_against_onnxruntime(run([app], env), model)
    assert "Nothing to be done" in make(f"{cache} -O1")
    # the build directory is relocatable: the program finds the bundle through its rpath ($ORIGIN)
    moved = tmp_path / "moved"
    shutil.move(work / "build", moved)
    check_against_onnxruntime(run([moved / "edgec_app", moved / "model.edgec" / "bundle" / "model.so"], env), model)
