"""crowd-kit's ``metrics.workers``: accuracy on aggregates."""

from crowdlearn.compat.crowdkit.metrics.workers.accuracy_on_aggregates import accuracy_on_aggregates

__all__ = ["accuracy_on_aggregates"]
