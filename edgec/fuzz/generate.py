"""Random *valid* ONNX models (opset 17, IR 8) from a seed: `random_model(seed, family)`.

A family is an input builder plus a table of blocks (`blocks_*.py`, name -> (builder, weight,
applies-to)); a model is the input followed by 2..8 weighted random blocks whose predicate
accepts the current tensor, with elementwise blocks mixed in, an occasional intermediate output.
Every model passes `onnx.checker.check_model(full_check=True)` and runs in onnxruntime on
`edgec.reference.seeded_inputs` (floats U(-1, 1), ints in [0, 4), random bools).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx

from edgec.fuzz.blocks_cnn import CNN_BLOCKS, cnn_head, cnn_input
from edgec.fuzz.blocks_elementwise import ELEMENTWISE_BLOCKS
from edgec.fuzz.blocks_tensor import REDUCE_SLICE_BLOCKS, SHAPE_BLOCKS, tensor_input
from edgec.fuzz.blocks_transformer import TRANSFORMER_BLOCKS, transformer_input
from edgec.fuzz.graph import Graph, Value, broadcast

_ANY = {name: (fn, w, lambda x: True) for name, (fn, w) in ELEMENTWISE_BLOCKS.items()}


def _elementwise_input(g: Graph) -> Value:
    """One input combined with a second, broadcastable one (some dims 1)."""
    x = tensor_input(g)
    if g.chance(0.6):
        other = tuple(d if g.chance(0.5) else 1 for d in x.shape[int(g.rng.integers(x.rank)):])
        y = g.input(other or (1,), prefix="y")
        x = g.op(g.pick(("Add", "Mul", "Sub")), [x, y], broadcast(x.shape, y.shape))
    return x


@dataclass(frozen=True)
class Family:
    make_input: Callable[[Graph], Value]
    blocks: dict
    mix_elementwise: float        # chance that a step is an elementwise block instead
    head: Callable | None = None  # optional final block


FAMILIES: dict[str, Family] = {
    "cnn": Family(cnn_input, CNN_BLOCKS, 0.25, cnn_head),
    "transformer": Family(transformer_input, TRANSFORMER_BLOCKS, 0.2),
    "shapes": Family(tensor_input, SHAPE_BLOCKS, 0.2),
    "elementwise": Family(_elementwise_input, _ANY, 0.0),
    "reduce_slice": Family(tensor_input, REDUCE_SLICE_BLOCKS, 0.2),
}
FAMILY_NAMES = tuple(FAMILIES)


def family_of_seed(seed: int) -> str:
    """The family a seed gets when none is asked for: round robin, so samples cover them all."""
    return FAMILY_NAMES[seed % len(FAMILY_NAMES)]


def _choose_block(g: Graph, table: dict, x: Value) -> tuple[str, Callable]:
    names = [n for n, (_, _, ok) in table.items() if ok(x)]
    weights = np.array([table[n][1] for n in names], dtype=float)
    name = names[int(g.rng.choice(len(names), p=weights / weights.sum()))]
    return name, table[name][0]


def build(seed: int, family: str, n_blocks: int | None = None,
          all_outputs: bool = False) -> tuple[onnx.ModelProto, list[str]]:
    """The model and the names of the blocks it was built from. `n_blocks` overrides the random
    count (for shrinking a failure by hand); `all_outputs`: see `Graph.model`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family '{family}' (one of {', '.join(FAMILY_NAMES)})")
    fam = FAMILIES[family]
    g = Graph(np.random.default_rng([seed, FAMILY_NAMES.index(family)]))
    x = fam.make_input(g)
    used = []
    drawn = int(g.rng.integers(2, 9))   # drawn even when overridden: the first blocks stay the same
    count = n_blocks if n_blocks is not None else drawn
    for _ in range(count):
        table = _ANY if g.chance(fam.mix_elementwise) else fam.blocks
        name, fn = _choose_block(g, table, x)
        x = fn(g, x)
        used.append(name)
        if g.chance(0.15):
            g.output(x)   # an intermediate that is also a graph output
    if fam.head is not None and g.chance(0.3):
        x = fam.head(g, x)
        used.append("head")
    g.output(x)
    doc = f"edgec.fuzz family={family} seed={seed} blocks={','.join(used)}"
    model = g.model(f"fuzz_{family}_{seed}", doc, all_outputs)
    model.metadata_props.add(key="edgec.fuzz.family", value=family)
    model.metadata_props.add(key="edgec.fuzz.blocks", value=",".join(used))
    return model, used


def random_model(seed: int, family: str | None = None, n_blocks: int | None = None) -> onnx.ModelProto:
    """A valid random model of `family` (default: `family_of_seed(seed)`), deterministic in seed."""
    return build(seed, family or family_of_seed(seed), n_blocks)[0]


def describe(model: onnx.ModelProto) -> dict:
    """Family, blocks, op histogram and size of a generated model (for the fuzz table)."""
    props = {p.key: p.value for p in model.metadata_props}
    ops = Counter(n.op_type for n in model.graph.node)
    return {"family": props.get("edgec.fuzz.family", "?"),
            "blocks": [b for b in props.get("edgec.fuzz.blocks", "").split(",") if b],
            "ops": dict(ops.most_common()), "nodes": len(model.graph.node),
            "inputs": len(model.graph.input), "outputs": len(model.graph.output)}
