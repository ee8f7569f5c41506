"""`--threads` reaches the kernels' thread pool: edgec's (parallel_pool), or TVM's with
EDGEC_PARALLEL_POOL=tvm. TVM's own default on x86 is half the logical CPUs and
`runtime.config_threadpool` cannot raise the pool above it, so before the fix a 2-core machine
without hyper-threads ran every artifact on one thread whatever `--threads` said."""

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from edgec.targets.tvm.runtime import set_threads, default_threads, pool_threads
arg = None if sys.argv[1] == "none" else int(sys.argv[1])
got = set_threads(arg)
print(json.dumps({"set": got, "pool": pool_threads(), "default": default_threads()}))
"""


def _probe(arg: str, **env_extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS", "EDGEC_PARALLEL_POOL")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", PROBE, arg], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
@pytest.mark.parametrize("pool", ["edgec", "tvm"])
def test_threads_two_reaches_the_pool(pool):
    env = {"EDGEC_PARALLEL_POOL": pool}
    assert _probe("2", **env) == {"set": 2, "pool": 2, "default": _probe("none", **env)["default"]}


def test_threads_one():
    r = _probe("1")
    assert (r["set"], r["pool"]) == (1, 1)


def test_default_is_physical_cores_in_affinity():
    r = _probe("none")
    assert 1 <= r["default"] <= len(os.sched_getaffinity(0))
    assert r["pool"] == r["set"] == r["default"]


def test_env_variable_is_the_default():
    assert _probe("none", TVM_NUM_THREADS="1") == {"set": 1, "pool": 1, "default": 1}
