"""Differential fuzzing in CI: a fixed sample of random *valid* models (edgec.fuzz.generate)
compiled at -O0 and -O2, run, and compared with onnxruntime. A mismatch, internal error (exit 1),
crash or hang fails; a rejection (exit 2) of a valid model is a gap, and most of the sample must
compile and match, or the test would test nothing. `benchmarks/fuzz.py` runs thousands."""

from __future__ import annotations

import shutil
from collections import Counter

import onnx
import pytest

from edgec.fuzz.generate import FAMILY_NAMES, build, family_of_seed, random_model
from edgec.fuzz.run import FAILURE_KINDS, Runner, signature
from edgec.fuzz.validate import check_generated

X86_SEEDS = list(range(16))          # round robin: 3-4 models of each family
ARM_SEEDS = [0, 1]                   # a CNN and a transformer under qemu
MIN_MATCH = 0.8


def _run(seeds: list[int], target: str, levels=(0, 2)) -> list[dict]:
    with Runner(timeout=300) as runner:
        return [runner.run(s, family_of_seed(s), target, lvl) for s in seeds for lvl in levels]


def _assert_sound(records: list[dict]) -> None:
    failures = [r for r in records if r["kind"] in FAILURE_KINDS]
    lines = [f"seed {r['seed']} ({r['family']}) {r['target']} -O{r['level']}: {r['kind']} in "
             f"{r['stage'] or '-'}: {r['detail'][:300]}" for r in failures]
    assert not failures, f"{len(failures)} of {len(records)} compiles failed:\n" + "\n".join(lines)
    kinds = Counter(r["kind"] for r in records)
    others = sorted({signature(r) for r in records if r["kind"] != "match"})
    assert kinds["match"] >= MIN_MATCH * len(records), f"only {kinds['match']} of {len(records)} matched: {others}"


def test_generated_models_are_valid_and_deterministic():
    for family in FAMILY_NAMES:
        for seed in range(40):
            model, _ = build(seed, family, all_outputs=True)   # every intermediate shape checked too
            check_generated(model)
        assert random_model(7, family).SerializeToString() == random_model(7, family).SerializeToString()
    ops = Counter(n.op_type for s in range(100) for n in random_model(s).graph.node)
    for op in ("Conv", "BatchNormalization", "MaxPool", "Resize", "Pad", "Concat", "Split", "MatMul", "Gemm",
               "Softmax", "LayerNormalization", "ReduceMean", "Erf", "Where", "Gather", "Shape", "Slice",
               "Expand", "Tile", "Cast", "Div", "Sqrt", "Log", "Pow"):
        assert ops[op] > 0, f"100 seeds generated no {op}"


def test_generated_model_checker_full():
    onnx.checker.check_model(random_model(3), full_check=True)
    assert random_model(3).opset_import[0].version == 17 and random_model(3).ir_version == 8


@pytest.mark.slow
def test_sample_matches_onnxruntime_x86():
    _assert_sound(_run(X86_SEEDS, "x86-64"))


@pytest.mark.slow
def test_sample_matches_onnxruntime_armv8():
    missing = [t for t in ("qemu-aarch64", "aarch64-linux-gnu-g++") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"armv8 needs {', '.join(missing)} on PATH (apt: qemu-user, g++-aarch64-linux-gnu)")
    _assert_sound(_run(ARM_SEEDS, "armv8"))


BROKEN_PASSES = '''
import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass


@register_pass
class FuzzFlipSign(Pass):
    """Deliberately broken: negates the weights of the first Conv."""

    name = "fuzz-flip-sign"

    def run(self, model, ctx):
        for node in model.graph:
            if node.op_type == "Conv" and node.inputs[1].const_value is not None:
                w = node.inputs[1]
                w.const_value = ir.tensor(-w.const_value.numpy(), name=w.name)
                return PassResult(model, True)
        return PassResult(model, False)


@register_pass
class FuzzCrash(Pass):
    """Deliberately broken: crashes on any model with a Conv."""

    name = "fuzz-crash"

    def run(self, model, ctx):
        if any(n.op_type == "Conv" for n in model.graph):
            raise IndexError("deliberate")
        return PassResult(model, False)
'''


@pytest.fixture(scope="module")
def broken_plugin(tmp_path_factory):
    from edgec.infra.registry import load_plugin_file

    path = tmp_path_factory.mktemp("plugin") / "broken.py"
    path.write_text(BROKEN_PASSES)
    return load_plugin_file(path)


@pytest.mark.parametrize("broken,kind", [("fuzz-flip-sign", "mismatch"), ("fuzz-crash", "internal")])
def test_the_fuzzer_catches_a_deliberately_broken_pass(broken, kind, broken_plugin, tmp_path):
    """The fuzz harness must see an edgec bug as a failure naming the pass: a wrong result as a
    mismatch, a crash as an internal error (exit 1), never as a rejection of the model."""
    from edgec.fuzz.run import fuzz_one
    from edgec.pipelines import default_pipeline
    from edgec.targets.registry import get_target

    assert broken in broken_plugin
    text = default_pipeline(get_target("x86-64"), 2).replace("fold-constants,", f"fold-constants,{broken},", 1)
    cnn_seeds = [s for s in range(60) if family_of_seed(s) == "cnn"
                 and any(n.op_type == "Conv" for n in random_model(s, "cnn").graph.node)][:2]
    records = [r for s in cnn_seeds for r in fuzz_one(s, "cnn", "x86-64", levels=(2,), workdir=tmp_path, passes=text)]
    assert records and all(r["kind"] == kind and r["stage"] == broken for r in records), \
        [(r["kind"], r["stage"], r["detail"][:200]) for r in records]
    assert all(r["kind"] in FAILURE_KINDS for r in records)
