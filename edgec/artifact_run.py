"""Running a compiled artifact from Python: inputs checked against its metadata (names, shapes,
dtypes, symbolic dims and their --dim bounds), the thread count, then the target's executor
(`edgec.targets.tvm.execute`, imported only when a run starts: it imports TVM). `Artifact.run`,
`Artifact.bench`, `edgec run`, `edgec bench` and `edgec generate` all go through here."""

from __future__ import annotations

import numpy as np

from edgec.artifact import Artifact
from edgec.errors import ArtifactError


def check_inputs(art: Artifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    extra = set(inputs) - {t.name for t in art.inputs}
    if extra:  # first: a misspelt name would otherwise be reported as the input it was meant to be
        raise ArtifactError(f"unknown input(s) {sorted(extra)}; the artifact takes {[t.name for t in art.inputs]}")
    out, sizes = {}, {}
    bounds = art.metadata.get("dim_bounds") or {}
    for t in art.inputs:
        if t.name not in inputs:
            raise ArtifactError(f"missing input '{t.name}' ({t.dtype}{list(t.shape)})")
        a = np.asarray(inputs[t.name])
        if len(a.shape) != len(t.shape) or any(isinstance(d, int) and d != n for d, n in zip(t.shape, a.shape)):
            raise ArtifactError(f"input '{t.name}' has shape {list(a.shape)}, the artifact expects {list(t.shape)}")
        for d, n in zip(t.shape, a.shape):  # a symbolic dim has one size in every input naming it
            if isinstance(d, str) and d in bounds and not bounds[d][0] <= n <= bounds[d][1]:
                raise ArtifactError(f"input '{t.name}' has {d} = {n}; the artifact was compiled for {d} in "
                                    f"{bounds[d][0]}..{bounds[d][1]} (--dim)")
            if isinstance(d, str):
                if sizes.setdefault(d, (n, t.name))[0] != n:
                    raise ArtifactError(f"input '{t.name}' has {d} = {n}, input '{sizes[d][1]}' has {d} = "
                                        f"{sizes[d][0]}; the artifact's inputs share the dim '{d}'")
        if str(a.dtype) != t.dtype:
            raise ArtifactError(f"input '{t.name}' has dtype {a.dtype}, the artifact expects {t.dtype}")
        out[t.name] = a
    return out


def artifact_threads(art: Artifact, threads: int | None) -> int | None:
    """--threads given to run/bench, else the one the artifact was compiled with, else None (all cores)."""
    return threads or (art.metadata.get("runtime") or {}).get("threads")


def run_artifact(art: Artifact, inputs: dict[str, np.ndarray], threads: int | None = None) -> dict[str, np.ndarray]:
    inputs = check_inputs(art, inputs)
    threads = artifact_threads(art, threads)
    from edgec.targets.tvm.execute import run  # heavy: imports tvm

    return run(art, inputs, threads)


def symbolic_dims(art: Artifact, given: dict[str, int] | None) -> dict[str, int]:
    """`--dim NAME=N` sizes for the artifact's symbolic input dims; a name it does not have is an error."""
    names = sorted({d for t in art.inputs for d in t.shape if isinstance(d, str)})
    unknown = sorted(set(given or {}) - set(names))
    if unknown:
        raise ArtifactError(f"--dim {unknown[0]}: the artifact's symbolic dims are {names or 'none'}")
    return dict(given or {})


def bench_artifact(art: Artifact, warmup: int, repeat: int, threads: int | None = None, seed: int = 0,
                   dims: dict[str, int] | None = None) -> list[float]:
    """Per-run seconds of `repeat` timed runs after `warmup` (host-architecture artifacts), on seeded
    inputs whose symbolic dims are `dims` (else 1)."""
    from edgec.reference import seeded_inputs
    from edgec.targets.tvm.execute import bench  # heavy: imports tvm

    feed = seeded_inputs(art.inputs, seed, dims=symbolic_dims(art, dims))
    return bench(art, feed, warmup, repeat, artifact_threads(art, threads))
