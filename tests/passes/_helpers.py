"""Shared helpers for pass tests: parse ONNX text, run a pipeline, compare with onnxruntime."""

from __future__ import annotations

import onnx
import onnx_ir as ir

from edgec.compare import assert_outputs_match
from edgec.infra.context import PassContext
from edgec.infra.manager import PassManager
from edgec.infra.pipeline import parse_pipeline
from edgec.ir.analysis import graph_inputs
from edgec.reference import run_ort, seeded_inputs


def parse(text: str) -> onnx.ModelProto:
    proto = onnx.parser.parse_model(text)
    onnx.checker.check_model(proto)
    return proto


def run(proto: onnx.ModelProto, pipeline: str, ctx: PassContext | None = None, fixpoint: bool = False):
    model = ir.serde.deserialize_model(proto)
    result = PassManager(parse_pipeline(pipeline), fixpoint=fixpoint).run(model, ctx or PassContext())
    assert result.model is model
    return model, result.modified


def ops(model: ir.Model) -> list[str]:
    return [n.op_type for n in model.graph]


def assert_same_outputs(before: onnx.ModelProto, after: ir.Model, atol: float, rtol: float, seed: int = 0) -> None:
    after_proto = ir.serde.serialize_model(after)
    onnx.checker.check_model(after_proto)
    inputs = seeded_inputs(graph_inputs(ir.serde.deserialize_model(before)), seed, default_dim=2)
    expected = run_ort(before, inputs)
    actual = run_ort(after_proto, inputs)
    assert_outputs_match(actual, expected, atol, rtol)  # NaN/Inf, missing/extra, shape, dtype: mismatches
