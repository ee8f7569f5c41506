"""A differential check of channel pruning on any model (the fuzzer's generated ones, the zoo's).

Pruning changes what a model computes, so onnxruntime on the original is not the reference.
What must hold instead: removing channel c computes exactly what the original computes with every
weight slice that reads channel c set to zero (the consumers' input channels, recorded by the pass
as `last_removed_inputs`). The channels it removes then no longer reach anything, and everything
else is unchanged. So: prepare the model as `edgec prune` does, prune a copy with
prune-channels (ends not protected, so that the most is pruned), zero those slices in the other
copy, and compare the two in onnxruntime on seeded inputs (NaN/Inf, shape, dtype, missing outputs
count as mismatches). The pruned model must also pass onnx.checker (full check).
"""

from __future__ import annotations

import numpy as np
import onnx


def check(model: onnx.ModelProto, ratio: float = 0.5, seed: int = 0, atol: float = 1e-4,
          rtol: float = 1e-4, feeds: dict[str, np.ndarray] | None = None, round_to: int = 1) -> dict:
    """{"status": "pruned" | "unchanged" | "mismatch" | "invalid", "groups", "pruned_groups",
    "detail"}. `feeds`: the inputs (default: seeded random ones, symbolic dims 2)."""
    import onnx_ir as ir

    from edgec.api import CompileOptions, optimize
    from edgec.compare import Tolerance, all_match, compare_outputs, summary
    from edgec.infra.context import PassContext
    from edgec.ir.analysis import graph_inputs
    from edgec.passes.pruning._common import set_constant
    from edgec.passes.pruning.prune_channels import PruneChannels
    from edgec.prune import PREPARE
    from edgec.reference import run_ort, seeded_inputs

    prepared, _ = optimize(ir.serde.deserialize_model(model), None, CompileOptions(target=None, passes=PREPARE))
    reference_proto = ir.serde.serialize_model(prepared)
    p = PruneChannels(ratio=ratio, protect_ends=False, round_to=round_to)
    p(prepared, PassContext())
    pruned = ir.serde.serialize_model(prepared)
    groups = getattr(p, "last_report", [])
    out = {"groups": len(groups), "pruned_groups": sum(1 for g in groups if g.get("pruned")), "detail": ""}
    if not out["pruned_groups"]:
        return {**out, "status": "unchanged"}
    try:
        onnx.checker.check_model(pruned, full_check=True)
    except Exception as e:  # noqa: BLE001 - any checker failure is the pass's bug
        return {**out, "status": "invalid", "detail": " ".join(str(e).split())[:300]}
    zeroed = ir.serde.deserialize_model(reference_proto)
    for (name, axis), idx in p.last_removed_inputs.items():
        v = zeroed.graph.initializers[name]
        arr = v.const_value.numpy().copy()
        np.moveaxis(arr, axis, 0)[idx] = 0
        set_constant(v, arr)
    if feeds is None:
        feeds = seeded_inputs(graph_inputs(ir.serde.deserialize_model(reference_proto)), seed, default_dim=2)
    try:
        got = run_ort(pruned, feeds)
    except Exception as e:  # noqa: BLE001 - onnxruntime refusing the pruned model is the pass's bug
        return {**out, "status": "invalid", "detail": "onnxruntime: " + " ".join(str(e).split())[:300]}
    want = run_ort(ir.serde.serialize_model(zeroed), feeds)
    diffs = compare_outputs(got, want, Tolerance(atol, rtol))
    if not all_match(diffs):
        return {**out, "status": "mismatch", "detail": summary(diffs)[:300]}
    return {**out, "status": "pruned"}
