"""prune-2-4: 2:4 semi-structured sparsity masks: in every 4 consecutive weights along the
reduction axis K, the 2 of largest magnitude are kept and the other 2 set to zero (50%).

K is what a sparse tensor core walks: a Conv weight's row (Cin/group x kH x kW, flattened, as
the im2col GEMM reads it), MatMul B's axis 0, Gemm B's axis 1 with transB (else 0). A layer whose
K is not a multiple of 4 is left alone (reported). 2:4 is the pattern NVIDIA's sparse tensor cores
(Ampere and later, through cuSPARSELt / TensorRT) execute at up to twice the dense rate; no
backend of edgec uses it today (its CPU and GPU kernels compute the zeros), so the masks are for
exporting a model to such a runtime, or for measuring the accuracy cost before doing so
(docs/pruning.md). `keep` and `protect_ends` as in prune-magnitude."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.passes.pruning._common import chosen_layers, set_constant


def mask_2_4(w: np.ndarray, k_axis: int) -> np.ndarray:
    """w with the 2 smallest-magnitude of every 4 consecutive weights along K zeroed (K is
    `k_axis` and, for a Conv weight, every axis after it, flattened)."""
    moved = np.moveaxis(w, 0 if k_axis != 0 else 1, 0)  # rows: the output axis
    rows = moved.reshape(moved.shape[0], -1, 4)
    order = np.argsort(np.abs(rows), axis=-1, kind="stable")
    out = rows.copy()
    np.put_along_axis(out, order[..., :2], 0, axis=-1)
    return np.moveaxis(out.reshape(moved.shape), 0, 0 if k_axis != 0 else 1)


@register_pass
class Prune24(Pass):
    """Apply 2:4 semi-structured sparsity masks to Conv/Gemm/MatMul weights along K."""

    name = "prune-2-4"
    options = {"keep": "", "protect_ends": True}
    changes_numerics = True

    def float_arithmetic(self, ctx) -> bool:
        return True

    def run(self, model: ir.Model, ctx) -> PassResult:
        o = self.opts
        take, report = chosen_layers(model, o)
        modified = False
        for node, w, k in take:
            arr = w.const_value.numpy()
            kdim = int(np.prod(arr.shape[1:])) if node.op_type == "Conv" else arr.shape[k]
            row = {"layer": node.name or w.name, "weight": w.name, "shape": list(arr.shape),
                   "sparsity_before": float((arr == 0).mean())}
            if kdim % 4:
                report.append({**row, "sparsity": row["sparsity_before"], "reason": f"K = {kdim} is not a multiple of 4"})
                continue
            new = mask_2_4(arr, k)
            if not np.array_equal(new, arr):
                set_constant(w, new)
                modified = True
            report.append({**row, "sparsity": float((new == 0).mean())})
        self.last_report = report
        return PassResult(model, modified)
