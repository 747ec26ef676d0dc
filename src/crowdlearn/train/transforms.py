"""Batch transforms: what a method does to a training batch before the loss (mixup and its kin).

A transform maps a :class:`~crowdlearn.train.batching.Batch` to the inputs to feed and a list of
weighted views of the batch's labels; the trainer computes the loss of every view on the same
forward pass and sums them with their weights::

    x, views = transform(batch, generator)
    loss = sum(w * criterion(model(x), view) for w, view in views)

:class:`InputMixup` is the mixup of ``CrowdClassifier(mixup=...)``; a method can bring its own
through its spec's ``make_transform`` (Annot-Mix mixes annotator-label pairs as well as inputs).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from crowdlearn.train.batching import Batch

__all__ = ["BatchTransform", "InputMixup", "View", "beta_draw"]

#: one weighted view of a batch's labels: (weight, batch whose rows index the fed inputs)
View = tuple[float, Batch]


class BatchTransform:
    """Base class of the batch transforms (see the module docstring).

    Subclasses implement :meth:`__call__`. They draw every random number from ``generator``
    (the trainer's, which checkpoints save and restore), so a seeded run is reproducible and a
    resumed run continues the same stream.
    """

    def __call__(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, list[View]]:
        """The inputs to feed (B', ...) and the weighted views of the labels.

        Parameters
        ----------
        batch : Batch
            On the training device.
        generator : torch.Generator
            The trainer's CPU generator.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def beta_draw(alpha: float, generator: torch.Generator) -> float:
    """``t ~ Beta(alpha, alpha)`` from a numpy generator seeded by ``generator`` (one draw of it)."""
    draw = int(torch.randint(0, 2**62, (1,), generator=generator))
    return float(np.random.default_rng(draw).beta(alpha, alpha))


class InputMixup(BatchTransform):
    """Mixup (Zhang et al., ICLR 2018) over the items of a batch, on the observed labels.

    Draws ``t ~ Beta(alpha, alpha)`` and a permutation ``p`` of the ``B`` rows, feeds
    ``t * x + (1 - t) * x[p]`` and gives two views: every observed label of row ``r`` at row
    ``r`` with weight ``t``, and at row ``p^{-1}[r]`` (the row that mixes item ``r`` in) with
    weight ``1 - t``. Soft ``targets`` of the rows are permuted the same way.

    Parameters
    ----------
    alpha : float
        The Beta parameter (> 0).
    """

    def __init__(self, alpha: float) -> None:
        if not alpha > 0:
            raise ValueError(f"InputMixup: alpha must be > 0, got {alpha!r}")
        self.alpha = float(alpha)

    def __call__(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, list[View]]:
        n = batch.x.shape[0]
        t = beta_draw(self.alpha, generator)
        perm = torch.randperm(n, generator=generator)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(n)
        perm, inverse = perm.to(batch.x.device), inverse.to(batch.x.device)
        # item j's labels sit on row j with weight t and on row inverse[j] (where p[r] = j) with 1 - t
        other = batch.replace(rows=inverse[batch.rows], targets=None if batch.targets is None else batch.targets[perm])
        return t * batch.x + (1.0 - t) * batch.x[perm], [(t, batch), (1.0 - t, other)]
