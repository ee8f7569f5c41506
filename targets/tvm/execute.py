"""Execute an artifact: host-architecture VM libraries in this process; anything else through
its bundle's runner (under qemu when the host cannot run the target's code)."""

from __future__ import annotations

import numpy as np

from edgec.errors import ArtifactError, TargetError
from edgec.targets.registry import TargetSpec, missing_host_features, spec_from_json
from edgec.targets.tvm.emulate import host_arch, run_bundle
from edgec.targets.tvm.runtime import LoadedModel
from edgec.weights import map_weights


def load(art, threads: int | None = None) -> LoadedModel:
    """`art` loaded in this process: its weights.bin mapped, the naive allocator for symbolic dims
    (LoadedModel)."""
    weights = map_weights(art.path, art.weights) if art.weights else None
    symbolic = any(not isinstance(d, int) for t in art.inputs for d in t.shape)
    return LoadedModel(art.library, [t.name for t in art.inputs], [t.name for t in art.outputs], threads,
                       weights.arrays if weights else None, allocator="naive" if symbolic else "pooled",
                       after_run=weights.release_rows if weights and weights.has_rows else None,
                       in_place=art.metadata.get("lowering", {}).get("inputs_in_place", ()))


def spec_for(art) -> TargetSpec:
    """The artifact's target as recorded in its metadata (raw TVM-JSON targets included)."""
    try:
        return spec_from_json(art.target)
    except TargetError as e:
        name = art.target.get("name") if isinstance(art.target, dict) else None
        raise ArtifactError(f"{art.path}: artifact target '{name}': {e}") from None


def missing_features(spec: TargetSpec) -> list[str]:
    """CPU features `spec`'s code may use that this host lacks: the recorded ones, and for host
    x86 code also those LLVM enables for its mcpu (a raw JSON target records none)."""
    missing = set(missing_host_features(spec))
    if spec.arch == "x86_64" == host_arch() and spec.is_cpu:
        import tvm
        from tvm.target import codegen

        try:
            with tvm.target.Target(spec.tvm):
                llvm = tuple(str(f) for f in codegen.llvm_get_cpu_features())
        except Exception as e:  # tvm raises assorted errors for a target it cannot parse
            raise ArtifactError(f"the artifact's TVM target {spec.tvm} is not usable: {e}") from None
        missing |= set(missing_host_features(TargetSpec(spec.name, "", {}, "x86_64", features=llvm)))
    return sorted(missing)


def why_not_runnable(art) -> str | None:
    """None if `run` can execute `art` on this machine, else why not (GPU, CPU features the host
    lacks, no bundle, no emulator)."""
    import shutil

    try:
        spec = spec_for(art)
    except ArtifactError as e:
        return str(e)
    if not spec.is_cpu:
        return f"a {spec.tvm.get('kind')} artifact and no GPU here"
    missing = missing_features(spec)
    if missing:
        return f"the target uses CPU features this machine lacks: {', '.join(missing)}"
    if spec.arch == host_arch() and spec.is_cpu_vm:
        return None
    if not (art.path / "bundle").is_dir():
        return f"a {spec.arch} artifact without a bundle"
    if spec.emulator and shutil.which(spec.emulator[0]) is None:
        return f"no {spec.emulator[0]} to run {spec.arch} code"
    return None


def run(art, inputs: dict[str, np.ndarray], threads: int | None = None) -> dict[str, np.ndarray]:
    spec = spec_for(art)
    if not spec.is_cpu:
        raise TargetError(f"{art.path}: {spec.arch} artifacts are compile-tested only here: no GPU on this machine")
    if spec.arch == host_arch() and spec.is_cpu_vm:
        _check_host_features(art, spec)
        return load(art, threads).run(inputs)
    bundle = art.path / "bundle"
    if not bundle.is_dir():
        raise ArtifactError(f"{art.path}: a {spec.arch} artifact needs its bundle/ to run here "
                            "(compile with --bundle)")
    outs = run_bundle(bundle, spec, inputs)
    return {t.name: outs[t.name] for t in art.outputs}


def bench(art, inputs: dict[str, np.ndarray], warmup: int, repeat: int, threads: int | None = None) -> list[float]:
    return load_on_host(art, threads, "`edgec bench` times").bench(inputs, warmup, repeat)


def load_on_host(art, threads: int | None, what: str) -> LoadedModel:
    """The artifact loaded in this process, for commands that time it (`what` names the command):
    host-architecture artifacts only (qemu is not a timer), on a CPU with the features it uses."""
    spec = spec_for(art)
    if spec.arch != host_arch() or not spec.is_cpu_vm:
        raise TargetError(f"{art.path}: {what} host-architecture artifacts; a {spec.arch} artifact "
                          "must be timed on its device (bundle/edgec-runner --repeat N); qemu is not a timer")
    _check_host_features(art, spec)
    return load(art, threads)


def _check_host_features(art, spec: TargetSpec) -> None:
    missing = missing_features(spec)
    if missing:  # running it would die of an illegal instruction
        raise TargetError(f"{art.path}: compiled for target '{spec.name}', which uses CPU features this "
                          f"machine lacks: {', '.join(missing)}")
