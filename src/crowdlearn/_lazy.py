"""A module imported on its first attribute access: ``pd = lazy_module("pandas")``.

``crowdlearn.annotations`` and ``crowdlearn.io`` use pandas for tables, hashing and text, but
reading a file of integer ids (``crowdlearn validate``) or building :class:`Annotations` from
integer arrays needs none of it; importing pandas costs about 0.4 s of CPU, a large part of a
short command. Type checkers see the real module (``if TYPE_CHECKING: import pandas as pd``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands for a module until an attribute is read; then imports it and forwards the read."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def _module(self) -> Any:
        name = object.__getattribute__(self, "_name")
        return sys.modules.get(name) or importlib.import_module(name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._module(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:  # monkeypatching reaches the module
        if attr == "_name":
            object.__setattr__(self, attr, value)
        else:
            setattr(self._module(), attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(self._module(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on the first attribute access."""
    return _LazyModule(name)
