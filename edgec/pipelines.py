"""Default pass pipelines per optimization level and target layout, as data (`edgec compile --print-pipeline`).

A pipeline is the concatenation of the `STAGES` that apply to (level, TargetSpec.layout):

-O0  what the backend needs: static input shapes, inferred value shapes, and control flow it cannot
     lower rewritten away: constant folding (If conditions, trip counts), If folding, Loop/Scan
     unrolling, LSTM/GRU/RNN decomposition; shape-determining runtime inputs that the static
     shapes fix compiled as constants behind a runtime guard (`specialize-shape-inputs`)
-O1  cleanup: constant folding (incl. shape subgraphs), identity removal, CSE, DCE; control flow
     as at -O0
-O2  cleanup + fusion: BatchNorm/scale folding, zero-Pad folding, attention/GELU/LayerNorm/
     RMSNorm/SiLU/HardSwish recognition, activation fusion into Conv/Gemm/MatMul, transpose and
     reshape folding; QDQ regions fused into integer ops (`fuse-qdq`) on targets with int8
     kernels (x86 AVX2 / AVX-512 VNNI, ARM NEON); NHWC targets (ARM) also convert to NHWC
     (`to-nhwc`), NCHW CPU targets pad activation channels to the vector block (`pad-channels`);
     then cleanup again
-O3  as -O2 (reserved for layout and schedule choices that trade compile time for speed)
"""

from __future__ import annotations

from dataclasses import dataclass

from edgec.errors import PipelineError
from edgec.passes.cleanup import CLEANUP_PIPELINE
from edgec.passes.control import CONTROL_PIPELINE
from edgec.passes.fusion import FUSION_PIPELINE
from edgec.passes.layout import LAYOUT_PIPELINE
from edgec.targets.dot import dot_instructions
from edgec.targets.registry import TargetSpec


@dataclass(frozen=True)
class Stage:
    text: str
    levels: frozenset[int]
    layouts: frozenset[str] | None = None  # None: every target layout
    dots: frozenset[str] | None = None  # None: every target; else those with these dot-product instructions

    def applies(self, level: int, layout: str, dot: str | None = None) -> bool:
        return level in self.levels and (self.layouts is None or layout in self.layouts) and \
            (self.dots is None or dot in self.dots)


_O2_UP = frozenset({2, 3})

STAGES: tuple[Stage, ...] = (
    Stage("fix-input-shapes,infer-shapes,fold-constants", frozenset({0})),
    Stage(CLEANUP_PIPELINE, frozenset({1, 2, 3})),
    # fold-constants (above) runs before fold-if: If conditions are usually shape computations
    # shape-determining runtime inputs that the (now inferred) static shapes fix become guarded constants
    Stage(f"{CONTROL_PIPELINE},eliminate-dead-code,infer-shapes,specialize-shape-inputs", frozenset({0, 1, 2, 3})),
    # QDQ regions into integer ops where the backend has int8 kernels for them (targets/dot.py)
    Stage("fuse-qdq", _O2_UP, dots=frozenset({"vnni", "sdot", "neon", "pmaddwd"})),
    Stage(FUSION_PIPELINE, _O2_UP),
    Stage(LAYOUT_PIPELINE, _O2_UP, frozenset({"NHWC"})),
    # channels padded to the CPU backend's vector block (the block comes from the target: see api.optimize)
    Stage("pad-channels", _O2_UP, frozenset({"NCHW"})),
    # LM heads read transposed: the weight stored transposed (a tied embedding reads that one copy)
    Stage("store-transposed-weights,fold-transposes,simplify-slice-concat,eliminate-dead-code,infer-shapes", _O2_UP),
)

LEVELS = (0, 1, 2, 3)


def default_pipeline(spec: TargetSpec | None, opt_level: int, io_layout: str = "nchw") -> str:
    """The pipeline text for a target (None: layout NCHW) at `opt_level`.

    `io_layout="nhwc"` passes `io_layout=nhwc` to `to-nhwc`; it needs a pipeline that has it.
    """
    if opt_level not in LEVELS:
        raise PipelineError(f"optimization level must be one of {list(LEVELS)}, got {opt_level}")
    layout = spec.layout if spec is not None else "NCHW"
    dot = dot_instructions(spec) if spec is not None else None
    text = ",".join(s.text for s in STAGES if s.applies(opt_level, layout, dot))
    if io_layout == "nhwc":
        if "to-nhwc" not in text.split(","):
            name = spec.name if spec is not None else "no target"
            raise PipelineError(f"--io-layout nhwc needs the to-nhwc pass: target '{name}' (layout {layout}) "
                                f"at -O{opt_level} does not run it")
        text = ",".join("to-nhwc{io_layout=nhwc}" if p == "to-nhwc" else p for p in text.split(","))
    elif io_layout != "nchw":
        raise PipelineError(f"io layout must be nchw or nhwc, got '{io_layout}'")
    return text
