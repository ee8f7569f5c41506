"""edgec's pattern-rewrite engine: rules (pattern / check / rewrite) applied greedily to a fixpoint.

See `rule.py` for how to write a rule and `driver.py` for how rule sets are applied.
"""

from edgec.ir.constants import const_array
from edgec.rewrite.driver import EDGEC_DOMAIN, RewriteRulePass, apply_rules
from edgec.rewrite.matcher import Match
from edgec.rewrite.pattern import Const, PatternBuilder, Var
from edgec.rewrite.rule import MatchResult, RewriteBuilder, RewriteRule
from edgec.rewrite.trace import RewriteTrace

__all__ = [
    "EDGEC_DOMAIN", "Const", "Match", "MatchResult", "PatternBuilder", "RewriteBuilder", "RewriteRule",
    "RewriteRulePass", "RewriteTrace", "Var", "apply_rules", "const_array",
]
