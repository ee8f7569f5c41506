"""edgec.passes: built-in graph passes, one pass per module, grouped by kind.

Every module under this package is imported by `edgec.infra.registry.builtin_registry()`; classes
decorated with `@register_pass` become available by name. Plugins register through the
`edgec.passes` entry-point group instead.
"""

from __future__ import annotations

import pkgutil


def _walk() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
        if not info.ispkg and not info.name.rsplit(".", 1)[-1].startswith("_"):
            names.append(info.name)
    return sorted(names)


BUILTIN_MODULES: list[str] = _walk()
