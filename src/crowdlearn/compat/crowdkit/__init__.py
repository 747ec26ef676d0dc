"""crowd-kit 1.4.2's API for classification aggregation and metrics, computed by crowdlearn.

Switch with one import::

    # from crowdkit.aggregation import DawidSkene
    from crowdlearn.compat.crowdkit.aggregation import DawidSkene

The module layout (``aggregation``, ``aggregation.base``, ``aggregation.utils``,
``aggregation.classification``, ``aggregation.multilabel``, ``metrics.data``,
``metrics.workers``), the class names, their parameters (positional too), fitted attributes and
return types (pandas objects indexed by task / worker / label) are crowd-kit's. Every
computation is one of crowdlearn's vectorized implementations (:mod:`crowdlearn.aggregate`,
:mod:`crowdlearn.quality`); these classes only convert frames and results. crowd-kit itself is
neither needed nor imported. The differences are listed in ``docs/crowdkit.md``; crowd-kit's own
test suite runs against this package in ``tests/compat``.
"""

__version__ = "1.4.2"
"""The crowd-kit release whose API this package follows."""

__all__: list[str] = []
