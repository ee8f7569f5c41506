"""Helpers for testing rewrite rules and passes: parse ONNX text, run, compare with onnxruntime.

The one helper module for pass tests (edgec's own tests and plugin authors' alike). Two styles:
`check_pass(text, pass_, expected_ops)` runs one pass instance on an IR model and checks it end to
end; `run_pipeline(proto, "a,b{k=v}")` runs pipeline text through the PassManager (as
`edgec compile` does), with `assert_model_outputs_match(before_proto, after_model, ...)` and
`op_types(model)` to check the result.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from edgec.infra.context import PassContext
from edgec.infra.manager import PassManager
from edgec.infra.pipeline import parse_pipeline
from edgec.ir.analysis import graph_inputs
from edgec.ir.domains import is_onnx_domain
from edgec.ir.loader import to_proto
from edgec.reference import run_ort, seeded_inputs


def parse(text: str, infer_shapes: bool = True) -> ir.Model:
    """ONNX text → checked IR model (with inferred shapes, as after the shape-inference pass)."""
    proto = onnx.parser.parse_model(text)
    onnx.checker.check_model(proto, full_check=True)
    if infer_shapes:
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    return ir.serde.deserialize_model(proto)


def parse_proto(text: str) -> onnx.ModelProto:
    """ONNX text → checked ModelProto, as written (no shape inference: a pipeline's
    infer-shapes pass, or its absence, is what the test is about)."""
    proto = onnx.parser.parse_model(text)
    onnx.checker.check_model(proto)
    return proto


def run_pipeline(proto: onnx.ModelProto, pipeline: str, ctx: PassContext | None = None,
                 fixpoint: bool = False) -> tuple[ir.Model, bool]:
    """Run pipeline text on a fresh IR copy of `proto` through the PassManager: (model, modified)."""
    model = ir.serde.deserialize_model(proto)
    result = PassManager(parse_pipeline(pipeline), fixpoint=fixpoint).run(model, ctx or PassContext())
    assert result.model is model
    return model, result.modified


def op_types(model: ir.Model) -> list[str]:
    """Op types of the main graph in order, Constant nodes included, domains left out."""
    return [n.op_type for n in model.graph]


def op_list(model: ir.Model) -> list[str]:
    """Ops in graph order; non-default domains as `domain.Op` (Constant nodes omitted)."""
    return [(f"{n.domain}.{n.op_type}" if not is_onnx_domain(n.domain) else n.op_type)
            for n in model.graph if n.op_type != "Constant"]


def text(model: ir.Model) -> str:
    return onnx.printer.to_text(to_proto(model))


def run(model: ir.Model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    proto = to_proto(model)
    onnx.checker.check_model(proto, full_check=False)
    return run_ort(proto, inputs)


def inputs_for(model: ir.Model, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    feeds = seeded_inputs(graph_inputs(model), seed)
    feeds = {k: np.asarray(v) for k, v in feeds.items()}  # 0-d inputs come back as numpy scalars
    return {k: np.asarray(v * scale, dtype=v.dtype) if v.dtype.kind == "f" else v for k, v in feeds.items()}


def assert_same_outputs(before: dict[str, np.ndarray], after: dict[str, np.ndarray], *, rtol: float, atol: float) -> None:
    from edgec.compare import assert_outputs_match

    assert_outputs_match(after, before, atol, rtol)  # NaN/Inf, missing/extra, shape, dtype: mismatches


def assert_model_outputs_match(before: onnx.ModelProto, after: ir.Model, atol: float, rtol: float,
                               seed: int = 0) -> None:
    """onnxruntime on `before` and on `after` (checked) agree on seeded inputs (unknown dims 2)."""
    from edgec.compare import assert_outputs_match

    after_proto = ir.serde.serialize_model(after)
    onnx.checker.check_model(after_proto)
    inputs = seeded_inputs(graph_inputs(ir.serde.deserialize_model(before)), seed, default_dim=2)
    assert_outputs_match(run_ort(after_proto, inputs), run_ort(before, inputs), atol, rtol)


def check_pass(model_text: str, pass_: object, expected_ops: list[str] | None, *, rtol: float = 1e-4,
               atol: float = 1e-4, seed: int = 0, modified: bool = True,
               inputs: dict[str, np.ndarray] | None = None) -> ir.Model:
    """Parse, run `pass_` (a Pass instance), assert the op list and onnxruntime outputs; return the model.
    The inputs are `inputs` when given (edge values: large, tiny, negative zero, ...), else
    `inputs_for(model, seed)`: seeded values drawn by edgec.reference.seeded_inputs."""
    model = parse(model_text)
    feeds = inputs if inputs is not None else inputs_for(model, seed)
    before_text = text(model)
    expected = run(model, feeds)
    result = pass_(model, PassContext())
    assert result.modified is modified, f"modified={result.modified}, expected {modified}"
    if not modified:
        assert text(model) == before_text, "pass changed the model but reported modified=False"
    if expected_ops is not None:
        assert op_list(model) == expected_ops
    assert_same_outputs(expected, run(model, feeds), rtol=rtol, atol=atol)
    return model
