"""edgec.prune.prune_model (the API `edgec distill` calls): a ModelProto in, a checked smaller
ModelProto and a report out; zero_masks for the unstructured modes; bad options rejected."""

import numpy as np
import onnx
import pytest

from edgec.errors import PipelineError
from edgec.prune import PruneOptions, agreement, prune_model, zero_masks
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
