"""TVM's own path for comparison: ONNX frontend + plain `tvm.compile` (no edgec schedules)."""

from __future__ import annotations

import numpy as np
import onnx
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

from edgec.targets.registry import TargetSpec
from edgec.targets.tvm.build import tvm_target


class DefaultBuild:
    def __init__(self, onnx_path: str, spec: TargetSpec):
        mod = from_onnx(onnx.load(onnx_path), keep_params_in_input=False)
        self.vm = relax.VirtualMachine(tvm.compile(mod, target=tvm_target(spec)), tvm.cpu())

    def bench(self, inputs: dict[str, np.ndarray], warmup: int, repeat: int) -> list[float]:
        """Seconds per whole call (inputs copied in, outputs copied out), as onnxruntime is timed."""
        import time

        f = self.vm["main"]

        def call():
            out = f(*[tvm.runtime.tensor(np.ascontiguousarray(v)) for v in inputs.values()])
            return [o.numpy() for o in out] if not hasattr(out, "numpy") else [out.numpy()]

        for _ in range(warmup):
            call()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        return times
