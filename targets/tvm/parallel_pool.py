"""edgec's parallel launcher for kernels run in this process (targets/runtime/edgec_pool.cc).

A kernel library calls its `__TVMBackendParallelLaunch` pointer for every parallel loop. TVM's
runtime points it at TVM's pool, whose idle workers wait by calling sched_yield in a loop: an
empty 2-task launch costs ~2.3 us on a 2-core KVM guest, ~0.7 us with edgec's pool, whose workers
spin on a pause instruction. A pruned MobileNetV2 launches ~65 loops per run.

The pool is compiled once per host with the host C++ compiler into edgec's cache (keyed by its
source and the compiler), then loaded with ctypes: one pool per process, shared by all loaded
models. `EDGEC_PARALLEL_POOL=tvm` keeps TVM's pool; so does a host without a C++ compiler (then
`pool()` returns None and `reason()` says why).

Idle workers spin `EDGEC_POOL_SPIN_US` microseconds (default 1000) before they sleep;
`TVM_THREAD_POOL_SPIN_COUNT=0` (TVM's knob, for a process where another runtime computes between
edgec calls) makes them sleep at once.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgec.user_cache import cache_dir

SOURCE = "edgec_pool.cc"
DEFAULT_SPIN_US = 1000
_STATE: dict = {}  # "lib": the loaded CDLL or None, "reason": why None, "threads": count set


def spin_us() -> int:
    if os.environ.get("TVM_THREAD_POOL_SPIN_COUNT", "").strip() == "0":
        return 0
    v = os.environ.get("EDGEC_POOL_SPIN_US", "").strip()
    return int(v) if v.isdigit() else DEFAULT_SPIN_US


def _build(cxx: str) -> Path:
    """libedgec_pool.so in the cache, compiled if missing (atomically: a concurrent build of the
    same key leaves one whole file)."""
    from edgec.targets.tvm.bundle import runtime_sources

    src = runtime_sources() / SOURCE
    key = hashlib.sha256(src.read_bytes() + cxx.encode()
                         + os.uname().machine.encode()).hexdigest()[:16]
    lib = cache_dir() / "pool" / f"libedgec_pool-{key}.so"
    if lib.is_file():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=lib.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        r = subprocess.run([cxx, "-std=c++17", "-O2", "-fPIC", "-shared", str(src), "-o", tmp, "-pthread"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise OSError(f"{cxx} failed on {SOURCE}: {(r.stderr.strip().splitlines() or ['?'])[-1][:200]}")
        os.replace(tmp, lib)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


def pool():
    """The loaded pool library (ctypes.CDLL), or None when TVM's pool is used (see reason())."""
    if "lib" in _STATE:
        return _STATE["lib"]
    lib, why = None, None
    if os.environ.get("EDGEC_PARALLEL_POOL", "").strip().lower() == "tvm":
        why = "EDGEC_PARALLEL_POOL=tvm"
    else:
        cxx = os.environ.get("CXX") or "g++"
        if shutil.which(cxx) is None:
            why = f"no C++ compiler '{cxx}' to build edgec's pool"
        else:
            try:
                lib = ctypes.CDLL(str(_build(cxx)))
            except OSError as e:
                why = f"edgec's pool could not be built or loaded: {e}"
    if lib is not None:
        lib.edgec_pool_set_threads.argtypes = [ctypes.c_int, ctypes.c_long]
        lib.edgec_pool_install.argtypes = [ctypes.c_void_p]
    _STATE.update(lib=lib, reason=why)
    return lib


def reason() -> str | None:
    """Why TVM's pool is used, or None when edgec's is."""
    pool()
    return _STATE["reason"]


def set_threads(n: int) -> bool:
    """Size edgec's pool to n threads (the caller and n - 1 workers); False when TVM's pool is used.
    The workers are restarted only when the count or the spin time changes. When the system
    refuses a thread, a warning says so and the pool runs every loop on the calling thread."""
    lib = pool()
    if lib is None:
        return False
    want = (int(n), spin_us())
    if _STATE.get("threads") != want or lib.edgec_pool_threads() != want[0]:  # a forked child starts serial
        if lib.edgec_pool_set_threads(*want) != 0:  # the pool is serial then: right results, one thread
            import warnings

            warnings.warn(f"edgec's thread pool could not start {n - 1} worker thread(s): running on one thread",
                          RuntimeWarning, stacklevel=2)
        _STATE["threads"] = want
    return True


def install(library: str | Path) -> int:
    """Point the parallel-launch hook of the kernel library loaded from `library` (already loaded
    by TVM) at edgec's pool. Returns 1; 0 when the library has no parallel loop or TVM's pool is
    used; -1 when the library synchronizes inside its parallel loops, or cannot be found among
    this process's loaded libraries (TVM's pool stays its pool: the caller sizes it)."""
    lib = pool()
    if lib is None:
        return 0
    try:
        handle = ctypes.CDLL(str(library), mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)  # this process's copy
    except OSError:
        return -1
    return int(lib.edgec_pool_install(handle._handle))
