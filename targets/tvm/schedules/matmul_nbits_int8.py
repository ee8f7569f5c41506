"""Rule: MatMulNBits with int8 activations (targets/tvm/nbits_int8.py) on the target's integer
dot-product instruction, with any fused elementwise epilogue. Symbolic rows (M, batch) allowed.

The activation stages (block maxima, scales, quantized rows, block sums) run first, parallel over
rows and blocks (serial at decode: serial_when_small). Main loop nest: panels of TILES column tiles
of L lanes outermost and parallel (a thread streams its own weight panels once, whatever M is, each
panel one sequential run); per row, per K block, per 4 k: the TILES tiles' int32 lanes accumulated
by the intrinsic (independent chains; A's 4 bytes broadcast once for them; 4-bit tiles unpacked in
registers, the k loop unrolled so that one 64-byte load serves both nibbles), then per tile the
zero-point term subtracted, scaled and added into L float lanes (vectorized); the epilogue writes
the row's panel.
"""

from __future__ import annotations

from edgec.targets.tvm.nbits_int8 import (
    NB8,
    NB8_ACC,
    NB8_AMAX,
    NB8_ASUM,
    NB8_QUANT,
    NB8_SCALE,
    NB8_W,
    TILES,
)
from edgec.targets.tvm.schedules import common as C
from edgec.targets.tvm.schedules.int8_dot import WEIGHT_TILE_INTRINSICS

NAME = "matmul_nbits_int8"


def match(sch, ctx) -> bool:
    return C.find_block(sch, NB8_ACC) is not None and ctx.dot in WEIGHT_TILE_INTRINSICS


def _activation_stage(sch, name: str, vector: bool) -> None:
    blk = C.find_block(sch, name)
    if blk is None:
        return
    kinds = C.iter_kinds(sch, blk)
    loops = sch.get_loops(blk)
    spatial = list(loops[:kinds.index("R")] if "R" in kinds else loops)
    if vector and "R" not in kinds:
        o, v = sch.split(spatial[-1], [None, 16])
        sch.vectorize(v)
        spatial[-1] = o
    C.parallel(sch, sch.fuse(*spatial) if len(spatial) > 1 else spatial[0])


def apply(sch, ctx, knobs: dict | None = None) -> None:
    intrin, lanes, _ = WEIGHT_TILE_INTRINSICS[ctx.dot]
    names = [sch.get(b).name_hint for b in C.root_blocks(sch)]
    for b in C.root_blocks(sch)[:names.index(NB8_AMAX)]:
        sch.compute_inline(b)  # fused producers of A: read by the activation stages
    out = sch.get_sblock(NB8)
    tail = C.inline_epilogue(sch, out)
    *rows, j, rb = sch.get_loops(out)
    j_o, j_t, j_l = sch.split(j, [None, TILES, lanes])
    sch.reorder(j_o, *rows, rb, j_t, j_l)
    inner = rows[-1] if rows else j_o
    C.parallel(sch, j_o)
    sch.vectorize(j_l)
    sch.unroll(j_t)
    acc = sch.get_sblock(NB8_ACC)
    sch.compute_at(acc, rb)
    lane, r = sch.get_loops(acc)[-2:]
    t, lane = sch.split(lane, [TILES, lanes])
    rg, r4 = sch.split(r, [None, 4])
    sch.reorder(rg, t, lane, r4)  # per 4 k: the TILES tiles' dot products, independent of each other
    init = sch.decompose_reduction(acc, rg)
    sch.vectorize(sch.fuse(*sch.get_loops(init)[-2:]))
    w = C.find_block(sch, NB8_W)
    if w is not None:
        sch.compute_at(w, t)
        sch.vectorize(sch.fuse(*sch.get_loops(w)[-2:]))
    sch.tensorize(sch.get_loops(acc)[-2], intrin)
    sch.unroll(t)
    sch.unroll(rg)  # constant nibble shifts: one load of a 4-bit tile serves both of its k groups
    C.place_accumulator(sch, out, tail, inner)
    sch.decompose_reduction(out, rb)
    _activation_stage(sch, NB8_AMAX, vector=False)
    _activation_stage(sch, NB8_SCALE, vector=False)
    _activation_stage(sch, NB8_QUANT, vector=True)
    _activation_stage(sch, NB8_ASUM, vector=False)
