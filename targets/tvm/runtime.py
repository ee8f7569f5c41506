"""Run an exported model library in this process with TVM's Relax VM (host-architecture artifacts)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import tvm
import tvm_ffi
from tvm import relax

from edgec.aligned import aligned_empty as _aligned_empty
from edgec.errors import GUARD_PREFIX, GuardError
from edgec.targets.tvm import parallel_pool


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
    """Size the kernels' thread pool to `n` threads (default: `default_threads()`); returns the
    count. edgec's pool (parallel_pool) when it is available: it leaves the caller's CPU affinity
    and environment alone. Else TVM's: `runtime.config_threadpool` alone cannot raise TVM's pool
    above its MaxConcurrency, which it re-reads from `TVM_NUM_THREADS`, so that is set first (and
    TVM binds the calling thread to a CPU)."""
    n = int(n) if n else default_threads()
    if not parallel_pool.set_threads(n):
        _size_tvm_pool(n)
    return n


def _size_tvm_pool(n: int) -> None:
    os.environ["TVM_NUM_THREADS"] = str(n)
    tvm.get_global_func("runtime.config_threadpool")(0, n)


def pool_threads() -> int:
    """Threads the kernels' parallel loops run on (the pool set_threads sized)."""
    lib = parallel_pool.pool()
    return lib.edgec_pool_threads() if lib is not None else tvm.get_global_func("runtime.NumThreads")()


_LOADED: dict[str, tuple] = {}  # library path -> identity of the file first loaded from it


def load_library(library: Path):
    """tvm.runtime.load_module, but never a stale library: the dynamic loader reuses an object
    already loaded from the same path, so a library recompiled into that path would silently run
    the old code in this process. A changed file at a known path is loaded from a private copy.
    The loaded library's parallel loops are pointed at edgec's pool (parallel_pool.install)."""
    import atexit
    import shutil
    import tempfile

    path = str(Path(library).resolve())
    st = os.stat(path)
    ident = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    first = _LOADED.setdefault(path, ident)
    if first != ident:
        tmp = tempfile.mkdtemp(prefix="edgec-lib-")
        atexit.register(shutil.rmtree, tmp, True)
        copy = Path(tmp) / Path(path).name
        shutil.copyfile(path, copy)
        path = str(copy)
    mod = tvm.runtime.load_module(path)
    if parallel_pool.install(path) < 0:  # the library keeps TVM's pool: size that too
        _size_tvm_pool(pool_threads())
    return mod


_DLPACK_OK: dict[np.dtype, bool] = {}  # numpy's dtype.name costs microseconds per call


def _dlpack_ok(dtype: np.dtype) -> bool:
    ok = _DLPACK_OK.get(dtype)
    if ok is None:
        ok = _DLPACK_OK[dtype] = (dtype.kind in "fiu" and dtype.itemsize in (1, 2, 4, 8)
                                  and dtype.name != "bfloat16")
    return ok


class LoadedModel:
    """`weights`: arrays for the library's weight parameters (an artifact's weights.bin, mapped by
    edgec.weights.open_weights), passed after the inputs on every call. They are handed to TVM
    through DLPack, without a copy: the pages stay the file's, shared with the page cache.

    `allocator`: the VM's memory allocator, "pooled" (TVM's default: freed buffers are kept for
    a later request of the same size, so a static-shape model allocates nothing after its first
    call) or "naive" (freed at once). Models with symbolic dims need "naive": their buffer sizes
    change from call to call (a decoder's KV cache grows by one row per token), so the pool would
    keep every size ever used — a 32-token GPT-2 decode grew it by ~400 MiB, and it grows with
    the square of the generated length.

    `after_run`: called after every run (edgec.weights.MappedWeights.release_rows).

    `in_place`: indices of the inputs the library's kernels read at any element-aligned address
    (targets.tvm.unaligned_inputs): passed without a copy whatever their alignment."""

    def __init__(self, library: Path, input_names: list[str], output_names: list[str], threads: int | None = None,
                 weights: list[np.ndarray] | None = None, allocator: str = "pooled", after_run=None,
                 in_place=()):
        # The pool's workers spin between kernels (like onnxruntime's allow_spinning=1): waking
        # sleeping workers for each of MobileNetV2's ~65 parallel kernels cost 20% of its latency
        # (4.2 vs 5.2 ms, TVM's pool). Set TVM_THREAD_POOL_SPIN_COUNT=0 when another runtime
        # computes in this process between edgec calls (parallel_pool).
        set_threads(threads)
        self.vm = relax.VirtualMachine(load_library(library), tvm.cpu(), memory_cfg=allocator)
        self._main = self.vm["main"]  # looked up once: a per-call lookup is measurable on small models
        self.input_names, self.output_names = input_names, output_names
        self._weights = list(weights or [])  # keeps the mappings alive as long as TVM uses them
        self.weight_args = [tvm.runtime.from_dlpack(w) for w in self._weights]
        self._weight_ptrs = {w.ctypes.data for w in self._weights if w.size}
        self._staging: dict[int, tuple] = {}  # input index -> (aligned numpy buffer, TVM tensor of it)
        self._after_run = after_run
        self._in_place = frozenset(int(i) for i in in_place)

    def _arg(self, i: int, a: np.ndarray):
        """(input `i` for the VM, the address of its data): the caller's array itself through
        DLPack when it is C-contiguous and aligned as TVM's kernels assume (64 bytes, or its
        element size for an input in `in_place`), else a copy into a buffer kept for that input
        (tvm.runtime.tensor allocated anew on every call: 30-60 us, more than a small model's
        kernels). Per-call Python work is kept to a few microseconds: openwakeword's classifiers
        run their kernels in about 15 us."""
        if type(a) is not np.ndarray or not a.flags.c_contiguous:
            a = np.require(a, requirements="C")  # keeps 0-d arrays 0-d (np.ascontiguousarray makes them 1-d)
        ok = _dlpack_ok(a.dtype)
        if ok and a.size:
            ptr = a.ctypes.data
            align = a.itemsize if i in self._in_place else 64
            if ptr % align == 0:
                try:
                    return tvm_ffi.from_dlpack(a, require_alignment=align), ptr
                except Exception:  # noqa: BLE001 - a dtype DLPack cannot carry: copy below
                    pass
        staged = self._staging.get(i)
        viewable = ok and a.size > 0  # a zero-size view has no aligned address
        if staged is None or staged[0].shape != a.shape or staged[0].dtype != a.dtype:
            host = _aligned_empty(a.shape, a.dtype)
            staged = self._staging[i] = (host, tvm.runtime.from_dlpack(host) if viewable
                                         else tvm.runtime.empty(a.shape, str(a.dtype)), host.ctypes.data)
        if viewable:
            np.copyto(staged[0], a)  # the TVM tensor views this memory
        else:
            staged[1].copyfrom(a)
        return staged[1], staged[2]

    def _args(self, inputs: dict[str, np.ndarray]):
        return [self._arg(i, inputs[n])[0] for i, n in enumerate(self.input_names)] + self.weight_args

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        staged = [self._arg(i, inputs[n]) for i, n in enumerate(self.input_names)]
        try:
            out = self._main(*[t for t, _ in staged], *self.weight_args)
        except (RuntimeError, AssertionError) as e:  # a failing runtime guard (targets/tvm/guards.py)
            msg = " ".join(str(e).split())
            if GUARD_PREFIX in msg:
                raise GuardError(msg[msg.index(GUARD_PREFIX):]) from None
            raise
        finally:
            if self._after_run is not None:
                self._after_run()
        items = list(out) if not hasattr(out, "numpy") else [out]
        ptrs = {p for _, p in staged} | self._weight_ptrs
        return {n: self._result(o, ptrs) for n, o in zip(self.output_names, items)}

    @staticmethod
    def _result(o, arg_ptrs: set[int]) -> np.ndarray:
        """An output as numpy without a copy (a fresh VM allocation), except when it is one of
        the arguments (an output that is an input passed through): then a copy, so the result
        never aliases the caller's array or a reused staging buffer."""
        try:
            a = np.from_dlpack(o)
        except Exception:  # noqa: BLE001 - a dtype numpy's DLPack import does not take
            return o.numpy()
        if a.size and a.ctypes.data in arg_ptrs:
            return a.copy()
        return a

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
            self.vm.set_instrument(None)  # no hook at all: a Python no-op still cost ~3 us per VM call (0.5 ms per MobileNetV2 run)
        return [(name, min(ts)) for _, (name, ts) in sorted(per_site.items())]
