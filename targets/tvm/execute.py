"""Execute an artifact: in-process for host-architecture libraries; other architectures run
through their target's emulator/runner (see bundle/emulate modules)."""

from __future__ import annotations

import platform

import numpy as np

from edgec.errors import TargetError
from edgec.targets.tvm.runtime import LoadedModel

_HOST_ARCH = {"x86_64": "x86_64", "AMD64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(platform.machine())


def run(art, inputs: dict[str, np.ndarray], threads: int | None = None) -> dict[str, np.ndarray]:
    arch = art.target["arch"]
    if arch == _HOST_ARCH:
        m = LoadedModel(art.library, [t.name for t in art.inputs], [t.name for t in art.outputs], threads)
        return m.run(inputs)
    raise TargetError(f"cannot run a {arch} artifact on this {platform.machine()} host yet")
