"""edgec's parallel launcher (targets/runtime/edgec_pool.cc, targets/tvm/parallel_pool.py): a loaded
library's parallel loops run on it, with the same results as on TVM's pool and onnxruntime's; loading
leaves the caller's CPU affinity and environment alone; a forked child, two threads running models at
once and sleeping workers all still compute the right results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

from edgec.api import CompileOptions, compile_model
from edgec.compare import Tolerance, all_match, compare_outputs
from edgec.reference import run_ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = r"""
import ctypes, json, os, sys
import numpy as np
from edgec.artifact import load_artifact
from edgec.targets.tvm import parallel_pool, runtime
from edgec.targets.tvm.execute import load

art, threads, x_path, out_path, fork = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1"
affinity, env = sorted(os.sched_getaffinity(0)), os.environ.get("TVM_NUM_THREADS")
a = load_artifact(art)
m = load(a, threads=threads)
x = np.load(x_path)
y = m.run({"x": x})["y"]
np.save(out_path, y)


class DlInfo(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p), ("sname", ctypes.c_char_p),
                ("saddr", ctypes.c_void_p)]


lib = ctypes.CDLL(str(a.library), mode=os.RTLD_NOLOAD)
hook = ctypes.c_void_p.in_dll(lib, "__TVMBackendParallelLaunch").value
info = DlInfo()
ctypes.CDLL(None).dladdr(ctypes.c_void_p(hook), ctypes.byref(info))
child_ok = None
if fork:  # the child has no pool workers: its launches must still finish, with the same result
    pid = os.fork()
    if pid == 0:
        import signal
        signal.alarm(60)
        same = all(np.array_equal(m.run({"x": x})["y"], y) for _ in range(5))
        again = load(a, threads=threads)  # loading in the child starts its own workers
        same &= runtime.pool_threads() == threads and np.array_equal(again.run({"x": x})["y"], y)
        os._exit(0 if same else 3)
    child_ok = os.waitpid(pid, 0)[1] == 0
print(json.dumps({"affinity_kept": sorted(os.sched_getaffinity(0)) == affinity,
                  "env_kept": os.environ.get("TVM_NUM_THREADS") == env,
                  "hook": os.path.basename(info.fname.decode()), "threads": runtime.pool_threads(),
                  "reason": parallel_pool.reason(), "child_ok": child_ok}))
"""


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """Conv 3x3 (16 -> 32 channels, 56x56) + Relu, then a 1x1 conv: kernels with parallel loops."""
    d = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(7)
    w1 = h.make_tensor("w1", TP.FLOAT, [32, 16, 3, 3], rng.standard_normal((32, 16, 3, 3)).astype(np.float32).ravel() * 0.2)
    w2 = h.make_tensor("w2", TP.FLOAT, [24, 32, 1, 1], rng.standard_normal((24, 32, 1, 1)).astype(np.float32).ravel() * 0.2)
    g = h.make_graph([h.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c"], ["r"]),
                      h.make_node("Conv", ["r", "w2"], ["y"])], "pool",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, 16, 56, 56])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 24, 56, 56])], [w1, w2])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, d / "pool.onnx")
    art = compile_model(d / "pool.onnx", d / "art", CompileOptions(target="x86-64", threads=2))
    x = rng.standard_normal((1, 16, 56, 56)).astype(np.float32)
    np.save(d / "x.npy", x)
    return d, art, x


def _probe(d, art, threads: int, tag: str, fork: bool = False, **env_extra) -> tuple[dict, np.ndarray]:
    env = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "EDGEC_PARALLEL_POOL")}
    env.update(PYTHONPATH=ROOT, **env_extra)
    out = d / f"y_{tag}.npy"
    r = subprocess.run([sys.executable, "-c", PROBE, str(art.path), str(threads), str(d / "x.npy"), str(out),
                        "1" if fork else "0"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), np.load(out)


def _matches_onnxruntime(d, x, y) -> bool:
    ref = run_ort(str(d / "pool.onnx"), {"x": x})
    return all_match(compare_outputs({"y": y}, ref, Tolerance(1e-4, 1e-4)))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_kernels_run_on_edgecs_pool_with_tvms_results(conv_model):
    d, art, x = conv_model
    ours, y = _probe(d, art, 2, "edgec")
    assert ours["hook"].startswith("libedgec_pool") and ours["reason"] is None and ours["threads"] == 2
    theirs, y_tvm = _probe(d, art, 2, "tvm", EDGEC_PARALLEL_POOL="tvm")
    assert theirs["hook"] == "libtvm_runtime.so" and theirs["reason"] == "EDGEC_PARALLEL_POOL=tvm"
    _, y_one = _probe(d, art, 1, "one")
    # each task computes the part of the loop its id names: the same bits on any pool and thread count
    assert np.array_equal(y, y_tvm) and np.array_equal(y, y_one)
    assert _matches_onnxruntime(d, x, y)


def test_loading_leaves_the_callers_affinity_and_environment_alone(conv_model):
    """TVM's pool binds the thread that configures it to CPUs and the count is set through
    TVM_NUM_THREADS in os.environ: a program that loaded a model with 1 thread, and every
    subprocess it started, then ran on one CPU."""
    d, art, _ = conv_model
    r, _ = _probe(d, art, 1, "affinity")
    assert r["hook"].startswith("libedgec_pool")
    assert r["affinity_kept"] and r["env_kept"], r


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_a_forked_child_runs_the_model_without_the_parents_workers(conv_model):
    """The child has no pool workers: its launches run serially, until it loads a model (and sizes
    its pool) itself."""
    d, art, _ = conv_model
    r, _ = _probe(d, art, 2, "fork", fork=True)
    assert r["child_ok"] is True


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_sleeping_workers_wake_for_every_launch(conv_model):
    """No spinning (TVM_THREAD_POOL_SPIN_COUNT=0): every launch wakes a sleeping worker."""
    d, art, x = conv_model
    r, y = _probe(d, art, 2, "nospin", TVM_THREAD_POOL_SPIN_COUNT="0")
    assert r["hook"].startswith("libedgec_pool")
    assert _matches_onnxruntime(d, x, y)


def test_two_threads_run_models_at_once(conv_model):
    """A launch while another thread's launch runs is run serially on its own thread: no deadlock,
    the same results."""
    from edgec.targets.tvm.execute import load

    d, art, x = conv_model
    models = [load(art, threads=2), load(art, threads=2)]
    want = models[0].run({"x": x})["y"]
    results: list[bool] = []

    def loop(m):
        results.extend(np.array_equal(m.run({"x": x})["y"], want) for _ in range(40))

    threads = [threading.Thread(target=loop, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert len(results) == 80 and all(results)
    assert _matches_onnxruntime(d, x, want)


def test_a_library_not_loaded_here_keeps_tvms_pool(tmp_path):
    """install() on a path this process has not loaded reports -1 (the caller then sizes TVM's
    pool) instead of raising out of the model load."""
    from edgec.targets.tvm import parallel_pool

    if parallel_pool.pool() is None:
        pytest.skip(f"edgec's pool is not in use here: {parallel_pool.reason()}")
    assert parallel_pool.install(tmp_path / "never_loaded.so") == -1
