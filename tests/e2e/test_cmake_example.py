"""examples/cmake: `find_package(edgec)` + `edgec_add_model` in a real CMake build, cross-compiled
for aarch64 with the example's toolchain file; the program runs under qemu and prints outputs
matching onnxruntime. Rebuilds: a touched model reruns edgec, a changed option recompiles, an
unchanged tree is "no work to do" (issue 16, items 3)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

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


def _nothing_to_do(log: str, generator: str) -> bool:
    if generator == "Ninja":
        return "no work to do" in log
    return "edgec: compiling" not in log and "Building" not in log and "Linking" not in log


def build_run_and_rebuild(tmp_path, generator: str, target: str, toolchain: Path | None, runner: list[str]) -> Path:
    """Configure and build examples/cmake, run its program (under `runner`) against onnxruntime,
    then check the rebuilds: none when nothing changed; edgec again on a touched model (a cache
    hit) and on a touched config file; a new compile when an option changes."""
    model = tmp_path / "model.onnx"
    shutil.copy(EXAMPLES / "small_cnn.onnx", model)
    env = dict(os.environ)
    env.pop("EDGEC_COMPILE_CACHE", None)  # tests turn the compile cache off; this one uses its own
    cache = f"--cache-dir={tmp_path / 'compile-cache'}"
    build = tmp_path / "build"
    cmake_dir = run([EDGEC, "--cmake-dir"], env).strip()

    def configure(options=cache, config=""):
        run(["cmake", "-S", CMAKE_EXAMPLE, "-B", build, "-G", generator, f"-Dedgec_DIR={cmake_dir}",
             *([f"-DCMAKE_TOOLCHAIN_FILE={toolchain}"] if toolchain else []), f"-DEDGEC_EXECUTABLE={EDGEC}",
             f"-DEDGEC_EXAMPLE_MODEL={model}", f"-DEDGEC_EXAMPLE_TARGET={target}",
             f"-DEDGEC_EXAMPLE_OPTIONS={options}", f"-DEDGEC_EXAMPLE_CONFIG={config}"], env)

    def cmake_build():
        return run(["cmake", "--build", build], env)

    configure()
    log = cmake_build()
    assert "edgec: compiling" in log, log
    app = build / "edgec_app"
    check_against_onnxruntime(run([*runner, app], env), model)

    assert _nothing_to_do(cmake_build(), generator)
    # the model changed (its time): edgec runs again (a cache hit: same content) and the app is rebuilt
    model.touch()
    log = cmake_build()
    assert "edgec: compiling" in log and "cache hit" in log, log
    assert _nothing_to_do(cmake_build(), generator)
    # options changed (a flag, a config file): a new compile (not a cache hit) whose artifact still matches
    cfg = tmp_path / "edgec.toml"
    cfg.write_text('weights-file = "never"\n')
    configure(f"{cache};-O1", cfg)
    log = cmake_build()
    assert "edgec: compiling" in log and "cache hit" not in log, log
    assert "-O1" in (build / "cnn.edgec.options").read_text()
    check_against_onnxruntime(run([*runner, app], env), model)
    assert _nothing_to_do(cmake_build(), generator)
    # the config file is in the depfile: touching it reruns edgec (same content: a cache hit)
    cfg.touch()
    log = cmake_build()
    assert "edgec: compiling" in log and "cache hit" in log, log
    assert _nothing_to_do(cmake_build(), generator)
    return app


def test_cmake_example_cross_built_for_aarch64_runs_under_qemu_and_rebuilds(tmp_path):
    needs("cmake", "ninja", "aarch64-linux-gnu-g++", "qemu-aarch64")
    app = build_run_and_rebuild(tmp_path, "Ninja", "armv8", CMAKE_EXAMPLE / "aarch64-toolchain.cmake", QEMU)
    header = app.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183, "not an aarch64 ELF"  # EM_AARCH64


def test_cmake_example_host_build_with_the_makefile_generator(tmp_path):
    """The same for this machine (x86-64 bundle), with CMake's Makefile generator: DEPFILE and the
    options file work there too (make does not compare command lines)."""
    needs("cmake", "make", "g++")
    build_run_and_rebuild(tmp_path, "Unix Makefiles", "host", None, [])


@pytest.mark.parametrize("body, message", [
    ("find_package(edgec 0.2 CONFIG REQUIRED)", "0.2"),  # a newer version than installed
    ("find_package(edgec 1.0 CONFIG REQUIRED)", "1.0"),  # another major version
    ("find_package(edgec CONFIG REQUIRED)\nedgec_add_model(m TARGET armv8)", "MODEL is required"),
    ("find_package(edgec CONFIG REQUIRED)\nedgec_add_model(m MODEL m.onnx TARGT armv8)", "unknown arguments: TARGT"),
    ("find_package(edgec 0.1 CONFIG REQUIRED)\nedgec_add_model(m MODEL m.onnx TARGET armv8)", None),  # configures
])
def test_cmake_package_version_check_and_misuse(tmp_path, body, message):
    needs("cmake")
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(f"cmake_minimum_required(VERSION 3.20)\nproject(t LANGUAGES NONE)\n{body}\n")
    p = subprocess.run(["cmake", "-S", src, "-B", tmp_path / "b", f"-Dedgec_DIR={REPO / 'edgec' / 'cmake'}",
                        f"-DEDGEC_EXECUTABLE={EDGEC}"], capture_output=True, text=True, timeout=120)
    if message is None:
        assert p.returncode == 0, p.stderr
    else:
        assert p.returncode != 0 and message in p.stderr, p.stderr


def test_cmake_package_found_through_the_prefix_path(tmp_path):
    """CMAKE_PREFIX_PATH naming the directory that holds edgec/ (site-packages) finds the package:
    CMake looks in <prefix>/edgec*/cmake/."""
    needs("cmake")
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.20)\nproject(t LANGUAGES NONE)\n"
                                        "find_package(edgec 0.1 CONFIG REQUIRED)\nmessage(STATUS \"edgec ${edgec_VERSION}\")\n")
    p = subprocess.run(["cmake", "-S", src, "-B", tmp_path / "b", f"-DCMAKE_PREFIX_PATH={REPO}"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "edgec 0.1.0" in p.stdout, p.stdout + p.stderr


def test_cmake_example_cross_built_for_armv7_runs_under_qemu(tmp_path):
    """armv7 bundles hold the call-plan runtime (docs/armv7.md), not TVM's: the same CMake function
    and program work with the example's armv7 toolchain file."""
    needs("cmake", "ninja", "arm-linux-gnueabihf-g++", "qemu-arm")
    env = dict(os.environ)
    build = tmp_path / "build"
    run(["cmake", "-S", CMAKE_EXAMPLE, "-B", build, "-G", "Ninja", f"-Dedgec_DIR={REPO / 'edgec' / 'cmake'}",
         f"-DCMAKE_TOOLCHAIN_FILE={CMAKE_EXAMPLE / 'armv7-toolchain.cmake'}", f"-DEDGEC_EXECUTABLE={EDGEC}",
         "-DEDGEC_EXAMPLE_TARGET=armv7"], env)
    run(["cmake", "--build", build], env)
    app = build / "edgec_app"
    header = app.read_bytes()[:20]
    assert header[:5] == b"\x7fELF\x01" and int.from_bytes(header[18:20], "little") == 40, "not a 32-bit ARM ELF"  # EM_ARM
    check_against_onnxruntime(run(["qemu-arm", "-L", "/usr/arm-linux-gnueabihf", app], env), EXAMPLES / "small_cnn.onnx")


def test_cmake_package_in_a_project_with_an_older_minimum(tmp_path):
    """The package sets its own policies: a project saying cmake_minimum_required(VERSION 3.13)
    gets no CMP0116 (depfile) warning and a depfile transformed for Ninja."""
    needs("cmake", "ninja")
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.13)\nproject(t LANGUAGES NONE)\n"
                                        "find_package(edgec CONFIG REQUIRED)\nedgec_add_model(m MODEL m.onnx)\n")
    p = subprocess.run(["cmake", "-S", src, "-B", tmp_path / "b", "-G", "Ninja", f"-Dedgec_DIR={REPO / 'edgec' / 'cmake'}",
                        f"-DEDGEC_EXECUTABLE={EDGEC}"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "CMP0116" not in p.stderr, p.stderr
    assert "cmake_transform_depfile" in (tmp_path / "b" / "build.ninja").read_text()
