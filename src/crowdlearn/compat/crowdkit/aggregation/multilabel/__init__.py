"""crowd-kit's ``aggregation.multilabel``."""

from crowdlearn.compat.crowdkit.aggregation.multilabel.binary_relevance import BinaryRelevance

__all__ = ["BinaryRelevance"]
