"""Helpers for testing rewrite rules and passes: parse ONNX text, run, compare with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from edgec.ir.analysis import graph_inputs
from edgec.ir.loader import to_proto
from edgec.reference import run_ort, seeded_inputs


def parse(text: str) -> ir.Model:
    """ONNX text → checked IR model."""
    proto = onnx.parser.parse_model(text)
    onnx.checker.check_model(proto, full_check=True)
    return ir.serde.deserialize_model(proto)


def op_list(model: ir.Model) -> list[str]:
    """Ops in graph order; non-default domains as `domain.Op` (Constant nodes omitted)."""
    return [(f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type)
            for n in model.graph if n.op_type != "Constant"]


def text(model: ir.Model) -> str:
    return onnx.printer.to_text(to_proto(model))


def run(model: ir.Model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    proto = to_proto(model)
    onnx.checker.check_model(proto, full_check=False)
    return run_ort(proto, inputs)


def inputs_for(model: ir.Model, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    feeds = seeded_inputs(graph_inputs(model), seed)
    return {k: (v * scale).astype(v.dtype) if v.dtype.kind == "f" else v for k, v in feeds.items()}


def assert_same_outputs(before: dict[str, np.ndarray], after: dict[str, np.ndarray], *, rtol: float, atol: float) -> None:
    assert set(before) == set(after), f"outputs differ: {sorted(before)} vs {sorted(after)}"
    for name, expected in before.items():
        np.testing.assert_allclose(after[name], expected, rtol=rtol, atol=atol, err_msg=f"output {name}")
