"""Rule: dense 2-D convolution in NCHW whose kernel was packed at compile time to
[OC/b, IC, KH, KW, b] (edgec's `edgec_conv_nchw_acc` + `edgec_conv_nchw_unpack` blocks): used
for convs that stay NCHW (3-channel stems, channel counts no vector block divides).

Same register tile as the NCHWc rule (output-channel vectors x output pixels, input pixels
broadcast). An NCHW output is unpacked per row together with the fused epilogue; a blocked
output (a stem feeding blocked convs) of the unpadded width takes the epilogue on each register
tile, which then stays in registers (MobileNetV2's stem in the model at 2 threads: 122 -> 88 us,
ResNet-18's 7x7 stem 751 -> 651 us with the stack allocations). The zero-padded input rows each
output row reads are built inside the parallel loop (`common.pad_per_task`).

Knobs (`edgec tune --space knobs`): `ot`, `wt` (a divisor of the padded row), `yt` (output rows
per task; each task builds the padded input rows it reads once, for every channel tile).
"""

from __future__ import annotations

from edgec.targets.tvm.layout import CONV_NCHW_BLOCK, PAD_BLOCK, conv_tiles
from edgec.targets.tvm.schedules import common as C

NAME = "conv2d-nchw-packed"


def match(sch, ctx) -> bool:
    b = C.find_block(sch, CONV_NCHW_BLOCK)
    return b is not None and C.iter_kinds(sch, b) == "SSSSSRRR"


def _dims(sch):
    return C.extents(sch, sch.get_loops(C.find_block(sch, CONV_NCHW_BLOCK)))


def default_knobs(sch, ctx) -> dict:
    n, ocb, oh, owp, _, _, _, _ = _dims(sch)
    ot, cap = conv_tiles(ocb, owp, ctx.registers, ctx.lanes)
    # legalization padded the row to tiles <= cap
    return {"ot": ot, "wt": C.divisor_le(owp, cap), "yt": _rows_per_task(n, oh, ctx.threads)}


def _rows_per_task(n: int, oh: int, threads: int) -> int:
    """Output rows per parallel task: the most of 4, 2, 1 that divides the rows and still leaves
    4 tasks per thread, split evenly."""
    return next((t for t in (4, 2) if oh % t == 0 and n * oh // t >= 4 * threads
                 and C.idle_share(n * oh // t, threads) <= 1 / 32), 1)


def space(sch, ctx) -> list[dict]:
    _, ocb, oh, owp, _, _, _, _ = _dims(sch)
    out = []
    for ot in (1, 2, 4, 8):
        if ocb % ot == 0:
            ws = [w for w in range(1, owp + 1) if owp % w == 0 and 4 <= ot * w <= ctx.registers - 4]
            out += [{"ot": ot, "wt": w} for w in ws[-2:]]
    out.sort(key=lambda k: -k["ot"] * k["wt"])
    default = default_knobs(sch, ctx)
    rows = [{**default, "yt": t} for t in (1, 2, 4, 8) if oh % t == 0]
    return C.knob_space(default, [*rows, *({**k, "yt": default["yt"]} for k in out)])


def apply(sch, ctx, knobs: dict | None = None) -> None:
    kn = {**default_knobs(sch, ctx), **(knobs or {})}
    conv = C.find_block(sch, CONV_NCHW_BLOCK)
    pad = C.find_block(sch, PAD_BLOCK)
    tail = C.inline_consumers(sch, conv, ctx)
    n, o, y, x, k, rc, ry, rx = sch.get_loops(conv)
    n_ext, ocb, oh, owp, b, ic, _, _ = C.extents(sch, sch.get_loops(conv))
    ot, wt, yt = kn["ot"], kn["wt"], kn["yt"]
    o_o, o_i = sch.split(o, [None, ot])
    x_o, x_i = sch.split(x, [None, wt])
    y_o, y_i = sch.split(y, [None, yt])
    # pixel outer, channel vector inner: each broadcast input pixel meets its `ot` weight vectors
    # at once. The other order (o_i outer) let LLVM keep all `wt` broadcasts live across the
    # `ot` passes (24 accumulators + 12 broadcasts + 2 weights > 32 zmm): spills and register
    # shuffles in ResNet-18's 7x7 stem; this order has none (single-thread 2.81 -> 2.46 ms).
    # A task is `yt` output rows of every channel tile, so the zero-padded input rows it reads
    # are built once for all of them, and overlapping rows once for its `yt` rows (a task per
    # channel tile and row built them ocb/ot times: a third of MobileNetV2's stem time on AVX2).
    # Too few rows for the threads: the channel tiles join the parallel loop.
    if n_ext * (oh // yt) >= 4 * ctx.threads:
        sch.reorder(n, y_o, y_i, o_o, x_o, rc, ry, rx, x_i, o_i, k)
        row, one_row = sch.fuse(n, y_o), o_o
    else:
        sch.reorder(n, y_o, o_o, y_i, x_o, rc, ry, rx, x_i, o_i, k)
        row, one_row = sch.fuse(n, y_o, o_o), y_i
    C.parallel(sch, row)
    if _blocked_output(sch, tail, owp):
        # a blocked output of the unpadded width (MobileNetV2's stem feeding NCHW8c/16c convs): the
        # epilogue runs on each register tile, which then stays in registers
        acc = C.place_accumulator(sch, conv, tail, x_o)
    else:
        # the NCHW unpack + epilogue runs per output row and channel tile (`one_row`) on the real width,
        # vectorized along it (a tile-level epilogue would test the padded columns per lane and be
        # scalarized)
        acc = C.place_accumulator(sch, conv, tail, one_row)
    if pad is not None:
        C.pad_per_task(sch, pad, row)
    sch.vectorize(k)
    sch.unroll(x_i)
    sch.unroll(o_i)
    sch.decompose_reduction(conv, rc)
    inner = sch.get_loops(acc)[-1]
    if C.extents(sch, [inner])[0] <= 256:
        sch.vectorize(inner)
    else:
        C.schedule_tail(sch, acc, ctx.lanes)


def _blocked_output(sch, tail, width: int) -> bool:
    """Whether the epilogue writes a blocked [N, C/b, H, W, b] tensor exactly `width` wide (no
    padded columns in the accumulator)."""
    if tail is None:
        return False
    shape = sch.get(tail).writes[0].source.shape
    return len(shape) == 5 and int(shape[3]) == width
