"""Helpers shared by the schedule rules: block discovery, tile-size choice, epilogue fusion."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from tvm import s_tir, tirx

from edgec.targets.registry import TargetSpec

L2_BYTES = TargetSpec.l2_bytes  # per-core L2 of a target that does not say: the conservative default
L1D_BYTES = TargetSpec.l1d_bytes  # per-core L1 data cache of a target that does not say


@dataclass(frozen=True)
class RuleContext:
    lanes: int            # fp32 lanes of one vector register (spec.vector_bits // 32)
    threads: int = 2      # worker threads the parallel loops should keep busy
    registers: int = 32   # vector registers (16 on AVX2/NEON-32, 32 on AVX-512/AArch64)
    target: object = None  # tvm.target.Target, for the DLight rules
    dot: str | None = None  # the target's integer dot-product instructions (int8_dot.dot_instructions)
    l2_bytes: int = L2_BYTES  # per-core L2 cache: one task's weight panel should fit (TargetSpec.l2_bytes)
    l1d_bytes: int = L1D_BYTES  # per-core L1 data cache: a register tile's inner weight panel should fit


def root_blocks(sch: s_tir.Schedule) -> list:
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def sblock(sch: s_tir.Schedule, rv):
    return sch.get(rv)


def iter_kinds(sch: s_tir.Schedule, rv) -> str:
    """'S'/'R'/'O' per block iter var (data-parallel, reduction, other)."""
    out = []
    for iv in sch.get(rv).iter_vars:
        out.append({tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}.get(int(iv.iter_type), "O"))
    return "".join(out)


def extents(sch: s_tir.Schedule, loops) -> list[int]:
    return [int(sch.get(lp).extent) for lp in loops]


def find_block(sch: s_tir.Schedule, name: str):
    for rv in root_blocks(sch):
        if sch.get(rv).name_hint == name:
            return rv
    return None


def divisor_le(n: int, cap: int) -> int:
    for d in range(min(n, cap), 0, -1):
        if n % d == 0:
            return d
    return 1


def good_tile(n: int, cap: int) -> int:
    """A tile <= cap for an extent n: a divisor when one is at least cap/2, else cap (tail masked)."""
    d = divisor_le(n, cap)
    return d if (d * 2 > cap or n <= cap) else cap


def depthwise_tile_cap(registers: int) -> int:
    """The most output pixels of a depthwise register tile: half the vector registers, one less
    with 16 (AVX2), where an 8-pixel tile of a 3-wide window (8 accumulators, the 10 input vectors
    it reads, a weight) spilled: MobileNetV2's 112-pixel depthwise + pointwise pair had 31 stack
    accesses with 8 pixels and 6 with 7, and ran 195 -> 183 us (56 pixels: 124 -> 119 us)."""
    return max(registers // 2 - (registers < 32), 4)


def vector_width(n: int, lanes: int) -> int:
    """Widest of lanes, lanes/2, lanes/4 dividing n; 1 if none."""
    w = lanes
    while w >= 4:
        if n % w == 0:
            return w
        w //= 2
    return 1


def is_elementwise_chain(sch: s_tir.Schedule, blocks) -> bool:
    return all(iter_kinds(sch, b) and set(iter_kinds(sch, b)) == {"S"} for b in blocks)


def inline_consumers(sch: s_tir.Schedule, anchor, ctx):
    """Inline the spatial blocks after `anchor` into the last one; returns that last block, or None
    when the anchor writes the function output itself. Blocks that cannot be inlined stay.

    From the first block that writes more elements than the anchor computes (a Pad after a conv, a
    padding layout transform, a broadcast: oskut's attention adds a [64, 1, 96] matmul to a
    [64, 21, 96] tensor), the epilogue becomes its own parallel, vectorized loop nest after the
    anchor's: under the anchor's tile loops (reverse_compute_at) it would produce only the elements
    that depend on the anchor's and leave the others unwritten."""
    blocks = root_blocks(sch)
    names = [sch.get(b).name_hint for b in blocks]
    idx = names.index(sch.get(anchor).name_hint)
    after = blocks[idx + 1:]
    if not after:
        return None
    if not is_elementwise_chain(sch, after):
        raise ValueError("non-spatial block after the anchor")
    size = _elements(sch, anchor)
    cut = next((i for i, b in enumerate(after) if _more_points(sch, b, size)), len(after))
    near, far = after[:cut], after[cut:]
    if far:
        for b in far[:-1]:
            sch.compute_inline(b)
        name = sch.get(far[-1]).name_hint
        schedule_spatial(sch, sch.get_sblock(name), ctx)
    for b in near[:-1]:
        sch.compute_inline(b)
    return near[-1] if near else None


def inline_epilogue(sch: s_tir.Schedule, anchor):
    """Inline the elementwise blocks after `anchor` into the last one and return it (None when the
    anchor writes the output). For kernels with symbolic extents, where `inline_consumers` cannot
    size its loops; a non-spatial block after the anchor is a ValueError."""
    blocks = root_blocks(sch)
    names = [sch.get(b).name_hint for b in blocks]
    after = blocks[names.index(sch.get(anchor).name_hint) + 1:]
    if not after:
        return None
    if not is_elementwise_chain(sch, after):
        raise ValueError("non-spatial block after the anchor")
    for b in after[:-1]:
        sch.compute_inline(b)
    return after[-1]


def schedule_spatial(sch: s_tir.Schedule, block, ctx) -> None:
    """A spatial block on its own: innermost loop vectorized where a vector width divides it, outer
    loops fused and parallel (nothing for fewer than 64 points)."""
    loops = sch.get_loops(block)
    ext = extents(sch, loops)
    total = 1
    for e in ext:
        total *= e
    if total < 64:
        return
    inner = loops[-1]
    w = vector_width(ext[-1], ctx.lanes)
    outer = loops[:-1]
    if w > 1:
        if ext[-1] > w:
            o, inner = sch.split(inner, [None, w])
            outer = outer + [o]
        sch.vectorize(inner)
    if outer:
        parallel_outer(sch, outer, ctx.threads)


def _elements(sch: s_tir.Schedule, block):
    """Points of the block's spatial domain: an int, or a TIR expression over symbolic dims."""
    from tvm import tirx

    n = 1
    for iv in sch.get(block).iter_vars:
        if iv.iter_type == tirx.IterVar.DataPar:
            n = n * (int(iv.dom.extent) if isinstance(iv.dom.extent, tirx.IntImm) else iv.dom.extent)
    return n


def _more_points(sch: s_tir.Schedule, block, size) -> bool:
    """Whether `block` may compute more points than `size` (not provably at most as many)."""
    n = _elements(sch, block)
    if isinstance(n, int) and isinstance(size, int):
        return n > size
    import tvm
    from tvm.tirx import analysis

    an = tvm.sym.Analyzer()
    for v in {*analysis.undefined_vars(tvm.tirx.const(0, "int64") + n), *analysis.undefined_vars(size + 0)}:
        dt = str(v.ty.dtype)
        an.bind(v, tvm.ir.Range(tvm.tirx.const(1, dt), tvm.tirx.const(1 << 40, dt)))  # dims >= 1 (0: nothing runs)
    return not an.can_prove(n <= size)


def schedule_tail(sch: s_tir.Schedule, block, lanes: int) -> None:
    """Vectorize the innermost loop of a block placed under a tile loop (LLVM unrolls the small
    loops around it)."""
    inner = sch.get_loops(block)[-1]
    ext = extents(sch, [inner])[0]
    w = vector_width(ext, lanes)
    if w > 1:
        if ext > w:
            _, inner = sch.split(inner, [None, w])
        sch.vectorize(inner)


# set by schedules.schedule_func for kernels too small to be worth a fork-join of the thread pool
SERIAL: contextvars.ContextVar[bool] = contextvars.ContextVar("edgec_serial_kernel", default=False)


def parallel(sch: s_tir.Schedule, loop) -> None:
    """Mark `loop` parallel, unless the kernel being scheduled is too small for that (SERIAL)."""
    if not SERIAL.get():
        sch.parallel(loop)


def parallel_outer(sch: s_tir.Schedule, loops, threads: int, per_thread: int = 4, balance: bool = True):
    """Fuse leading loops until there are at least `threads * per_thread` iterations; mark them
    parallel. TVM hands each thread a contiguous ceil(n / threads) chunk, so 11 tasks on 2 threads
    leave one idle for 1/12 of the time (what an 11-block pruned conv got): when the fused count
    splits unevenly, the next loop is split by its smallest factor that evens it out and that
    factor joins the fusion (11 blocks x 2 halves of the rows, not x 14 rows: one-row tasks of
    MobileNetV2's small kernels were 7-25% slower). `balance=False` keeps the plain fusion."""
    loops = list(loops)
    ext = extents(sch, loops)
    k, n = 0, 1
    while k < len(loops) and n < threads * per_thread:
        n *= ext[k]
        k += 1
    k = max(k, 1)
    if balance and k < len(loops) and idle_share(n, threads) > 1 / 32:
        f = next((f for f in range(2, ext[k] + 1) if ext[k] % f == 0 and idle_share(n * f, threads) <= 1 / 32),
                 ext[k])
        if f < ext[k]:
            loops[k], _ = sch.split(loops[k], [f, None])
        k += 1
    fused = sch.fuse(*loops[:k]) if k > 1 else loops[0]
    parallel(sch, fused)
    return fused, k


def parallel_order(activation_elems: int, weight_elems: int) -> str:
    """Which loop a conv's parallel loop splits first: "rows" when its activations (input and
    output) outweigh its weights, else "channels" (output-channel blocks).

    Each task's input is what an earlier kernel's tasks wrote, and on a multi-core CPU a task
    reading what another core wrote pulls it out of that core's cache. When the kernels of a
    chain all split the rows first, each core reads mostly the rows it wrote itself (a 3x3 conv
    only the rows at the seams again); split by output channels, every core of a pointwise conv
    reads every input row. Weights are read whole by every core under a row split, so kernels
    whose weights are the larger operand (deep layers on small images) keep the channel split.
    A rows-first loop is (rows split in `threads` parts, channel blocks, rows within the part), so
    a task still sweeps consecutive rows of one channel plane. Summed kernel minimums at 2 threads
    (docs/pruning.md, session 18): MobileNetV2 2.77 -> 2.60 ms, its pruned copy 1.73 -> 1.59;
    ResNet-18 12.98 -> 11.71, pruned 7.40 -> 7.03. Splitting only the pointwise or only the
    depthwise convs by rows gained nothing (their partitions then disagree)."""
    return "rows" if activation_elems >= weight_elems else "channels"


def idle_share(tasks: int, threads: int) -> float:
    """The share of thread time left idle when `tasks` equal tasks go to `threads` threads in
    contiguous chunks of ceil(tasks / threads)."""
    chunk = -(-tasks // max(threads, 1))
    return 1 - tasks / (chunk * max(threads, 1))


def place_accumulator(sch: s_tir.Schedule, block, tail, tile_loop):
    """Accumulate a tile in a local buffer under `tile_loop`: the epilogue block reads it directly
    (the buffer shrinks to the tile), or, without an epilogue, a cache-write block copies it out.
    Returns the block that writes the tile out."""
    if tail is None:
        tail = sch.cache_write(block, 0, "local")
    else:
        sch.set_scope(block, 0, "local")
    sch.reverse_compute_at(tail, tile_loop)
    return tail


def materialize_pad(sch: s_tir.Schedule, pad, threads: int) -> None:
    """Compute a zero-padded input once, as its own parallel stage, instead of inlining the bounds
    test into every load of the kernel's inner loop (measured ~20% on ResNet-18's 3x3 convs).
    Blocked layouts vectorize the channel lanes (the bounds test is per pixel); a 4-D pad splits
    the fill from the interior copy so the row copy vectorizes, both inside the parallel row loop
    (each task zeroes its padded rows, then copies their interior; a fill of its own was a serial
    pass over the whole buffer). NCHW stems pad per task instead (`pad_per_task`)."""
    loops = sch.get_loops(pad)
    parallel_outer(sch, loops[:-1], threads)
    if len(sch.get(pad).iter_vars) == 5:
        sch.vectorize(loops[-1])
        return
    try:
        fill = sch.decompose_padding(pad, sch.get_loops(pad)[-1])
    except Exception:  # noqa: BLE001 - ScheduleError: keep one scalar pass
        return
    for blk in (fill, pad):
        inner = sch.get_loops(blk)[-1]
        if int(sch.get(inner).extent) <= 256:
            sch.vectorize(inner)


def pad_per_task(sch: s_tir.Schedule, pad, loop) -> None:
    """Zero-pad, under the parallel `loop`, only the input rows that iteration reads, into a local
    buffer (a few KiB of L1), instead of a padded copy of the whole input as its own parallel
    stage: no second fork-join, no pass over memory, each thread reading the input rows it
    computes from. For NCHW stems (3 channels: the padded rows of one output row are 8 KiB);
    MobileNetV2's 3x3 stride-2 stem in the model at 2 threads: 145 -> 135 us. Fill and interior
    copy are split so both vectorize along the row."""
    sch.compute_at(pad, loop)
    sch.set_scope(pad, 0, "local")
    try:
        fill = sch.decompose_padding(pad, sch.get_loops(pad)[-1])
    except Exception:  # noqa: BLE001 - ScheduleError: one pass with the bounds test
        fill = None
    for blk in (fill, pad):
        if blk is not None:
            inner = sch.get_loops(blk)[-1]
            if int(sch.get(inner).extent) <= 256:
                sch.vectorize(inner)


def finish_dot_tile(sch: s_tir.Schedule, block, reduce_loop, intrin: str | None, lane_loop, tail, lanes: int) -> None:
    """The common end of the integer dot-product rules: split the accumulator's zeroing off at
    `reduce_loop` (vectorized), tensorize `lane_loop` with `intrin` (None: already vectorized),
    vectorize the epilogue `tail`."""
    init = sch.decompose_reduction(block, reduce_loop)
    sch.vectorize(sch.get_loops(init)[-1])
    if intrin is not None:
        sch.tensorize(lane_loop, intrin)
    schedule_tail(sch, tail, lanes)


def knob_space(default: dict, candidates: list[dict]) -> list[dict]:
    """The rule's default knobs first, then the candidates in order, without duplicates."""
    out, seen = [], set()
    for k in [default, *candidates]:
        key = tuple(sorted(k.items()))
        if key not in seen:
            seen.add(key)
            out.append(dict(k))
    return out
