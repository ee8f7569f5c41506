"""onnxsim: run onnx-simplifier (constant folding, shape inference and the onnx optimizer's fusions)
over the whole model. Not in any default pipeline; ask for it by name (`--passes onnxsim,...`).

Measured by benchmarks/onnxsim_vs_cleanup.py over 29 models (examples, tests/models, the
ResNet/MobileNet/BERT benchmark models, cached zoo models): after CLEANUP_PIPELINE alone onnxsim
leaves fewer nodes on 20 (1656 vs 2017 in all), mostly what edgec's -O2 fusion stage does too
(BatchNormalization into Conv, MatMul + Add into Gemm, shape chains once shapes are known). After
edgec's whole -O2 graph pipeline with the input shapes fixed (as `edgec compile` runs it) it still
changes 15 of 29 models, 2095 -> 2018 nodes: largely MatMul + Add rewritten to Gemm + Reshape
(where fuse-matmul-add had left the MatMul form), plus real folds on a few (khmer_segmenter 89 -> 56,
paddle_transformer 50 -> 39, tiny_gpt2_kv 58 -> 53). It costs 1.5-5 s to import (after onnx)
and fails on IR version 14 models (below), hence opt-in.

The model goes to onnxsim as a ModelProto (external data loaded into memory first) and comes back
as a new onnx-ir model: a functional pass (`in_place = False`). onnxsim is imported on the first
run, never when the registry lists passes. Any failure of onnxsim is one line naming this pass
(InternalError, exit 1): e.g. a model of IR version 14 (onnx 1.23's default), which onnxruntime
1.31 -- onnxsim's constant folder -- refuses.
"""

from __future__ import annotations

import onnx_ir as ir

from edgec.errors import InternalError, PipelineError
from edgec.infra.pass_base import Pass, PassResult, register_pass

_PROTO_LIMIT = 2 << 30  # protobuf's limit: onnxsim takes the model as one ModelProto


def _signature(model: ir.Model) -> tuple:
    """What onnxsim can change: the nodes (op, inputs, outputs, in order) of every graph and the
    initializers. (The proto itself differs after any run: onnxsim rewrites names and metadata.)"""
    nodes = tuple((n.domain, n.op_type, tuple(v.name if v is not None else "" for v in n.inputs),
                   tuple(v.name for v in n.outputs)) for n in ir.traversal.RecursiveGraphIterator(model.graph))
    return nodes, tuple(sorted(model.graph.initializers))


@register_pass
class Onnxsim(Pass):
    """Simplify the model with onnx-simplifier (fold constants, infer shapes, fuse); off by default."""

    name = "onnxsim"
    in_place = False
    options = {"fuse_bn": True, "include_subgraph": False}

    def run(self, model: ir.Model, ctx) -> PassResult:
        try:
            import onnxsim
        except ImportError as e:
            raise PipelineError(f"pass 'onnxsim' needs onnx-simplifier (pip install onnxsim): {e}") from None
        ir.external_data.load_to_model(model)
        nbytes = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
        if nbytes >= _PROTO_LIMIT:
            raise PipelineError(f"pass 'onnxsim': the model's {nbytes >> 20} MiB of weights exceed the 2 GiB "
                                "a ModelProto can hold; leave onnxsim out of the pipeline")
        proto = ir.serde.serialize_model(model)
        try:
            simplified, ok = onnxsim.simplify(proto, check_n=0, skip_fuse_bn=not self.opts["fuse_bn"],
                                              include_subgraph=self.opts["include_subgraph"], certify=False)
        except Exception as e:  # onnxsim's own failure (its C++ core raises RuntimeError, ValueError...)
            raise InternalError(f"pass 'onnxsim': onnx-simplifier {onnxsim.__version__} failed: "
                                f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
        if not ok:
            raise InternalError("pass 'onnxsim': onnx-simplifier reports its result unchecked or wrong")
        out = ir.serde.deserialize_model(simplified)
        out.meta.update(model.meta)
        return PassResult(out, _signature(out) != _signature(model))
