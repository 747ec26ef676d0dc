"""crowd-kit's ``metrics.data``: consistency, uncertainty and Krippendorff's alpha."""

from crowdlearn.compat.crowdkit.metrics.data._classification import alpha_krippendorff, consistency, uncertainty

__all__ = ["alpha_krippendorff", "consistency", "uncertainty"]
