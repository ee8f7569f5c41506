"""PassManager: runs a pipeline to a fixpoint, honouring the context and calling instruments."""

from __future__ import annotations

import time

import onnx_ir as ir

from edgec.errors import EdgecError, InternalError
from edgec.infra.context import PassContext
from edgec.infra.pass_base import Pass, PassResult
from edgec.infra.pipeline import Pipeline


class PassManager:
    def __init__(self, pipeline: Pipeline | list[Pass], fixpoint: bool = True):
        self.passes = list(pipeline.passes if isinstance(pipeline, Pipeline) else pipeline)
        self.fixpoint = fixpoint

    def run(self, model: ir.Model, ctx: PassContext | None = None) -> PassResult:
        ctx = ctx or PassContext()
        active = [p for p in self.passes if p.name not in ctx.disabled]
        any_modified = False
        for iteration in range(max(1, ctx.max_iterations)):
            changed = False
            for inst in ctx.instruments:
                if hasattr(inst, "set_iteration"):
                    inst.set_iteration(iteration)
            for p in active:
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
                changed |= result.modified
            any_modified |= changed
            if not (self.fixpoint and changed):
                break
        return PassResult(model, any_modified)
