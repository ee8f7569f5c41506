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

from edgec.ir.safety import all_graphs

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


def _drop_implied_initializer_value_info(model: onnx.ModelProto) -> None:
    for graph in all_graphs(model.graph):
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


def test_to_networkx_edges_follow_producers():
    import networkx as nx
    import onnx

    from edgec.ir import load_model, to_networkx
    from tests.conftest import EXAMPLES

    model = load_model(EXAMPLES / "small_cnn.onnx")
    g = to_networkx(model.graph)
    nodes = list(model.graph)
    assert g.number_of_nodes() == len(nodes) and nx.is_directed_acyclic_graph(g)
    edges = sum(1 for n in nodes for v in n.inputs if v is not None and v.producer() is not None)
    assert g.number_of_edges() == edges
    assert list(nx.topological_sort(g))[0] == 0  # the stem conv reads only the graph input
    assert onnx.load(EXAMPLES / "small_cnn.onnx").graph.node[0].op_type == g.nodes[0]["op"]
