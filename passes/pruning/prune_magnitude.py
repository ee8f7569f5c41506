"""prune-magnitude: unstructured magnitude pruning, w = 0 where |w| <= theta.

The weights of top-level Conv / Gemm / MatMul with a constant float initializer (biases and
other constants are left alone). theta comes from `threshold` when it is given (>= 0), else from
`ratio`: the ratio-quantile of |w| over all the weights (`scope` global: one theta, small layers
can lose more than large ones) or over each weight (`scope` layer: every layer loses `ratio`).
`layer_ratios` ('name=r,...', node or weight names, globs) gives a layer its own ratio (and so its
own theta); `keep` and, with `protect_ends`, the layers reading a graph input or writing a graph
output are not touched. The shapes do not change: the zeros make the model compress well and
are what a sparse kernel would skip; edgec's CPU kernels compute them like any other weight
(docs/pruning.md). `last_report`: per layer, its weight and the fraction of zeros before/after."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.errors import PipelineError
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.passes.pruning._common import (
    chosen_layers,
    layer_ratios,
    named,
    set_constant,
)


@register_pass
class PruneMagnitude(Pass):
    """Zero the smallest-magnitude Conv/Gemm/MatMul weights (unstructured; shapes unchanged)."""

    name = "prune-magnitude"
    options = {"ratio": 0.5, "threshold": -1.0, "scope": "global", "keep": "", "layer_ratios": "",
               "protect_ends": True}
    changes_numerics = True

    def float_arithmetic(self, ctx) -> bool:
        return True

    def run(self, model: ir.Model, ctx) -> PassResult:
        o = self.opts
        if not 0 <= o["ratio"] < 1:
            raise PipelineError(f"prune-magnitude: ratio must be in [0, 1), got {o['ratio']}")
        if o["scope"] not in ("global", "layer"):
            raise PipelineError(f"prune-magnitude: scope must be global or layer, got '{o['scope']}'")
        rules = layer_ratios(o["layer_ratios"])
        take, report = chosen_layers(model, o)
        arrays = {id(w): np.abs(w.const_value.numpy()) for _, w, _ in take}
        own = {id(w): r for n, w, _ in take for pat, r in rules if named(n, [pat])}
        theta_all = None
        if o["threshold"] < 0 and o["scope"] == "global" and o["ratio"] > 0:
            pool = [a.ravel() for _, w, _ in take if id(w) not in own for a in [arrays[id(w)]]]
            theta_all = float(np.quantile(np.concatenate(pool), o["ratio"])) if pool else None
        modified = False
        for node, w, _ in take:
            a = arrays[id(w)]
            ratio = own.get(id(w), o["ratio"])
            if o["threshold"] >= 0:
                theta = o["threshold"]
            elif id(w) not in own and theta_all is not None:
                theta = theta_all
            else:
                theta = float(np.quantile(a, ratio)) if ratio > 0 else None
            arr = w.const_value.numpy()
            before = float((arr == 0).mean())
            if theta is not None:
                mask = a <= theta
                if mask.any() and not (arr[mask] == 0).all():
                    set_constant(w, np.where(mask, np.zeros((), arr.dtype), arr))
                    modified = True
            after = float((w.const_value.numpy() == 0).mean())
            report.append({"layer": node.name or w.name, "weight": w.name, "shape": list(arr.shape),
                           "theta": theta, "sparsity_before": before, "sparsity": after})
        self.last_report = report
        return PassResult(model, modified)
