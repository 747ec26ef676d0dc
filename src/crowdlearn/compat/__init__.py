"""Compatibility layers: other libraries' APIs on top of crowdlearn's implementations.

* :mod:`crowdlearn.compat.crowdkit`: crowd-kit 1.4.2's classification aggregation and metrics
  (``from crowdlearn.compat.crowdkit.aggregation import DawidSkene``).
"""
