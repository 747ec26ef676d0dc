"""crowd-kit's ``metrics``: ``metrics.data`` and ``metrics.workers``, computed by :mod:`crowdlearn.quality`."""

__all__: list[str] = []
