"""edgec.prune.prune_model (the API `edgec distill` calls): a ModelProto in, a checked smaller
ModelProto and a report out; zero_masks for the unstructured modes; bad options rejected."""

import numpy as np
import onnx
import pytest

from edgec.errors import PipelineError
from edgec.prune import PruneOptions, agreement, prune_model, zero_masks
from tests.cli.test_prune_cli import WIDE
from tests.passes.test_prune_channels import RESIDUAL


def _model():
    return onnx.parser.parse_model(RESIDUAL)


def test_channel_mode_returns_a_smaller_checked_model_and_report():
    original = _model()
    pruned, rep = prune_model(original, PruneOptions(ratio=0.5, protect_ends=False))
    onnx.checker.check_model(pruned, full_check=True)
    assert rep.params_after < rep.params_before and rep.flops_after < rep.flops_before
    assert rep.bytes_after < rep.bytes_before
    assert {r["weight"]: r["shape_after"] for r in rep.layers}["w1"] == [4, 4, 3, 3]
    assert not any(p.key == "edgec.pruned_channels" for p in pruned.metadata_props)  # prunable again
    again, rep2 = prune_model(pruned, PruneOptions(ratio=0.5, protect_ends=False))
    assert rep2.params_after < rep2.params_before
    ag = agreement(original, pruned, samples=3)
    assert ag["samples"] == 3 and not ag["outputs"]["y"]["mismatch"] and ag["outputs"]["y"]["cosine"] < 1


def test_symbolic_batch_report_counts_flops_per_sample():
    """The report's FLOPs with a symbolic batch are per sample (symbolic dims counted as 1), the
    same figures as the batch-1 model's, not 0; the pruned model keeps its symbolic batch."""
    static = prune_model(_model(), PruneOptions(ratio=0.5, protect_ends=False))[1]
    sym_text = RESIDUAL.replace("float[1,", "float[N,").replace("int64[2] shp = {1, -1}", "int64[2] shp = {0, -1}")
    pruned, rep = prune_model(onnx.parser.parse_model(sym_text), PruneOptions(ratio=0.5, protect_ends=False))
    assert rep.flops_before > 0 and (rep.flops_before, rep.flops_after) == (static.flops_before, static.flops_after)
    assert rep.params_after == static.params_after
    assert pruned.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_ratio_zero_outputs_identical():
    original = _model()
    pruned, rep = prune_model(original, PruneOptions(ratio=0.0))
    assert rep.params_after == rep.params_before
    ag = agreement(original, pruned, samples=2)
    assert ag["outputs"]["y"]["max_abs"] == 0.0


@pytest.mark.parametrize("mode", ["unstructured", "2:4"])
def test_zero_masks_of_masked_modes(mode):
    pruned, rep = prune_model(_model(), PruneOptions(mode=mode, ratio=0.5, protect_ends=False))
    masks = zero_masks(pruned)
    assert "w1" in masks and rep.nonzero_after < rep.nonzero_before
    w1 = onnx.numpy_helper.to_array(next(t for t in pruned.graph.initializer if t.name == "w1"))
    np.testing.assert_array_equal(masks["w1"], w1 != 0)


@pytest.mark.parametrize("opts, words", [
    (dict(mode="rows"), "--mode must be one of"),
    (dict(ratio=1.0), "--ratio must be in [0, 1)"),
    (dict(mode="2:4", importance="bn"), "--mode channel only"),
    (dict(mode="channel", threshold=0.1), "unstructured only"),
    (dict(mode="unstructured", round_to=8), "--round-to applies"),
    (dict(layer_ratios={"w1": 2.0}), "--layer-ratio w1=2.0"),
])
def test_bad_options(opts, words):
    with pytest.raises(PipelineError, match=words.replace("[", r"\[").replace(")", r"\)").replace("(", r"\(")):
        prune_model(_model(), PruneOptions(**opts))


def test_python_compile_takes_prune_spec(tmp_path):
    import edgec

    with pytest.raises(PipelineError, match="--prune: mode must be one of"):
        edgec.compile(_model(), "host", output=tmp_path / "a", prune="rows")
    with pytest.raises(PipelineError, match=r"--ratio must be in \[0, 1\)"):
        edgec.compile(_model(), "host", output=tmp_path / "a", prune="channel:1.5")


# tests/cli/test_prune_cli.py's three 1x1 convs with a 144-channel middle layer
WIDE144 = WIDE.replace("float[32,16,1,1] w1", "float[144,16,1,1] w1").replace("float[4,32,1,1] w2", "float[4,144,1,1] w2")


@pytest.mark.parametrize("target, bits", [("x86-64-avx2", 256), ("x86-64-avx512", 512), ("armv8", 128)])
def test_compile_prune_keeps_multiples_of_16_channels(target, bits):
    """`compile --prune` rounds to TargetSpec.prune_channel_multiple: 16 on every CPU target (the AVX2
    block alone left 9/13/17/51-block convs that ran MobileNetV2's pruned kernels at 0.659 of the
    original's time for 0.577 of its FLOPs). The pruned model still computes what onnxruntime does."""
    import dataclasses

    import onnx_ir as ir

    from edgec.api import CompileOptions, optimize
    from edgec.compare import assert_outputs_match
    from edgec.ir.analysis import graph_inputs
    from edgec.prune import parse_prune_spec
    from edgec.reference import run_ort, seeded_inputs
    from edgec.targets.registry import get_target

    rng = np.random.default_rng(0)
    text = WIDE144
    for name, n in (("W0", 16 * 3), ("W1", 144 * 16), ("W2", 4 * 144)):
        text = text.replace(name, ", ".join(f"{v:.3f}" for v in rng.uniform(-1, 1, n)))
    spec = get_target(target)
    assert spec.vector_bits == bits and spec.prune_channel_multiple == 16
    model = ir.serde.deserialize_model(onnx.parser.parse_model(text))
    opts = CompileOptions(target=target, prune=parse_prune_spec("channel:0.3"), passes="infer-shapes")
    out, _ = optimize(model, spec, opts)
    shapes = {v.name: list(v.shape) for v in out.graph.initializers.values()}
    # 0.7 x 144 = 100.8 channels: 96 (multiples of 8 kept 104 on AVX2: 13 blocks, a prime count)
    assert shapes["w1"][0] == 96 and shapes["w2"][1] == 96 and shapes["w0"] == [16, 3, 1, 1]
    proto = ir.serde.serialize_model(out)
    feeds = seeded_inputs(graph_inputs(out), 0)
    expected, _ = prune_model(onnx.parser.parse_model(text), PruneOptions(ratio=0.3, round_to=16))
    got = run_ort(proto, feeds)
    assert_outputs_match(got, run_ort(expected, feeds), atol=1e-5, rtol=1e-5)  # what `prune --round-to 16` writes
    gpu = dataclasses.replace(spec, tvm={"kind": "cuda"})
    assert gpu.prune_channel_multiple is None
