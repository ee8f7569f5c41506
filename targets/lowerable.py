"""What the TVM backend's own lowerings accept, decided on the ONNX node alone (no tvm import).

Shared by the lowerings (`edgec.targets.tvm.ops`) and by the passes that create edgec-domain ops
only edgec's backend can lower (`fuse-activation` → `edgec.FusedConv`): a pass asks the same
function the lowering asks, so it never creates an op the backend then refuses (issue 12: a 1-D
Conv + Relu became a FusedConv that the rank-4-only Conv lowering declined).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

#: Conv ranks edgec lowers: 3 (1-D, R.nn.conv1d), 4 (2-D, conv2d), 5 (3-D, conv3d)
CONV_RANKS = (3, 4, 5)


def _auto_pad(node: ir.Node) -> str:
    a = node.attributes.get("auto_pad")
    v = "NOTSET" if a is None or a.is_ref() else a.value
    return v.decode() if isinstance(v, bytes) else str(v)


def _rank(v: ir.Value | None) -> int | None:
    return None if v is None or v.shape is None else len(v.shape)


def conv_rank(node: ir.Node) -> int | None:
    """The rank of a Conv's X (W's rank when X's is unknown), or None."""
    r = _rank(node.inputs[0]) if node.inputs else None
    return r if r is not None else _rank(node.inputs[1] if len(node.inputs) > 1 else None)


def conv_pads(node: ir.Node) -> list[int] | None:
    """A Conv / FusedConv node's pads (all begins, then all ends) with auto_pad resolved; None when
    SAME_* padding depends on shapes that are not static, or the rank is unknown."""
    r = conv_rank(node)
    if r is None:
        return None
    mode = _auto_pad(node)
    if mode == "NOTSET":
        a = node.attributes.get("pads")
        return [0] * (2 * (r - 2)) if a is None else [int(p) for p in a.as_ints()]
    if mode == "VALID":
        return [0] * (2 * (r - 2))
    # resolve-auto-pad's SAME_* arithmetic; the kernel from W, which a FusedConv has too
    w = node.inputs[1] if len(node.inputs) > 1 else None
    k = node.attributes.get("kernel_shape")
    kernel = [int(d) for d in k.as_ints()] if k is not None else _static_dims(w, 2)
    x = _static_dims(node.inputs[0], 2)
    if x is None or kernel is None or len(x) != r - 2 or len(kernel) != r - 2:
        return None
    begin, end = [], []
    for size, kk, st, d in zip(x, kernel, _ints(node, "strides", r - 2), _ints(node, "dilations", r - 2)):
        total = max(0, (-(-size // st) - 1) * st + (kk - 1) * d + 1 - size)
        small = total // 2
        begin.append(small if mode == "SAME_UPPER" else total - small)
        end.append(total - small if mode == "SAME_UPPER" else small)
    return begin + end


def _static_dims(v: ir.Value | None, skip: int) -> list[int] | None:
    if v is None or v.shape is None or not all(isinstance(d, int) for d in v.shape):
        return None
    return [int(d) for d in v.shape][skip:]


def _ints(node: ir.Node, name: str, n: int) -> list[int]:
    a = node.attributes.get(name)
    return [1] * n if a is None else [int(v) for v in a.as_ints()]


def conv_lowerable(node: ir.Node) -> str:
    """'' when edgec's Conv lowering (`targets/tvm/ops/nn.py:conv`, also FusedConv's) takes `node`,
    else the reason it does not."""
    r = conv_rank(node)
    if r not in CONV_RANKS:
        return f"Conv of rank {r} (edgec lowers ranks {', '.join(map(str, CONV_RANKS))})"
    if any(a.is_ref() for a in node.attributes.values()):
        return "Conv with attributes referencing function attributes"
    mode = _auto_pad(node)
    if mode not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        return f"Conv auto_pad {mode!r}"
    pads = conv_pads(node)
    if pads is None or len(pads) != 2 * (r - 2):
        return f"Conv auto_pad {mode} with a non-static input shape"
    return ""


def rnn_lowerable(node: ir.Node) -> str:
    """'' when the TVM backend's recurrence lowering (`targets/tvm/ops/rnn.py`: one projection
    matmul + one recurrence kernel) takes this LSTM / GRU / RNN / com.microsoft DynamicQuantizeLSTM
    node, else the reason it does not; `decompose-rnn{native=1}` unrolls what this refuses."""
    from edgec.passes.control.rnn_plan import QLSTM, plan, rnn_kind

    if rnn_kind(node) is None:
        return f"{node.op_type} is not an LSTM, GRU or RNN"
    p = plan(node)
    if isinstance(p, str):
        return p
    x = node.inputs[0]
    if x.dtype != ir.DataType.FLOAT:
        return f"X is {x.dtype}, the recurrence kernel is float32"
    if not all(isinstance(d, int) for d in x.shape):
        return "the shape of X is not static"
    w = node.inputs[1] if len(node.inputs) > 1 else None
    if w is None or w.shape is None or not all(isinstance(d, int) for d in w.shape):
        return "the shape of W is not static"
    return qlstm_exact(node) if node.op_type == QLSTM else ""


F32_EXACT = 1 << 24


def qlstm_weights(node: ir.Node, i_w: int) -> tuple | None:
    """(W - W_zp as int64 [D, K, 4H], scale [D, 4H] float32) of a DynamicQuantizeLSTM weight (W at
    input 1 with scale / zero point at 8 / 9, R at 2 with 10 / 11), or None unless all are constants."""
    from edgec.ir.constants import const_array

    i_s, i_z = {1: (8, 9), 2: (10, 11)}[i_w]
    vals = [node.inputs[i] if len(node.inputs) > i else None for i in (i_w, i_s, i_z)]
    arrs = [const_array(v) if v is not None else None for v in vals]
    w, scale, zp = arrs
    if w is None or scale is None or (vals[2] is not None and zp is None):
        return None
    d, _, cols = w.shape
    zp = np.zeros((d, 1, 1), np.int64) if zp is None else np.asarray(zp, np.int64).reshape(d, 1, -1)
    scale = np.broadcast_to(np.asarray(scale, np.float32).reshape(d, -1), (d, cols))
    return w.astype(np.int64) - zp, np.ascontiguousarray(scale)


def qlstm_exact(node: ir.Node) -> str:
    """'' when a DynamicQuantizeLSTM's products are exact in float32 (uint8 activations centered on
    their zero point, |q - zp| <= 255, times the centered weights: every partial sum an integer
    below 2^24 in any order), else the reason."""
    for i_w, what in ((1, "W"), (2, "R")):
        got = qlstm_weights(node, i_w)
        if got is None:
            return f"{what}, its scale or zero point is not a constant"
        if int(np.abs(got[0]).sum(axis=1).max(initial=0)) * 255 >= F32_EXACT:
            return f"{what}'s products may exceed 2^24 (not exact in float32)"
    return ""
