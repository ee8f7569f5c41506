"""Run an exported model library in this process with TVM's Relax VM (host-architecture artifacts)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from edgec.errors import GUARD_PREFIX, GuardError


def set_threads(n: int | None) -> None:
    if n:
        tvm.get_global_func("runtime.config_threadpool")(0, int(n))


class LoadedModel:
    """`weights`: arrays for the library's weight parameters (an artifact's weights.bin, mapped by
    edgec.weights.open_weights), passed after the inputs on every call. They are handed to TVM
    through DLPack, without a copy: the pages stay the file's, shared with the page cache."""

    def __init__(self, library: Path, input_names: list[str], output_names: list[str], threads: int | None = None,
                 weights: list[np.ndarray] | None = None):
        os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", "0")
        set_threads(threads)
        self.vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu())
        self.input_names, self.output_names = input_names, output_names
        self._weights = list(weights or [])  # keeps the mappings alive as long as TVM uses them
        self.weight_args = [tvm.runtime.from_dlpack(w) for w in self._weights]

    def _args(self, inputs: dict[str, np.ndarray]):
        # np.require keeps 0-d arrays 0-d (np.ascontiguousarray makes them 1-d)
        return [tvm.runtime.tensor(np.require(inputs[n], requirements="C")) for n in self.input_names] + self.weight_args

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            out = self.vm["main"](*self._args(inputs))
        except (RuntimeError, AssertionError) as e:  # a failing runtime guard (targets/tvm/guards.py)
            msg = " ".join(str(e).split())
            if GUARD_PREFIX in msg:
                raise GuardError(msg[msg.index(GUARD_PREFIX):]) from None
            raise
        items = list(out) if not hasattr(out, "numpy") else [out]
        return {n: o.numpy() for n, o in zip(self.output_names, items)}

    def bench(self, inputs: dict[str, np.ndarray], warmup: int, repeat: int) -> list[float]:
        args = self._args(inputs)
        f = self.vm["main"]
        for _ in range(warmup):
            f(*args)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            f(*args)
            times.append(time.perf_counter() - t0)
        return times

    def profile(self, inputs: dict[str, np.ndarray], runs: int) -> list[tuple[str, float]]:
        """Per VM call site, in call order: (callee name, minimum seconds over `runs` runs), timed
        through the VM's instrument hook (before/after each call; kernels run synchronously)."""
        args = self._args(inputs)
        f = self.vm["main"]
        per_site: dict[int, tuple[str, list[float]]] = {}
        state = {"i": 0, "t": 0.0}

        def instrument(func, name, before, ret, *a):
            if before:
                state["t"] = time.perf_counter()
            else:
                per_site.setdefault(state["i"], (str(name), []))[1].append(time.perf_counter() - state["t"])
                state["i"] += 1
            return 0

        self.vm.set_instrument(instrument)
        try:
            for _ in range(runs):
                state["i"] = 0
                f(*args)
        finally:
            self.vm.set_instrument(lambda *a: 0)
        return [(name, min(ts)) for _, (name, ts) in sorted(per_site.items())]
