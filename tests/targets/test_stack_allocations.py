"""Kernel-local buffers of CPU kernels on the stack (targets/tvm/stack_allocations.py): a buffer
of constant size up to the limit becomes an alloca instead of a workspace-pool call per parallel
task, and a conv's register tile then lives in registers; larger or symbolic buffers keep the
workspace pool. Every kernel computes the same either way."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
import tvm
from onnx import helper
from tvm.script import tirx as T

from edgec.compare import Tolerance, compare_outputs
from edgec.targets.registry import get_target
from edgec.targets.tvm.build import build_relax, tvm_target
from edgec.targets.tvm.lower import lower_model
from edgec.targets.tvm.stack_allocations import STACK_LIMIT_BYTES, allocation_bytes, cpu_pipeline
from tests.targets.test_schedules import _conv, _model

WORKSPACE = "load ptr, ptr @__TVMBackendAllocWorkspace"


def _staged(n: int):
    """B = A * 2 + 1 through a local buffer of n floats (its own stage, so it is allocated)."""

    @T.prim_func(s_tir=True)
    def f(A: T.Buffer((n,), "float32"), B: T.Buffer((n,), "float32")):
        T.func_attr({"global_symbol": "f", "tirx.noalias": True})
        acc = T.sblock_alloc_buffer((n,), scope="local")
        for i in range(n):
            with T.sblock("twice"):
                vi = T.axis.spatial(n, i)
                acc[vi] = A[vi] * T.float32(2)
        for i in range(n):
            with T.sblock("plus_one"):
                vi = T.axis.spatial(n, i)
                B[vi] = acc[vi] + T.float32(1)

    return f


def _same(got, want):
    bad = [d.describe() for d in compare_outputs({"B": got}, {"B": want}, Tolerance(atol=1e-6, rtol=1e-6)) if not d.ok]
    assert not bad, bad


def _build(n: int, pipeline: str):
    return tvm.tirx.build(tvm.IRModule({"f": _staged(n)}), target="llvm", pipeline=pipeline)


@pytest.mark.parametrize("n, on_stack", [(320, True),                          # a 20-vector tile: 1280 B
                                         (STACK_LIMIT_BYTES // 4, True),       # the limit itself
                                         (STACK_LIMIT_BYTES // 4 + 16, False)])  # over it: workspace pool
def test_local_buffers_up_to_the_limit_go_on_the_stack(n, on_stack):
    lib = _build(n, cpu_pipeline())
    assert (WORKSPACE not in lib.inspect_source("ll")) == on_stack
    a = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    b = tvm.runtime.tensor(np.zeros(n, np.float32))
    lib["f"](tvm.runtime.tensor(a), b)
    _same(b.numpy(), a * 2 + 1)


def test_tvms_own_pipeline_puts_a_local_tile_in_the_workspace_pool():
    """What the pass is for: TVM 0.27 keeps only small "global" buffers on the stack."""
    assert WORKSPACE in _build(320, "default").inspect_source("ll")


def test_only_constant_sizes_are_counted():
    """A buffer of symbolic size has no byte count, so it keeps the workspace pool."""
    n = tvm.tirx.Var("n", "int64")
    assert allocation_bytes(tvm.tirx.decl_buffer((n, 16), "float32")) is None
    assert allocation_bytes(tvm.tirx.decl_buffer((5, 2, 2, 16), "float32")) == 1280
    assert allocation_bytes(tvm.tirx.decl_buffer((3,), "float16x8")) == 48


def test_pointwise_conv_tile_is_registers_not_memory():
    """MobileNetV2's pruned 64 -> 400 channel pointwise conv on 14x14 (a 5 x 2 x 2 tile of 20
    accumulators, 1280 B): compiled by edgec, its kernel calls no workspace pool and zeroes no
    accumulator memory."""
    conv, inits, y = _conv("x", 64, 400, 1)
    model = _model([conv, helper.make_node("Relu", [y], ["out"])], [("x", [1, 64, 14, 14])], "out", inits)
    spec = get_target("x86-64-avx512")
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    ex = build_relax(mod, spec, tvm_target(spec), threads=2)
    (kernel,) = [m for m in ex.mod.imports if "conv2d_nchwc" in m.inspect_source("ll")]
    ll = kernel.inspect_source("ll")
    assert WORKSPACE not in ll
    assert "i64 1280, i1 false)" not in ll  # no llvm.memset of the 20-vector tile
