"""Callbacks: named hooks around the one training loop.

A callback subclasses :class:`Callback` and overrides any of ``on_train_begin``,
``on_train_end``, ``on_epoch_begin``, ``on_epoch_end`` and ``on_batch_end``. State lives in
attributes ending in ``_`` and is reset in ``on_train_begin``; a callback that must survive a
resume implements ``state_dict``/``load_state_dict``. Training stops when a callback sets
``trainer.stop_training = True`` (never by raising ``KeyboardInterrupt``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

if TYPE_CHECKING:
    from crowdlearn.train.trainer import Trainer

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EpochPrinter",
    "LambdaSchedule",
    "MarginRecorder",
    "ProgressBar",
    "label_margins",
]


class Callback:
    """Base class: every hook is a no-op."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch (also after a resume)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch or an early stop (not after a divergence)."""

    def on_train_abort(self, trainer: Trainer, error: BaseException) -> None:
        """Training raised ``error`` (e.g. :class:`~crowdlearn.train.TrainingDivergedError`)."""

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Before the training batches of ``epoch``."""

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        """After training and validation of ``epoch`` (its history dict is complete)."""

    def on_batch_end(self, trainer: Trainer, batch_index: int, parts: dict[str, float]) -> None:
        """After one optimizer step; ``parts`` holds the loss values of the batch."""

    def state_dict(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """JSON-serialisable state and tensors needed to resume; empty by default."""
        return {}, {}

    def load_state_dict(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        """Inverse of :meth:`state_dict`."""


class EarlyStopping(Callback):
    """Model selection on a monitored history value, with optional early stopping.

    Records ``"<monitor>_best"`` (bool) in every epoch's history. Keeps a copy of the best
    weights and restores them at the end of training.

    Parameters
    ----------
    monitor : str, default="valid_loss"
        History key to watch (``"valid_acc"`` with true labels, ``"valid_loss"`` otherwise).
    mode : {"min", "max"}, default="min"
    patience : int or None, default=None
        Stop after this many epochs without improvement; None never stops early (selection only).
    min_delta : float, default=0.0
        Smallest change counted as an improvement.
    restore_best : bool, default=True
        Load the best weights into the model when training ends.
    """

    def __init__(
        self,
        monitor: str = "valid_loss",
        *,
        mode: Literal["min", "max"] = "min",
        patience: int | None = None,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {patience!r}")
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = float(min_delta)
        self.restore_best = restore_best

    def on_train_begin(self, trainer: Trainer) -> None:
        if getattr(self, "_resumed", False):
            self._resumed = False
            return
        self.best_value_: float | None = None
        self.best_epoch_: int | None = None
        self.best_state_: dict[str, Tensor] | None = None
        self.wait_ = 0

    def _improved(self, value: float) -> bool:
        if self.best_value_ is None:
            return True
        if self.mode == "min":
            return value < self.best_value_ - self.min_delta
        return value > self.best_value_ + self.min_delta

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        value = trainer.history[-1].get(self.monitor)
        if value is None:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r} but the history has only "
                f"{sorted(k for k in trainer.history[-1] if k != 'batches')}; give validation data or change monitor"
            )
        improved = math.isfinite(value) and self._improved(float(value))
        trainer.history.record(f"{self.monitor}_best", improved)
        if improved:
            self.best_value_, self.best_epoch_, self.wait_ = float(value), epoch, 0
            self.best_state_ = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            return
        self.wait_ += 1
        if self.patience is not None and self.wait_ >= self.patience:
            trainer.stop_training = True
            trainer.sink(
                f"Early stopping after epoch {epoch}: {self.monitor} did not improve for {self.wait_} epochs; "
                f"best {self.monitor} = {self.best_value_:.6g} at epoch {self.best_epoch_}."
            )

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_state_ is not None:
            trainer.model.load_state_dict(self.best_state_)

    def state_dict(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        meta = {"best_value": self.best_value_, "best_epoch": self.best_epoch_, "wait": self.wait_}
        return meta, dict(self.best_state_ or {})

    def load_state_dict(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        self.best_value_ = meta["best_value"]
        self.best_epoch_ = meta["best_epoch"]
        self.wait_ = int(meta["wait"])
        self.best_state_ = dict(tensors) if tensors else None
        self._resumed = True


class Checkpoint(Callback):
    """Save everything needed to resume (safetensors + JSON) at the end of every ``every`` epochs.

    Parameters
    ----------
    dirname : str or Path
        Folder of the checkpoint (one file, ``checkpoint.safetensors``, tensors and JSON
        metadata together); each save replaces the previous one atomically (one rename, see
        :mod:`crowdlearn.train.checkpoint`). Resume with ``Trainer.fit(..., resume_from=dirname)``.
    every : int, default=1
    """

    def __init__(self, dirname: str | Path, *, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        self.dirname = Path(dirname)
        self.every = int(every)

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        if (epoch + 1) % self.every == 0 or trainer.stop_training or epoch + 1 == trainer.epochs:
            from crowdlearn.train.checkpoint import save_checkpoint

            save_checkpoint(trainer, self.dirname, epoch)
            trainer.history.record("checkpoint", True)


class LambdaSchedule(Callback):
    """Set the loss weight ``criterion.lam = fn(epoch)`` at the start of every epoch.

    Parameters
    ----------
    fn : callable
        ``fn(epoch) -> lam``.
    """

    def __init__(self, fn: Callable[[int], float]) -> None:
        self.fn = fn

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        lam = float(self.fn(epoch))
        setattr(trainer.criterion, "lam", lam)  # noqa: B010  (a loss weight, not a submodule)
        trainer.history.record("lam", lam)


def _fmt(entry: dict[str, Any]) -> str:
    keys = [k for k in ("train_loss", "train_nll", "valid_loss", "valid_acc") if entry.get(k) is not None]
    return " ".join(f"{k}={entry[k]:.4f}" for k in keys)


class EpochPrinter(Callback):
    """Write one line per epoch (losses and validation metric) to ``trainer.sink``."""

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        trainer.sink(f"epoch {epoch + 1}/{trainer.epochs} {_fmt(trainer.history[-1])}")


class ProgressBar(Callback):
    """A rich progress bar over epochs showing the loss and the validation metric.

    In a distributed run only rank 0 shows it.

    Parameters
    ----------
    console : rich.console.Console or None, default=None
        Where the bar is drawn; None draws on standard error (``Console(stderr=True)``), so
        standard output stays free for results. Inject ``Console(file=..., force_terminal=True)``
        to capture it.
    """

    def __init__(self, console: Any = None) -> None:
        self.console = console

    def on_train_begin(self, trainer: Trainer) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from crowdlearn.train.distributed import is_main_process

        self.progress_: Any = None
        if not is_main_process():
            return
        self.progress_ = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("epoch {task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console if self.console is not None else Console(stderr=True),
            transient=False,
        )
        self.progress_.start()
        self.task_ = self.progress_.add_task(
            "training", total=trainer.epochs, completed=len(trainer.history), metrics=""
        )

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        if self.progress_ is not None:
            self.progress_.update(self.task_, completed=epoch + 1, metrics=_fmt(trainer.history[-1]))

    def on_train_end(self, trainer: Trainer) -> None:
        if self.progress_ is not None:
            self.progress_.stop()

    def on_train_abort(self, trainer: Trainer, error: BaseException) -> None:
        if getattr(self, "progress_", None) is not None:
            self.progress_.stop()

    def __deepcopy__(self, memo: dict[int, Any]) -> ProgressBar:
        return copy.copy(self)


def label_margins(proba: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Margin of every candidate label: ``proba[n, k] - max_{j != k} proba[n, j]``, shape (n, K).

    Positive only for the top class (its lead over the runner-up); for every other class minus
    its gap to the top class. With one class the margin is the probability itself.
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.shape[1] < 2:
        return p.copy()
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    first, second = top2[:, 1:2], top2[:, 0:1]
    is_top = p >= first
    # the top class (or a tie for it) is compared with the runner-up, every other class with the top
    return np.where(is_top, p - second, p - first)


class MarginRecorder(Callback):
    """Record the margin of every candidate label of every item after each epoch (AUM / WAUM).

    After every ``every``-th epoch the classifier's probabilities ``f(x)`` of ``X`` are
    computed in eval mode (:meth:`~crowdlearn.train.Trainer.predict_logits`, softmax) and
    :func:`label_margins` of them is added to ``margin_sum_``. ``aum_`` is their mean: the area
    under the margin (Pleiss et al., NeurIPS 2020) of every (item, label) pair at once, for
    :func:`crowdlearn.quality.waum`. Memory O(n_items x K), whatever the number of epochs or
    labels. The margins are of the one crowd model's ``f``, not of a separate classifier.

    Parameters
    ----------
    X : array-like, Tensor or torch Dataset of n_items rows
        The training inputs (row n = item n), as given to ``fit``.
    every : int >= 1, default=1
        Record after every ``every``-th epoch.

    Attributes
    ----------
    margin_sum_ : ndarray of shape (n_items, n_classes)
        Sum of the recorded margins.
    n_epochs_ : int
        Epochs recorded.

    Examples
    --------
    ``rec = MarginRecorder(X); clf = CrowdClassifier(callbacks=[rec]).fit(X, ann)``, then
    ``quality.waum(ann, rec.aum_, clf.predict_proba(X), clf.confusions_)``.
    """

    def __init__(self, X: Any, *, every: int = 1) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        self.X = X
        self.every = int(every)

    def on_train_begin(self, trainer: Trainer) -> None:
        if getattr(self, "_resumed", False):
            self._resumed = False
            return
        self.margin_sum_: npt.NDArray[np.float64] | None = None
        self.n_epochs_ = 0

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        if (epoch + 1) % self.every:
            return
        with torch.no_grad():
            proba = trainer.predict_logits(self.X).float().softmax(dim=1).double().numpy()
        m = label_margins(proba)
        self.margin_sum_ = m if self.margin_sum_ is None else self.margin_sum_ + m
        self.n_epochs_ += 1

    @property
    def aum_(self) -> npt.NDArray[np.float64]:
        """Mean margin over the recorded epochs, shape (n_items, n_classes)."""
        if getattr(self, "margin_sum_", None) is None or self.n_epochs_ == 0:
            raise ValueError("MarginRecorder has recorded no epoch yet: train with it in callbacks=[...] first")
        out: npt.NDArray[np.float64] = np.asarray(self.margin_sum_) / self.n_epochs_
        return out

    def state_dict(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        tensors = {} if self.margin_sum_ is None else {"margin_sum": torch.from_numpy(self.margin_sum_.copy())}
        return {"n_epochs": self.n_epochs_}, tensors

    def load_state_dict(self, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        self.n_epochs_ = int(meta["n_epochs"])
        t = tensors.get("margin_sum")
        self.margin_sum_ = None if t is None else t.double().numpy().copy()
        self._resumed = True
