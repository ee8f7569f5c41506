"""The default ONNX domain has two spellings, "" and "ai.onnx" (in node domains and in opset
imports alike). Code that asks "is this a standard ONNX op?" or "which ONNX opset?" goes
through these helpers so that both spellings behave the same."""

from __future__ import annotations

from collections.abc import Mapping

ONNX_DOMAINS = ("", "ai.onnx")


def normalize_domain(domain: str | None) -> str:
    """"" for the default ONNX domain (either spelling), else `domain` unchanged."""
    return "" if not domain or domain == "ai.onnx" else domain


def is_onnx_domain(domain: str | None) -> bool:
    return normalize_domain(domain) == ""


def onnx_opset(owner, default: int | None = None) -> int | None:
    """The default-domain opset of `owner` (a model, a function, or their `opset_imports`
    mapping), whichever spelling it imports; `default` when it imports neither. The one opset
    lookup: passes, rules and lowerings all ask this."""
    imports: Mapping[str, int] = owner if isinstance(owner, Mapping) else owner.opset_imports
    for d in ONNX_DOMAINS:
        if d in imports:
            return imports[d]
    return default


def normalized_opsets(opset_imports: Mapping[str, int]) -> dict[str, int]:
    """`opset_imports` with the default domain spelled "" (a "" import wins over "ai.onnx")."""
    out = {normalize_domain(d): v for d, v in opset_imports.items() if normalize_domain(d)}
    version = onnx_opset(opset_imports)
    if version is not None:
        out[""] = version
    return out


def canonicalize_onnx_domain(model) -> bool:
    """Spell the default domain "" in `model`'s opset imports (model and functions) and node
    domains (all graphs and function bodies), so that code outside edgec (onnx_ir's passes,
    onnx's shape inference) sees one spelling. A "" import wins over an "ai.onnx" one (the loader
    rejects a model importing both at different versions). Returns whether anything changed."""
    import onnx_ir as ir

    changed = False
    for owner in (model, *model.functions.values()):
        imports = owner.opset_imports
        if "ai.onnx" in imports:
            version = imports.pop("ai.onnx")
            imports.setdefault("", version)
            changed = True
    scopes = [model.graph, *(f.graph for f in model.functions.values())]
    for scope in scopes:
        for node in ir.traversal.RecursiveGraphIterator(scope):
            if node.domain == "ai.onnx":
                node.domain = ""
                changed = True
    return changed
