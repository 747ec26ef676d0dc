"""crowdlearn: deep learning from crowdsourced labels.

Learns, end to end and at once, a classifier for the true label and every annotator's
confusion matrix (coupled cross-entropy minimization and GeoCrowdNet; Ibrahim, Nguyen & Fu,
ICLR 2023), with classical truth inference (Dawid-Skene and peers) alongside.
"""

from crowdlearn.annotations import Annotations, AnnotationsError

__version__ = "0.1.0"

__all__ = ["Annotations", "AnnotationsError", "__version__"]
