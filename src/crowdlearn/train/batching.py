"""Minibatches over items, each with all of its observed labels (via the CSR view)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.utils.data import Dataset

from crowdlearn.annotations import Annotations

__all__ = ["AnnotatorMix", "Batch", "Inputs", "ValidationSet", "item_batches", "make_batch", "shard_batches"]

IntArray = npt.NDArray[np.int64]


class Inputs:
    """Uniform access to the inputs of items: a numpy array, a tensor, or a torch ``Dataset``.

    Parameters
    ----------
    data : ndarray, Tensor or Dataset
        Row ``n`` (or ``data[n]``) is the input of item ``n``. A dataset item may be a tensor or a
        tuple whose first element is the input (e.g. ``(image, target)``).
    """

    def __init__(self, data: Any) -> None:
        self.dataset: Dataset[Any] | None = None
        self.tensor: Tensor | None = None
        if isinstance(data, Dataset):
            self.dataset = data
        elif isinstance(data, Tensor):
            self.tensor = data
        else:
            arr = np.asarray(data)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"inputs must be numeric (array, tensor or torch Dataset), got dtype {arr.dtype}")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = np.argwhere(~np.isfinite(arr))[0].tolist()
                raise ValueError(f"inputs contain a non-finite value at index {tuple(bad)}")
            self.tensor = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))

    def __len__(self) -> int:
        if self.tensor is not None:
            return int(self.tensor.shape[0])
        assert self.dataset is not None
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, ...] | None:
        """Shape of an array/tensor input; None for a Dataset."""
        return tuple(self.tensor.shape) if self.tensor is not None else None

    def get(self, index: IntArray) -> Tensor:
        """Inputs of the given items, stacked along a new first dimension."""
        if self.tensor is not None:
            return self.tensor[torch.from_numpy(index)]
        assert self.dataset is not None
        rows = []
        for i in index.tolist():
            item = self.dataset[i]
            rows.append(item[0] if isinstance(item, (tuple, list)) else item)
        return torch.stack([torch.as_tensor(r) for r in rows])


@dataclass
class Batch:
    """One minibatch.

    Attributes
    ----------
    items : ndarray of shape (B,)
        Item indices.
    x : Tensor of shape (B, ...)
        Their inputs.
    rows, annotators, labels : Tensor of int64 of shape (E,)
        Every observed label of those items: row in the batch, annotator, class.
    targets : Tensor of shape (B, K) or None
        Soft training targets of the rows (a method with per-item targets: the two-stage
        methods, MBEM); None otherwise.
    annotator_mix : AnnotatorMix or None
        Set by a transform that mixes annotators (Annot-Mix): the head sees, for record ``e``,
        the mixture ``weight * annotator e + (1 - weight) * partner e``.
    """

    items: IntArray
    x: Tensor
    rows: Tensor
    annotators: Tensor
    labels: Tensor
    targets: Tensor | None = None
    annotator_mix: AnnotatorMix | None = None

    def to(self, device: torch.device, *, non_blocking: bool = False) -> Batch:
        """The batch's tensors on ``device`` (``non_blocking`` as in :meth:`torch.Tensor.to`, for
        all but the annotator mixtures)."""
        nb = non_blocking
        return Batch(
            self.items,
            self.x.to(device, non_blocking=nb),
            self.rows.to(device, non_blocking=nb),
            self.annotators.to(device, non_blocking=nb),
            self.labels.to(device, non_blocking=nb),
            None if self.targets is None else self.targets.to(device, non_blocking=nb),
            None if self.annotator_mix is None else self.annotator_mix.to(device),
        )

    def pin_memory(self) -> Batch:
        """The batch with its host tensors in pinned memory (for a non-blocking copy to CUDA)."""
        return Batch(
            self.items,
            self.x.pin_memory(),
            self.rows.pin_memory(),
            self.annotators.pin_memory(),
            self.labels.pin_memory(),
            None if self.targets is None else self.targets.pin_memory(),
            self.annotator_mix,  # set by transforms on the device, after the copy
        )

    def replace(self, **changes: Any) -> Batch:
        """A copy with some fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


@dataclass
class AnnotatorMix:
    """Annotator mixtures of a batch's records (see :class:`Batch`).

    Attributes
    ----------
    partners : Tensor of int64 of shape (E,)
        The second annotator of each record.
    weight : Tensor of shape (E,)
        The weight of the record's own annotator (``1 - weight`` goes to the partner).
    """

    partners: Tensor
    weight: Tensor

    def to(self, device: torch.device) -> AnnotatorMix:
        return AnnotatorMix(self.partners.to(device), self.weight.to(device))


@dataclass
class ValidationSet:
    """Data for model selection: items with true labels, or held-out crowd labels.

    Attributes
    ----------
    inputs : Inputs
        Inputs of the validation items.
    y : ndarray of shape (n,) or None
        True classes (with truth), aligned with ``inputs``.
    annotations : Annotations or None
        Held-out crowd labels whose items are aligned with ``inputs`` (without truth).
    """

    inputs: Inputs
    y: IntArray | None = None
    annotations: Annotations | None = None

    def __post_init__(self) -> None:
        if (self.y is None) == (self.annotations is None):
            raise ValueError("ValidationSet needs exactly one of y (true labels) or annotations (held-out labels)")
        n = len(self.inputs)
        if self.y is not None and len(self.y) != n:
            raise ValueError(f"validation inputs have {n} rows but y has {len(self.y)} labels")
        if self.annotations is not None and self.annotations.n_items != n:
            raise ValueError(
                f"validation inputs have {n} rows but the annotations have {self.annotations.n_items} items"
            )


def item_batches(items: IntArray, batch_size: int, *, generator: torch.Generator | None = None) -> list[IntArray]:
    """Split ``items`` into batches, shuffled with ``generator`` when given.

    A trailing batch of a single item is merged into the previous one (batch normalization
    cannot train on one item).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if generator is not None:
        perm = torch.randperm(len(items), generator=generator).numpy()
        items = items[perm]
    out = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    if len(out) > 1 and len(out[-1]) == 1:
        out[-2] = np.concatenate([out[-2], out[-1]])
        out.pop()
    return out


def shard_batches(batches: list[IntArray], rank: int, world_size: int) -> list[IntArray]:
    """This rank's share of ``batches``: every ``world_size``-th batch, starting at ``rank``.

    Every rank must step the same number of times (DDP averages gradients at each step), so
    when ``len(batches)`` is not a multiple of ``world_size`` the list is first padded by
    repeating its first batches (cyclically): no labelled item is dropped, and the items of the
    repeated batches are seen twice in that epoch.

    Parameters
    ----------
    batches : list of ndarray of int64
        The same list on every rank (built from the same seeded shuffle).
    rank, world_size : int
        ``0 <= rank < world_size``.

    Returns
    -------
    list of ndarray of int64
        ``ceil(len(batches) / world_size)`` batches.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if not batches:
        raise ValueError("no batches to shard")
    n = len(batches)
    padded = batches + [batches[i % n] for i in range((-n) % world_size)]
    return padded[rank::world_size]


def make_batch(inputs: Inputs, annotations: Annotations, items: IntArray, targets: Tensor | None = None) -> Batch:
    """The batch of ``items`` with all their observed labels (``O(labels)`` via ``labels_of``).

    ``targets`` (n_items, K), when given, are the soft targets of every item; the batch gets its rows'.
    """
    rows, annotators, labels = annotations.labels_of(items)
    return Batch(
        items=items,
        x=inputs.get(items),
        rows=torch.from_numpy(rows),
        annotators=torch.from_numpy(annotators),
        labels=torch.from_numpy(labels),
        targets=None if targets is None else targets[torch.from_numpy(items)],
    )
