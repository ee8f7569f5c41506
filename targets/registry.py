"""Targets as data: one `TargetSpec` record per target; no branching on target names elsewhere.

`get_target(name)` also accepts a raw TVM target JSON object (`{"kind": "llvm", ...}`), a board
file (`board.toml` / `board.json`, edgec.targets.boards) and the name of a board that an installed
package adds through the `edgec.targets` entry-point group.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgec.errors import TargetError
from edgec.targets.boards import is_board_file, load_board


@dataclass(frozen=True)
class TargetSpec:
    name: str
    description: str
    tvm: dict                       # TVM target JSON (tvm.target.Target(dict))
    arch: str                       # x86_64 | aarch64 | armv7 | cuda
    cross_compiler: str | None = None   # C++ driver used to link the shared library
    toolchain_package: str | None = None  # Debian package providing cross_compiler
    emulator: tuple[str, ...] = ()  # command prefix to run target binaries on this host
    layout: str = "NCHW"            # preferred activation layout
    dtypes: tuple[str, ...] = ("float32",)
    vector_bits: int = 128
    features: tuple[str, ...] = ()
    host_tvm: dict | None = None    # TVM target of the host side, for device (GPU) targets
    runtime: str = "vm"             # how the bundle runs the model: "vm" = TVM runtime + Relax VM,
                                    # "plan" = kernels + call plan, no TVM runtime (edgec.targets.tvm.plan)
    aliases: tuple[str, ...] = field(default=())
    source: str | None = None       # where a board came from (its file or entry point); None: built in
    l2_bytes: int = 512 * 1024      # per-core L2 cache: the conv schedules keep one task's weight panel in it
    l1d_bytes: int = 32 * 1024      # per-core L1 data cache: a register tile's inner weight panel stays in it

    @property
    def is_cpu(self) -> bool:
        """The model's code runs on a CPU (TVM kind "llvm"); otherwise on a GPU with a CPU host.
        The one place that asks: lowerings, builds, bundles and runners all read this."""
        return self.tvm.get("kind") == "llvm"

    @property
    def prune_channel_multiple(self) -> int | None:
        """Channels per layer that `edgec compile --prune` keeps a multiple of on this target (None:
        not a CPU target, no rounding): 16, or the vector block when it is wider. 16 channels are one
        AVX-512 block, two AVX2 blocks and four NEON blocks. Rounding to the AVX2 block alone (8)
        leaves odd and prime block counts (9, 13, 17, 51) that the conv tiles take badly: on an AMD
        Zen 3, MobileNetV2 pruned at 0.3 with multiples of 8 ran its kernels at 0.659 of the
        original's time for 0.577 of the FLOPs (a 13-block 56x56 expand conv at 57 GFLOP/s against
        180 unpruned), with multiples of 16 at 0.561 for 0.562 (docs/pruning.md, session 25). NEON's
        16 follows the same tile rule (2-D pointwise tiles of 4 channel vectors on 32 registers); no
        ARM latency was measured (qemu only)."""
        if not self.is_cpu:
            return None
        return max(int(self.vector_bits) // 32, 16)

    @property
    def is_cpu_vm(self) -> bool:
        """A CPU target run by TVM's Relax VM (runtime "vm"), not a runtime-free call plan: what
        weights.bin, tuning and the Python runtime need."""
        return self.is_cpu and self.runtime == "vm"

    def to_json(self) -> dict:
        return {
            "name": self.name, "description": self.description, "tvm": self.tvm, "arch": self.arch,
            "cross_compiler": self.cross_compiler, "layout": self.layout, "dtypes": list(self.dtypes),
            "vector_bits": self.vector_bits, "features": list(self.features), "runtime": self.runtime,
            "l2_bytes": self.l2_bytes, "l1d_bytes": self.l1d_bytes,
        }


_X86 = {"kind": "llvm", "mtriple": "x86_64-linux-gnu"}

# flags from /proc/cpuinfo -> LLVM feature names, in the order they matter for codegen
_X86_FLAG_TO_MATTR = {
    "sse4_2": "+sse4.2", "avx": "+avx", "avx2": "+avx2", "fma": "+fma", "f16c": "+f16c",
    "avx512f": "+avx512f", "avx512bw": "+avx512bw", "avx512dq": "+avx512dq", "avx512vl": "+avx512vl",
    "avx512cd": "+avx512cd", "avx512_vnni": "+avx512vnni", "avx_vnni": "+avxvnni",
    "avx512_bf16": "+avx512bf16", "amx_tile": "+amx-tile", "amx_int8": "+amx-int8",
}


def _cpu_flags(cpuinfo: str | None = None) -> set[str]:
    text = cpuinfo if cpuinfo is not None else (
        Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else "")
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def missing_host_features(spec: TargetSpec, cpuinfo: str | None = None) -> list[str]:
    """x86 features `spec`'s code may use that this machine's CPU lacks (running it would be an
    illegal instruction). Empty for other architectures."""
    if spec.arch != "x86_64":
        return []
    flags = _cpu_flags(cpuinfo)
    have = {m[1:] for f, m in _X86_FLAG_TO_MATTR.items() if f in flags}
    known = {m[1:] for m in _X86_FLAG_TO_MATTR.values()}
    wanted = set(spec.features) | {m.lstrip("+") for m in spec.tvm.get("mattr", []) if m.startswith("+")}
    return sorted((wanted & known) - have)


def host_cache_bytes(level: int, sysfs: str = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """This machine's per-core data cache of `level` in bytes (Linux sysfs: the level's data or
    unified cache of CPU 0, not its instruction cache), None where sysfs does not say."""
    for index in sorted(Path(sysfs).glob("index*")):
        try:
            if (index / "level").read_text().strip() != str(level) or \
                    (index / "type").read_text().strip() not in ("Data", "Unified"):
                continue
            size = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1024, "M": 1024 * 1024}.get(size[-1:], 1)
        digits = size.rstrip("KMB")
        if digits.isdigit() and int(digits) > 0:
            return int(digits) * scale
    return None


def host_target(cpuinfo: str | None = None) -> TargetSpec:
    """This machine's CPU, features read from /proc/cpuinfo flags (LLVM's CPU name can be wrong)."""
    if platform.machine() not in ("x86_64", "AMD64") and cpuinfo is None:
        raise TargetError(f"target 'host' supports x86_64 hosts only (this is {platform.machine()})")
    flags = _cpu_flags(cpuinfo)
    mattr = [m for f, m in _X86_FLAG_TO_MATTR.items() if f in flags]
    level = "x86-64-v4" if "avx512f" in flags else "x86-64-v3" if "avx2" in flags else "x86-64-v2"
    bits = 512 if "avx512f" in flags else 256 if "avx2" in flags else 128
    return TargetSpec("host", f"this machine's CPU ({level}; {' '.join(m[1:] for m in mattr)})",
                      {**_X86, "mcpu": level, "mattr": mattr}, "x86_64", vector_bits=bits,
                      features=tuple(m[1:] for m in mattr),
                      l2_bytes=(host_cache_bytes(2) if cpuinfo is None else None) or TargetSpec.l2_bytes,
                      l1d_bytes=(host_cache_bytes(1) if cpuinfo is None else None) or TargetSpec.l1d_bytes)


def _x86(name, desc, mcpu, mattr, bits, feats, l2_bytes=TargetSpec.l2_bytes):
    return TargetSpec(name, desc, {**_X86, "mcpu": mcpu, **({"mattr": mattr} if mattr else {})},
                      "x86_64", vector_bits=bits, features=feats, l2_bytes=l2_bytes)


def _arm64(name, desc, mcpu, mattr, feats, dtypes=("float32",)):
    tvm = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": mattr}
    if mcpu:
        tvm["mcpu"] = mcpu
    return TargetSpec(name, desc, tvm, "aarch64", cross_compiler="aarch64-linux-gnu-g++",
                      toolchain_package="g++-aarch64-linux-gnu",
                      emulator=("qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"),
                      layout="NHWC", dtypes=dtypes, vector_bits=128, features=feats)


def _cuda(arch: str, desc: str) -> TargetSpec:
    return TargetSpec(f"cuda-{arch.replace('_', '')}", desc, {"kind": "cuda", "arch": arch}, "cuda",
                      dtypes=("float32", "float16"), vector_bits=128, features=(arch,),
                      host_tvm={"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "x86-64"})


TARGETS: tuple[TargetSpec, ...] = (
    _x86("x86-64", "portable x86-64 baseline (x86-64-v3: AVX2 + FMA)", "x86-64-v3", None, 256,
         ("avx2", "fma")),
    _x86("x86-64-avx2", "x86-64 with AVX2 + FMA (Haswell and newer)", "haswell", ["+avx2", "+fma"], 256,
         ("avx2", "fma")),
    _x86("x86-64-avx512", "x86-64 with AVX-512 (Skylake-SP and newer)", "skylake-avx512", None, 512,
         ("avx2", "fma", "avx512f", "avx512bw", "avx512vl"), 1024 * 1024),
    _x86("x86-64-vnni", "x86-64 with AVX-512 VNNI (Cascade Lake and newer)", "cascadelake", None, 512,
         ("avx2", "fma", "avx512f", "avx512vnni"), 1024 * 1024),
    _arm64("armv8", "AArch64 (ARMv8-A) with NEON", None, ["+neon"], ("neon",)),
    _arm64("armv8.2", "AArch64 ARMv8.2-A with NEON, dot product and fp16", None,
           ["+neon", "+v8.2a", "+dotprod", "+fullfp16"], ("neon", "dotprod", "fullfp16"), ("float32", "float16")),
    _arm64("cortex-a53", "Cortex-A53 (Raspberry Pi 3, many SoCs)", "cortex-a53", ["+neon"], ("neon",)),
    _arm64("cortex-a55", "Cortex-A55 (ARMv8.2, dotprod)", "cortex-a55", ["+neon", "+dotprod", "+fullfp16"],
           ("neon", "dotprod", "fullfp16")),
    _arm64("cortex-a72", "Cortex-A72 (Raspberry Pi 4)", "cortex-a72", ["+neon"], ("neon",)),
    _arm64("cortex-a76", "Cortex-A76 (Raspberry Pi 5)", "cortex-a76", ["+neon", "+dotprod", "+fullfp16"],
           ("neon", "dotprod", "fullfp16")),
    TargetSpec("armv7", "ARMv7-A, NEON, hard float (32-bit)",
               {"kind": "llvm", "mtriple": "armv7a-linux-gnueabihf", "mattr": ["+neon"], "mfloat-abi": "hard"},
               "armv7", cross_compiler="arm-linux-gnueabihf-g++", toolchain_package="g++-arm-linux-gnueabihf",
               emulator=("qemu-arm", "-L", "/usr/arm-linux-gnueabihf"), layout="NHWC", vector_bits=128,
               features=("neon", "vfp4"), runtime="plan"),
    _cuda("sm_75", "NVIDIA Turing (T4, RTX 20xx)"),
    _cuda("sm_86", "NVIDIA Ampere consumer (RTX 30xx, A10)"),
    _cuda("sm_87", "NVIDIA Jetson Orin"),
    _cuda("sm_90", "NVIDIA Hopper (H100)"),
    TargetSpec("opencl-arm", "Mobile GPUs through OpenCL (Mali, Adreno) with an AArch64 host", {"kind": "opencl"},
               "opencl", cross_compiler="aarch64-linux-gnu-g++", toolchain_package="g++-aarch64-linux-gnu",
               dtypes=("float32", "float16"), features=("opencl",),
               host_tvm={"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}),
)


def all_targets() -> list[TargetSpec]:
    """Every named target, host included (when this machine is x86_64), then the boards of
    installed packages (`edgec.targets` entry points)."""
    out = list(TARGETS)
    try:
        out.append(host_target())
    except TargetError:
        pass
    return out + plugin_boards()


def plugin_boards() -> list[TargetSpec]:
    """Boards added by installed packages (entry-point group `edgec.targets`); two with one name
    are a TargetError naming both."""
    from edgec.targets.boards import entry_point_boards

    seen: dict[str, TargetSpec] = {}
    for spec in entry_point_boards():
        if spec.name in seen:
            raise TargetError(f"board '{spec.name}' is defined twice: by {seen[spec.name].source} and by {spec.source}")
        seen[spec.name] = spec
    return list(seen.values())


def get_target(name: str, mcpu: str | None = None, mattr: str | None = None) -> TargetSpec:
    """A named target, or a raw TVM target JSON object; `mcpu`/`mattr` override the LLVM CPU.
    A CPU or feature name given by the user (--mcpu, --mattr, "mcpu"/"mattr" of a target JSON) must
    be one LLVM knows for the triple (a TargetError listing close names; this imports TVM)."""
    name = name.strip()
    check = None  # CPU/feature names the user gave: checked against LLVM (lazily imports TVM)
    if name.startswith("{"):
        spec = _from_json(name)
        if spec.is_cpu and ("mcpu" in spec.tvm or "mattr" in spec.tvm):
            check = "target JSON"
    elif name == "host":
        spec = host_target()
    elif is_board_file(name):
        spec = load_board(name, check_llvm_names=not (mcpu or mattr))
    else:
        by_name = {t.name: t for t in TARGETS}
        if name not in by_name:
            by_name.update({t.name: t for t in plugin_boards()})
        if name not in by_name:
            raise TargetError(f"unknown target '{name}' (known: {', '.join(sorted(by_name) + ['host'])}; "
                              f"or a board file: docs/boards.md)")
        spec = by_name[name]
        if spec.source:
            check = f"{spec.source}: key"
    if mcpu or mattr:
        if not spec.is_cpu:
            raise TargetError(f"--mcpu/--mattr apply to CPU targets only, not '{spec.name}'")
        tvm = dict(spec.tvm)
        if mcpu:
            tvm["mcpu"] = mcpu
        if mattr:
            tvm["mattr"] = [a if a[0] in "+-" else "+" + a for a in mattr.split(",") if a]
        spec = replace(spec, tvm=tvm, name=f"{spec.name}+custom")
        check = "--mcpu/--mattr"
    if check:
        from edgec.targets.tvm.llvm_names import check_cpu_and_features

        check_cpu_and_features(spec.tvm, check)
    return spec


def spec_from_json(data: dict) -> TargetSpec:
    """The target an artifact was compiled for, from its metadata (`TargetSpec.to_json`): named,
    host, `name+custom` and raw TVM-JSON ("custom") targets alike. The recorded fields win; what
    metadata does not record (emulator, toolchain package, GPU host target) comes from the named
    target, else from the named target with the same triple (as for a raw JSON target)."""
    if not isinstance(data, dict) or not isinstance(data.get("tvm"), dict) or "kind" not in data["tvm"]:
        raise TargetError("artifact metadata has no TVM target object")
    name = str(data.get("name") or "custom")
    base = {t.name: t for t in TARGETS}.get(name.split("+", 1)[0])
    if base is None:
        base = _from_json(json.dumps(data["tvm"]))
    recorded = {k: data[k] for k in ("description", "arch", "cross_compiler", "layout", "vector_bits", "runtime",
                                     "l2_bytes", "l1d_bytes") if k in data}
    recorded.update({k: tuple(data[k]) for k in ("dtypes", "features") if isinstance(data.get(k), list)})
    return replace(base, name=name, tvm=dict(data["tvm"]), **recorded)


def _from_json(text: str) -> TargetSpec:
    try:
        tvm = json.loads(text)
    except json.JSONDecodeError as e:
        raise TargetError(f"target JSON is not valid JSON: {e}") from None
    if not isinstance(tvm, dict) or "kind" not in tvm:
        raise TargetError('target JSON must be an object with a "kind" key, e.g. {"kind": "llvm"}')
    triple = str(tvm.get("mtriple", "x86_64"))
    for t in TARGETS:  # inherit toolchain data from the named target with the same triple
        if t.tvm.get("mtriple") == tvm.get("mtriple") and t.tvm.get("kind") == tvm["kind"]:
            return replace(t, name="custom", description=f"custom TVM target {json.dumps(tvm)}", tvm=tvm)
    if tvm["kind"] == "llvm" and triple.startswith("x86_64"):
        return TargetSpec("custom", f"custom TVM target {json.dumps(tvm)}", tvm, "x86_64")
    raise TargetError(f"cannot derive a toolchain for target JSON {json.dumps(tvm)}")
