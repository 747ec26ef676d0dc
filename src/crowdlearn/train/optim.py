"""Adam for the dense parameters and torch's SparseAdam (lazy Adam) for the sparse ones, as one optimizer.

The trainer steps the backbone with :class:`torch.optim.Adam` and a head group marked
``"sparse": True`` (e.g. :meth:`crowdlearn.nn.ConfusionMatrices.param_groups`) with
:class:`torch.optim.SparseAdam`, whose step updates the moments and the values of the rows
present in the sparse gradient only: an annotator absent from a batch is not touched, so the
cost of a step follows the batch's annotators, not ``M``. :class:`AdamWithSparse` holds both
and shares one ``param_groups`` list and one ``state`` with them, so learning-rate schedules,
:class:`torch.amp.GradScaler` and checkpoints (``state_dict`` / ``load_state_dict``) see one
optimizer. The update rules are torch's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["AdamWithSparse"]


class AdamWithSparse(torch.optim.Optimizer):
    """:class:`torch.optim.Adam` over the dense groups, :class:`torch.optim.SparseAdam` over the others.

    Parameters
    ----------
    dense_groups : list of dict
        Adam parameter groups (``"params"``, ``"lr"``, ``"weight_decay"``, ...).
    sparse_groups : list of dict
        SparseAdam parameter groups (``"params"``, ``"lr"``); their parameters must receive
        sparse gradients. SparseAdam has no weight decay: a group with ``weight_decay`` other
        than 0 is an error.

    Attributes
    ----------
    dense, sparse : torch.optim.Optimizer
        The two optimizers (``sparse`` is None without sparse groups); their ``param_groups``
        are this optimizer's (dense groups first) and their ``state`` is this optimizer's.
    """

    def __init__(self, dense_groups: list[dict[str, Any]], sparse_groups: list[dict[str, Any]]) -> None:
        for g in sparse_groups:
            if float(g.get("weight_decay", 0.0)) != 0.0:
                raise ValueError("a sparse parameter group cannot have weight decay (SparseAdam has none)")
        self.n_dense = len(dense_groups)
        self.dense = torch.optim.Adam(dense_groups)
        self.sparse: torch.optim.SparseAdam | None = None
        groups: list[dict[str, Any]] = list(self.dense.param_groups)
        if sparse_groups:
            self.sparse = torch.optim.SparseAdam(
                [{k: v for k, v in g.items() if k != "weight_decay"} for g in sparse_groups]
            )
            for g in self.sparse.param_groups:
                g["weight_decay"] = 0.0
            groups += self.sparse.param_groups
        super().__init__(groups, defaults={})
        self._link()

    def _link(self) -> None:
        """Let the two optimizers use this one's groups and state (after a load replaced them)."""
        self.dense.param_groups = self.param_groups[: self.n_dense]
        self.dense.state = self.state
        if self.sparse is not None:
            self.sparse.param_groups = self.param_groups[self.n_dense :]
            self.sparse.state = self.state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load as :meth:`torch.optim.Optimizer.load_state_dict` does, keeping the two optimizers linked."""
        super().load_state_dict(state_dict)
        self._link()

    @torch.no_grad()  # type: ignore[misc]
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Adam step on the dense groups and one SparseAdam step on the sparse groups."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.dense.step()
        if self.sparse is not None:
            self.sparse.step()  # type: ignore[no-untyped-call]
        return loss
