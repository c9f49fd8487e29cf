"""The context a CUDA lowering writes into: imports of launchers and unique local names."""
from __future__ import annotations

import itertools
from typing import Callable


class HostContext:
    """Collects the imports and unique names of one generated host driver module."""

    def __init__(self):
        self.imports: dict[str, tuple[str, str]] = {}     # local name -> (module, attribute)
        self._counter = itertools.count()

    def use(self, function: Callable) -> str:
        """Import a module-level function (a launcher) and return its local name."""
        module = function.__module__
        attribute = getattr(function, "__name__", None) or function.py_func.__name__
        local = f"_{module.rsplit('.', 1)[-1]}_{attribute}".replace(".", "_")
        self.imports[local] = (module, attribute)
        return local

    def fresh(self, prefix: str = "t") -> str:
        return f"{prefix}_{next(self._counter)}"

    def import_lines(self) -> list[str]:
        return [f"from {module} import {attribute} as {local}"
                for local, (module, attribute) in sorted(self.imports.items())]
