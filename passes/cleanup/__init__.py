"""Cleanup passes: shape inference, constant folding, dead code, CSE, identity removal, input shapes.

One pass per module, named after the pass (`fold_constants.py` defines `fold-constants`).
"""

#: The default cleanup pipeline. `fix-input-shapes` is a no-op unless given `shapes`.
CLEANUP_PIPELINE = (
    "fix-input-shapes,infer-shapes,resolve-auto-pad,fold-constants,remove-identity-ops,"
    "eliminate-common-subexpressions,eliminate-dead-code,infer-shapes"
)
