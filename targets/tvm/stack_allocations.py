"""Kernel-local buffers of CPU kernels on the stack: the TIR pipeline edgec compiles CPU code with.

TVM 0.27's LowerTVMBuiltin keeps a CPU allocation on the stack only when its scope is "global"
and it is under 1 KiB; every other one, including the "local" register tiles edgec's schedules
accumulate in (`common.place_accumulator`: 448 B to 22 KiB), becomes a
TVMBackendAllocWorkspace / TVMBackendFreeWorkspace pair per parallel task, and a heap buffer
LLVM cannot promote to registers. Each conv tile then zeroes its accumulators in memory (a
`memset` call, with a `vzeroupper`, for 20 of them) and stores them back after the reduction
loop, dead work per tile that weighs most where the reduction is short (pruned layers).

`stack_allocations` marks every allocation of a constant size up to STACK_LIMIT_BYTES with
`disable_lower_builtin`, so the LLVM backend makes it an alloca at function entry: SROA turns a
register tile into registers (no memset, no stores) and the workspace pool is not called.
MobileNetV2 at 2 threads, end to end, same run: 2.94 -> 2.74 ms, its pruned copy 1.84 -> 1.62 ms.

TVM's LLVM codegen aligns such an alloca to 16 bytes and emits its loads and stores with that
alignment (unaligned vector moves), whatever alignment the buffer declares: nothing assumes 64.
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import tirx
from tvm.s_tir import pipeline as s_tir_pipeline
from tvm.tirx import compilation_pipeline

# per allocation; the largest edgec makes are a few row tiles (a depthwise conv's rows for the
# pointwise conv after it: 22 KiB on MobileNetV2). Thread stacks are megabytes (8 MiB by default on
# Linux, 1 MiB on Android), and the allocas of a function live in its frame once, not per loop trip.
STACK_LIMIT_BYTES = 32 << 10
PIPELINE = "edgec-cpu"
_ANNOTATION = "disable_lower_builtin"


def allocation_bytes(buffer) -> int | None:
    """Bytes of a buffer of constant shape, else None."""
    n = 1
    for d in buffer.shape:
        if not isinstance(d, tvm.tirx.IntImm):
            return None
        n *= int(d)
    t = tvm.DataType(buffer.dtype)
    return n * max(t.bits // 8, 1) * max(t.lanes, 1)


def _on_stack(func: tirx.PrimFunc, _mod, _ctx) -> tirx.PrimFunc:
    def visit(value, mutator):
        value = mutator.default_mutate(value)
        size = allocation_bytes(value.buffer)
        if size is None or not 0 < size <= STACK_LIMIT_BYTES or _ANNOTATION in value.annotations:
            return value
        return tirx.stmt.AllocBuffer(value.buffer, {**dict(value.annotations), _ANNOTATION: tvm.tirx.IntImm("int32", 1)})

    return tvm_ffi.structural_mutate(func, [(tirx.stmt.AllocBuffer, visit)])


stack_allocations = tirx.transform.prim_func_pass(_on_stack, opt_level=0, name="edgec.StackAllocations")


def _factory(**_kwargs):
    lower, finalize_host, finalize_device = s_tir_pipeline.default_s_tir_pipeline()

    def host():
        return tvm.ir.transform.Sequential([stack_allocations, finalize_host()])

    return lower, host, finalize_device


def cpu_pipeline() -> str:
    """The name of edgec's CPU TIR pipeline (TVM's default, then `stack_allocations` before the
    host finalization), registered on first use: `tvm.compile(..., tir_pipeline=cpu_pipeline())`."""
    if PIPELINE not in compilation_pipeline.PIPELINE_MAP:
        compilation_pipeline.register_tir_pipeline(PIPELINE, _factory)
    return PIPELINE
