"""scikit-learn style estimators over the crowd layers and the one trainer.

:class:`CrowdClassifier` learns, end to end and at once, a classifier ``f`` for the true class
and every annotator's confusion matrix from crowdsourced labels (coupled cross-entropy
minimization and GeoCrowdNet: S. Ibrahim, T. Nguyen, X. Fu, "Deep Learning From Crowdsourced
Labels: Coupled Cross-Entropy Minimization, Identifiability, and Regularization", ICLR 2023).

scikit-learn is not required: :class:`ParamsMixin` implements ``get_params``/``set_params``
from the keyword-only ``__init__`` signature, so ``sklearn.base.clone`` works on these objects.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from crowdlearn._checks import check_number, param_error, show
from crowdlearn.annotations import Annotations
from crowdlearn.nn import MLP, ConfusionMatrices, CrowdLoss, CrowdModel, HeadContext, MethodSpec, get_method
from crowdlearn.nn.functional import DEFAULT_RIDGE
from crowdlearn.nn.methods import BUILTIN_METHODS
from crowdlearn.nn.registry import Targets, TargetsContext, available_methods, method_table
from crowdlearn.sanity import ModelCheck, check_model
from crowdlearn.train import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochPrinter,
    History,
    Inputs,
    LambdaSchedule,
    ProgressBar,
    Trainer,
    ValidationSet,
)
from crowdlearn.train.transforms import BatchTransform, InputMixup

__all__ = [
    "METHODS",
    "CollapsedModelWarning",
    "CrowdClassifier",
    "FlippedClassesWarning",
    "NotFittedError",
    "ParamsMixin",
    "UntrustedModelError",
    "UntrustedModelWarning",
    "item_posteriors",
    "posterior_confusions",
]

#: A method name: one of :func:`crowdlearn.nn.available_methods` (the registry).
Method = str
#: The built-in methods' names; :func:`crowdlearn.nn.available_methods` also lists registered plug-ins.
METHODS: tuple[str, ...] = tuple(spec.name for spec in BUILTIN_METHODS)
BACKBONES: tuple[str, ...] = ("mlp", "linear")
SAVE_FORMAT = "crowdlearn-crowdclassifier"
SAVE_VERSION = 1


class NotFittedError(ValueError, AttributeError):
    """An estimator method that needs a fitted model was called before ``fit``."""


class UntrustedModelWarning(UserWarning):
    """``fit`` finished but the post-fit checks (:func:`crowdlearn.sanity.check_model`) found the
    model collapsed or its classes flipped (``CrowdClassifier.findings_``); the message gives the
    cause and the advice. ``strict=True`` raises :class:`UntrustedModelError` instead."""


class CollapsedModelWarning(UntrustedModelWarning):
    """The fitted classifier predicts one class for (nearly) every training item although the
    crowd's majority votes are spread over several (see ``CrowdClassifier.collapsed_``). The run
    finished, but the model is likely useless (too large a learning rate or regularization weight)."""


class FlippedClassesWarning(UntrustedModelWarning):
    """The fitted model's classes look permuted against the crowd's: its predictions agree with
    the majority vote less than chance, or most labels come from annotators whose learned
    confusion has its diagonal below its off-diagonal (see ``CrowdClassifier.flipped_``)."""


class UntrustedModelError(ValueError):
    """``fit`` with ``strict=True`` found the model collapsed or flipped. The estimator is fitted
    (``findings_`` and every other fitted attribute are set) so that it can be inspected.

    Attributes
    ----------
    findings : ModelCheck
        The post-fit checks' record (:class:`crowdlearn.sanity.ModelCheck`).
    """

    def __init__(self, message: str, findings: ModelCheck) -> None:
        super().__init__(message)
        self.findings = findings


class ParamsMixin:
    """``get_params``/``set_params`` read from the keyword-only ``__init__`` signature.

    Subclasses' ``__init__`` must only store each parameter under its own name.
    """

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        names = []
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            if p.kind is not p.KEYWORD_ONLY:
                raise TypeError(f"{cls.__name__}.__init__ parameters must be keyword-only, {p.name!r} is not")
            names.append(p.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator (``deep`` also lists nested estimators' as ``name__param``)."""
        out: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{name}__{k}": v for k, v in value.get_params().items()})
            out[name] = value
        return out

    def set_params(self, **params: Any) -> ParamsMixin:
        """Set parameters (``name`` or ``nested__name``); returns self."""
        valid = self._get_param_names()
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; valid parameters: {', '.join(valid)}"
                )
            if sub:
                getattr(self, name).set_params(**{sub: value})
            else:
                setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        shown = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = sig.parameters[name].default
            same = value is default
            if not same:
                try:
                    same = bool(value == default)
                except Exception:
                    same = False
            if not same:
                shown.append(f"{name}={type(value).__name__ if isinstance(value, nn.Module) else repr(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"


_param_error = param_error  # the package's one helper (crowdlearn._checks)


def _ids_to_json(ids: np.ndarray[Any, Any]) -> list[Any]:
    out: list[Any] = []
    for v in ids.tolist():
        if isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif isinstance(v, (int, np.integer)):
            out.append(int(v))
        elif isinstance(v, (float, np.floating)):
            out.append(float(v))
        else:
            out.append(str(v))
    return out


def _ids_from_json(values: list[Any]) -> np.ndarray[Any, Any]:
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


class CrowdClassifier(ParamsMixin):
    """Classifier and annotator confusion matrices learned end to end from crowd labels.

    The model: a backbone ``f`` (inputs -> class probabilities, ``K`` classes) and, for every
    annotator ``m``, a column-stochastic ``A_m`` with ``A_m[i, j] = P(m says i | true class j)``;
    annotator ``m``'s label on item ``x`` follows ``A_m f(x)``. Training minimizes over the
    observed (item, annotator, label) triples only:

    {method_table}

    Methods are looked up in the registry (:mod:`crowdlearn.nn.registry`, see docs/training.md,
    "Methods as plug-ins"); a registered plug-in is used the same way. CrowdLayer's ``init``
    must stay ``"identity"`` (the original initialization is used) and ``refine_confusions``
    does not apply to it.

    Parameters
    ----------
    method : {method_choices}, default="geocrowdnet-f"
        A registered method (:func:`crowdlearn.nn.available_methods`).
    method_params : dict or None, default=None
        The method's own parameters (its spec's declared ones, checked at ``fit``). ``lam`` and
        ``eps`` are also top-level parameters: a method that declares them takes the top-level
        value unless ``method_params`` sets it (then ``method_params`` wins; giving both with
        different values is an error).
    backbone : None, {"mlp", "linear"} or torch.nn.Module, default=None
        The classifier, mapping a batch of inputs to ``K`` logits. None or ``"mlp"``: for 2-d
        feature arrays, the MLP of Ibrahim et al. ``BN(D, affine=False) -> Linear 128 -> ReLU ->
        Dropout 0.5 -> BN(128, affine=False) -> Linear K``; ``"linear"``: ``BN(D) -> Linear K``.
        A module is deep-copied at ``fit`` (the given one is not trained).
    lam : float, default=0.01
        Regularization weight, {lam_usage} (so is ``lam_schedule``).
    epochs : int, default=100
    lr : float, default=1e-3
        Adam learning rate of the backbone.
    confusion_lr : float or None, default=None
        Learning rate of the confusion logits (None: ``lr``).
    batch_size : int, default=128
        Items per minibatch (each with all its labels).
    weight_decay : float, default=1e-4
        Adam weight decay of the backbone (the confusion logits are not decayed).
    init : {"identity", "uniform", "mv", "ds"} or array of shape (M, K, K), default="identity"
        Initial confusion matrices: logits ``init_scale * I`` (Ibrahim et al. use scale 1), zero
        logits (uniform columns: CCEM can collapse from there), the confusions of majority-vote
        or Dawid-Skene (:mod:`crowdlearn.aggregate`, ``DawidSkene(smoothing=0.01)``) fitted on the
        training labels, or given
        column-stochastic matrices (smoothed by 1e-2 before the log).
    init_scale : float, default=1.0
        Diagonal logit of ``init="identity"``.
    schedule : {"constant", "cosine"} or None, default=None
        Learning-rate schedule over epochs.
    lam_schedule : {"constant", "decay", "warmup"} or None, default=None
        Schedule of the regularization weight over epochs ``e = 0..epochs-1``: ``"decay"``
        ``lam * (1 - e / epochs)``; ``"warmup"`` ``lam * min(1, (e + 1) / (0.1 * epochs))``;
        None or ``"constant"`` keeps ``lam``.
    eps : float, default=1e-6
        Ridge of the log-determinants (the methods declaring ``eps``).
    mixup : float, default=0.0
        Mixup on the crowd labels (``Beta(mixup, mixup)`` mixing weights; 0 disables it): each
        training batch feeds convex combinations of pairs of its items, and every observed label
        of both items counts with its item's weight (see :class:`~crowdlearn.train.Trainer`).
        Requires inputs that can be added (feature arrays, image tensors); it acts as a
        regularizer of the classifier against label noise.
    refine_confusions : int, default=0
        After training, this many EM iterations re-estimate the confusion matrices with the
        trained classifier as the prior of each training item's true class:
        ``q_n ∝ f(x_n) ⊙ prod_{(n, m, y)} A_m[y, :]``, then ``A_m[i, j] ∝ sum_{n: m said i} q_n(j)``
        (observed pairs only; the classifier is unchanged). 0 keeps the end-to-end estimate.
    validation : {"auto", "truth", "holdout", "none"}, default="auto"
        Model selection: ``"truth"`` picks the epoch with the best accuracy on ``X_val, y_val``;
        ``"holdout"`` moves ``holdout_fraction`` of each annotator's labels out of training and
        picks the epoch with the lowest negative log-likelihood of those held-out labels (no
        truth needed); ``"none"`` keeps the last epoch; ``"auto"`` is "truth" when ``X_val`` and
        ``y_val`` are given, else "holdout".
    holdout_fraction : float, default=0.1
    patience : int or None, default=None
        Stop when the validation metric has not improved for this many epochs.
    device : str, default="auto"
        "auto" (cuda, then mps, then cpu), "cpu", "cuda", ...
    amp : bool, default=False
        Mixed precision on CUDA.
    random_state : int, default=0
        Seeds the initial weights, shuffling, dropout and the holdout split. An int, not a
        :class:`numpy.random.Generator`: torch is seeded with it (``torch.manual_seed``).
    distributed : bool, default=False
        Data-parallel training over the processes started by ``torchrun`` (one
        :class:`~torch.nn.parallel.DistributedDataParallel` replica per process, gloo on CPU,
        NCCL on the ``LOCAL_RANK`` GPU): the default process group is initialized from torchrun's
        environment variables if needed. Call ``fit`` on every rank with the same data and
        parameters; each rank trains on every ``world_size``-th batch, so the effective batch is
        ``batch_size * world_size``. Every rank ends with the same fitted model; :meth:`save`
        writes from rank 0 only. See :class:`~crowdlearn.train.Trainer` and docs/training.md.
    checkpoint_dir : str or None, default=None
        Save a resumable checkpoint there after every epoch; ``fit(..., resume=True)`` continues it.
    verbose : {0, 1, 2}, default=0
        0 silent, 1 a rich progress bar on standard error
        (:class:`~crowdlearn.train.ProgressBar`), 2 one line per epoch (through ``sink``).
    sink : callable or None, default=None
        Receives text messages (None: ``print``).
    callbacks : sequence of Callback or None, default=None
        Extra :class:`~crowdlearn.train.Callback` objects, called after the estimator's own
        (early stopping, schedules, checkpoints, progress) at every hook of every training run
        (e.g. to record a metric per epoch). Not saved with the model.
    strict : bool, default=False
        After training, :func:`crowdlearn.sanity.check_model` checks the model against the crowd
        for a collapse (one class predicted for >= 98% of the labelled items while the crowd's
        majority vote gives it to <= 90%, or predictions agreeing with the majority vote no
        better than chance) and a latent-class flip (predictions agreeing with the majority vote
        less than half as often as chance, or less than chance while annotators with their
        confusion diagonal below the off-diagonal give most of the labels). False: a finding is a
        :class:`CollapsedModelWarning` or :class:`FlippedClassesWarning` (both
        :class:`UntrustedModelWarning`); True: :class:`UntrustedModelError`. See
        docs/training.md, "Untrusted models".

    Attributes
    ----------
    model_ : CrowdModel
        The trained backbone and head.
    confusions_ : ndarray of shape (n_annotators, n_classes, n_classes)
        Learned ``A_m`` (columns sum to 1), annotators in ``annotator_ids_`` order, classes in
        ``classes_`` order. For an instance-dependent method, each annotator's mean per-pair
        confusion over the training items it labelled (:meth:`predict_confusions` gives the
        per-pair ones).
    rounds_ : int
        Training runs made (1; more for a method trained in rounds, e.g. MBEM).
    classes_ : ndarray of shape (n_classes,)
    annotator_ids_ : ndarray of shape (n_annotators,)
    n_classes_, n_annotators_ : int
    n_features_in_ : int or None
        Columns of ``X`` for 2-d inputs.
    input_shape_ : tuple of int or None
        Shape of one input row (None for a Dataset).
    priors_ : ndarray of shape (n_classes,)
        Mean predicted class probabilities over the training items.
    annotator_counts_ : ndarray of shape (n_annotators,)
        Labels given by each annotator.
    history_ : History
        One dict per epoch (losses, validation metric, ``*_best`` flags).
    annotator_features_ : ndarray of shape (n_annotators, F) or None
        The ``annotator_features`` given to :meth:`fit` (float32), None without.
    best_epoch_ : int or None
        Epoch selected by the validation rule (None without validation).
    findings_ : ModelCheck or None
        The post-fit checks (:func:`crowdlearn.sanity.check_model` on the training items with
        labels); None for a model loaded from a file saved without them.
    collapsed_ : bool
        ``findings_.collapsed``: the classifier predicts one class for >= 98% of the labelled
        training items while the crowd's majority vote gives it to <= 90% of them, or its
        predictions agree with the majority vote no better than chance; ``fit`` then warns with
        :class:`CollapsedModelWarning` (raises with ``strict=True``). Not set on a model loaded
        from a file saved without findings.
    flipped_ : bool
        ``findings_.flipped``: the model's classes look permuted against the crowd's; ``fit``
        then warns with :class:`FlippedClassesWarning` (raises with ``strict=True``). Not set
        on a model loaded from a file saved without findings.

    Examples
    --------
    >>> import numpy as np
    >>> from crowdlearn import Annotations
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 60); X = rng.normal(size=(60, 3)) + y[:, None]
    >>> ann = Annotations(np.repeat(np.arange(60), 2), np.tile([0, 1], 60), np.repeat(y, 2))
    >>> clf = CrowdClassifier(method="ccem", epochs=2, validation="none").fit(X, ann)
    >>> clf.confusions_.shape
    (2, 2, 2)
    """

    _name: ClassVar[str] = "CrowdClassifier"

    def __init__(
        self,
        *,
        method: Method = "geocrowdnet-f",
        method_params: dict[str, Any] | None = None,
        backbone: str | nn.Module | None = None,
        lam: float = 0.01,
        epochs: int = 100,
        lr: float = 1e-3,
        confusion_lr: float | None = None,
        batch_size: int = 128,
        weight_decay: float = 1e-4,
        init: str | np.ndarray[Any, Any] = "identity",
        init_scale: float = 1.0,
        schedule: str | None = None,
        lam_schedule: str | None = None,
        eps: float = DEFAULT_RIDGE,
        mixup: float = 0.0,
        refine_confusions: int = 0,
        validation: str = "auto",
        holdout_fraction: float = 0.1,
        patience: int | None = None,
        device: str = "auto",
        amp: bool = False,
        random_state: int = 0,
        distributed: bool = False,
        checkpoint_dir: str | None = None,
        verbose: int = 0,
        sink: Callable[[str], Any] | None = None,
        callbacks: Sequence[Callback] | None = None,
        strict: bool = False,
    ) -> None:
        self.method = method
        self.method_params = method_params
        self.backbone = backbone
        self.lam = lam
        self.epochs = epochs
        self.lr = lr
        self.confusion_lr = confusion_lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.init = init
        self.init_scale = init_scale
        self.schedule = schedule
        self.lam_schedule = lam_schedule
        self.eps = eps
        self.mixup = mixup
        self.refine_confusions = refine_confusions
        self.validation = validation
        self.holdout_fraction = holdout_fraction
        self.patience = patience
        self.device = device
        self.amp = amp
        self.random_state = random_state
        self.distributed = distributed
        self.checkpoint_dir = checkpoint_dir
        self.verbose = verbose
        self.sink = sink
        self.callbacks = callbacks
        self.strict = strict

    # ------------------------------------------------------------------ validation
    def _validate_params(self) -> None:
        c = self._name

        def number(name: str, lo: float, *, strict: bool, allow_none: bool = False, integer: bool = False) -> None:
            check_number(getattr(self, name), name, c, low=lo, strict=strict, integer=integer, allow_none=allow_none)

        spec = self._spec()
        if not (self.backbone is None or isinstance(self.backbone, nn.Module) or self.backbone in BACKBONES):
            raise _param_error(c, "backbone", f"None, one of {BACKBONES} or a torch.nn.Module", self.backbone)
        number("lam", 0, strict=False)
        number("epochs", 1, strict=False, integer=True)
        number("lr", 0, strict=True)
        number("confusion_lr", 0, strict=True, allow_none=True)
        number("batch_size", 1, strict=False, integer=True)
        number("weight_decay", 0, strict=False)
        number("init_scale", -1e9, strict=False)
        number("eps", 0, strict=True)
        number("mixup", 0, strict=False)
        number("patience", 1, strict=False, allow_none=True, integer=True)
        number("random_state", 0, strict=False, integer=True)
        number("refine_confusions", 0, strict=False, integer=True)
        if not (isinstance(self.init, np.ndarray) or self.init in ("identity", "uniform", "mv", "ds")):
            raise _param_error(c, "init", "'identity', 'uniform', 'mv', 'ds' or an (M, K, K) array", self.init)
        if not spec.accepts_init(self.init):
            shown = [repr(i) if i != "array" else "an (M, K, K) array" for i in spec.inits]
            expected = shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)
            raise _param_error(c, "init", f"{expected} with method={self.method!r}", self.init)
        self._method_params()
        if self.schedule not in (None, "constant", "cosine"):
            raise _param_error(c, "schedule", "None, 'constant' or 'cosine'", self.schedule)
        if self.lam_schedule not in (None, "constant", "decay", "warmup"):
            raise _param_error(c, "lam_schedule", "None, 'constant', 'decay' or 'warmup'", self.lam_schedule)
        if self.validation not in ("auto", "truth", "holdout", "none"):
            raise _param_error(c, "validation", "'auto', 'truth', 'holdout' or 'none'", self.validation)
        hf = self.holdout_fraction
        if not (isinstance(hf, (int, float, np.integer, np.floating)) and not isinstance(hf, bool) and 0 < hf < 1):
            raise _param_error(c, "holdout_fraction", "a float > 0 and < 1", hf)
        if not isinstance(self.distributed, bool):
            raise _param_error(c, "distributed", "a bool", self.distributed)
        if not isinstance(self.strict, bool):
            raise _param_error(c, "strict", "a bool", self.strict)
        cbs = self.callbacks
        if cbs is not None and not (isinstance(cbs, (list, tuple)) and all(isinstance(c, Callback) for c in cbs)):
            raise _param_error(c, "callbacks", "None or a list of crowdlearn.train.Callback", cbs)
        if self.verbose not in (0, 1, 2):
            raise _param_error(c, "verbose", "0, 1 or 2", self.verbose)

    def _spec(self) -> MethodSpec:
        """The registered spec of ``method`` (the error lists the known methods)."""
        try:
            return get_method(self.method)
        except ValueError:
            raise _param_error(
                self._name, "method", f"one of {', '.join(map(repr, available_methods()))}", self.method
            ) from None

    def _method_params(self) -> dict[str, Any]:
        """The method's parameters resolved and checked by its spec (see ``method_params``)."""
        spec = self._spec()
        given = self.method_params
        if given is not None and not (isinstance(given, dict) and all(isinstance(k, str) for k in given)):
            raise _param_error(self._name, "method_params", "None or a dict with str keys", given)
        sig = inspect.signature(type(self).__init__).parameters
        top = {p.name: getattr(self, p.name) for p in spec.params if p.top_level and p.name in sig}
        for name, value in (given or {}).items():
            if name in top and value != top[name] and top[name] != sig[name].default:
                raise ValueError(
                    f"{name}={show(top[name])} and method_params[{name!r}]={show(value)} disagree; set it once"
                )
        return spec.resolve_params(given, top, self._name)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {self._name} instance is not fitted yet; call fit(X, annotations) before using this method."
            )

    def _class_indices(self, y: npt.ArrayLike, classes: np.ndarray[Any, Any], name: str) -> npt.NDArray[np.int64]:
        """Map class ids (or indices, when the class ids are not integers) to indices."""
        arr = np.asarray(y)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
        lookup = {k: i for i, k in enumerate(classes.tolist())}
        ids_are_ints = all(isinstance(k, (int, np.integer)) for k in classes.tolist())
        if not ids_are_ints and arr.dtype.kind in "iu":
            bad = (arr < 0) | (arr >= len(classes))
            if bad.any():
                pos = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{name}[{pos}] = {arr[pos]} is not a class index in [0, {len(classes)})")
            return arr.astype(np.int64)
        out = np.empty(len(arr), dtype=np.int64)
        for i, v in enumerate(arr.tolist()):
            if v not in lookup:
                raise ValueError(f"{name}[{i}] = {v!r} is not one of the classes {list(classes.tolist())[:20]}")
            out[i] = lookup[v]
        return out

    def _check_X(self, X: Any, n_rows: int | None, what: str) -> Inputs:
        inputs = X if isinstance(X, Inputs) else Inputs(X)
        if n_rows is not None and len(inputs) != n_rows:
            raise ValueError(
                f"{what} has {len(inputs)} rows but the annotations have {n_rows} items; "
                "row n of X must hold the input of item n (annotations.item_ids[n])"
            )
        return inputs

    def _check_predict_X(self, X: Any) -> Inputs:
        self._check_fitted()
        inputs = self._check_X(X, None, "X")
        if self.input_shape_ is not None:
            shape = inputs.shape
            if shape is None or tuple(shape[1:]) != tuple(self.input_shape_):
                got = "a Dataset" if shape is None else f"rows of shape {tuple(shape[1:])}"
                if self.n_features_in_ is not None and shape is not None and len(shape) == 2:
                    got = f"{shape[1]} features"
                    expected = f"{self.n_features_in_} features"
                else:
                    expected = f"rows of shape {tuple(self.input_shape_)}"
                raise ValueError(f"X has {got}, but {self._name} was fitted with {expected}")
        return inputs

    # ------------------------------------------------------------------ building blocks
    def _make_backbone(self, inputs: Inputs, n_classes: int) -> nn.Module:
        if isinstance(self.backbone, nn.Module):
            return copy.deepcopy(self.backbone)
        shape = inputs.shape
        if shape is None or len(shape) != 2:
            raise ValueError(
                f"the built-in backbone {self.backbone or 'mlp'!r} needs a 2-d feature array X; "
                "for images, text or a torch Dataset pass backbone=<a torch.nn.Module mapping inputs to logits>"
            )
        return _builtin_backbone(self.backbone or "mlp", shape[1], n_classes)

    def _initial_confusions(self, annotations: Annotations) -> str | np.ndarray[Any, Any]:
        if isinstance(self.init, np.ndarray):
            return self.init
        if self.init in ("mv", "ds"):
            import importlib

            aggregate: Any = importlib.import_module("crowdlearn.aggregate")
            # a smoothed (MAP, pseudo-count 0.01) Dawid-Skene: annotators with a handful of labels
            # get no hard zeros, which would otherwise become the most extreme logits
            agg = aggregate.MajorityVote() if self.init == "mv" else aggregate.DawidSkene(smoothing=0.01)
            conf: np.ndarray[Any, Any] = np.asarray(agg.fit(annotations).confusions_, dtype=np.float64)
            return conf
        return str(self.init)

    def _make_head(
        self,
        n_annotators: int,
        n_classes: int,
        init: str | np.ndarray[Any, Any],
        annotations: Annotations | None = None,
    ) -> nn.Module:
        ctx = HeadContext(
            n_annotators,
            n_classes,
            init,
            float(self.init_scale),
            self._method_params(),
            annotations,
            getattr(self, "annotator_features_", None),
            getattr(self, "_representation_dim", None),
        )
        return self._spec().make_head(ctx)

    def _check_annotator_features(self, features: Any, n_annotators: int) -> np.ndarray[Any, Any] | None:
        spec = self._spec()
        if features is None:
            if spec.needs_annotator_features:
                raise ValueError(
                    f"method={self.method!r} needs annotator features: pass fit(..., annotator_features=<array of "
                    f"shape ({n_annotators}, F)>), rows in annotations.annotator_ids order"
                )
            return None
        arr = np.asarray(features)
        if arr.ndim != 2 or arr.shape[0] != n_annotators or arr.dtype.kind not in "fiub":
            raise ValueError(
                f"annotator_features must be a numeric array of shape (n_annotators, F) = ({n_annotators}, F), "
                f"got shape {arr.shape} and dtype {arr.dtype}"
            )
        if not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0].tolist()
            raise ValueError(f"annotator_features[{bad[0]}, {bad[1]}] is not finite")
        return np.ascontiguousarray(arr, dtype=np.float32)

    def _lam_schedule(self) -> Callable[[int], float] | None:
        lam, epochs = float(self._method_params().get("lam", self.lam)), max(int(self.epochs), 1)
        if self.lam_schedule == "decay":
            return lambda e: lam * (1.0 - e / epochs)
        if self.lam_schedule == "warmup":
            return lambda e: lam * min(1.0, (e + 1) / max(0.1 * epochs, 1.0))
        return None

    def _make_criterion(self) -> nn.Module:
        """CCEM on the head's output plus the spec's regularizers, weighted by their parameters
        (or the spec's own criterion, given those regularizers)."""
        params, spec = self._method_params(), self._spec()
        regularizers = [make(params) for make in spec.regularizers]
        if spec.make_criterion is not None:
            return spec.make_criterion(params, regularizers)
        return CrowdLoss(params.get("lam"), regularizers=regularizers)

    def _make_transform(self) -> BatchTransform | None:
        """The method's batch transform given ``mixup`` (default: InputMixup when mixup > 0)."""
        spec = self._spec()
        if spec.make_transform is not None:
            return spec.make_transform(self._method_params(), float(self.mixup))
        return InputMixup(float(self.mixup)) if self.mixup > 0 else None

    # ------------------------------------------------------------------ fit / predict
    def fit(
        self,
        X: Any,
        annotations: Annotations,
        X_val: Any = None,
        y_val: npt.ArrayLike | None = None,
        *,
        annotator_features: npt.ArrayLike | None = None,
        resume: bool = False,
    ) -> CrowdClassifier:
        """Learn the classifier and the confusion matrices.

        Parameters
        ----------
        X : ndarray or Tensor of shape (n_items, ...) or torch Dataset of length n_items
            Inputs aligned with ``annotations``' items (row ``n`` is item ``n``).
        annotations : Annotations
            The crowd labels.
        X_val : like X, optional
            Validation inputs with known truth (for model selection).
        y_val : array-like of shape (n_val,), optional
            Their true classes (class ids as in ``annotations.classes``; or indices ``0..K-1``
            when the class ids are not integers).
        annotator_features : array-like of shape (n_annotators, F), optional
            Features of each annotator (row ``m``: ``annotations.annotator_ids[m]``) for a method
            that uses them (its spec's ``needs_annotator_features``, or a head reading
            ``HeadContext.annotator_features``); kept as ``annotator_features_`` and saved with the model.
        resume : bool, default=False
            Continue the run saved in ``checkpoint_dir``.

        Returns
        -------
        self
        """
        self._validate_params()
        if not isinstance(annotations, Annotations):
            raise TypeError(f"annotations must be a crowdlearn.Annotations, got {type(annotations).__name__}")
        k, m = annotations.n_classes, annotations.n_annotators
        if k < 2:
            raise ValueError(f"the annotations have {k} class(es); need at least 2")
        if annotations.n_labels == 0:
            raise ValueError("the annotations hold no labels")
        inputs = self._check_X(X, annotations.n_items, "X")
        self.annotator_features_ = self._check_annotator_features(annotator_features, m)
        if (X_val is None) != (y_val is None):
            raise ValueError("pass both X_val and y_val (validation items with true labels), or neither")
        mode = self.validation
        if mode == "auto":
            mode = "truth" if X_val is not None else "holdout"
        if mode == "truth" and X_val is None:
            raise ValueError("validation='truth' needs X_val and y_val")
        if resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")

        train_ann = annotations
        valid: ValidationSet | None = None
        monitor: tuple[str, Literal["min", "max"]] | None = None
        if mode == "truth":
            yv = self._class_indices(np.asarray(y_val), annotations.classes, "y_val")
            valid = ValidationSet(self._check_X(X_val, len(yv), "X_val"), y=yv)
            monitor = ("valid_acc", "max")
        elif mode == "holdout":
            train_ann, held = annotations.split_holdout(
                float(self.holdout_fraction), random_state=int(self.random_state)
            )
            if held.n_labels == 0:
                raise ValueError(
                    f"holdout_fraction={self.holdout_fraction} holds out no labels (annotators have too few); "
                    "raise it, pass X_val/y_val, or use validation='none'"
                )
            valid = ValidationSet(inputs, annotations=held)
            monitor = ("valid_loss", "min")

        spec = self._spec()
        if spec.targets is not None and resume:
            raise ValueError(f"resume=True is not supported by method={self.method!r}, which trains in rounds")
        init = self._initial_confusions(train_ann)
        proba: np.ndarray[Any, Any] | None = None
        n_round = 0
        while True:
            targets: Targets | None = None
            if spec.targets is not None:
                ctx = TargetsContext(train_ann, self._method_params(), n_round, proba, int(self.random_state))
                targets = spec.targets(ctx)
                if targets is None:
                    if n_round == 0:
                        raise ValueError(f"method {self.method!r}: its targets hook gave no targets for round 0")
                    break
                if targets.confusions is not None:
                    init = np.asarray(targets.confusions, dtype=np.float64)
            trainer, callbacks, history = self._train_once(
                inputs, train_ann, valid, monitor, init, None if targets is None else targets.targets, resume
            )
            n_round += 1
            if spec.targets is None:
                break
            proba = self._proba_of(trainer.model, inputs)
        self.rounds_ = n_round

        self.model_ = trainer.model.cpu()
        self.history_ = history
        self.best_epoch_ = callbacks[0].best_epoch_ if monitor is not None else None  # type: ignore[attr-defined]
        self.classes_ = annotations.classes.copy()
        self.annotator_ids_ = annotations.annotator_ids.copy()
        self.n_classes_ = k
        self.n_annotators_ = m
        shape = inputs.shape
        self.input_shape_ = tuple(shape[1:]) if shape is not None else None
        self.n_features_in_ = shape[1] if shape is not None and len(shape) == 2 else None
        self.annotator_counts_ = annotations.annotator_counts.copy()
        self.confusions_ = self._confusions_from_model(inputs, annotations)
        proba = self._proba(inputs)
        labelled = annotations.item_counts > 0
        self.priors_ = proba[labelled].mean(axis=0) if labelled.any() else proba.mean(axis=0)
        if self.refine_confusions and isinstance(self.model_.head, ConfusionMatrices):
            refined = posterior_confusions(proba, annotations, self.confusions_, int(self.refine_confusions))
            self.model_.head.reset_parameters(init=refined, smoothing=1e-10)
            self.confusions_ = self._confusions_from_model()
        self._check_model(annotations, proba)
        return self

    def _check_model(self, annotations: Annotations, proba: np.ndarray[Any, Any]) -> None:
        """The post-fit checks: set ``findings_``, ``collapsed_``, ``flipped_``; warn or raise."""
        findings = check_model(annotations, proba, self.confusions_)
        self.findings_: ModelCheck | None = findings
        self.collapsed_ = findings.collapsed
        self.flipped_ = findings.flipped
        if self.strict and findings.untrusted:
            raise UntrustedModelError("; ".join(findings.messages()), findings)
        if findings.collapsed:
            warnings.warn(CollapsedModelWarning(findings.collapse_message()), stacklevel=3)
        if findings.flipped:
            warnings.warn(FlippedClassesWarning(findings.flip_message()), stacklevel=3)

    def _train_once(
        self,
        inputs: Inputs,
        train_ann: Annotations,
        valid: ValidationSet | None,
        monitor: tuple[str, Literal["min", "max"]] | None,
        init: str | np.ndarray[Any, Any],
        targets: np.ndarray[Any, Any] | None,
        resume: bool,
    ) -> tuple[Trainer, list[Callback], History]:
        """One training run: a fresh seeded model, the trainer, ``Trainer.fit``."""
        k, m = train_ann.n_classes, train_ann.n_annotators
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))
            backbone = self._make_backbone(inputs, k)
            self._representation_dim = self._check_backbone_output(backbone, inputs, k)
            head = self._make_head(m, k, init, train_ann)
        model = CrowdModel(backbone, head, needs_representation=self._spec().needs_representation)

        callbacks: list[Callback] = []
        if monitor is not None:
            callbacks.append(EarlyStopping(monitor[0], mode=monitor[1], patience=self.patience))
        lam_fn = self._lam_schedule()
        if lam_fn is not None:
            callbacks.append(LambdaSchedule(lam_fn))
        if self.checkpoint_dir is not None:
            callbacks.append(Checkpoint(self.checkpoint_dir))
        if self.verbose == 1:
            callbacks.append(ProgressBar())
        elif self.verbose == 2:
            callbacks.append(EpochPrinter())
        callbacks.extend(self.callbacks or ())
        trainer = Trainer(
            model,
            self._make_criterion(),
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            confusion_lr=None if self.confusion_lr is None else float(self.confusion_lr),
            weight_decay=float(self.weight_decay),
            schedule=self.schedule,  # type: ignore[arg-type]
            transform=self._make_transform(),
            device=self.device,
            amp=bool(self.amp),
            random_state=int(self.random_state),
            callbacks=callbacks,
            sink=self.sink or print,
            distributed=bool(self.distributed),
        )
        history = trainer.fit(
            inputs, train_ann, valid=valid, resume_from=self.checkpoint_dir if resume else None, targets=targets
        )
        return trainer, callbacks, history

    def _check_backbone_output(self, backbone: nn.Module, inputs: Inputs, k: int) -> int | None:
        """Check the backbone's output on two rows (eval mode, no gradient; draws no random numbers):
        (batch, k) logits and, for a method that needs it, a (batch, H) representation. Returns
        ``H`` for such a method, None otherwise."""
        needs = self._spec().needs_representation
        probe = CrowdModel(backbone, nn.Identity(), needs_representation=needs)
        idx = np.arange(min(2, len(inputs)), dtype=np.int64)
        was = backbone.training
        backbone.eval()
        with torch.no_grad():
            out, rep = probe.forward_features(inputs.get(idx)) if needs else (probe(inputs.get(idx)), None)
        backbone.train(was)
        if out.ndim != 2 or out.shape[1] != k:
            raise ValueError(
                f"the backbone outputs shape {tuple(out.shape)} for a batch of {len(idx)}, but the annotations have "
                f"{k} classes (labels 0..{k - 1}); the backbone must map a batch to (batch, {k}) logits"
            )
        if not needs:
            return None
        if rep is None or rep.ndim != 2 or rep.shape[0] != len(idx):
            name = type(backbone).__name__
            got = "only logits" if rep is None else f"a representation of shape {tuple(rep.shape)}"
            raise ValueError(
                f"method={self.method!r} needs the item representation, but the backbone {name} gives {got}; "
                f"give it forward_features(x) -> (logits (batch, {k}), representation (batch, H))"
            )
        return int(rep.shape[1])

    def _confusions_from_model(
        self, inputs: Inputs | None = None, annotations: Annotations | None = None
    ) -> np.ndarray[Any, Any]:
        """``confusions_``: the head's (M, K, K); for an instance-dependent head, each annotator's
        mean per-pair confusion over the labels of ``annotations`` (an annotator without labels
        gets the mean over all pairs)."""
        if self._spec().instance_dependent and inputs is not None and annotations is not None:
            return self._mean_pair_confusions(inputs, annotations)
        get = getattr(self.model_.head, "confusions", None)
        if callable(get):
            with torch.no_grad():
                return np.asarray(get().detach().cpu().numpy(), dtype=np.float64)
        eye = np.eye(self.n_classes_)
        return np.repeat(eye[None], self.n_annotators_, axis=0)

    def _mean_pair_confusions(self, inputs: Inputs, annotations: Annotations) -> np.ndarray[Any, Any]:
        k, m = self.n_classes_, self.n_annotators_
        total = torch.zeros(m, k, k, dtype=torch.float64)
        bs = max(int(self.batch_size), 256)
        for start in range(0, annotations.n_labels, bs):
            sl = slice(start, start + bs)
            conf = self._pair_confusions(inputs, annotations.items[sl], annotations.annotators[sl])
            total.index_add_(0, torch.from_numpy(np.array(annotations.annotators[sl])), conf.double())
        counts = torch.from_numpy(np.bincount(annotations.annotators, minlength=m)).double()
        fallback = total.sum(0) / counts.sum().clamp(min=1.0)
        out = torch.where(counts[:, None, None] > 0, total / counts.clamp(min=1.0)[:, None, None], fallback)
        return np.asarray(out.numpy(), dtype=np.float64)

    def _pair_confusions(self, inputs: Inputs, rows: np.ndarray[Any, Any], annotators: np.ndarray[Any, Any]) -> Tensor:
        device = next(self.model_.parameters()).device
        self.model_.eval()
        with torch.no_grad():
            x = inputs.get(np.array(rows, dtype=np.int64)).to(device)  # copies: the label arrays are read-only
            a = torch.from_numpy(np.array(annotators, dtype=np.int64)).to(device)
            out: Tensor = self.model_.pair_confusions(x, a).float().cpu()
        return out

    def predict_confusions(self, X: Any, annotators: npt.ArrayLike) -> np.ndarray[Any, Any]:
        """Confusion matrix of each (input, annotator) pair, shape (n, n_classes, n_classes).

        ``P(annotator says i | true class j, x)`` at ``[e, i, j]`` (columns sum to 1). For an
        instance-dependent method (CoNAL, MaDL, ...) it depends on ``x``; for the others it is
        ``confusions_`` of the annotator (for CrowdLayer, the implied confusions).

        Parameters
        ----------
        X : array-like of shape (n, ...)
            The input of each pair.
        annotators : array-like of shape (n,)
            The annotator id of each pair (from ``annotator_ids_``).
        """
        inputs = self._check_predict_X(X)
        ids = np.asarray(annotators)
        if ids.ndim != 1 or len(ids) != len(inputs):
            raise ValueError(f"annotators must be 1-d with one id per row of X ({len(inputs)}), got shape {ids.shape}")
        lookup = {a: i for i, a in enumerate(self.annotator_ids_.tolist())}
        idx = np.empty(len(ids), dtype=np.int64)
        for e, a in enumerate(ids.tolist()):
            if a not in lookup:
                raise ValueError(f"annotators[{e}] = {a!r} is not an annotator of the fitted model")
            idx[e] = lookup[a]
        if not self._spec().instance_dependent:
            return np.asarray(self.confusions_[idx], dtype=np.float64)
        bs = max(int(self.batch_size), 256)
        parts = [
            self._pair_confusions(inputs, np.arange(s, min(s + bs, len(idx))), idx[s : s + bs]).numpy()
            for s in range(0, len(idx), bs)
        ]
        if not parts:
            raise ValueError("X has no rows")
        return np.concatenate(parts).astype(np.float64)

    def _proba(self, inputs: Inputs) -> np.ndarray[Any, Any]:
        return self._proba_of(self.model_, inputs)

    def _proba_of(self, model: CrowdModel, inputs: Inputs) -> np.ndarray[Any, Any]:
        device = next(model.parameters()).device
        model.eval()
        out = []
        bs = max(int(self.batch_size), 256)
        with torch.no_grad():
            for start in range(0, len(inputs), bs):
                idx = np.arange(start, min(start + bs, len(inputs)), dtype=np.int64)
                out.append(model(inputs.get(idx).to(device)).float().softmax(dim=1).cpu().numpy())
        if not out:
            raise ValueError("X has no rows")
        return np.concatenate(out).astype(np.float64)

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        """Class probabilities ``f(x)``, shape (n, n_classes), columns in ``classes_`` order."""
        return self._proba(self._check_predict_X(X))

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """Most probable class id (from ``classes_``) of each row, shape (n,)."""
        self._check_fitted()
        out: np.ndarray[Any, Any] = self.classes_[self.predict_proba(X).argmax(axis=1)]
        return out

    def score(self, X: Any, y: npt.ArrayLike) -> float:
        """Accuracy of :meth:`predict` against true classes ``y`` (shape (n,))."""
        pred = self.predict_proba(X).argmax(axis=1)
        yi = self._class_indices(y, self.classes_, "y")
        if len(yi) != len(pred):
            raise ValueError(f"X has {len(pred)} rows but y has {len(yi)} labels")
        return float(np.mean(pred == yi))

    def annotator_report(self) -> pd.DataFrame:
        """Per-annotator summary of the learned confusions.

        Returns
        -------
        DataFrame indexed by annotator id with columns
            ``n_labels`` (labels given), ``accuracy`` (estimated ``sum_j priors_[j] A_m[j, j]``),
            ``spammer_score`` (distance of ``A_m`` from the nearest rank-one matrix, 0 for a
            spammer whose answers ignore the true class, 1 for a perfect annotator; see
            :func:`crowdlearn.metrics.spammer_score`).
        """
        self._check_fitted()
        from crowdlearn.metrics import annotator_accuracy, spammer_score

        return pd.DataFrame(
            {
                "n_labels": self.annotator_counts_.astype(np.int64),
                "accuracy": annotator_accuracy(self.confusions_, self.priors_),
                "spammer_score": spammer_score(self.confusions_),
            },
            index=pd.Index(self.annotator_ids_, name="annotator"),
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the fitted model to one safetensors file (weights) with JSON metadata.

        The metadata hold the parameters, class and annotator ids, priors and the per-epoch
        history (without the per-batch losses, so the header grows with the epochs, not the
        batches; ``history_`` in memory keeps them). Nothing is pickled. A user ``backbone``
        module is not serialised: only its weights are saved, and :meth:`load` needs the same
        architecture passed as ``backbone=``.

        The file is written atomically by :func:`crowdlearn.io.atomic_write` (a temporary file,
        then a rename; permissions ``0o666 & ~umask``).

        Parameters
        ----------
        path : path-like
            The model file; its folder must exist.
        overwrite : bool, default=False
            Replace an existing file; otherwise an existing ``path`` raises
            :class:`FileExistsError`. A symbolic link or a non-regular file (a device such as
            ``/dev/null``, a pipe) is refused either way (:class:`ValueError`).

        In a distributed run (a ``torch.distributed`` default group is initialized) only rank 0
        writes; call it on every rank: the others wait until the file is written.
        """
        self._check_fitted()
        from crowdlearn.io import atomic_write, check_output
        from crowdlearn.train import distributed as dist_utils

        def write() -> None:
            check_output(path, overwrite=overwrite)
            data = self.to_bytes()
            with atomic_write(path, "wb", overwrite=overwrite) as fh:
                fh.write(data)

        if dist_utils.is_distributed():
            try:
                if dist_utils.is_main_process():
                    write()
            finally:
                dist_utils.barrier()
            return
        write()

    def to_bytes(self) -> bytes:
        """The content of the file :meth:`save` writes (safetensors with JSON metadata)."""
        self._check_fitted()
        params = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if name in ("sink", "callbacks"):
                continue
            if name == "backbone" and isinstance(value, nn.Module):
                value = {"user_module": type(value).__name__}
            elif name == "init" and isinstance(value, np.ndarray):
                value = {"array": True}
            params[name] = value
        meta = {
            "format": SAVE_FORMAT,
            "version": SAVE_VERSION,
            "params": params,
            "classes": _ids_to_json(self.classes_),
            "annotator_ids": _ids_to_json(self.annotator_ids_),
            "input_shape": list(self.input_shape_) if self.input_shape_ is not None else None,
            "n_features_in": self.n_features_in_,
            "priors": self.priors_.tolist(),
            "annotator_counts": self.annotator_counts_.tolist(),
            "best_epoch": self.best_epoch_,
            "history": self.history_.without_batches().to_list(),
        }
        findings: ModelCheck | None = getattr(self, "findings_", None)
        if findings is not None:  # optional: files written before the post-fit checks lack it
            meta["findings"] = findings.to_dict()
        tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in self.model_.state_dict().items()}
        if isinstance(self.init, np.ndarray):
            tensors["param.init"] = torch.as_tensor(np.ascontiguousarray(self.init))
        rep_dim: int | None = getattr(self, "_representation_dim", None)
        if rep_dim is not None:
            tensors["fitted.representation_dim"] = torch.tensor([rep_dim], dtype=torch.int64)
        if self.annotator_features_ is not None:
            tensors["fitted.annotator_features"] = torch.as_tensor(self.annotator_features_)
        if self._spec().instance_dependent:  # the mean over the training pairs: not rebuildable from the weights
            tensors["fitted.confusions"] = torch.as_tensor(np.ascontiguousarray(self.confusions_))
        return safetensors_save(tensors, metadata={"crowdlearn": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, backbone: nn.Module | None = None) -> CrowdClassifier:
        """Read a file written by :meth:`save`.

        Parameters
        ----------
        path : path
        backbone : torch.nn.Module, optional
            Required when the model was fitted with a user backbone: a module of the same
            architecture (its weights are replaced by the saved ones).

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            One line naming the file: not a safetensors file, metadata that are not valid JSON,
            a missing or mistyped metadata field, invalid saved parameters, weights of the wrong
            shape.
        """
        try:
            return cls._load(path, backbone=backbone)
        except (FileNotFoundError, NotFittedError):
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError, OverflowError) as exc:
            text = " ".join(str(exc).split())
            if not text.startswith(str(path)):
                text = f"{path}: not a readable CrowdClassifier file ({type(exc).__name__}: {text})"
            raise ValueError(text) from None

    @classmethod
    def _load(cls, path: str | os.PathLike[str], *, backbone: nn.Module | None = None) -> CrowdClassifier:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        try:
            with safe_open(str(path), framework="pt") as fh:
                raw = (fh.metadata() or {}).get("crowdlearn")
                if raw is None:
                    raise ValueError(f"{path} is not a CrowdClassifier file (no crowdlearn metadata)")
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except SafetensorError as exc:
            raise ValueError(f"{path} is not a CrowdClassifier file (not readable as safetensors: {exc})") from None
        meta = _check_meta(path, raw)
        params = dict(meta["params"])
        if "seed" in params and "random_state" not in params:  # saved before the seed was named random_state
            params["random_state"] = params.pop("seed")
        if isinstance(params.get("backbone"), dict):
            if backbone is None:
                raise ValueError(
                    f"{path} was fitted with a user backbone ({params['backbone'].get('user_module')}); "
                    "pass backbone=<a module of the same architecture> to load it"
                )
            params["backbone"] = backbone
        if isinstance(params.get("init"), dict):
            if "param.init" not in tensors:
                raise ValueError(f"{path}: the saved init array (tensor 'param.init') is missing")
            params["init"] = tensors["param.init"].numpy()
        unknown = sorted(set(params) - set(cls._get_param_names()))
        if unknown:
            raise ValueError(f"{path}: the saved parameters hold unknown parameter {unknown[0]!r}")
        est = cls(**params)
        try:
            est._validate_params()
        except ValueError as exc:
            raise ValueError(f"{path}: the saved parameters are invalid: {exc}") from None
        classes = _ids_from_json(meta["classes"])
        annotator_ids = _ids_from_json(meta["annotator_ids"])
        k, m = len(classes), len(annotator_ids)
        shape = meta["input_shape"]
        if isinstance(params["backbone"], nn.Module):
            body = copy.deepcopy(params["backbone"])
        else:
            if shape is None or len(shape) != 1:
                raise ValueError(f"{path}: a built-in backbone needs 2-d inputs, saved input shape {shape}")
            body = _builtin_backbone(params["backbone"] or "mlp", int(shape[0]), k)
        init: str | np.ndarray[Any, Any] = "identity"
        dim = tensors.get("fitted.representation_dim")
        est._representation_dim = None if dim is None else int(dim.reshape(-1)[0])
        feats = tensors.get("fitted.annotator_features")
        est.annotator_features_ = None if feats is None else feats.numpy()
        if feats is not None and tuple(feats.shape[:1]) != (m,):
            raise ValueError(f"{path}: the saved annotator features have {feats.shape[0]} rows for {m} annotators")
        model = CrowdModel(body, est._make_head(m, k, init), needs_representation=est._spec().needs_representation)
        state = {key[len("model.") :]: v for key, v in tensors.items() if key.startswith("model.")}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())
            raise ValueError(f"{path}: the saved weights do not fit the model ({detail})") from None
        model.eval()
        est.model_ = model
        est.history_ = History(meta["history"])
        est.best_epoch_ = meta["best_epoch"]
        est.classes_ = classes
        est.annotator_ids_ = annotator_ids
        est.n_classes_ = k
        est.n_annotators_ = m
        est.input_shape_ = tuple(shape) if shape is not None else None
        est.n_features_in_ = meta["n_features_in"]
        est.priors_ = np.asarray(meta["priors"], dtype=np.float64)
        est.annotator_counts_ = np.asarray(meta["annotator_counts"], dtype=np.int64)
        est.findings_ = None
        if meta.get("findings") is not None:
            try:
                findings = ModelCheck.from_dict(meta["findings"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}: the saved model checks ('findings') are damaged ({exc})") from None
            est.findings_, est.collapsed_, est.flipped_ = findings, findings.collapsed, findings.flipped
        if est._spec().instance_dependent:
            saved = tensors.get("fitted.confusions")
            if saved is None or tuple(saved.shape) != (m, k, k):
                raise ValueError(
                    f"{path}: the saved confusions (tensor 'fitted.confusions' of shape ({m}, {k}, {k})) are missing"
                )
            est.confusions_ = saved.double().numpy()
        else:
            est.confusions_ = est._confusions_from_model()
        return est


def _lam_usage(names: tuple[str, ...]) -> str:
    used = [n for n in names if "lam" in get_method(n).param_names]
    ignored = [n for n in names if n not in used]

    def said(group: list[str]) -> str:
        quoted = [f'"{n}"' for n in group]
        return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]

    return f"used by {said(used)}; ignored by {said(ignored)}, which have no regularizer"


def _document_methods() -> None:
    """Fill the docstring's method table, ``method`` choices and ``lam`` usage from the registry."""
    names = available_methods(entry_points=False)  # importing crowdlearn never imports a plug-in
    doc = CrowdClassifier.__doc__ or ""
    choices = ", ".join(f'"{n}"' for n in names)
    CrowdClassifier.__doc__ = (
        doc.replace("    {method_table}", method_table(names))
        .replace("{method_choices}", "{" + choices + "}")
        .replace("{lam_usage}", _lam_usage(names))
    )


_document_methods()

_META_KEYS = (
    "params",
    "classes",
    "annotator_ids",
    "input_shape",
    "n_features_in",
    "priors",
    "annotator_counts",
    "best_epoch",
    "history",
)


def _check_meta(path: str | os.PathLike[str], raw: str) -> dict[str, Any]:
    """The model file's metadata, checked field by field; one-line ValueError naming the file."""
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: the crowdlearn metadata are not valid JSON ({exc.msg} at character {exc.pos})"
        ) from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the crowdlearn metadata are not a JSON object (got {type(meta).__name__})")
    if meta.get("format") != SAVE_FORMAT or meta.get("version") != SAVE_VERSION:
        raise ValueError(f"{path}: unsupported format {meta.get('format')!r} version {meta.get('version')!r}")
    for key in _META_KEYS:
        if key not in meta:
            raise ValueError(f"{path}: the model metadata lack {key!r}; the file is damaged")

    def bad(key: str, expected: str) -> ValueError:
        return ValueError(f"{path}: model metadata {key!r} must be {expected}, got {json.dumps(meta[key])[:60]}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    params = meta["params"]
    if not isinstance(params, dict):
        raise bad("params", "an object")
    for key in ("classes", "annotator_ids"):
        ids = meta[key]
        if not (isinstance(ids, list) and ids and all(isinstance(v, (int, float, str)) for v in ids)):
            raise bad(key, "a non-empty list of ids")
        if len(set(ids)) != len(ids):
            raise bad(key, "a list of distinct ids")
    k, m = len(meta["classes"]), len(meta["annotator_ids"])
    if not (isinstance(meta["priors"], list) and len(meta["priors"]) == k and all(map(is_num, meta["priors"]))):
        raise bad("priors", f"a list of {k} numbers")
    counts = meta["annotator_counts"]
    if not (isinstance(counts, list) and len(counts) == m and all(map(is_int, counts))):
        raise bad("annotator_counts", f"a list of {m} integers")
    shape = meta["input_shape"]
    if not (shape is None or (isinstance(shape, list) and all(is_int(v) and v > 0 for v in shape))):
        raise bad("input_shape", "a list of positive integers or null")
    if not (meta["n_features_in"] is None or (is_int(meta["n_features_in"]) and meta["n_features_in"] > 0)):
        raise bad("n_features_in", "a positive integer or null")
    if not (meta["best_epoch"] is None or (is_int(meta["best_epoch"]) and meta["best_epoch"] >= 0)):
        raise bad("best_epoch", "an integer or null")
    history = meta["history"]
    if not (isinstance(history, list) and all(isinstance(e, dict) for e in history)):
        raise bad("history", "a list of epoch objects")
    return meta


def item_posteriors(
    proba: np.ndarray[Any, Any], annotations: Annotations, confusions: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Posterior class of each item: ``q_n ∝ proba_n ⊙ prod_{(n, m, y)} A_m[y, :]`` (log space).

    Parameters
    ----------
    proba : ndarray of shape (n_items, K)
        Prior class probabilities of each item (e.g. a classifier's ``f(x)``).
    annotations : Annotations
    confusions : ndarray of shape (M, K, K)
        Column-stochastic ``A_m[i, j] = P(m says i | true j)``.

    Returns
    -------
    ndarray of shape (n_items, K)
        Rows sum to 1; cost follows the number of labels (observed pairs only).
    """
    tiny = 1e-300
    logq = np.log(np.maximum(proba, tiny))
    a = np.asarray(confusions, dtype=np.float64)
    np.add.at(logq, annotations.items, np.log(np.maximum(a[annotations.annotators, annotations.labels, :], tiny)))
    logq -= logq.max(axis=1, keepdims=True)
    q: np.ndarray[Any, Any] = np.exp(logq)
    q /= q.sum(axis=1, keepdims=True)
    return q


def posterior_confusions(
    proba: np.ndarray[Any, Any], annotations: Annotations, confusions: np.ndarray[Any, Any], n_iter: int
) -> np.ndarray[Any, Any]:
    """EM re-estimate of the confusions with fixed per-item class priors (e.g. a classifier's ``f(x)``).

    Parameters
    ----------
    proba : ndarray of shape (n_items, K)
        Prior class probabilities of each item.
    annotations : Annotations
    confusions : ndarray of shape (M, K, K)
        Starting confusions (column-stochastic).
    n_iter : int
        EM iterations: ``q_n ∝ proba_n ⊙ prod A_m[y, :]`` over the item's labels (log space), then
        ``A_m[i, j] ∝ sum over m's labels i of q_n(j)``; a column without mass becomes uniform.

    Returns
    -------
    ndarray of shape (M, K, K)
    """
    k = proba.shape[1]
    a = np.asarray(confusions, dtype=np.float64)
    for _ in range(n_iter):
        q = item_posteriors(proba, annotations, a)
        counts = np.zeros_like(a)
        np.add.at(counts, (annotations.annotators, annotations.labels), q[annotations.items])
        totals = counts.sum(axis=1, keepdims=True)
        a = np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), 1.0 / k)
    return a


def _builtin_backbone(name: str, n_features: int, n_classes: int) -> nn.Module:
    if name == "mlp":
        return MLP(n_features, n_classes, hidden=(128,), dropout=0.5, batch_norm=True, input_norm=True, affine=False)
    if name == "linear":
        return MLP(n_features, n_classes, hidden=(), dropout=0.0, input_norm=True, affine=False)
    raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES} or a torch.nn.Module")
