"""Every ONNX backend node test model survives IR deserialize -> serialize unchanged.

Normalization before comparing: (1) scalar proto2 fields explicitly set to their default value are
cleared (the IR writes e.g. `domain: ""` only when non-default); (2) a graph's value_info entry for
an initializer whose dtype and shape are exactly the tensor's is dropped: onnx_ir's serializer always
records initializer types in value_info (including subgraph initializers, e.g. the FlexAttention
score_mod tests), which is derived information, not a change of the model.
"""

from __future__ import annotations

import warnings

import onnx
import onnx_ir as ir
import pytest
from google.protobuf.descriptor import FieldDescriptor

CHUNKS = 8

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from onnx.backend.test.case.node import collect_testcases

    CASES = sorted(collect_testcases(None), key=lambda c: c.name)


def _clear_defaults(msg) -> None:
    for field, value in msg.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for sub in (value if field.is_repeated else [value]):
                _clear_defaults(sub)
        elif not field.is_repeated and value == field.default_value:
            msg.ClearField(field.name)


def _graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for g in attr.graphs:
                yield from _graphs(g)


def _drop_implied_initializer_value_info(model: onnx.ModelProto) -> None:
    for graph in _graphs(model.graph):
        inits = {t.name: t for t in graph.initializer}
        keep = []
        for vi in graph.value_info:
            t = inits.get(vi.name)
            tt = vi.type.tensor_type
            implied = (
                t is not None and vi.type.WhichOneof("value") == "tensor_type" and tt.elem_type == t.data_type
                and tt.HasField("shape") and [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
                == list(t.dims) and not vi.doc_string and not vi.metadata_props
            )
            if not implied:
                keep.append(vi)
        del graph.value_info[:]
        graph.value_info.extend(keep)


def normalize(model: onnx.ModelProto) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    _drop_implied_initializer_value_info(m)
    _clear_defaults(m)
    return m.SerializeToString(deterministic=True)


def _checks(model: onnx.ModelProto) -> bool:
    try:
        onnx.checker.check_model(model)
        return True
    except Exception:
        return False


def test_collected_all_cases():
    assert len(CASES) > 1800


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_roundtrip_chunk(chunk):
    failures = []
    for case in CASES[chunk::CHUNKS]:
        original = case.model
        result = ir.serde.serialize_model(ir.serde.deserialize_model(original))
        if normalize(result) != normalize(original):
            failures.append(f"{case.name}: proto differs after round trip")
        elif _checks(original) and not _checks(result):
            failures.append(f"{case.name}: checker fails after round trip")
    assert not failures, "\n".join(failures)


def test_normalization_detects_changes():
    case = CASES[0]
    changed = ir.serde.serialize_model(ir.serde.deserialize_model(case.model))
    changed.graph.node[0].op_type += "X"
    assert normalize(changed) != normalize(case.model)
