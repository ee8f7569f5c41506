"""Applies rule sets greedily to a fixpoint, and `RewriteRulePass` (a pass = a named list of rules).

For each node (in graph order) the rules whose root op matches are tried in order. A structural
match is accepted only if every matched node other than the root has no consumer outside the
match and is no graph output (unless the rule sets `shared_intermediates`: then such nodes are
kept for their other users); then `check`, then `rewrite`. Only then is the graph changed: new
initializers and nodes are inserted before the root, uses of the root's output are redirected,
matched nodes are removed, and constants the match consumed and nobody else uses are dropped.

Rules apply in every scope: the main graph, every subgraph (If/Loop/Scan bodies, nested), and the
bodies of model-local functions, except functions in the `edgec` domain. Those are the reference
definitions of edgec's own ops, added by the passes themselves: backends read the node's
attributes, not the body, and rewriting a body into the op it defines would make it recursive.
Functions importing another default-domain opset than the model are skipped too (the rules'
opset checks use the model's). A match must lie in one scope (values captured from an enclosing
graph are inputs to it, never matched through), and in function bodies no matched node may use
a reference attribute (its value is only known at the call). In nested scopes the new constants
become Constant nodes (functions have no initializers) and new values get model-unique names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult
from edgec.ir.domains import onnx_opset
from edgec.rewrite.matcher import Match, Matcher, normalize_domain
from edgec.rewrite.rule import MatchResult, RewriteBuilder, RewriteRule
from edgec.rewrite.trace import RewriteTrace

EDGEC_DOMAIN = "edgec"


def scope_reason(match: Match) -> str:
    """Why `match` cannot be rewritten in place within its scope ('' if it can)."""
    for n in match.nodes:
        if n.graph is not match.graph:
            return f"{n.op_type} '{n.name}' is in an enclosing graph (captured value)"
        if any(a.is_ref() for a in n.attributes.values()):
            return f"{n.op_type} '{n.name}' has a reference attribute (function parameter)"
    return ""


def outside_use_reason(match: Match) -> str:
    inside = {id(n) for n in match.nodes}
    for n in match.nodes:
        for out in n.outputs:
            if n is match.root and out is match.output:
                continue
            if out.is_graph_output():
                return f"intermediate '{out.name}' ({n.op_type}) is a graph output"
            for user in out.consumers():
                if id(user) not in inside:
                    return f"intermediate '{out.name}' ({n.op_type}) is also used by {user.op_type} '{user.name}'"
    return ""


def _unique_name(graph: ir.Graph, hint: str) -> str:
    counter = graph.meta.get("edgec.rewrite.counter", 0)
    while True:
        counter += 1
        name = f"{hint}_rw{counter}"
        if name not in graph.initializers:
            graph.meta["edgec.rewrite.counter"] = counter
            return name


def _removable(match: Match) -> list[ir.Node]:
    """Matched nodes that become dead once the root's uses are redirected (root first)."""
    dead = [match.root]
    ids = {id(match.root)}
    grew = True
    while grew:
        grew = False
        for n in match.nodes:
            if id(n) in ids or any(o.is_graph_output() for o in n.outputs):
                continue
            if all(id(u) in ids for o in n.outputs for u in o.consumers()):
                dead.append(n)
                ids.add(id(n))
                grew = True
    return dead


def _model_value_names(model: ir.Model) -> set[str]:
    names: set[str] = set()
    for g in (model.graph, *model.graph.subgraphs()):
        names.update(v.name for v in (*g.inputs, *g.initializers.values()) if v.name)
        names.update(o.name for n in g for o in n.outputs if o.name)
    return names


def _nested_constants(builder: RewriteBuilder, replacement: ir.Value) -> tuple[list[ir.Node], ir.Value]:
    """The builder's new initializers as Constant nodes (for subgraphs and function bodies)."""
    consts = []
    for v in builder.initializers:
        node = ir.Node("", "Constant", [], [ir.AttrTensor("value", v.const_value)])
        out = node.outputs[0]
        out.name, out.type, out.shape = v.name, v.type, v.shape
        for n in builder.nodes:
            for i, x in enumerate(n.inputs):
                if x is v:
                    n.replace_input_with(i, out)
        replacement = out if replacement is v else replacement
        consts.append(node)
    return consts, replacement


def _name_nested_values(model: ir.Model, nodes: list[ir.Node]) -> None:
    taken = _model_value_names(model)
    counter = model.graph.meta.get("edgec.rewrite.counter", 0)
    for n in nodes:
        for o in n.outputs:
            base = o.name or "v"
            name = base
            while name in taken:
                counter += 1
                name = f"{base}_rw{counter}"
            o.name = name
            taken.add(name)
    model.graph.meta["edgec.rewrite.counter"] = counter


def commit(model: ir.Model, match: Match, builder: RewriteBuilder, replacement: ir.Value,
           shared: bool = False, function: ir.Function | None = None) -> None:
    graph, root, old = match.graph, match.root, match.output
    nested = graph is not model.graph
    if nested:
        new_nodes, replacement = _nested_constants(builder, replacement)
        new_nodes += builder.nodes
    else:
        for v in builder.initializers:
            v.name = _unique_name(graph, v.name or "const")
            v.const_value.name = v.name
            graph.register_initializer(v)
        new_nodes = list(builder.nodes)
    producer = replacement.producer()
    if old.is_graph_output() and (producer is None or producer.graph not in (None, graph)
                                  or replacement.is_graph_output() or replacement.is_initializer()):
        ident = ir.Node("", "Identity", [replacement])
        new_nodes.append(ident)
        replacement = ident.outputs[0]
    if replacement.type is None:
        replacement.type = old.type
    if replacement.shape is None:
        replacement.shape = old.shape
    if nested:
        _name_nested_values(model, new_nodes)
    graph.insert_before(root, new_nodes)
    if old.is_graph_output():
        old_name, old.name = old.name, None
        replacement.name = old_name
    ir.convenience.replace_all_uses_with(old, replacement, replace_graph_outputs=True)
    dead = _removable(match) if shared else match.nodes
    consumed = [v for n in dead for v in n.inputs if v is not None]
    graph.remove(dead, safe=True)
    drop_unused_constants(graph, consumed)
    for fn in builder.functions:
        model.functions.setdefault(fn.identifier(), fn)
        model.opset_imports.setdefault(fn.domain, 1)
        if fn.overload:
            model.ir_version = max(model.ir_version or 0, 10)
    for n in builder.nodes:
        if normalize_domain(n.domain) and n.domain not in model.opset_imports:
            model.opset_imports[n.domain] = 1
        if function is not None and normalize_domain(n.domain) and n.domain not in function.opset_imports:
            function.opset_imports[n.domain] = model.opset_imports[n.domain]


def drop_unused_constants(graph: ir.Graph, values: list[ir.Value]) -> None:
    for v in {id(v): v for v in values}.values():
        if v.uses() or v.is_graph_output() or v in graph.inputs:
            continue
        producer = v.producer()
        if v.is_initializer() and graph.initializers.get(v.name) is v and producer is None:
            del graph.initializers[v.name]
        elif producer is not None and producer.op_type == "Constant" and producer.graph is graph:
            graph.remove(producer, safe=True)


def try_rule(model: ir.Model, rule: RewriteRule, node: ir.Node, trace: RewriteTrace | None, matcher: Matcher,
             function: ir.Function | None = None) -> bool:
    declined = ""
    structural_failure = ""
    for pattern in rule.patterns:
        if (pattern.node.domain, pattern.node.op_type) != (_domain(node), node.op_type):
            continue
        for match in matcher.matches(model, pattern, node):
            reason = scope_reason(match) or ("" if rule.shared_intermediates else outside_use_reason(match))
            if not reason:
                result = rule.check(match)
                result = result if isinstance(result, MatchResult) else MatchResult(bool(result), "check returned False")
                reason = "" if result.ok else (result.reason or "check failed")
            if reason:
                declined = reason
                continue
            builder = RewriteBuilder(model, match)
            try:
                out = rule.rewrite(builder, match)
            except Exception:
                builder.discard()
                raise
            if isinstance(out, (list, tuple)):
                out = out[0] if len(out) == 1 else None
            if out is None or _uses_match_internals(builder, match, out):
                builder.discard()
                declined = ("rewrite returned no replacement" if out is None
                            else "replacement uses a value computed inside the match")
                continue
            where = node.name or (match.output.name or node.op_type)
            commit(model, match, builder, out, shared=rule.shared_intermediates, function=function)
            if trace is not None:
                trace.hit(rule.rule_name, where)
            return True
        structural_failure = structural_failure or matcher.failure
    if trace is not None and (declined or structural_failure):
        trace.decline(rule.rule_name, declined or f"no match: {structural_failure}")
    return False


def _uses_match_internals(builder: RewriteBuilder, match: Match, out: ir.Value) -> bool:
    inside = {id(n) for n in match.nodes}
    used = [v for n in builder.nodes for v in n.inputs if v is not None] + [out]
    return any(v.producer() is not None and id(v.producer()) in inside for v in used)


def _domain(node: ir.Node) -> str:
    return normalize_domain(node.domain)


def rewrite_scopes(model: ir.Model) -> list[tuple[ir.Graph, ir.Function | None]]:
    """The graphs rules apply in, outermost first, each with the function it belongs to (or None)."""
    scopes: list[tuple[ir.Graph, ir.Function | None]] = [(model.graph, None)]
    scopes += [(g, None) for g in model.graph.subgraphs()]
    opset = onnx_opset(model)
    for fn in list(model.functions.values()):
        if fn.domain == EDGEC_DOMAIN or onnx_opset(fn, opset) != opset:
            continue
        scopes += [(fn.graph, fn)] + [(g, fn) for g in fn.graph.subgraphs()]
    return scopes


def apply_rules(model: ir.Model, rules: Sequence[RewriteRule], *, max_iterations: int = 16,
                trace: RewriteTrace | None = None) -> int:
    """Rewrite the model in place until no rule fires (or `max_iterations` sweeps); returns the hit count.

    Every sweep visits the scopes of `rewrite_scopes` (main graph, subgraphs, user functions)."""
    opset = onnx_opset(model)
    active = []
    for rule in rules:
        why = rule.opset_reason(opset)
        if why:
            if trace is not None:
                trace.skip(rule.rule_name, why)
        else:
            active.append(rule)
    roots = {(p.node.domain, p.node.op_type) for r in active for p in r.patterns}
    matcher, total = Matcher(), 0
    for _ in range(max(1, max_iterations)):
        hits = 0
        for graph, function in rewrite_scopes(model):
            for node in list(graph):
                if node.graph is not graph or (_domain(node), node.op_type) not in roots:
                    continue
                for rule in active:
                    if try_rule(model, rule, node, trace, matcher, function):
                        hits += 1
                        break
        total += hits
        if not hits:
            break
    return total


class RewriteRulePass(Pass):
    """Base for passes made of rewrite rules: set `name`, a docstring and `rules`, then @register_pass."""

    rules: ClassVar[tuple[type[RewriteRule], ...]] = ()
    options: ClassVar[dict] = {"max_iterations": 16}

    def make_rules(self) -> list[RewriteRule]:
        return [r() for r in self.rules]

    def run(self, model: ir.Model, ctx) -> PassResult:
        local = RewriteTrace()
        hits = apply_rules(model, self.make_rules(), max_iterations=self.opts["max_iterations"], trace=local)
        for inst in getattr(ctx, "instruments", []):
            if isinstance(inst, RewriteTrace):
                inst.merge(local, prefix=self.name)
        self.last_trace = local
        return PassResult(model, hits > 0)
