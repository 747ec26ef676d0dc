"""The one parameter-validation helper of the package, and :func:`show` for values in messages.

Every estimator and aggregator checks its constructor parameters at ``fit`` with these
functions, so the messages read the same everywhere (scikit-learn style)::

    The 'tol' parameter of DawidSkene must be a float >= 0 or -inf, got nan
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

__all__ = ["check_in", "check_number", "check_random_state", "param_error", "show"]


def show(value: Any) -> str:
    """``repr`` of a value for an error message, without numpy's type wrappers.

    ``np.int64(2)`` shows as ``2``, ``np.float64(nan)`` as ``nan``, ``np.str_('a')`` as ``'a'``;
    an array shows as ``array of shape (2, 3)``. Sequences are shown element by element.
    """
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return show(value.item())
        return f"array of shape {value.shape}"
    if isinstance(value, np.generic):
        return show(value.item())
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(show(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def param_error(owner: str, name: str, expected: str, value: Any) -> ValueError:
    """``ValueError("The 'name' parameter of owner must be expected, got value")``."""
    return ValueError(f"The {name!r} parameter of {owner} must be {expected}, got {show(value)}")


def check_in(value: Any, allowed: tuple[Any, ...], name: str, owner: str) -> None:
    """Raise :func:`param_error` unless ``value`` is one of ``allowed``."""
    try:
        ok = any(
            value is a
            or (
                isinstance(value, type(a))
                and (isinstance(a, bool) or not isinstance(value, (bool, np.bool_)))
                and bool(value == a)
            )
            for a in allowed
        )
    except (TypeError, ValueError):  # e.g. an array compared with a string
        ok = False
    if not ok:
        raise param_error(owner, name, "one of " + ", ".join(show(a) for a in allowed), value)


def check_number(
    value: Any,
    name: str,
    owner: str,
    *,
    low: float | None = None,
    strict: bool = False,
    integer: bool = False,
    allow_none: bool = False,
    allow_neg_inf: bool = False,
) -> None:
    """Check a numeric parameter: its type (no bool), finiteness and lower bound.

    Parameters
    ----------
    value : object
        The parameter value.
    name, owner : str
        Parameter and class names, for the message.
    low : float, optional
        Lower bound; ``strict`` makes it exclusive (``> low``) instead of ``>= low``.
    integer : bool
        Require an int (Python or numpy), not a float.
    allow_none : bool
        Accept ``None`` (a documented "off"/"default" value).
    allow_neg_inf : bool
        Accept ``-inf`` (e.g. ``tol=-inf``: never stop early, crowd-kit's convention).

    Raises
    ------
    ValueError
        ``The 'name' parameter of owner must be an int >= 1, got 0`` (NaN, +-inf, wrong types
        and values below ``low`` are all rejected).
    """
    if value is None and allow_none:
        return
    kinds: tuple[type, ...] = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    what = "an int" if integer else "a float"
    if low is not None:
        what += f" {'>' if strict else '>='} {low:g}"
    if allow_neg_inf:
        what += " or -inf"
    if allow_none:
        what += " or None"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        raise param_error(owner, name, what, value)
    v = float(cast(Any, value))
    if allow_neg_inf and v == -math.inf:
        return
    if not math.isfinite(v) or (low is not None and (v <= low if strict else v < low)):
        raise param_error(owner, name, what, value)


def check_random_state(value: Any, name: str, owner: str) -> None:
    """A seed parameter: an int >= 0, a :class:`numpy.random.Generator` or None."""
    if value is None or isinstance(value, np.random.Generator):
        return
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 0:
        return
    raise param_error(owner, name, "an int >= 0, a numpy Generator or None", value)
