"""Run an exported model library in this process with TVM's Relax VM (host-architecture artifacts)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from edgec.errors import GUARD_PREFIX, GuardError


def default_threads() -> int:
    """`TVM_NUM_THREADS` if set, else the physical cores this process may run on. (TVM's own
    default on x86 is half the logical CPUs, to skip hyper-threads: one thread on a 2-core VM
    that has no hyper-threads, which ran ResNet-18 at half speed.)"""
    env = os.environ.get("TVM_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    cpus = os.sched_getaffinity(0)
    cores = set()
    for c in cpus:  # one entry per physical core: the CPUs sharing it (hyper-threads) list alike
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            cores.add(str(c))
    return max(1, len(cores))


def set_threads(n: int | None) -> int:
    """Size TVM's thread pool to `n` threads (default: `default_threads()`); returns the count.
    `runtime.config_threadpool` alone cannot raise the pool above TVM's MaxConcurrency, which
    it re-reads from `TVM_NUM_THREADS`, so that is set first."""
    n = int(n) if n else default_threads()
    os.environ["TVM_NUM_THREADS"] = str(n)
    tvm.get_global_func("runtime.config_threadpool")(0, n)
    return n


_LOADED: dict[str, tuple] = {}  # library path -> identity of the file first loaded from it


def load_library(library: Path):
    """tvm.runtime.load_module, but never a stale library: the dynamic loader reuses an object
    already loaded from the same path, so a library recompiled into that path would silently run
    the old code in this process. A changed file at a known path is loaded from a private copy."""
    import atexit
    import shutil
    import tempfile

    path = str(Path(library).resolve())
    st = os.stat(path)
    ident = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    first = _LOADED.setdefault(path, ident)
    if first == ident:
        return tvm.runtime.load_module(path)
    tmp = tempfile.mkdtemp(prefix="edgec-lib-")
    atexit.register(shutil.rmtree, tmp, True)
    copy = Path(tmp) / Path(path).name
    shutil.copyfile(path, copy)
    return tvm.runtime.load_module(str(copy))


class LoadedModel:
    """`weights`: arrays for the library's weight parameters (an artifact's weights.bin, mapped by
    edgec.weights.open_weights), passed after the inputs on every call. They are handed to TVM
    through DLPack, without a copy: the pages stay the file's, shared with the page cache."""

    def __init__(self, library: Path, input_names: list[str], output_names: list[str], threads: int | None = None,
                 weights: list[np.ndarray] | None = None):
        # TVM's worker threads spin between kernels (its default, like onnxruntime's
        # allow_spinning=1): waking sleeping workers for each of MobileNetV2's ~65 parallel kernels
        # cost 20% of its latency (4.2 vs 5.2 ms). Set TVM_THREAD_POOL_SPIN_COUNT=0 when another
        # runtime computes in this process between edgec calls.
        set_threads(threads)
        self.vm = relax.VirtualMachine(load_library(library), tvm.cpu())
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
        """Seconds per whole call, as onnxruntime's `run` is timed: inputs copied in, the model
        run, outputs copied out to numpy."""
        for _ in range(warmup):
            self.run(inputs)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            self.run(inputs)
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
