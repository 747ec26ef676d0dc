"""The built-in deep methods, registered in :mod:`crowdlearn.nn.registry` at import.

Every module of this package whose name does not start with ``_`` is a method module: it
defines ``SPECS``, a tuple of :class:`~crowdlearn.nn.MethodSpec`, and is found and registered
here (the methods that came before the registry first, from ``_builtin``, then the modules in
alphabetical order). Adding a method is one module here (torch-free at import: the spec's
factories import their head, kept in :mod:`crowdlearn.nn.heads`), its test file and a docs line.
"""

from __future__ import annotations

import importlib
import pkgutil

from crowdlearn.nn.methods import _builtin
from crowdlearn.nn.registry import MethodSpec, register_method

__all__ = ["BUILTIN_METHODS", "METHOD_MODULES"]

#: the method modules of this package, in registration order (after ``_builtin``)
METHOD_MODULES: tuple[str, ...] = tuple(
    sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
)


def _collect() -> tuple[MethodSpec, ...]:
    specs = list(_builtin.SPECS)
    for name in METHOD_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        found = getattr(module, "SPECS", None)
        if not (isinstance(found, tuple) and all(isinstance(s, MethodSpec) for s in found)):
            raise TypeError(f"{module.__name__}.SPECS must be a tuple of MethodSpec")
        specs.extend(found)
    return tuple(specs)


#: every built-in method's spec, in registration order
BUILTIN_METHODS: tuple[MethodSpec, ...] = _collect()

for _spec in BUILTIN_METHODS:
    register_method(_spec)
