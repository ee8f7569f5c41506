"""edgec's rule-based CPU schedules, applied to every PrimFunc after fusion (no search).

Each rule is a module with `NAME`, `match(sch, ctx) -> bool` and `apply(sch, ctx)`; rules are tried
in `RULES` order and the first that matches and applies without error wins (a rule that raises
leaves the function untouched for the next one). `injective` matches every kernel with static
extents and `symbolic` the ones with symbolic extents, so no kernel is left as the naive
single-threaded loop nest unless both fail (counted as "none").

Rules with knobs (tile sizes, parallel grain) also have `default_knobs(sch, ctx)` and
`space(sch, ctx)` (candidate knob dicts, the default first) and take `apply(sch, ctx, knobs)`;
`edgec tune --space knobs` measures those candidates per kernel and records the fastest, which
`schedule_func(func, ctx, knobs=...)` replays at compile time.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter

import tvm
from tvm import s_tir, tirx

from edgec.targets.tvm.schedules import (
    attention,
    conv_int8,
    conv_nchw,
    conv_nchwc,
    dwconv_nchw,
    dwconv_nchwc,
    dwconv_pointwise,
    full_reduction,
    injective,
    matmul,
    matmul_int8,
    matmul_nbits,
    matmul_nbits_int8,
    reduction,
    rowwise,
    symbolic,
)
from edgec.targets.tvm.schedules import common as C
from edgec.targets.tvm.schedules.common import RuleContext
from edgec.targets.tvm.schedules.int8_dot import dot_instructions
from edgec.targets.tvm.schedules.serial_when_small import serial_when_small

# TVM 0.27 registers `nearbyint` (round half to even: what quantization rounds with) without
# TVectorizable, so a vectorized loop holding it was scalarized and LLVM re-vectorized it with
# gathers and per-byte stores (a quantize of 32K floats: 40 us instead of 3); it lowers to
# llvm.nearbyint, which has vector forms on every LLVM target (x86 vrndscaleps, AArch64 frinti).
tvm.ir.register_op_attr("tirx.nearbyint", "TVectorizable", True)

RULES = (attention, conv_int8, dwconv_pointwise, conv_nchwc, conv_nchw, dwconv_nchwc, dwconv_nchw, matmul_int8, matmul_nbits_int8, matmul_nbits, matmul, rowwise, reduction,
         full_reduction, injective, symbolic)


def context_for(spec, target=None, threads: int | None = None) -> RuleContext:
    lanes = max(int(spec.vector_bits) // 32, 1)
    regs = 32 if (int(spec.vector_bits) >= 512 or spec.arch == "aarch64") else 16
    cores = spec.tvm.get("num-cores") if isinstance(spec.tvm, dict) else None  # a board's num_cores
    return RuleContext(lanes=lanes, threads=threads or cores or os.cpu_count() or 2, registers=regs, target=target,
                       dot=dot_instructions(spec), l2_bytes=spec.l2_bytes,
                       l1d_bytes=spec.l1d_bytes)


BY_NAME = {r.NAME: r for r in RULES}


# below this many innermost iterations (all blocks, reduction loops included) a kernel runs on one
# thread: a fork-join of the pool costs more than the work (openwakeword's classifiers: a handful
# of kernels of a few thousand multiply-adds each)
SERIAL_WORK = 1 << 15


def kernel_work(func: tirx.PrimFunc) -> int | None:
    """Innermost iterations of the unscheduled kernel, summed over its blocks; None if unknown
    (symbolic extents, no root block)."""
    try:
        sch = s_tir.Schedule(func)
        total = 0
        for b in sch.get_child_blocks(sch.get_sblock("root")):
            n = 1
            for lp in sch.get_loops(b):
                n *= int(sch.get(lp).extent)
            total += n
        return total
    except Exception:  # noqa: BLE001 - symbolic extents or an unusual function
        return None


def schedule_func(func: tirx.PrimFunc, ctx: RuleContext, rules=RULES, knobs: dict | None = None) -> tuple[tirx.PrimFunc, str]:
    """Schedule one kernel with the first rule that applies (on one thread when it is smaller than
    SERIAL_WORK). With `knobs` ({"rule": NAME, ...}), only that rule is tried, with those knob
    values (it raises if they do not apply)."""
    work = kernel_work(func)
    token = C.SERIAL.set(work is not None and work < SERIAL_WORK)
    try:
        return _schedule_func(func, ctx, rules, knobs)
    finally:
        C.SERIAL.reset(token)


def _schedule_func(func: tirx.PrimFunc, ctx: RuleContext, rules, knobs: dict | None) -> tuple[tirx.PrimFunc, str]:
    if knobs is not None:
        rule = BY_NAME[knobs["rule"]]
        sch = s_tir.Schedule(func)
        if not rule.match(sch, ctx):
            raise ValueError(f"rule {rule.NAME} does not match this kernel")
        values = {k: v for k, v in knobs.items() if k != "rule"}
        sch = rule.apply(sch, ctx, values) or sch
        if _touches_bool(func) and _has_vector_loop(sch):
            raise ValueError("vectorized bool kernel (LLVM rejects TVM's mixed i8/i1 bool vectors)")
        return sch.mod["main"].with_attr("tirx.is_scheduled", True), rule.NAME
    scalar_bools = _touches_bool(func)  # LLVM rejects TVM's vector code mixing loaded (i8) and computed (i1) bools
    if scalar_bools:
        ctx = dataclasses.replace(ctx, lanes=1)
    for rule in rules:
        sch = s_tir.Schedule(func)
        try:
            if not rule.match(sch, ctx):
                continue
            sch = rule.apply(sch, ctx) or sch
        except Exception as e:  # noqa: BLE001 - a rule that cannot apply falls through to the next
            debug = os.environ.get("EDGEC_SCHEDULE_DEBUG")
            if debug == "print":  # why each rule gave up, per kernel, on stderr
                import sys
                import traceback

                where = "; ".join(f"{f.name}:{f.lineno}" for f in traceback.extract_tb(e.__traceback__)[-3:])
                print(f"schedule: rule {rule.NAME}: {type(e).__name__} at {where}: {' '.join(str(e).split())[-300:]}",
                      file=sys.stderr)
            elif debug:
                raise
            continue
        if scalar_bools and _has_vector_loop(sch):  # a rule that vectorizes whatever ctx.lanes says
            continue
        return sch.mod["main"].with_attr("tirx.is_scheduled", True), rule.NAME
    return func, "none"


def _touches_bool(func: tirx.PrimFunc) -> bool:
    """Whether a kernel reads or writes a bool buffer of more than one element. TVM's LLVM codegen
    loads a bool vector as <n x i8> but computes one as <n x i1>, and `or` of the two fails LLVM's
    verifier (fuzzer: Or(bool input, Less(x, c))): such kernels are scheduled without vectors. A
    one-element bool (a run-time guard's flag, read as a scalar) makes no bool vector."""
    try:
        sch = s_tir.Schedule(func)
        blocks = sch.get_child_blocks(sch.get_sblock("root"))
    except Exception:  # noqa: BLE001 - no root block: not a kernel the rules schedule
        return False
    for b in blocks:
        blk = sch.get(b)
        if any(str(r.source.dtype) == "bool" and not _one_element(r.source) for r in [*blk.reads, *blk.writes]):
            return True
    return False


def _one_element(buf) -> bool:
    return all(isinstance(d, tirx.IntImm) and int(d) == 1 for d in buf.shape)


def _has_vector_loop(sch: s_tir.Schedule) -> bool:
    for b in sch.get_child_blocks(sch.get_sblock("root")):
        if any(int(sch.get(lp).kind) == int(tirx.ForKind.VECTORIZED) for lp in sch.get_loops(b)):
            return True
    return False


# rules whose kernels run generic code: no rule matched ("none"), or only parallel loops over
# symbolic extents (no tiling for registers or caches)
GENERIC_RULES = ("none", "parallel-symbolic")


def apply_schedules(mod: tvm.IRModule, ctx: RuleContext,
                    generic: dict[str, list[str]] | None = None) -> tuple[tvm.IRModule, Counter]:
    """Schedule every unscheduled PrimFunc in `mod`; returns the module and rule-use counts.
    `generic`, if given, receives the names of the kernels per GENERIC_RULES rule."""
    used: Counter = Counter()
    for gv, func in list(mod.functions.items()):
        if not isinstance(func, tirx.PrimFunc) or func.attrs is not None and func.attrs.get("tirx.is_scheduled"):
            continue
        new, name = schedule_func(func, ctx)
        if name != "none":
            new = serial_when_small(new)
        used[name] += 1
        if generic is not None and name in GENERIC_RULES:
            generic.setdefault(name, []).append(gv.name_hint)
        mod[gv] = new
    return mod, used


def knob_space(func: tirx.PrimFunc, ctx: RuleContext) -> list[dict]:
    """Candidate knobs of the rule that schedules `func` ({"rule": NAME, ...} each, the rule's
    default first); [] when that rule has no knobs."""
    _, name = schedule_func(func, ctx)
    rule = BY_NAME.get(name)
    if rule is None or not hasattr(rule, "space"):
        return []
    return [{"rule": name, **k} for k in rule.space(s_tir.Schedule(func), ctx)]
