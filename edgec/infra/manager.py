"""PassManager: runs a pipeline to a fixpoint, honouring the context and calling instruments.

After every pass, every value with a static shape must fit under --max-tensor-bytes
(`PassContext.max_tensor_bytes`): sizes that folding, unrolling or fixed input shapes reveal meet
the same limit as the model's declared ones, before a later pass or the backend allocates them.

A pass that found nothing to do is not run again until some pass has changed the model: passes
are functions of the graph (and the context, fixed for a run), so the re-run would find nothing
again. On a 200,000-node graph that nothing changes, this saves every fixpoint round after the
first (infer-shapes alone costs about 1 s per 10,000 nodes)."""

from __future__ import annotations

import time

import onnx_ir as ir

from edgec.errors import EdgecError, InternalError, ModelValidationError
from edgec.infra.context import PassContext
from edgec.infra.pass_base import Pass, PassResult
from edgec.infra.pipeline import Pipeline
from edgec.ir.safety import limit_nbytes, node_label


class PassManager:
    def __init__(self, pipeline: Pipeline | list[Pass], fixpoint: bool = True):
        self.passes = list(pipeline.passes if isinstance(pipeline, Pipeline) else pipeline)
        self.fixpoint = fixpoint

    def run(self, model: ir.Model, ctx: PassContext | None = None) -> PassResult:
        ctx = ctx or PassContext()
        active = [p for p in self.passes if p.name not in ctx.disabled]
        for p in active:  # options resolved once, before anything runs
            p.configure(ctx)
        any_modified = False
        version = 0  # how many pass runs have changed the model so far
        idle_since: dict[int, int] = {}  # index in `active` -> `version` when it last changed nothing
        for iteration in range(max(1, ctx.max_iterations)):
            changed = False
            for inst in ctx.instruments:
                if hasattr(inst, "set_iteration"):
                    inst.set_iteration(iteration)
            for i, p in enumerate(active):
                if idle_since.get(i) == version:
                    continue
                for inst in ctx.instruments:
                    inst.before_pass(p, model, ctx)
                t0 = time.perf_counter()
                try:
                    result = p(model, ctx)
                except EdgecError:
                    raise
                except Exception as e:
                    raise InternalError(f"pass '{p.name}' crashed: {type(e).__name__}: {' '.join(str(e).split())[:300]}") from e
                dt = time.perf_counter() - t0
                for inst in ctx.instruments:
                    inst.after_pass(p, model, ctx, result, dt)
                model = result.model
                if result.modified:
                    check_static_sizes(model, ctx.max_tensor_bytes, p.name)
                    version += 1
                else:
                    idle_since[i] = version
                changed |= result.modified
            any_modified |= changed
            if not (self.fixpoint and changed):
                break
        return PassResult(model, any_modified)


def check_static_sizes(model: ir.Model, limit: int, pass_name: str) -> None:
    """A one-line ModelValidationError for the first value (graph input or node output, also in
    subgraphs) whose static shape needs more than `limit` bytes, naming the value, the node and
    op producing it and the pass after which it appeared."""
    file = model.meta.get("edgec.source") or model.graph.name or "model"
    values = [(v, None) for v in model.graph.inputs]
    values += [(o, n) for n in ir.traversal.RecursiveGraphIterator(model.graph) for o in n.outputs]
    for v, node in values:
        if v.shape is None or v.dtype is None or not v.shape.is_static():
            continue
        dims = [int(d) for d in v.shape]
        nbytes = limit_nbytes(int(v.dtype), dims)
        if nbytes > limit:
            where = f" ({node_label(node.name, node.op_type)})" if node is not None else ""
            raise ModelValidationError(
                f"{file}: value '{v.name}'{where} of shape {dims} needs {nbytes:,} bytes after pass '{pass_name}', "
                f"over the limit of {limit:,} (--max-tensor-bytes)")
