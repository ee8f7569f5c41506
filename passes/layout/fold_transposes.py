"""fold-transposes: Transpose and reshape-like chains to one op (or none).

* Transpose(Transpose(x, p1), p2) → Transpose(x, p1∘p2), or x if that is the identity
* Transpose with the identity permutation → x
* Transpose that only moves size-1 dims (static shape) → Reshape
* chains of Reshape / Squeeze / Unsqueeze / Flatten with a static final shape → one Reshape

Inner nodes with other consumers are kept (and still feed those), so a rewrite never adds nodes.
Bit-exact: pure data movement (reshape-like ops keep row-major order; final shapes with a 0 dim
are not taken, Reshape's 0 meaning "copy"). See docs/pass-safety.md.
"""

from __future__ import annotations

import numpy as np

from edgec.infra.pass_base import register_pass
from edgec.passes.fusion._common import rank, static_shape
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

from ._perm import compose, is_identity, only_moves_unit_dims, perm_of

RESHAPES = ("Reshape", "Squeeze", "Unsqueeze", "Flatten")


class TransposeTranspose(RewriteRule):
    shared_intermediates = True

    def pattern(self, op, x):
        return op.Transpose(op.Transpose(x, _name="t1"), _name="t2")

    def check(self, match):
        r = rank(match["x"])
        if perm_of(match.node("t1"), r) is None or perm_of(match.node("t2"), r) is None:
            return MatchResult.fail("default permutation of unknown rank")
        return MatchResult.success()

    def rewrite(self, op, match):
        r = rank(match["x"])
        p = compose(perm_of(match.node("t1"), r), perm_of(match.node("t2"), r))
        return match["x"] if is_identity(p) else op.Transpose(match["x"], perm=p)


class IdentityTranspose(RewriteRule):
    def pattern(self, op, x):
        return op.Transpose(x, _name="t")

    def check(self, match):
        p = perm_of(match.node("t"), rank(match["x"]))
        return MatchResult(p is not None and is_identity(p), "permutation is not the identity")

    def rewrite(self, op, match):
        return match["x"]


class TransposeAsReshape(RewriteRule):
    def pattern(self, op, x):
        return op.Transpose(x, _name="t")

    def check(self, match):
        shape = static_shape(match["x"])
        p = perm_of(match.node("t"), rank(match["x"]))
        if shape is None or p is None:
            return MatchResult.fail("input shape is not static")
        if is_identity(p) or not only_moves_unit_dims(p, shape):
            return MatchResult.fail("Transpose moves dims larger than 1")
        return MatchResult.success()

    def rewrite(self, op, match):
        shape = static_shape(match["x"])
        p = perm_of(match.node("t"), len(shape))
        return op.Reshape(match["x"], np.array([shape[a] for a in p], dtype=np.int64))


class ReshapeChain(RewriteRule):
    shared_intermediates = True

    def pattern(self, op, x):
        return [getattr(op, outer)(getattr(op, inner)(x, _allow_other_inputs=True, _name="inner"),
                                   _allow_other_inputs=True, _name="outer")
                for outer in RESHAPES for inner in RESHAPES]

    def check(self, match):
        out = static_shape(match.output)
        if out is None:
            return MatchResult.fail("final shape is not static")
        if 0 in out:
            return MatchResult.fail("final shape has a zero dim")
        return MatchResult.success()

    def rewrite(self, op, match):
        return op.Reshape(match["x"], np.array(static_shape(match.output), dtype=np.int64))


RULES = (TransposeTranspose, IdentityTranspose, TransposeAsReshape, ReshapeChain)


@register_pass
class FoldTransposes(RewriteRulePass):
    """Fold Transpose pairs (to one or none) and static Reshape/Squeeze/Unsqueeze/Flatten chains to one Reshape."""

    name = "fold-transposes"
    rules = RULES
