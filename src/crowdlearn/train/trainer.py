"""The one training loop every crowd method uses.

Methods differ by the model's head and by the loss (:mod:`crowdlearn.nn.losses`); the loop is
written once, in overridable steps (``fit -> fit_loop -> run_epoch -> train_step`` and
``run_validation -> validation_step``, ``get_loss``), with callbacks around them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from crowdlearn._checks import check_number, param_error
from crowdlearn.annotations import Annotations
from crowdlearn.nn import functional as CF
from crowdlearn.nn.model import CrowdModel
from crowdlearn.train import distributed as dist_utils
from crowdlearn.train.batching import Batch, Inputs, ValidationSet, item_batches, make_batch, shard_batches
from crowdlearn.train.callbacks import Callback
from crowdlearn.train.history import History
from crowdlearn.train.transforms import BatchTransform, InputMixup

__all__ = [
    "DIVERGENCE_FACTOR",
    "GOLD_LOGIT_GAP",
    "MAX_LR",
    "Schedule",
    "Trainer",
    "TrainingDivergedError",
    "resolve_device",
]

Schedule = Literal["constant", "cosine"] | Callable[[int], float] | None
#: ``loss_fn(logits (B, K), representation (B, H) or None) -> loss parts``
LossFn = Callable[[Tensor, "Tensor | None"], dict[str, Tensor]]

#: The largest learning rate Adam can take: its first step ``lr / (1 - beta1)`` (beta1 = 0.9)
#: must be a finite float32.
MAX_LR = float(torch.finfo(torch.float32).max) * (1.0 - 0.9)

#: Training has diverged when the held-out loss (``valid_loss``: NLL of held-out crowd labels,
#: or cross-entropy on the validation truth) exceeds this multiple of ``log K``, the loss of the
#: uniform prediction. Measured by ``benchmarks/divergence.py`` (docs/benchmarks.md): lr 1e-3
#: to 0.1 peak at 1.62 x log K at most, lr=1 at 1.19 x for every crowd method but 31 x for
#: ``ce`` (which this rule stops), lr=100 at 23-2200 x and lr=1e6 at 2e5-2e7 x.
DIVERGENCE_FACTOR = 20.0

#: The logit gap of a gold item's clamped prediction (``0`` at the gold class, ``-GOLD_LOGIT_GAP``
#: elsewhere): its softmax is one-hot to float32 precision (``exp(-1e4) = 0``) while every log
#: stays finite, so heads working in log space see no ``-inf``.
GOLD_LOGIT_GAP = 1e4


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite, or the held-out loss exploded.

    The held-out rule: ``valid_loss`` non-finite or above :data:`DIVERGENCE_FACTOR` x ``log K``
    (``K`` classes; ``log K`` is the loss of the uniform prediction), checked after every epoch
    with validation data, before that epoch's checkpoint is written.

    The model is left with the weights it had at the end of the last completed epoch (the last
    state with finite losses) and the trainer's history stops at that epoch; a
    :class:`~crowdlearn.train.Checkpoint` folder keeps its last (good) checkpoint.

    Attributes
    ----------
    epoch, batch : int
        Where the non-finite loss appeared (0-based); ``batch`` is -1 when the held-out loss
        of ``epoch`` exploded.
    parts : dict of str to float
        The loss values of that batch (in a distributed run: this rank's values), or
        ``{"valid_loss": value}``.
    ranks : list of int or None
        In a distributed run, the ranks whose loss was non-finite (the error is raised on every
        rank); None in a single process.
    checkpoint : str or None
        With a :class:`~crowdlearn.train.Checkpoint` callback: where the last good checkpoint
        is (its epoch is in the message); None without one.
    """

    def __init__(
        self,
        epoch: int,
        batch: int,
        parts: dict[str, float],
        *,
        ranks: list[int] | None = None,
        limit: float | None = None,
    ) -> None:
        self.epoch = epoch
        self.batch = batch
        self.parts = parts
        self.ranks = ranks
        self.checkpoint: str | None = None
        shown = ", ".join(f"{k}={v:.6g}" for k, v in parts.items())
        if batch < 0:
            value = parts.get("valid_loss", float("nan"))
            what = (
                f"held-out loss {value:.6g} after epoch {epoch}"
                + (" is not finite" if not math.isfinite(value) else f" exceeds {limit:.4g}")
                + (f" ({DIVERGENCE_FACTOR:g} x log K, K = the number of classes)" if limit is not None else "")
            )
        else:
            where = "" if ranks is None else f" on rank(s) {ranks} (this rank's values:"
            shown = f"{shown})" if ranks is not None else shown
            what = f"non-finite loss at epoch {epoch}, batch {batch}{where} ({shown})"
        super().__init__(
            f"training diverged: {what}; the model was reset "
            f"to its state after the last completed epoch. Try a smaller learning rate or regularization weight."
        )


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda if available, else mps if available, else cpu."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda', 'mps' or a torch device string, got {device!r}"
        ) from exc


class Trainer:
    """Trains a :class:`~crowdlearn.nn.CrowdModel` with a crowd loss on observed labels.

    Parameters
    ----------
    model : CrowdModel
        Backbone (inputs -> logits) plus head (log f -> annotators' label distribution).
    criterion : torch.nn.Module
        A :class:`~crowdlearn.nn.CrowdLoss` or any loss module called the same way (see
        :meth:`get_loss`), returning a dict of scalar tensors with ``"loss"``.
    epochs : int, default=100
    batch_size : int, default=128
        Items per batch; each batch carries all observed labels of its items.
    lr : float, default=1e-3
        Adam learning rate of the backbone.
    confusion_lr : float or None, default=None
        Learning rate of the head's parameters (None: ``lr``).
    weight_decay : float, default=1e-4
        Adam weight decay of the backbone. The head is not decayed (decay would pull the
        confusion logits toward uniform columns).
    schedule : {"constant", "cosine"}, callable or None, default=None
        Learning-rate factor per epoch (``fn(epoch) -> factor``); ``"cosine"`` decays to 0.
    device : str or torch.device, default="auto"
    amp : bool or {"float16", "bfloat16"}, default=False
        Mixed precision on CUDA; ignored elsewhere. True or ``"float16"``: float16 autocast with
        gradient scaling; ``"bfloat16"``: bfloat16 autocast (no scaling needed). Only the
        backbone runs under autocast; the head, the loss and the regularizers run in float32
        (the log-determinants of GeoCrowdNet in float64, returned as float32).
    channels_last : bool, default=False
        On CUDA, convert the model to channels-last memory format and feed 4-d (image) batches
        in that format (faster convolutions with tensor cores); ignored elsewhere.
    random_state : int, default=0
        Seeds shuffling, dropout and mixup (the caller seeds the initial weights). An int, not a
        :class:`numpy.random.Generator`: torch is seeded with it.
    deterministic : bool, default=False
        Use ``torch.use_deterministic_algorithms`` while training.
    mixup : float, default=0.0
        Mixup (Zhang et al., ICLR 2018) on the observed labels: when > 0, every training batch
        draws ``t ~ Beta(mixup, mixup)`` and a permutation ``p`` of its rows, feeds
        ``t * x + (1 - t) * x[p]``, and the loss is ``t * loss(labels of row r at r) +
        (1 - t) * loss(labels of row p[r] at r)``: each mixed row carries the labels of both
        items it mixes, weighted. 0 disables it. Validation and prediction never mix. It is
        :class:`~crowdlearn.train.InputMixup`; ``transform`` replaces it.
    transform : BatchTransform or None, default=None
        What a training batch becomes before the loss (:mod:`crowdlearn.train.transforms`): the
        inputs to feed and weighted views of the labels, whose losses are summed with their
        weights. None: ``InputMixup(mixup)`` when ``mixup > 0``, else the batch as it is. Giving
        both ``transform`` and ``mixup > 0`` is an error.
    callbacks : sequence of Callback
        Called in order at each hook.
    sink : callable, default=print
        Receives the text messages (epoch lines, the early-stopping message). In a distributed
        run only rank 0's messages reach it.
    distributed : bool, default=False
        Train data-parallel over the processes of a ``torch.distributed`` group (launched with
        ``torchrun``): True initializes the default group from torchrun's environment variables
        (:func:`crowdlearn.train.distributed.init_from_env`) if it is not yet initialized. An
        already-initialized default group turns data-parallel training on even when False.
        Each rank takes every ``world_size``-th batch of the same seeded shuffle (the effective
        batch is ``batch_size * world_size``), gradients are averaged by
        :class:`~torch.nn.parallel.DistributedDataParallel`, history values are averaged over
        ranks, validation is sharded and summed, dropout is seeded ``random_state + rank`` and only
        rank 0 writes checkpoints. See :mod:`crowdlearn.train.distributed` and docs/training.md.
    check_every : int or None, default=None
        Training steps between the host-side reads of the loss values (the non-finite check,
        the per-batch history, ``on_batch_end``). None: every step on the CPU (where reading a
        value costs nothing) and once per epoch on an accelerator (CUDA, MPS), so the inner loop
        never waits for the device: the steps' values stay on the device until then, read in
        one transfer. The check is as strict either way: the first non-finite batch is named in
        the :class:`TrainingDivergedError` with its values and the model is reset to its state
        after the last completed epoch; with a deferred check the steps after that batch have
        run too (their optimizer moments are not restored). A callback overriding
        ``on_batch_end`` and a distributed run read every step.
    """

    def __init__(
        self,
        model: CrowdModel,
        criterion: torch.nn.Module,
        *,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        confusion_lr: float | None = None,
        weight_decay: float = 1e-4,
        schedule: Schedule = None,
        device: str | torch.device = "auto",
        amp: bool | Literal["float16", "bfloat16"] = False,
        channels_last: bool = False,
        random_state: int = 0,
        deterministic: bool = False,
        mixup: float = 0.0,
        transform: BatchTransform | None = None,
        callbacks: Sequence[Callback] = (),
        sink: Callable[[str], Any] = print,
        distributed: bool = False,
        check_every: int | None = None,
    ) -> None:
        check_number(epochs, "epochs", "Trainer", low=1, integer=True)
        check_number(batch_size, "batch_size", "Trainer", low=1, integer=True)
        check_number(lr, "lr", "Trainer", low=0, strict=True)
        check_number(confusion_lr, "confusion_lr", "Trainer", low=0, strict=True, allow_none=True)
        check_number(weight_decay, "weight_decay", "Trainer", low=0)
        check_number(mixup, "mixup", "Trainer", low=0)  # 0 disables it
        check_number(random_state, "random_state", "Trainer", low=0, integer=True)
        check_number(check_every, "check_every", "Trainer", low=1, integer=True, allow_none=True)
        for name, value in (("lr", lr), ("confusion_lr", confusion_lr)):
            if value is not None and not (math.isfinite(value) and value <= MAX_LR):
                raise ValueError(
                    f"{name}={value!r} is too large or not finite: Adam's first step {name} / (1 - beta1) "
                    f"must be a finite float32 (at most {MAX_LR:.3g})"
                )
        if not isinstance(distributed, bool):
            raise param_error("Trainer", "distributed", "a bool", distributed)
        if amp not in (False, True, "float16", "bfloat16"):
            raise param_error("Trainer", "amp", "a bool, 'float16' or 'bfloat16'", amp)
        if not isinstance(channels_last, bool):
            raise param_error("Trainer", "channels_last", "a bool", channels_last)
        if transform is not None and not callable(transform):
            raise param_error("Trainer", "transform", "None or a BatchTransform", transform)
        if transform is not None and mixup > 0:
            raise ValueError("Trainer: give mixup > 0 or a transform, not both (InputMixup(alpha) is the mixup)")
        self.distributed = distributed
        self.check_every = None if check_every is None else int(check_every)
        if distributed:
            dist_utils.init_from_env()
        self.device = resolve_device(device)
        if (distributed or dist_utils.is_distributed()) and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", dist_utils.local_rank())
        self.model = model.to(self.device)
        self.criterion = criterion
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.confusion_lr = float(confusion_lr) if confusion_lr is not None else float(lr)
        self.weight_decay = float(weight_decay)
        self.schedule = schedule
        self.amp = bool(amp) and self.device.type == "cuda"
        #: the autocast dtype when ``amp`` is on
        self.amp_dtype = torch.bfloat16 if amp == "bfloat16" else torch.float16
        self.channels_last = channels_last and self.device.type == "cuda"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.random_state = int(random_state)
        self.deterministic = deterministic
        self.mixup = float(mixup)
        self.transform: BatchTransform | None = (
            transform if transform is not None else (InputMixup(self.mixup) if self.mixup > 0 else None)
        )
        self.callbacks = list(callbacks)
        self.sink = sink
        self.history = History()
        self.stop_training = False
        self.generator = torch.Generator().manual_seed(self.random_state)
        head: Any = self.model.head
        if self.data_parallel and getattr(head, "sparse", False):
            head.sparse = False  # DDP all-reduces dense gradients
        self.optimizer = self.make_optimizer()
        self.scaler = torch.amp.GradScaler("cuda") if self.amp and self.amp_dtype == torch.float16 else None
        self._good_state: dict[str, Tensor] | None = None
        self._targets: Tensor | None = None
        self._known: Tensor | None = None
        #: the DistributedDataParallel wrapper while a distributed ``fit`` runs, else None
        self._ddp: torch.nn.parallel.DistributedDataParallel | None = None

    # ------------------------------------------------------------------ set-up
    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam: the backbone's group (lr, weight decay), then the head's groups.

        A head group with ``"sparse": True`` (a :class:`~crowdlearn.nn.ConfusionMatrices`
        head with ``sparse=True``, the default) is stepped by :class:`~crowdlearn.train.optim.LazyAdam`
        (Adam's update on the gradient's rows only: an annotator absent from the batch keeps its
        logits and moments), the
        others by :class:`torch.optim.Adam`, through one
        :class:`~crowdlearn.train.optim.AdamWithSparse` (sparse groups last). In a distributed
        run the heads are made dense first (``head.sparse = False``; DDP averages dense
        gradients). A head without ``param_groups`` gets one dense group, and its sparse layers
        (e.g. a ``ConfusionMatrices`` inside it) are made dense.

        The head's groups are ``head.param_groups(confusion_lr)`` when the head defines it (a
        list of dicts with ``"params"``, ``"lr"`` and ``"weight_decay"``; every trainable head
        parameter in exactly one), else one group of all its parameters at ``confusion_lr``
        without decay (decay would pull the confusion logits toward uniform columns). The
        ``schedule`` factor multiplies ``self.lr`` (backbone), ``self.confusion_lr`` (the default
        head group, and a head group given with ``"base_lr": None``, as the confusion and
        CrowdLayer heads give theirs) or a head group's own ``"base_lr"`` (its ``lr`` as the
        head gave it, when it gives no ``"base_lr"``).
        """
        head_params = [p for p in self.model.head.parameters() if p.requires_grad]
        head_ids = {id(p) for p in head_params}
        body = [p for p in self.model.parameters() if p.requires_grad and id(p) not in head_ids]
        groups: list[dict[str, Any]] = [{"params": body, "lr": self.lr, "weight_decay": self.weight_decay}]
        own = getattr(self.model.head, "param_groups", None)
        if callable(own):
            head_groups = [dict(g, params=list(g["params"])) for g in own(self.confusion_lr)]
            seen = [id(p) for g in head_groups for p in g["params"]]
            if sorted(seen) != sorted(head_ids) or any({"lr", "weight_decay"} - set(g) for g in head_groups):
                raise ValueError(
                    f"{type(self.model.head).__name__}.param_groups() must put every trainable head parameter "
                    "in exactly one group, each with 'params', 'lr' and 'weight_decay'"
                )
            groups += [dict(g, base_lr=g["base_lr"] if "base_lr" in g else float(g["lr"])) for g in head_groups]
        elif head_params:
            layer: Any
            for layer in self.model.head.modules():  # a sparse layer inside a head without groups: dense
                if getattr(layer, "sparse", False) is True:
                    layer.sparse = False
            groups.append({"params": head_params, "lr": self.confusion_lr, "weight_decay": 0.0})
        sparse = [g for g in groups if g.get("sparse")]
        if not sparse:
            return torch.optim.Adam([{k: v for k, v in g.items() if k != "sparse"} for g in groups])
        from crowdlearn.train.optim import AdamWithSparse

        dense = [g for g in groups if not g.get("sparse")]
        return AdamWithSparse(dense, sparse)

    def lr_factor(self, epoch: int) -> float:
        """Learning-rate multiplier of ``epoch`` under ``schedule``."""
        if self.schedule is None or self.schedule == "constant":
            return 1.0
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * epoch / max(self.epochs, 1)))
        if callable(self.schedule):
            return float(self.schedule(epoch))
        raise ValueError(f"schedule must be 'constant', 'cosine', a callable or None, got {self.schedule!r}")

    def notify(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every callback."""
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # ------------------------------------------------------------------ the loop
    def fit(
        self,
        X: Any,
        annotations: Annotations,
        *,
        valid: ValidationSet | None = None,
        resume_from: str | os.PathLike[str] | None = None,
        targets: Any = None,
        known_labels: Any = None,
    ) -> History:
        """Train on ``X`` (inputs aligned with ``annotations``' items) and return the history.

        Parameters
        ----------
        X : ndarray or Tensor of shape (n_items, ...), or torch Dataset of length n_items
        annotations : Annotations
        valid : ValidationSet, optional
            Adds ``valid_loss`` (and ``valid_acc`` with true labels) to every epoch.
        resume_from : path, optional
            Folder written by :class:`~crowdlearn.train.Checkpoint`: continue that run.
        targets : array-like of shape (n_items, K), optional
            Soft targets of every item, carried by each batch (``Batch.targets``) for a criterion
            that trains on them (the two-stage methods, MBEM).
        known_labels : array-like of int of shape (n_items,), optional
            Gold labels: the true class index of some items, -1 for the others. A gold item's
            prediction is fixed to its class in the criterion (its clamped logits, see
            :data:`GOLD_LOGIT_GAP`: the crowd term of its labels becomes ``log A_m[y, z]``) and
            the classifier is trained on it by the term ``gold = -(1/E) sum log f(x_n)[z_n]``
            over the batch's gold items (``E`` the batch's labels; in a batch without crowd labels,
            its number of gold items), added to ``loss``: the complete-data likelihood of the known
            classes. Gold items without crowd labels are trained on too. Not with a batch
            ``transform`` (mixup).
        """
        inputs = X if isinstance(X, Inputs) else Inputs(X)
        self._targets = None if targets is None else self._check_targets(targets, annotations)
        self._known = None if known_labels is None else self._check_known(known_labels, annotations)
        if len(inputs) != annotations.n_items:
            raise ValueError(
                f"X has {len(inputs)} rows but the annotations have {annotations.n_items} items; "
                "row n of X must be the input of item n"
            )
        n_head = getattr(self.model.head, "n_annotators", None)
        if n_head is not None and n_head != annotations.n_annotators:
            raise ValueError(
                f"the model's head has {n_head} annotators but the annotations have {annotations.n_annotators}"
            )
        k = getattr(self.model.head, "n_classes", None)
        if k is not None and annotations.n_labels and int(annotations.labels.max()) >= k:
            raise ValueError(f"label {int(annotations.labels.max())} is out of range for a model with {k} classes")
        if not self.data_parallel:
            with torch.random.fork_rng(devices=[]), self._determinism():
                torch.manual_seed(self.random_state)
                start = 0
                if resume_from is not None:
                    start = self.resume(resume_from)
                self.fit_loop(inputs, annotations, valid, start)
            return self.history
        if self.distributed:
            dist_utils.init_from_env()  # no-op unless the group was destroyed since __init__
        sink = self.sink
        if not dist_utils.is_main_process():
            self.sink = _silent
        try:
            with torch.random.fork_rng(devices=[]), self._determinism():
                # the same initial weights everywhere (DDP broadcasts rank 0's), per-rank dropout
                torch.manual_seed(self.random_state + dist_utils.rank())
                start = 0
                if resume_from is not None:
                    start = self.resume(resume_from)
                self._ddp = self.wrap_model()
                self.fit_loop(inputs, annotations, valid, start)
        finally:
            self._ddp = None
            self.sink = sink
        return self.history

    @staticmethod
    def _check_targets(targets: Any, annotations: Annotations) -> Tensor:
        t = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        want = (annotations.n_items, annotations.n_classes)
        if tuple(t.shape) != want:
            raise ValueError(f"targets must have shape (n_items, n_classes) = {want}, got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            raise ValueError("targets must be finite and non-negative")
        return t

    def _check_known(self, known_labels: Any, annotations: Annotations) -> Tensor | None:
        k = annotations.item_class_indices(known_labels, "known_labels")
        if not (k >= 0).any():
            return None
        if self.transform is not None:
            raise ValueError(
                f"known_labels (gold labels) cannot be combined with the batch transform "
                f"{type(self.transform).__name__} (e.g. mixup): train with mixup=0"
            )
        return torch.from_numpy(k.astype(np.int64))

    @property
    def data_parallel(self) -> bool:
        """True when ``fit`` trains data-parallel (``distributed=True`` or an initialized default group)."""
        return self.distributed or dist_utils.is_distributed()

    def wrap_model(self) -> torch.nn.parallel.DistributedDataParallel:
        """:class:`~torch.nn.parallel.DistributedDataParallel` around a module computing the loss.

        The wrapped module runs the backbone *and* the criterion (which calls the head), so every
        parameter of the :class:`~crowdlearn.nn.CrowdModel`, the head's included, is used inside
        the DDP forward and its gradient is averaged over ranks. ``self.model`` stays the
        unwrapped model (the wrapper shares its parameters).
        """
        module = _LossForward(self.model, self.autocast)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

    def _determinism(self) -> AbstractContextManager[Any]:
        if not self.deterministic:
            return nullcontext()

        class _Ctx:
            def __enter__(self) -> None:
                self.prev = torch.are_deterministic_algorithms_enabled()
                torch.use_deterministic_algorithms(True)

            def __exit__(self, *exc: object) -> None:
                torch.use_deterministic_algorithms(self.prev)

        return _Ctx()

    def resume(self, dirname: str | os.PathLike[str]) -> int:
        """Load a checkpoint; returns the next epoch to run."""
        from crowdlearn.train.checkpoint import load_checkpoint

        return load_checkpoint(self, dirname)

    def fit_loop(self, inputs: Inputs, annotations: Annotations, valid: ValidationSet | None, start: int) -> None:
        """Epochs ``start..epochs-1`` with callbacks; stops when ``stop_training`` is set."""
        trained = annotations.item_counts > 0
        if self._known is not None:
            trained = trained | (self._known.numpy() >= 0)
        labelled = np.flatnonzero(trained).astype(np.int64)
        if labelled.size == 0:
            raise ValueError("the annotations hold no labels; nothing to train on")
        self.notify("on_train_begin")
        try:
            for epoch in range(start, self.epochs):
                if self.stop_training:
                    break
                self._good_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self.history.new_epoch(epoch)
                for i, group in enumerate(self.optimizer.param_groups):  # base_lr: see make_optimizer
                    base = group.get("base_lr")
                    if base is None:
                        base = self.lr if i == 0 else self.confusion_lr
                    group["lr"] = float(base) * self.lr_factor(epoch)
                self.notify("on_epoch_begin", epoch)
                self.run_epoch(inputs, annotations, labelled, epoch)
                if self._ddp is not None:
                    self._broadcast_buffers()
                if valid is not None:
                    measured = self.run_validation(valid)
                    for key, value in measured.items():
                        self.history.record(key, value)
                    self.check_divergence(measured, epoch, annotations.n_classes)
                self.notify("on_epoch_end", epoch)
        except TrainingDivergedError as err:
            if self._good_state is not None:
                self.model.load_state_dict(self._good_state)
            if self.history.epochs and self.history[-1]["epoch"] == err.epoch:
                self.history.epochs.pop()
            self._name_last_checkpoint(err)
            self.notify("on_train_abort", err)
            raise
        except BaseException as err:
            self.notify("on_train_abort", err)
            raise
        self.notify("on_train_end")

    def check_divergence(self, measured: dict[str, float], epoch: int, n_classes: int) -> None:
        """Raise :class:`TrainingDivergedError` when ``valid_loss`` is non-finite or above
        :data:`DIVERGENCE_FACTOR` x ``log(n_classes)`` (the loss of the uniform prediction)."""
        value = measured.get("valid_loss")
        if value is None:
            return
        limit = DIVERGENCE_FACTOR * math.log(max(n_classes, 2))
        if not (math.isfinite(value) and value <= limit):
            raise TrainingDivergedError(epoch, -1, {"valid_loss": float(value)}, limit=limit)

    def _name_last_checkpoint(self, err: TrainingDivergedError) -> None:
        """Add the last good checkpoint (folder and epoch) to ``err`` when the run is checkpointed."""
        from crowdlearn.train.callbacks import Checkpoint

        folders = [cb.dirname for cb in self.callbacks if isinstance(cb, Checkpoint)]
        if not folders:
            return
        saved = [e["epoch"] for e in self.history.epochs if e.get("checkpoint")]
        err.checkpoint = str(folders[0])
        note = (
            f" The last good checkpoint is epoch {saved[-1]} in {folders[0]}."
            if saved
            else f" No checkpoint was written to {folders[0]} before the divergence."
        )
        err.args = (str(err.args[0]) + note, *err.args[1:])

    def run_epoch(self, inputs: Inputs, annotations: Annotations, items: np.ndarray[Any, Any], epoch: int) -> None:
        """One pass over the labelled items; records ``train_loss`` (mean over batches) etc."""
        self.model.train()
        sums: dict[str, float] = {}
        batches = item_batches(items, self.batch_size, generator=self.generator)
        if self._ddp is not None:
            batches = shard_batches(batches, dist_utils.rank(), dist_utils.world_size())
        every = self._steps_between_checks(len(batches))
        pending: list[tuple[int, dict[str, Tensor]]] = []
        for b, idx in enumerate(batches):
            batch = self.to_device(make_batch(inputs, annotations, idx, self._targets))
            if every == 1:
                self._record_step(b, self.train_step(batch, epoch, b), sums)
                continue
            pending.append((b, self.step_on_device(batch)))
            if len(pending) >= every:
                self._read_steps(pending, epoch, sums)
        self._read_steps(pending, epoch, sums)
        for key, v in sums.items():
            self.history.record(f"train_{key}", v / len(batches))

    def _steps_between_checks(self, n_batches: int) -> int:
        """``check_every`` as it applies to this epoch (see the class docstring)."""
        overridden = any(type(cb).on_batch_end is not Callback.on_batch_end for cb in self.callbacks)
        if self._ddp is not None or overridden:
            return 1
        if self.check_every is not None:
            return self.check_every
        return 1 if self.device.type == "cpu" else max(n_batches, 1)

    def _record_step(self, b: int, values: dict[str, float], sums: dict[str, float]) -> None:
        self.history.record_batch(values)
        for key, v in values.items():
            sums[key] = sums.get(key, 0.0) + v
        self.notify("on_batch_end", b, values)

    def _read_steps(self, pending: list[tuple[int, dict[str, Tensor]]], epoch: int, sums: dict[str, float]) -> None:
        """Read the device-held values of ``pending`` steps in one transfer, raise at the first
        non-finite one (:class:`TrainingDivergedError`), else record them; empties ``pending``."""
        if not pending:
            return
        dtype = torch.float32 if self.device.type == "mps" else torch.float64  # MPS has no float64
        flat = torch.cat([torch.stack([v.to(dtype) for v in parts.values()]) for _, parts in pending]).tolist()
        start = 0
        steps = list(pending)
        pending.clear()
        for b, parts in steps:
            values = dict(zip(parts, flat[start : start + len(parts)], strict=True))
            start += len(parts)
            if not all(math.isfinite(v) for v in values.values()):
                raise TrainingDivergedError(epoch, b, values)
            self._record_step(b, values, sums)

    def to_device(self, batch: Batch) -> Batch:
        """``batch`` on the training device; on CUDA from pinned memory without blocking the host,
        with the batch's distinct annotators computed on the host and attached
        (:func:`crowdlearn.nn.functional.attach_unique`: the heads' gather then needs no
        device synchronisation)."""
        if self.device.type != "cuda":
            return batch.to(self.device)
        touched, inverse = torch.unique(batch.annotators, return_inverse=True)
        out = batch.pin_memory().to(self.device, non_blocking=True)
        CF.attach_unique(
            out.annotators,
            touched.pin_memory().to(self.device, non_blocking=True),
            inverse.pin_memory().to(self.device, non_blocking=True),
        )
        return out

    def autocast(self) -> AbstractContextManager[Any]:
        """Mixed-precision context (CUDA with ``amp=True``) or a no-op."""
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=self.amp_dtype)
        return nullcontext()

    def prepare_input(self, x: Tensor) -> Tensor:
        """``x`` as fed to the model: channels-last for a 4-d batch when ``channels_last`` is on."""
        if self.channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def train_step(self, batch: Batch, epoch: int, batch_index: int) -> dict[str, float]:
        """Forward, loss, backward and optimizer step on one batch; returns the loss parts.

        Reads the values on the host and raises :class:`TrainingDivergedError` before the
        backward pass when one is not finite (:meth:`step_on_device` defers that read).
        """
        parts = self.compute_loss(batch)
        values = {k: float(v.detach()) for k, v in parts.items()}
        if self._ddp is not None:
            values = self._sync_values(values, epoch, batch_index)
        elif not all(math.isfinite(v) for v in values.values()):
            raise TrainingDivergedError(epoch, batch_index, values)
        self.backward_step(parts["loss"])
        return values

    def step_on_device(self, batch: Batch) -> dict[str, Tensor]:
        """:meth:`train_step` without reading the values: returns them detached, on the device.

        The caller checks them (the trainer: every ``check_every`` steps, :meth:`run_epoch`).
        """
        parts = self.compute_loss(batch)
        self.backward_step(parts["loss"])
        return {k: v.detach() for k, v in parts.items()}

    def compute_loss(self, batch: Batch) -> dict[str, Tensor]:
        """Zero the gradients and return the loss parts of one training batch (scalar tensors)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.transform is not None:
            return self.transformed_loss(batch)
        return self.forward_loss(batch.x, lambda logits, rep: self.get_loss(logits, batch, rep))

    def backward_step(self, loss: Tensor) -> None:
        """Backward pass of ``loss`` and one optimizer step (through the gradient scaler with AMP)."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()

    def forward_loss(self, x: Tensor, loss_fn: LossFn) -> dict[str, Tensor]:
        """``loss_fn(logits, representation)`` of the model on ``x``: the model under
        :meth:`autocast`, then the loss in float32. The representation (B, H) is computed only
        when the head asks for it (``model.needs_representation``), else it is None.

        In a distributed run both go through the DDP wrapper (see :meth:`wrap_model`).
        """
        x = self.prepare_input(x)
        if self._ddp is not None:
            out: dict[str, Tensor] = self._ddp(x, loss_fn)
            return out
        with self.autocast():
            logits, rep = self.model.head_inputs(x)
        return loss_fn(logits, rep)

    def _sync_values(self, values: dict[str, float], epoch: int, batch_index: int) -> dict[str, float]:
        """Average the loss values over ranks; raise on every rank if any rank's are non-finite."""
        import torch.distributed as dist

        finite = all(math.isfinite(v) for v in values.values())
        world = dist_utils.world_size()
        flags = torch.zeros(world, dtype=torch.float64)
        flags[dist_utils.rank()] = 0.0 if finite else 1.0
        local = torch.tensor([v if finite else 0.0 for v in values.values()], dtype=torch.float64)
        packed = torch.cat([flags, local]).to(dist_utils.collective_device())
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        packed = packed.cpu()
        bad = [r for r in range(world) if packed[r] > 0]
        if bad:
            raise TrainingDivergedError(epoch, batch_index, values, ranks=bad)
        return {k: float(packed[world + i]) / world for i, k in enumerate(values)}

    def _broadcast_buffers(self) -> None:
        """Copy rank 0's buffers (e.g. batch-norm running statistics) to every rank."""
        import torch.distributed as dist

        for buf in self.model.buffers():
            dist.broadcast(buf, src=0)

    def get_loss(self, logits: Tensor, batch: Batch, representation: Tensor | None = None) -> dict[str, Tensor]:
        """The criterion on one batch: a dict of scalar tensors with ``"loss"``.

        A criterion with ``takes_batch = True`` is called as ``criterion(model, logits, batch,
        representation)`` (it sees the batch's targets and annotator mixtures); others as
        ``criterion(model, logits, rows, annotators, labels[, representation])``. With gold labels
        (``fit(..., known_labels=...)``) the criterion sees the gold items' predictions clamped to
        their class and ``gold``, the cross-entropy of the classifier on them, is added (see
        :meth:`fit`).
        """
        if self._known is None:
            return self.criterion_loss(logits, batch, representation)
        known = self._known[torch.from_numpy(batch.items)]  # on the host: no device synchronisation
        host_rows = torch.nonzero(known >= 0).squeeze(1)
        if host_rows.numel() == 0:
            return self.criterion_loss(logits, batch, representation)
        rows = host_rows.to(logits.device, non_blocking=True)
        cls = known.index_select(0, host_rows).to(logits.device, non_blocking=True)
        logits = logits.float()
        fixed = torch.full((rows.numel(), logits.shape[1]), -GOLD_LOGIT_GAP, device=logits.device)
        fixed[torch.arange(rows.numel(), device=logits.device), cls] = 0.0
        clamped = logits.index_put((rows,), fixed)
        n_labels = batch.labels.numel()
        # per crowd label, as the criterion's terms; a batch of gold items without crowd labels is
        # averaged over its gold items instead (a sum there would scale with the batch size)
        gold = -logits.log_softmax(dim=1)[rows, cls].sum() / (n_labels if n_labels > 0 else rows.numel())
        if n_labels == 0:  # a batch of gold items without crowd labels: the gold term alone
            zero = gold * 0.0
            return {"loss": gold, "nll": zero, "gold": gold}
        parts = self.criterion_loss(clamped, batch, representation)
        return {**parts, "loss": parts["loss"] + gold, "gold": gold}

    def criterion_loss(self, logits: Tensor, batch: Batch, representation: Tensor | None = None) -> dict[str, Tensor]:
        """The criterion's parts on one batch (:meth:`get_loss` without the gold labels)."""
        if getattr(self.criterion, "takes_batch", False):
            out: dict[str, Tensor] = self.criterion(self.model, logits.float(), batch, representation)
            return out
        if batch.targets is not None or batch.annotator_mix is not None:
            what = "soft targets" if batch.targets is not None else "annotator mixtures"
            raise TypeError(
                f"the batch carries {what}, which the criterion {type(self.criterion).__name__} cannot use "
                "(it needs takes_batch = True)"
            )
        if representation is None:  # the criterion's signature before heads took a representation
            parts: dict[str, Tensor] = self.criterion(
                self.model, logits.float(), batch.rows, batch.annotators, batch.labels
            )
            return parts
        parts = self.criterion(self.model, logits.float(), batch.rows, batch.annotators, batch.labels, representation)
        return parts

    def transformed_loss(self, batch: Batch) -> dict[str, Tensor]:
        """Loss parts of one transformed batch: ``sum_v w_v * loss(view_v)`` over the views of
        ``self.transform`` (see ``transform``), all on one forward pass of the fed inputs."""
        assert self.transform is not None
        x, views = self.transform(batch, self.generator)

        def loss_fn(logits: Tensor, rep: Tensor | None) -> dict[str, Tensor]:
            total: dict[str, Tensor] = {}
            for weight, view in views:
                for k, v in self.get_loss(logits, view, rep).items():
                    total[k] = weight * v if k not in total else total[k] + weight * v
            return total

        return self.forward_loss(x, loss_fn)

    def mixup_loss(self, batch: Batch) -> dict[str, Tensor]:
        """Loss parts of one batch under ``InputMixup(self.mixup)`` (kept for subclasses)."""
        transform, self.transform = self.transform, InputMixup(self.mixup)
        try:
            return self.transformed_loss(batch)
        finally:
            self.transform = transform

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict_logits(self, X: Any, *, batch_size: int | None = None) -> Tensor:
        """Classifier logits of every row of ``X`` in eval mode, shape (n, K), on the CPU."""
        inputs = X if isinstance(X, Inputs) else Inputs(X)
        self.model.eval()
        bs = batch_size or max(self.batch_size, 256)
        out = []
        for start in range(0, len(inputs), bs):
            idx = np.arange(start, min(start + bs, len(inputs)), dtype=np.int64)
            with self.autocast():
                out.append(self.model(self.prepare_input(inputs.get(idx).to(self.device))).float().cpu())
        if not out:
            raise ValueError("X has no rows")
        return torch.cat(out)

    @torch.no_grad()
    def validation_step(self, batch: Batch, y: Tensor | None) -> dict[str, float]:
        """Sums over one validation batch: ``loss_sum``, ``n`` and (with truth) ``correct``."""
        x = self.prepare_input(batch.x)
        with self.autocast():
            logits, rep = self.model.head_inputs(x) if y is None else (self.model(x), None)
        logits = logits.float()
        if y is not None:
            loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
            correct = (logits.argmax(1) == y).sum()
            return {"loss_sum": float(loss), "n": float(len(y)), "correct": float(correct)}
        nll = -self.model.label_log_probs(logits, batch.rows, batch.annotators, batch.labels, rep).sum()
        return {"loss_sum": float(nll), "n": float(batch.labels.numel())}

    def run_validation(self, valid: ValidationSet) -> dict[str, float]:
        """``valid_loss`` (cross-entropy on truth, or NLL of held-out crowd labels) and ``valid_acc``."""
        self.model.eval()
        n_rows = len(valid.inputs)
        totals: dict[str, float] = {}
        bs = max(self.batch_size, 256)
        starts = range(0, n_rows, bs)
        if self._ddp is not None:  # each rank validates a share of the batches; the sums are all-reduced
            starts = starts[dist_utils.rank() :: dist_utils.world_size()]
            keys = ("loss_sum", "n", "correct") if valid.y is not None else ("loss_sum", "n")
            totals = dict.fromkeys(keys, 0.0)
        for start in starts:
            idx = np.arange(start, min(start + bs, n_rows), dtype=np.int64)
            if valid.y is not None:
                batch = Batch(idx, valid.inputs.get(idx), *(torch.zeros(0, dtype=torch.int64),) * 3)
                y = torch.from_numpy(valid.y[idx]).to(self.device)
            else:
                assert valid.annotations is not None
                batch = make_batch(valid.inputs, valid.annotations, idx)
                y = None
            for key, v in self.validation_step(batch.to(self.device), y).items():
                totals[key] = totals.get(key, 0.0) + v
        if self._ddp is not None:
            totals = self._sum_over_ranks(totals)
        if totals.get("n", 0.0) == 0:
            raise ValueError("the validation data hold no labels")
        out = {"valid_loss": totals["loss_sum"] / totals["n"]}
        if "correct" in totals:
            out["valid_acc"] = totals["correct"] / totals["n"]
        return out

    def _sum_over_ranks(self, totals: dict[str, float]) -> dict[str, float]:
        import torch.distributed as dist

        t = torch.tensor(list(totals.values()), dtype=torch.float64, device=dist_utils.collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return {k: float(v) for k, v in zip(totals, t.cpu().tolist(), strict=True)}


def _silent(message: str) -> None:
    """The sink of ranks other than 0."""


class _LossForward(torch.nn.Module):
    """``forward(x, loss_fn) = loss_fn(model(x))``: lets DDP see the criterion's use of the head."""

    def __init__(self, model: CrowdModel, autocast: Callable[[], AbstractContextManager[Any]]) -> None:
        super().__init__()
        self.model = model
        self.autocast = autocast

    def forward(self, x: Tensor, loss_fn: LossFn) -> dict[str, Tensor]:
        with self.autocast():
            logits, rep = self.model.head_inputs(x)
        return loss_fn(logits, rep)
