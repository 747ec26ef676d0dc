"""What the heads share to make a training step follow the batch's annotators, not ``M``.

A per-annotator parameter (shape (M, ...)) is read for the batch's ``U`` distinct annotators
only, through :func:`crowdlearn.nn.functional.gather_rows` with a sparse gradient, and its
optimizer group is marked ``"sparse": True``, so the trainer steps it with a lazy (sparse) Adam
that leaves absent annotators' rows and moments untouched (the pattern of
:class:`crowdlearn.nn.ConfusionMatrices`). ``sparse=False`` keeps the dense formulation (dense
gradients, dense Adam over all ``M`` rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from crowdlearn.nn import confusion
from crowdlearn.nn import functional as CF

__all__ = ["distinct", "gather", "resolve_sparse", "split_groups"]


def resolve_sparse(sparse: bool | None) -> bool:
    """``sparse``, or :data:`crowdlearn.nn.confusion.SPARSE_BY_DEFAULT` when None (read now)."""
    return bool(confusion.SPARSE_BY_DEFAULT if sparse is None else sparse)


def gather(weight: Tensor, touched: Tensor, sparse: bool) -> Tensor:
    """Rows ``weight[touched]`` (U, ...) of a per-annotator parameter (M, ...).

    With ``sparse`` (and a gradient to take) the gradient reaching ``weight`` is a sparse tensor
    of the ``U`` rows; else dense. ``touched`` must be sorted and distinct (from
    :func:`torch.unique`).
    """
    grad = sparse and torch.is_grad_enabled() and weight.requires_grad
    return CF.gather_rows(weight, touched, sparse_grad=grad, distinct=True)


def split_groups(
    module: nn.Module, per_annotator: Sequence[nn.Parameter], lr: float, sparse: bool
) -> list[dict[str, Any]]:
    """A head's optimizer groups: its per-annotator parameters (sparse when ``sparse``) and the rest.

    Both at ``lr`` without weight decay and ``"base_lr": None`` (the trainer's schedule follows
    its ``confusion_lr``), as the trainer's default head group. Frozen parameters are left out.
    With ``sparse=False`` one dense group of every trainable parameter.
    """
    trainable = [p for p in module.parameters() if p.requires_grad]
    rows = [p for p in per_annotator if p.requires_grad] if sparse else []
    ids = {id(p) for p in rows}
    rest = [p for p in trainable if id(p) not in ids]
    groups: list[dict[str, Any]] = []
    for params, is_sparse in ((rest, False), (rows, True)):
        if params:
            groups.append(
                {"params": params, "lr": float(lr), "weight_decay": 0.0, "sparse": is_sparse, "base_lr": None}
            )
    return groups


def distinct(*indices: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The sorted distinct values of the concatenated ``indices`` (U,) and each input's positions among them."""
    joined = torch.cat(list(indices)) if len(indices) > 1 else indices[0]
    touched, inverse = torch.unique(joined, return_inverse=True)
    sizes: Iterable[int] = [int(i.numel()) for i in indices]
    return touched, list(torch.split(inverse, list(sizes)))
