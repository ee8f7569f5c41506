"""The onnxruntime reference for MatMulNBits models where edgec computes in float32.

accuracy_level 4 lets a runtime quantize MatMulNBits' activations to int8. edgec does so only on
targets with the 8-bit x4 dot product its int8 kernel is written for (VNNI, sdot); elsewhere (AVX2
without VNNI) it runs its float32 kernel, at least as accurate as asked, while onnxruntime still
quantizes the activations (4e-3 on a tiny decoder's logits, 0.11 on a 96-wide MatMul, AMD Zen 3).
Compared with edgec's float kernel, the reference is then the same model at accuracy_level 0."""

from __future__ import annotations

import onnx


def host_runs_nbits_in_float() -> bool:
    from edgec.targets import get_target
    from edgec.targets.dot import INT8_X4, dot_instructions

    return dot_instructions(get_target("host")) not in INT8_X4


def at_accuracy_level_0(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """(a copy of `model` with every MatMulNBits at accuracy_level 4 set to 0, how many changed)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    changed = 0
    for node in m.graph.node:
        for a in node.attribute:
            if node.op_type == "MatMulNBits" and a.name == "accuracy_level" and a.i == 4:
                a.i, changed = 0, changed + 1
    return m, changed
