"""Execute an artifact: host-architecture VM libraries in this process; anything else through
its bundle's runner (under qemu when the host cannot run the target's code)."""

from __future__ import annotations

import numpy as np

from edgec.errors import ArtifactError, TargetError
from edgec.targets.registry import TargetSpec, get_target
from edgec.targets.tvm.emulate import host_arch, run_bundle
from edgec.targets.tvm.runtime import LoadedModel
from edgec.weights import open_weights


def load(art, threads: int | None = None) -> LoadedModel:
    weights = open_weights(art.path, art.weights) if art.weights else None
    return LoadedModel(art.library, [t.name for t in art.inputs], [t.name for t in art.outputs], threads, weights)


def spec_for(art) -> TargetSpec:
    name = art.target["name"].split("+", 1)[0]
    try:
        return get_target(name)
    except TargetError:
        raise ArtifactError(f"{art.path}: artifact target '{art.target['name']}' is not a known target") from None


def run(art, inputs: dict[str, np.ndarray], threads: int | None = None) -> dict[str, np.ndarray]:
    spec = spec_for(art)
    if spec.tvm.get("kind") != "llvm":
        raise TargetError(f"{art.path}: {spec.arch} artifacts are compile-tested only here: no GPU on this machine")
    if spec.arch == host_arch() and spec.runtime == "vm":
        return load(art, threads).run(inputs)
    bundle = art.path / "bundle"
    if not bundle.is_dir():
        raise ArtifactError(f"{art.path}: a {spec.arch} artifact needs its bundle/ to run here "
                            "(compile with --bundle)")
    outs = run_bundle(bundle, spec, inputs)
    return {t.name: outs[t.name] for t in art.outputs}


def bench(art, inputs: dict[str, np.ndarray], warmup: int, repeat: int, threads: int | None = None) -> list[float]:
    spec = spec_for(art)
    if spec.arch != host_arch() or spec.runtime != "vm":
        raise TargetError(f"{art.path}: `edgec bench` times host-architecture artifacts; a {spec.arch} artifact "
                          "must be timed on its device (bundle/edgec-runner --repeat N); qemu is not a timer")
    return load(art, threads).bench(inputs, warmup, repeat)
