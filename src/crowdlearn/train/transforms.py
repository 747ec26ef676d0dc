"""Batch transforms: what a method does to a training batch before the loss (mixup and its kin).

A transform maps a :class:`~crowdlearn.train.batching.Batch` to the inputs to feed and a list of
weighted views of the batch's labels; the trainer computes the loss of every view on the same
forward pass and sums them with their weights::

    x, views = transform(batch, generator)
    loss = sum(w * criterion(model(x), view) for w, view in views)

:class:`InputMixup` is the mixup of ``CrowdClassifier(mixup=...)``; a method can bring its own
through its spec's ``make_transform`` (Annot-Mix mixes annotator-label pairs as well as inputs).
:class:`RandomCropFlip` is an input augmentation (random crop of a zero-padded image and a
horizontal flip, batched); :class:`Compose` runs augmentations before a mixing transform.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from crowdlearn.train.batching import Batch

__all__ = [
    "BatchTransform",
    "Compose",
    "InputAugmentation",
    "InputMixup",
    "RandomCropFlip",
    "View",
    "beta_draw",
    "random_crop_flip",
]

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


class InputAugmentation(BatchTransform):
    """A transform of the inputs only: the labels keep their rows, one view of weight 1.

    Subclasses implement :meth:`augment`; ``__call__`` feeds ``augment(batch.x)`` with the
    batch's labels unchanged, so an augmentation composes with any transform after it
    (:class:`Compose`).
    """

    def augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """The augmented inputs, same shape and dtype as ``x`` (B, ...), on ``x``'s device."""
        raise NotImplementedError

    def __call__(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, list[View]]:
        x = self.augment(batch.x, generator)
        return x, [(1.0, batch.replace(x=x))]


def random_crop_flip(x: Tensor, generator: torch.Generator, *, padding: int = 4, flip: bool = True) -> Tensor:
    """Random ``H x W`` crops of the zero-padded images and random horizontal flips, batched.

    For image ``b`` draws offsets ``dy_b, dx_b`` uniform in ``0..2 * padding`` and a flip with
    probability 1/2 (in that order: ``B`` draws each from ``generator``, on the CPU), then gathers
    ``out[b, c, i, j] = pad(x)[b, c, dy_b + i, dx_b + j]`` (``dx_b + W - 1 - j`` when flipped) in
    one indexing operation on ``x``'s device: no per-image Python loop. The padding is 0 (black
    for raw pixels), as torchvision's ``RandomCrop(H, padding)``.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)
        Images of any dtype (uint8 pixels stay uint8).
    generator : torch.Generator
        A CPU generator; the same state gives the same crops and flips.
    padding : int, default=4
        Pixels of zero padding on each side (0: flips only).
    flip : bool, default=True
        Whether to flip horizontally with probability 1/2.

    Returns
    -------
    Tensor of shape (B, C, H, W)
        Same dtype and device as ``x``.
    """
    if x.ndim != 4:
        raise ValueError(f"random_crop_flip expects images of shape (B, C, H, W), got {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    b, c, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    dev = x.device
    dy, dx, flips = dy.to(dev), dx.to(dev), flips.to(dev)
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding)) if padding else x
    wp = w + 2 * padding
    rows = dy[:, None] + torch.arange(h, device=dev)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=dev)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    # one flat index per output pixel (B, H*W), shared by the channels (expanded, not copied)
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    out = torch.gather(padded.reshape(b, c, -1), 2, flat)
    return out.reshape(b, c, h, w)


class RandomCropFlip(InputAugmentation):
    """The standard CIFAR augmentation: random crop with ``padding`` and a horizontal flip.

    See :func:`random_crop_flip`. Training batches only (the trainer applies transforms to
    training batches; validation and prediction see the images as given).

    Parameters
    ----------
    padding : int, default=4
    flip : bool, default=True
    """

    def __init__(self, padding: int = 4, *, flip: bool = True) -> None:
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"RandomCropFlip: padding must be an int >= 0, got {padding!r}")
        self.padding = padding
        self.flip = bool(flip)

    def augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return random_crop_flip(x, generator, padding=self.padding, flip=self.flip)


class Compose(BatchTransform):
    """Run input augmentations, then (optionally) one transform of any kind.

    ``Compose([RandomCropFlip(), InputMixup(0.2)])`` crops and flips the batch's images, then
    mixes them. Every transform but the last must be an :class:`InputAugmentation` (it keeps
    the labels' rows, so the next transform sees a plain batch).

    Parameters
    ----------
    transforms : sequence of BatchTransform
        At least one.
    """

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        items = list(transforms)
        if not items:
            raise ValueError("Compose needs at least one transform")
        for t in items[:-1]:
            if not isinstance(t, InputAugmentation):
                raise TypeError(
                    f"Compose: {type(t).__name__} changes the labels' views, so it must come last; "
                    "only InputAugmentation transforms may precede another transform"
                )
        self.transforms = items

    def __call__(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, list[View]]:
        for t in self.transforms[:-1]:
            assert isinstance(t, InputAugmentation)
            batch = batch.replace(x=t.augment(batch.x, generator))
        return self.transforms[-1](batch, generator)
