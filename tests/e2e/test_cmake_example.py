"""examples/cmake: `find_package(edgec)` + `edgec_add_model` in a real CMake build, cross-compiled
for aarch64 with the example's toolchain file; the program runs under qemu and prints outputs
matching onnxruntime. Rebuilds: a touched model reruns edgec, a changed option recompiles, an
unchanged tree is "no work to do" (issue 16, items 3)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import EXAMPLES
from tests.e2e.example_app import EDGEC, QEMU, REPO, check_against_onnxruntime, needs, run

CMAKE_EXAMPLE = REPO / "examples" / "cmake"


def test_edgec_cmake_dir_holds_the_package(run_cli):
    r = run_cli("--cmake-dir")
    assert r.code == 0, r
    d = Path(r.out.strip())
    assert (d / "edgecConfig.cmake").is_file() and (d / "edgecConfigVersion.cmake").is_file()
    from edgec import __version__

    assert f'set(PACKAGE_VERSION "{__version__}")' in (d / "edgecConfigVersion.cmake").read_text()
    assert f'set(edgec_VERSION "{__version__}")' in (d / "edgecConfig.cmake").read_text()


def test_cmake_example_cross_built_for_aarch64_runs_under_qemu_and_rebuilds(tmp_path):
    needs("cmake", "ninja", "aarch64-linux-gnu-g++", "qemu-aarch64")
    model = tmp_path / "model.onnx"
    shutil.copy(EXAMPLES / "small_cnn.onnx", model)
    env = dict(os.environ)
    env.pop("EDGEC_COMPILE_CACHE", None)  # tests turn the compile cache off; this one uses its own
    cache = f"--cache-dir={tmp_path / 'compile-cache'}"
    build = tmp_path / "build"
    cmake_dir = run([EDGEC, "--cmake-dir"], env).strip()

    def configure(options=cache, config=""):
        run(["cmake", "-S", CMAKE_EXAMPLE, "-B", build, "-G", "Ninja", f"-Dedgec_DIR={cmake_dir}",
              f"-DCMAKE_TOOLCHAIN_FILE={CMAKE_EXAMPLE / 'aarch64-toolchain.cmake'}", f"-DEDGEC_EXECUTABLE={EDGEC}",
              f"-DEDGEC_EXAMPLE_MODEL={model}", f"-DEDGEC_EXAMPLE_OPTIONS={options}", f"-DEDGEC_EXAMPLE_CONFIG={config}"], env)

    configure()
    log = run(["cmake", "--build", build], env)
    assert "edgec: compiling" in log, log
    app = build / "edgec_app"
    header = app.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183, "not an aarch64 ELF"  # EM_AARCH64
    out = run([*QEMU, app], env)
    check_against_onnxruntime(out, model)

    # nothing changed: nothing to do
    assert "no work to do" in run(["cmake", "--build", build], env)
    # the model changed (its time): edgec runs again (a cache hit: same content) and the app is rebuilt
    model.touch()
    log = run(["cmake", "--build", build], env)
    assert "edgec: compiling" in log and "cache hit" in log, log
    assert "no work to do" in run(["cmake", "--build", build], env)
    # options changed (a flag, a config file): a new compile (not a cache hit) whose artifact still matches
    cfg = tmp_path / "edgec.toml"
    cfg.write_text('weights-file = "never"\n')
    configure(f"{cache};-O1", cfg)
    log = run(["cmake", "--build", build], env)
    assert "edgec: compiling" in log and "cache hit" not in log, log
    assert "-O1" in (build / "cnn.edgec.options").read_text()
    check_against_onnxruntime(run([*QEMU, app], env), model)
    assert "no work to do" in run(["cmake", "--build", build], env)
    # the config file is in the depfile: touching it reruns edgec (same content: a cache hit)
    cfg.touch()
    log = run(["cmake", "--build", build], env)
    assert "edgec: compiling" in log and "cache hit" in log, log
    assert "no work to do" in run(["cmake", "--build", build], env)
