"""ARM targets: bundles built here, run under qemu outside Python, compared with onnxruntime.

Needs g++-aarch64-linux-gnu, g++-arm-linux-gnueabihf and qemu-user (see .ci/apt-packages.txt);
tests skip with the missing tool named when they are absent. The first aarch64 run downloads the
aarch64 TVM runtime wheels into $EDGEC_CACHE (default ~/.cache/edgec).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm.relax.frontend.onnx import from_onnx
from tvm.support import cc

from edgec.errors import TargetError
from edgec.targets.registry import get_target
from edgec.targets.tvm import bundle, emulate, plan
from tests.targets.arm_models import MODELS, io_metadata, onnxruntime_outputs, random_inputs

ATOL = 1e-4
ELF_MACHINE = {"aarch64": 183, "armv7": 40, "x86_64": 62}


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install -y $(cat .ci/apt-packages.txt))")


def _need_target(spec) -> None:
    _need(*([spec.cross_compiler] if spec.cross_compiler else ["g++"]),
          *([spec.emulator[0]] if spec.emulator and spec.arch != emulate.host_arch() else []))


def build_bundle(spec, model_name: str, root: Path) -> Path:
    """Compile the test model for spec (VM library or call plan) and make its bundle."""
    model = MODELS[model_name]()
    meta = io_metadata(model)
    mod = from_onnx(model, keep_params_in_input=False)
    build = root / "build"
    if spec.runtime == "plan":
        lib = plan.build_plan_library(mod, spec, build, output_names=[o["name"] for o in meta["outputs"]])
    else:
        build.mkdir(parents=True, exist_ok=True)
        lib = build / "model.so"
        ex = tvm.compile(mod, target=tvm.target.Target(spec.tvm))
        kw = {"fcompile": cc.cross_compiler(spec.cross_compiler)} if spec.cross_compiler else {}
        ex.export_library(str(lib), **kw)
    return bundle.make_bundle(spec, lib, meta, root / "bundle")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    made: dict = {}

    def get(target: str, model_name: str, runtime: str | None = None):
        spec = get_target(target)
        if runtime:
            spec = dataclasses.replace(spec, runtime=runtime)
        _need_target(spec)
        key = (target, model_name, spec.runtime)
        if key not in made:
            made[key] = build_bundle(spec, model_name, tmp_path_factory.mktemp(f"{target}-{model_name}"))
        return spec, made[key]
    return get


def _elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(head[18:20], "little")


def _run_runner_cli(spec, bdir: Path, model, inputs, out: Path) -> tuple[str, dict]:
    """Run edgec-runner as a plain process (qemu prefix when cross), read outputs from .npy."""
    args = []
    for name, arr in inputs.items():
        np.save(out / f"{name}.in.npy", arr)
        args += ["--input", f"{name}={out / (name + '.in.npy')}"]
    cmd = [*emulate.command_prefix(spec), str(bdir / "edgec-runner"), str(bdir / "model.so"), *args,
           "--output-dir", str(out), "--repeat", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    got = {o["name"]: np.load(out / f"{o['name']}.npy") for o in io_metadata(model)["outputs"]}
    return r.stdout, got


@pytest.mark.parametrize("target", ["armv8", "armv7"])
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_runner_under_qemu_matches_onnxruntime(bundles, target, model_name, tmp_path):
    spec, bdir = bundles(target, model_name)
    assert _elf_machine(bdir / "edgec-runner") == ELF_MACHINE[spec.arch]
    assert _elf_machine(bdir / "model.so") == ELF_MACHINE[spec.arch]
    model = MODELS[model_name]()
    inputs = random_inputs(model)
    stdout, got = _run_runner_cli(spec, bdir, model, inputs, tmp_path)
    ref = onnxruntime_outputs(model, inputs)
    for name, want in ref.items():
        assert got[name].shape == want.shape and got[name].dtype == want.dtype
        err = float(np.abs(got[name] - want).max())
        assert err <= ATOL, f"{target}/{model_name}/{name}: max abs error {err}"
    lines = stdout.splitlines()
    assert sum(line.startswith("output ") for line in lines) == len(ref)
    assert any(line.startswith("timing: load") for line in lines)


def test_run_bundle_api(bundles):
    spec, bdir = bundles("cortex-a76", "pool_softmax")
    model = MODELS["pool_softmax"]()
    inputs = random_inputs(model, seed=7)
    got = emulate.run_bundle(bdir, spec, inputs)
    ref = onnxruntime_outputs(model, inputs)
    assert list(got) == list(ref)
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], atol=ATOL, rtol=0)


def test_aarch64_library_uses_neon(bundles):
    _need("aarch64-linux-gnu-objdump")
    _, bdir = bundles("armv8", "conv_add_matmul")
    asm = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(bdir / "model.so")],
                         capture_output=True, text=True, check=True).stdout
    assert re.search(r"\bv\d+\.4s\b", asm), "no 4 x f32 NEON vector operands"
    assert re.search(r"\bfmla\b", asm), "no fused multiply-add (fmla)"


def test_bundle_layout(bundles):
    _, bdir = bundles("armv8", "conv_add_matmul")
    for f in ("model.so", "libtvm_runtime.so", "libtvm_ffi.so", "libedgec_runtime.so",
              "edgec_runtime.h", "edgec-runner", "metadata.json", "README.md"):
        assert (bdir / f).is_file(), f
    assert _elf_machine(bdir / "libtvm_runtime.so") == ELF_MACHINE["aarch64"]
    _, pdir = bundles("armv7", "conv_add_matmul")
    assert (pdir / "model.plan").read_text().startswith("edgec-plan 1\n")
    assert not (pdir / "libtvm_runtime.so").exists()  # the call plan needs no TVM runtime


def test_runner_rejects_wrong_input(bundles, tmp_path):
    spec, bdir = bundles("armv8", "pool_softmax")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((1, 3, 8, 8), np.float32))
    r = emulate.run_runner(bdir, spec, ["--input", str(bad), "--output-dir", str(tmp_path)])
    assert r.returncode == 2
    assert "expects float32[1,3,16,16]" in r.stderr and "float32[1,3,8,8]" in r.stderr
    r = emulate.run_runner(bdir, spec, ["--output-dir", str(tmp_path)])
    assert r.returncode == 2 and "model has 1 inputs, got 0" in r.stderr


C_APP = r"""
#include <stdio.h>
#include <string.h>
#include "edgec_runtime.h"
int main(int argc, char** argv) {
  char err[512];
  if (edgec_load("/nonexistent/model.so", err, sizeof err) != NULL) return 10;
  if (strstr(err, "nonexistent") == NULL) return 11;
  edgec_model* m = edgec_load(argv[1], err, sizeof err);
  if (!m) { fprintf(stderr, "%s\n", err); return 1; }
  int ni = edgec_num_inputs(m), no = edgec_num_outputs(m);
  static float in[4096], out[4096];
  if (edgec_run(m) != EDGEC_ERR_STATE) return 12;
  if (edgec_get_output(m, 0, out, sizeof out) != EDGEC_ERR_STATE) return 13;
  if (edgec_set_input(m, ni, in, 4) != EDGEC_ERR_INDEX) return 14;
  if (edgec_set_input(m, 0, in, 4) != EDGEC_ERR_SIZE) return 15;
  if (edgec_input_name(m, -1) != NULL) return 16;
  for (int i = 0; i < ni; ++i) {
    size_t n = edgec_input_bytes(m, i);
    for (size_t k = 0; k < n / 4; ++k) in[k] = (float)((k * 7 + i) % 13) / 13.0f - 0.5f;
    if (edgec_set_input(m, i, in, n) != EDGEC_OK) { fprintf(stderr, "%s\n", edgec_last_error(m)); return 2; }
  }
  if (edgec_run(m) != EDGEC_OK) { fprintf(stderr, "%s\n", edgec_last_error(m)); return 3; }
  if (edgec_get_output(m, 0, out, 4) != EDGEC_ERR_SIZE) return 17;
  for (int o = 0; o < no; ++o) {
    size_t n = edgec_output_bytes(m, o);
    if (edgec_get_output(m, o, out, n) != EDGEC_OK) return 4;
    printf("%s %s %d", edgec_output_name(m, o), edgec_output_dtype(m, o), edgec_output_ndim(m, o));
    for (size_t k = 0; k < n / 4; ++k) printf(" %.9g", out[k]);
    printf("\n");
  }
  edgec_free(m);
  return 0;
}
"""


@pytest.mark.parametrize("runtime", ["vm", "plan"])
def test_c_api_app(bundles, runtime, tmp_path):
    """A user's C program linked against the bundle's libedgec_runtime.so (native x86-64)."""
    if emulate.host_arch() != "x86_64":
        pytest.skip("native C API test runs on x86_64 hosts")
    _need("gcc")
    spec, bdir = bundles("x86-64", "conv_add_matmul", runtime=runtime)
    (tmp_path / "app.c").write_text(C_APP)
    app = bdir / f"app-{runtime}"
    subprocess.run(["gcc", str(tmp_path / "app.c"), "-I", str(bdir), "-L", str(bdir), "-ledgec_runtime",
                    "-Wl,-rpath,$ORIGIN", "-o", str(app)], check=True)
    r = subprocess.run([str(app), str(bdir / "model.so")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    name, dtype, ndim, *vals = r.stdout.split()
    assert (name, dtype, ndim) == ("out", "float32", "2")
    model = MODELS["conv_add_matmul"]()
    inputs = {}
    for i, meta in enumerate(io_metadata(model)["inputs"]):
        n = int(np.prod(meta["shape"]))
        k = np.arange(n)
        inputs[meta["name"]] = ((((k * 7 + i) % 13) / 13.0 - 0.5).astype(np.float32)).reshape(meta["shape"])
    want = onnxruntime_outputs(model, inputs)["out"].ravel()
    np.testing.assert_allclose(np.array(vals, dtype=np.float32), want, atol=ATOL, rtol=0)


def test_missing_cross_toolchain_names_package(tmp_path):
    spec = dataclasses.replace(get_target("armv8"), cross_compiler="bogus-linux-gnu-g++",
                               toolchain_package="g++-bogus-linux-gnu")
    with pytest.raises(TargetError) as e:
        bundle.build_runner(spec, tmp_path)
    msg = e.value.one_line()
    assert "bogus-linux-gnu-g++" in msg and "apt-get install g++-bogus-linux-gnu" in msg
    assert "\n" not in str(e.value)
    with pytest.raises(TargetError, match=re.escape("apt-get install g++-bogus-linux-gnu")):
        plan.build_plan_library(None, dataclasses.replace(spec, runtime="plan"), tmp_path)


def test_missing_emulator_names_package():
    if emulate.host_arch() == "aarch64":
        pytest.skip("aarch64 host runs armv8 natively")
    spec = dataclasses.replace(get_target("armv8"), emulator=("qemu-bogus", "-L", "/nowhere"))
    with pytest.raises(TargetError, match="apt-get install qemu-user"):
        emulate.command_prefix(spec)


def test_no_armv7_tvm_runtime(tmp_path):
    with pytest.raises(TargetError, match="call plan"):
        bundle.fetch_runtime("armv7", tmp_path)


def test_plan_names_are_escaped():
    assert plan.escape_name("a b%/c") == "a%20b%25/c"
    assert plan.escape_name("") == "%"


def test_armv7_vectorized_kernel_uses_neon(tmp_path):
    """LLVM does not auto-vectorize fp32 for armv7 (non-IEEE NEON), explicit vectorize does."""
    spec = get_target("armv7")
    _need(spec.cross_compiler, "arm-linux-gnueabihf-objdump")
    from tvm import s_tir, te
    a, b = te.placeholder((32, 64), name="A"), te.placeholder((64, 32), name="B")
    k = te.reduce_axis((0, 64), name="k")
    c = te.compute((32, 32), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    sch = s_tir.Schedule(te.create_prim_func([a, b, c]))
    blk = sch.get_sblock("C")
    i, j, kk = sch.get_loops(blk)
    jo, ji = sch.split(j, [None, 4])
    sch.reorder(i, jo, kk, ji)
    sch.vectorize(ji)
    sch.decompose_reduction(blk, kk)
    lib = tmp_path / "mm.so"
    tvm.compile(sch.mod, target=tvm.target.Target(spec.tvm)).export_library(
        str(lib), fcompile=cc.cross_compiler(spec.cross_compiler))
    asm = subprocess.run(["arm-linux-gnueabihf-objdump", "-d", str(lib)], capture_output=True,
                         text=True, check=True).stdout
    assert re.search(r"\bv(mul|mla|fma|add)\.f32\s+q\d+", asm), "no NEON q-register f32 arithmetic"
