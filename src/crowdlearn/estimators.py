"""scikit-learn style estimators over the crowd layers and the one trainer.

:class:`CrowdClassifier` learns, end to end and at once, a classifier ``f`` for the true class
and every annotator's confusion matrix from crowdsourced labels (coupled cross-entropy
minimization and GeoCrowdNet: S. Ibrahim, T. Nguyen, X. Fu, "Deep Learning From Crowdsourced
Labels: Coupled Cross-Entropy Minimization, Identifiability, and Regularization", ICLR 2023).

scikit-learn is not required. :class:`ParamsMixin` implements ``get_params``/``set_params``
from the keyword-only ``__init__`` signature, and :class:`CrowdClassifier` implements the rest of
scikit-learn's estimator protocol (tags, ``_estimator_type``, its ``NotFittedError``), so with
scikit-learn installed it is a classifier to ``clone``, ``Pipeline`` and ``GridSearchCV``
(docs/training.md, "scikit-learn integration").
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import sys
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
from crowdlearn.nn.registry import BASE_TRAINING, Targets, TargetsContext, available_methods, method_table
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
from crowdlearn.train.transforms import BatchTransform, Compose, InputMixup, RandomCropFlip

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
BACKBONES: tuple[str, ...] = ("mlp", "linear", "small-resnet", "resnet18", "resnet34")
#: the built-in backbones for images (B, C, H, W): raw pixels on the [0, 255] scale, normalised inside
IMAGE_BACKBONES: tuple[str, ...] = ("small-resnet", "resnet18", "resnet34")
#: values of ``CrowdClassifier(augment=...)``
AUGMENTATIONS: tuple[str, ...] = ("crop-flip",)
SAVE_FORMAT = "crowdlearn-crowdclassifier"
SAVE_VERSION = 1


class NotFittedError(ValueError, AttributeError):
    """An estimator method that needs a fitted model was called before ``fit``.

    Once scikit-learn is imported, the error raised is also a
    :class:`sklearn.exceptions.NotFittedError` (a subclass of both), so ``except`` clauses and
    scikit-learn's checks written for either class catch it.
    """

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # rebuilt by _not_fitted_error where it is unpickled (e.g. sent back by a joblib worker):
        # the class made for scikit-learn is not importable by name
        return _not_fitted_error, (str(self),)


_WITH_SKLEARN_BASE: dict[type[Exception], type[NotFittedError]] = {}


def _not_fitted_error(message: str) -> NotFittedError:
    """crowdlearn's :class:`NotFittedError`, also scikit-learn's once scikit-learn is imported.

    scikit-learn is looked up in ``sys.modules``, never imported here: importing it costs
    seconds (its scipy.stats chain), and code that can name ``sklearn.exceptions.NotFittedError``
    in an ``except`` clause has imported it already.
    """
    base = getattr(sys.modules.get("sklearn.exceptions"), "NotFittedError", None)
    if not (isinstance(base, type) and issubclass(base, Exception)):
        return NotFittedError(message)
    if base not in _WITH_SKLEARN_BASE:  # one class per scikit-learn class, so every raise has the same type
        _WITH_SKLEARN_BASE[base] = type(
            "NotFittedError", (NotFittedError, base), {"__module__": __name__, "__doc__": NotFittedError.__doc__}
        )
    return _WITH_SKLEARN_BASE[base](message)


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


_CROWD_Y = (
    "an Annotations, an (n_items, n_annotators) array of class ids with NaN or -1 for a missing label, "
    "or 1-d labels (one per item)"
)


def _crowd_labels(y: Any, name: str, owner: str) -> tuple[Annotations, bool]:
    """The crowd labels ``y`` as Annotations, and whether ``y`` was an array (see ``CrowdClassifier.fit``).

    A 2-d array is converted once, vectorized, and only its observed cells become labels (by
    :func:`crowdlearn.io.from_wide`, the wide-table reader); a 1-d array is one label per item
    from a single annotator.
    """
    if isinstance(y, Annotations):
        return y, False
    if y is None:
        raise ValueError(f"{owner} requires y to be passed, but the target y is None; {name} must be {_CROWD_Y}")
    annotator_ids: list[Any] | None = None
    if isinstance(y, pd.DataFrame):
        annotator_ids = list(y.columns)
        y = y.to_numpy()
    arr = np.asarray(y)
    if arr.ndim == 1:
        return _single_annotator(arr, name), True
    if arr.ndim != 2:
        raise ValueError(f"{name} must be {_CROWD_Y}; got an array of shape {arr.shape}")
    if arr.dtype.kind in "OUS":  # e.g. None or pandas.NA for the missing cells
        try:
            arr = pd.DataFrame(arr).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must hold integer class ids (NaN or -1 for a missing label), got dtype {arr.dtype}; "
                "for other class ids pass a crowdlearn.Annotations (Annotations.from_ids)"
            ) from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold integer class ids (NaN or -1 for a missing label), got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        missing = np.isnan(arr)
        bad = ~missing & ~(np.isfinite(arr) & (arr == np.floor(arr)) & (arr >= -1) & (arr < 2.0**62))
    else:
        missing = np.zeros(arr.shape, dtype=bool)
        bad = arr < -1
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"{name}[{r}, {c}] = {show(arr[r, c])} is not a class id: a crowd-label array holds integer "
            "class ids >= 0, with NaN or -1 marking a missing label"
        )
    from crowdlearn.io import from_wide

    codes = np.where(missing, -1, arr).astype(np.int64)
    return from_wide(codes, annotator_ids=annotator_ids, source=name), True


def _single_annotator(arr: np.ndarray[Any, Any], name: str) -> Annotations:
    """1-d labels: item ``n`` labelled ``arr[n]`` by one annotator (id 0); the classes are their distinct values."""
    missing = pd.isna(arr) if arr.dtype.kind in "fO" else np.zeros(len(arr), dtype=bool)
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"{name}[{pos}] is missing: a 1-d {name} holds one label per item; for crowd labels with gaps pass "
            "an (n_items, n_annotators) array with NaN or -1 for a missing label"
        )
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.floor(arr)):
        pos = int(np.flatnonzero(arr != np.floor(arr))[0])
        raise ValueError(
            f"{name}[{pos}] = {show(arr[pos])} is not a class label: {name} holds class ids (integers or strings), "
            "not continuous values"
        )
    try:
        classes, codes = np.unique(arr, return_inverse=True)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in arr.tolist()})
        raise ValueError(
            f"{name} mixes label types ({', '.join(kinds)}); labels must all be numbers or all be strings"
        ) from None
    n = len(arr)
    return Annotations(
        np.arange(n), np.zeros(n, dtype=np.int64), codes.reshape(-1), n_items=n, n_annotators=1, classes=classes
    )


def _array_input(X: Any, name: str) -> Any:
    """``X`` checked as scikit-learn checks an array input (a tensor or a Dataset passes unchanged).

    Sparse, complex, non-numeric and non-finite arrays and arrays of 0 features are refused
    with one line naming ``name``; an object array of numbers becomes float64.
    """
    if isinstance(X, (Tensor, torch.utils.data.Dataset)):
        return X
    import scipy.sparse

    if scipy.sparse.issparse(X):
        raise TypeError(
            f"{name} is a sparse {type(X).__name__}; sparse input is not supported: pass a dense array "
            f"({name}.toarray()), a tensor or a torch Dataset"
        )
    arr = np.asarray(X)
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}; the inputs must be real")
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name} must be numeric: {exc}") from None
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        pos = tuple(int(v) for v in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(
            f"{name}[{', '.join(map(str, pos))}] = {show(arr[pos])}; the inputs must be finite (no NaN or inf)"
        )
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    return arr


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

    The crowd labels are ``fit``'s ``y``: an :class:`~crowdlearn.Annotations`, an
    ``(n_items, n_annotators)`` array of class ids with NaN or ``-1`` for a missing label, or 1-d
    labels read as one annotator's (see :meth:`fit`). With scikit-learn installed this is a
    scikit-learn classifier (tags, ``clone``, ``Pipeline``, ``GridSearchCV``); :meth:`score` is
    the accuracy against a 1-d ``y`` of true classes and, on crowd labels, their mean
    log-likelihood under the model (truth-free, not an accuracy). See docs/training.md,
    "scikit-learn integration".

    Parameters
    ----------
    method : {method_choices}, default="geocrowdnet-f"
        A registered method (:func:`crowdlearn.nn.available_methods`).
    method_params : dict or None, default=None
        The method's own parameters (its spec's declared ones, checked at ``fit``). ``lam`` and
        ``eps`` are also top-level parameters: a method that declares them takes the top-level
        value unless ``method_params`` sets it (then ``method_params`` wins; giving both with
        different values is an error).
    backbone : None, {"mlp", "linear", "small-resnet", "resnet18", "resnet34"} or torch.nn.Module, default=None
        The classifier, mapping a batch of inputs to ``K`` logits. None or ``"mlp"``: for 2-d
        feature arrays, the MLP of Ibrahim et al. ``BN(D, affine=False) -> Linear 128 -> ReLU ->
        Dropout 0.5 -> BN(128, affine=False) -> Linear K``; ``"linear"``: ``BN(D) -> Linear K``.
        For images ``X`` of shape (n, C, H, W) (a uint8 tensor of raw pixels, or floats on the
        [0, 255] scale): ``"small-resnet"`` (:class:`~crowdlearn.nn.SmallResNet`, width 16),
        ``"resnet18"``, ``"resnet34"`` (:func:`~crowdlearn.nn.resnet18`: CIFAR ResNets, 3x3 stem,
        no max-pool), each behind :class:`~crowdlearn.nn.ImageBackbone` (normalised with the
        CIFAR-10 channel statistics for C = 3, else mean 0.5 and std 0.25).
        A module is deep-copied at ``fit`` (the given one is not trained).
    lam : float, default=0.01
        Regularization weight, {lam_usage} (so is ``lam_schedule``).
    epochs : int or None, default=None
    lr : float or None, default=None
        Adam learning rate of the backbone.
    confusion_lr : float or None, default=None
        Learning rate of the confusion logits (None: the recipe's, else ``lr``).
    batch_size : int or None, default=None
        Items per minibatch (each with all its labels).
    weight_decay : float or None, default=None
        Adam weight decay of the backbone (the confusion logits are not decayed).
    init : {"identity", "uniform", "mv", "ds"}, array of shape (M, K, K) or None, default=None
        Initial confusion matrices: logits ``init_scale * I`` (Ibrahim et al. use scale 1), zero
        logits (uniform columns: CCEM can collapse from there), the confusions of majority-vote
        or Dawid-Skene (:mod:`crowdlearn.aggregate`, ``DawidSkene(smoothing=0.01,
        shrinkage="pooled")``) fitted on the training labels, or given
        column-stochastic matrices (smoothed by 1e-2 before the log).

        **None (the default of these training parameters, and of** ``schedule`` **and**
        ``mixup`` **): the method's recipe** (its spec's ``recipe``, chosen by the experiment in
        docs/training.md, "Default recipes"), else the library's base value
        (:data:`crowdlearn.nn.registry.BASE_TRAINING`: lr 1e-3, batch 128, weight decay 1e-4,
        100 epochs, constant schedule, identity init, no mixup). ``training_params_`` holds the
        values a fit used.
    init_scale : float, default=1.0
        Diagonal logit of ``init="identity"``.
    schedule : {"constant", "cosine"} or None, default=None
        Learning-rate schedule over epochs (None: the recipe's, else constant).
    lam_schedule : {"constant", "decay", "warmup"} or None, default=None
        Schedule of the regularization weight over epochs ``e = 0..epochs-1``: ``"decay"``
        ``lam * (1 - e / epochs)``; ``"warmup"`` ``lam * min(1, (e + 1) / (0.1 * epochs))``;
        None or ``"constant"`` keeps ``lam``.
    eps : float, default=1e-6
        Ridge of the log-determinants (the methods declaring ``eps``).
    mixup : float or None, default=None
        Mixup on the crowd labels (``Beta(mixup, mixup)`` mixing weights; 0 disables it; None:
        the recipe's, else 0; a fit with gold labels, ``fit(..., known_labels=...)``, takes no
        mixup from the recipe, since the two exclude each other, and a ``mixup > 0`` given here
        with gold labels is an error): each training batch feeds convex combinations of pairs of its
        items, and every observed label of both items counts with its item's weight (see
        :class:`~crowdlearn.train.Trainer`). Requires inputs that can be added (feature arrays,
        image tensors); it acts as a regularizer of the classifier against label noise.
    augment : {"crop-flip"} or None, default=None
        Augmentation of the training batches of images (n, C, H, W): ``"crop-flip"`` is
        :class:`~crowdlearn.train.RandomCropFlip` (random crop of the 4-pixel zero-padded image,
        horizontal flip with probability 1/2; batched on the device, seeded by
        ``random_state``), applied before the mixup or the method's own transform. Validation
        and prediction see the images as given.
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
    amp : bool or {"float16", "bfloat16"}, default=False
        Mixed precision on CUDA (True: float16 with gradient scaling; ``"bfloat16"``: bfloat16);
        the backbone only, the crowd loss and the log-determinants stay in float32 (see
        :class:`~crowdlearn.train.Trainer`). Ignored on other devices.
    channels_last : bool, default=False
        Channels-last memory format for image models on CUDA (ignored elsewhere).
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
    known_labels_ : ndarray of int of shape (n_items,)
        The gold class index of each training item (``fit(..., known_labels=...)``), -1 where
        unknown (all -1 without gold labels).
    training_params_ : dict
        The training parameters the fit used (``lr``, ``confusion_lr``, ``epochs``,
        ``batch_size``, ``weight_decay``, ``schedule``, ``init``, ``mixup``): each one given,
        else the method's recipe, else the base value; an init array shows as ``"array"``.
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
    >>> Y = np.stack([y, y], axis=1); Y[::3, 1] = -1   # the same crowd as an array, with gaps
    >>> CrowdClassifier(method="ccem", epochs=2, validation="none").fit(X, Y).annotator_counts_.tolist()
    [60, 40]
    """

    _name: ClassVar[str] = "CrowdClassifier"
    # scikit-learn's estimator protocol, implemented rather than inherited: crowdlearn imports and
    # works without scikit-learn, and a base class that exists only when it is installed would
    # change the repr, the pickled state and the types with the environment. ParamsMixin gives
    # get_params/set_params (all clone needs); the tags, this type marker (scikit-learn < 1.6)
    # and __sklearn_is_fitted__ complete it.
    _estimator_type: ClassVar[str] = "classifier"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (scikit-learn >= 1.6; imports it).

        A classifier of 2-d numeric ``X`` (no NaN, no sparse input; a ``backbone`` module may take
        other inputs, which scikit-learn's checks do not feed), with a required ``y``. scikit-learn
        has no tag for crowd labels: ``y`` is read as described in :meth:`fit` (1-d labels, an
        ``(n_items, n_annotators)`` crowd array or an :class:`~crowdlearn.Annotations`), so a 2-d ``y``
        is not multi-output (``multi_output=False``: one class is predicted per item) and not a
        label transformer's input (``one_d_labels`` and ``two_d_labels`` stay False).
        """
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True, multi_output=False, single_output=True),
            classifier_tags=ClassifierTags(multi_class=True, multi_label=False),
            input_tags=InputTags(two_d_array=True, sparse=False, allow_nan=False),
            # repeatable on the CPU for a fixed random_state; CUDA kernels may not be
            non_deterministic=self.device != "cpu" and torch.cuda.is_available(),
        )

    def __sklearn_is_fitted__(self) -> bool:
        """Whether :meth:`fit` has run (scikit-learn's ``check_is_fitted`` asks this)."""
        return hasattr(self, "model_")

    def __init__(
        self,
        *,
        method: Method = "geocrowdnet-f",
        method_params: dict[str, Any] | None = None,
        backbone: str | nn.Module | None = None,
        lam: float = 0.01,
        epochs: int | None = None,
        lr: float | None = None,
        confusion_lr: float | None = None,
        batch_size: int | None = None,
        weight_decay: float | None = None,
        init: str | np.ndarray[Any, Any] | None = None,
        init_scale: float = 1.0,
        schedule: str | None = None,
        lam_schedule: str | None = None,
        eps: float = DEFAULT_RIDGE,
        mixup: float | None = None,
        augment: str | None = None,
        refine_confusions: int = 0,
        validation: str = "auto",
        holdout_fraction: float = 0.1,
        patience: int | None = None,
        device: str = "auto",
        amp: bool | str = False,
        channels_last: bool = False,
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
        self.augment = augment
        self.refine_confusions = refine_confusions
        self.validation = validation
        self.holdout_fraction = holdout_fraction
        self.patience = patience
        self.device = device
        self.amp = amp
        self.channels_last = channels_last
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

        spec = self._spec()
        training = self._training()

        def number(name: str, lo: float, *, strict: bool, allow_none: bool = False, integer: bool = False) -> None:
            value = training[name] if name in training else getattr(self, name)
            check_number(value, name, c, low=lo, strict=strict, integer=integer, allow_none=allow_none)

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
        init = training["init"]
        if not (isinstance(init, np.ndarray) or init in ("identity", "uniform", "mv", "ds")):
            raise _param_error(c, "init", "None, 'identity', 'uniform', 'mv', 'ds' or an (M, K, K) array", init)
        if not spec.accepts_init(init):
            shown = [repr(i) if i != "array" else "an (M, K, K) array" for i in spec.inits]
            expected = shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)
            raise _param_error(c, "init", f"{expected} with method={self.method!r}", init)
        self._method_params()
        if training["schedule"] not in ("constant", "cosine"):
            raise _param_error(c, "schedule", "None, 'constant' or 'cosine'", training["schedule"])
        if self.lam_schedule not in (None, "constant", "decay", "warmup"):
            raise _param_error(c, "lam_schedule", "None, 'constant', 'decay' or 'warmup'", self.lam_schedule)
        if self.validation not in ("auto", "truth", "holdout", "none"):
            raise _param_error(c, "validation", "'auto', 'truth', 'holdout' or 'none'", self.validation)
        hf = self.holdout_fraction
        if not (isinstance(hf, (int, float, np.integer, np.floating)) and not isinstance(hf, bool) and 0 < hf < 1):
            raise _param_error(c, "holdout_fraction", "a float > 0 and < 1", hf)
        if not isinstance(self.distributed, bool):
            raise _param_error(c, "distributed", "a bool", self.distributed)
        if self.augment is not None and self.augment not in AUGMENTATIONS:
            raise _param_error(c, "augment", f"None or one of {AUGMENTATIONS}", self.augment)
        if self.amp not in (False, True, "float16", "bfloat16"):
            raise _param_error(c, "amp", "a bool, 'float16' or 'bfloat16'", self.amp)
        if not isinstance(self.channels_last, bool):
            raise _param_error(c, "channels_last", "a bool", self.channels_last)
        if not isinstance(self.strict, bool):
            raise _param_error(c, "strict", "a bool", self.strict)
        cbs = self.callbacks
        if cbs is not None and not (isinstance(cbs, (list, tuple)) and all(isinstance(c, Callback) for c in cbs)):
            raise _param_error(c, "callbacks", "None or a list of crowdlearn.train.Callback", cbs)
        if self.verbose not in (0, 1, 2):
            raise _param_error(c, "verbose", "0, 1 or 2", self.verbose)

    def _training(self) -> dict[str, Any]:
        """The training parameters of a fit: each one set here, else the method's recipe, else the
        library's base value (:meth:`MethodSpec.training`). A fit with gold labels does not take a
        recipe's mixup (the two exclude each other; a ``mixup`` set here still raises)."""
        out = self._spec().training({k: getattr(self, k) for k in BASE_TRAINING})
        if self.mixup is None and getattr(self, "_gold_fit", False):
            out["mixup"] = 0.0
        return out

    def _shown_training(self) -> dict[str, Any]:
        """:meth:`_training` with an init array shown as "array" (JSON-able)."""
        out = self._training()
        if isinstance(out["init"], np.ndarray):
            out["init"] = "array"
        return out

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
            raise _not_fitted_error(
                f"This {self._name} instance is not fitted yet; call fit(X, y) before using this method."
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

    def _check_X(self, X: Any, n_rows: int | None, what: str, y_name: str | None = None) -> Inputs:
        """``X`` as Inputs, with ``n_rows`` rows: the items of the annotations, or the rows of array ``y_name``."""
        inputs = X if isinstance(X, Inputs) else Inputs(_array_input(X, what))
        if n_rows is not None and len(inputs) != n_rows:
            if y_name is not None:
                raise ValueError(
                    f"{what} has {len(inputs)} rows but {y_name} has {n_rows}; row n of {what} must hold the input "
                    f"of the item labelled in row n of {y_name}"
                )
            raise ValueError(
                f"{what} has {len(inputs)} rows but the annotations have {n_rows} items; "
                f"row n of {what} must hold the input of item n (annotations.item_ids[n])"
            )
        return inputs

    def _check_predict_X(self, X: Any) -> Inputs:
        self._check_fitted()
        inputs = self._check_X(X, None, "X")
        if self.input_shape_ is not None:
            shape = inputs.shape
            if shape is not None and len(shape) == 1 and self.n_features_in_ is not None:
                raise ValueError(
                    f"X must be 2-d (n_rows, {self.n_features_in_}), got a 1-d array of shape {shape}. Reshape your "
                    "data: X.reshape(1, -1) for a single item, X.reshape(-1, 1) for a single feature"
                )
            if shape is None or tuple(shape[1:]) != tuple(self.input_shape_):
                got = "a Dataset" if shape is None else f"rows of shape {tuple(shape[1:])}"
                if self.n_features_in_ is not None and shape is not None and len(shape) == 2:
                    # scikit-learn's wording (its check_n_features_in_after_fitting matches it)
                    raise ValueError(
                        f"X has {shape[1]} features, but {self._name} is expecting {self.n_features_in_} features "
                        "as input"
                    )
                raise ValueError(
                    f"X has {got}, but {self._name} was fitted with rows of shape {tuple(self.input_shape_)}"
                )
        return inputs

    # ------------------------------------------------------------------ building blocks
    def _make_backbone(self, inputs: Inputs, n_classes: int) -> nn.Module:
        if isinstance(self.backbone, nn.Module):
            return copy.deepcopy(self.backbone)
        shape = inputs.shape
        name = self.backbone or "mlp"
        if name in IMAGE_BACKBONES:
            if shape is None or len(shape) != 4:
                got = "a torch Dataset" if shape is None else f"X of shape {shape}"
                raise ValueError(
                    f"the built-in backbone {name!r} needs images X of shape (n, C, H, W) (e.g. a uint8 tensor), "
                    f"got {got}"
                )
            return _builtin_backbone(name, tuple(shape[1:]), n_classes)
        if shape is None or len(shape) != 2:
            raise ValueError(
                f"the built-in backbone {name!r} needs a 2-d feature array X; for images (n, C, H, W) use "
                f"backbone='small-resnet', 'resnet18' or 'resnet34'; for text or a torch Dataset pass "
                "backbone=<a torch.nn.Module mapping inputs to logits>"
            )
        return _builtin_backbone(name, tuple(shape[1:]), n_classes)

    def _check_known_labels(self, known_labels: Any, annotations: Annotations) -> npt.NDArray[np.int64] | None:
        """``known_labels`` as class indices (n_items,), -1 unknown; None when no item is gold."""
        if known_labels is None:
            return None
        if isinstance(known_labels, (pd.Series, dict)):  # item id -> class id, as every aggregator takes it
            from crowdlearn.aggregate.base import known_label_array

            by_id = known_label_array(known_labels, annotations)
            assert by_id is not None
            out = by_id
        else:
            arr = np.asarray(known_labels)
            if arr.shape != (annotations.n_items,):
                raise ValueError(
                    f"known_labels must have shape (n_items,) = ({annotations.n_items},): one class id per item, "
                    f"-1 for unknown (or a mapping item id -> class id); got shape {arr.shape}"
                )
            unknown = [v is None or v == -1 or (isinstance(v, float) and np.isnan(v)) for v in arr.tolist()]
            given = np.flatnonzero(~np.asarray(unknown, dtype=bool))
            if arr.dtype.kind == "f":
                if np.array_equal(arr[given], np.round(arr[given])):
                    arr = np.where(np.isnan(arr), -1, arr).astype(np.int64)
            out = np.full(annotations.n_items, -1, dtype=np.int64)
            out[given] = self._class_indices(arr[given], annotations.classes, "known_labels")
        if not (out >= 0).any():
            return None
        spec = self._spec()
        if spec.known_labels == "none":
            able = [name for name in available_methods() if get_method(name).known_labels != "none"]
            raise ValueError(
                f"method={self.method!r} does not support known_labels (gold labels); methods that do: "
                f"{', '.join(able)}"
            )
        return out

    def _initial_confusions(
        self, annotations: Annotations, known: npt.NDArray[np.int64] | None = None
    ) -> str | np.ndarray[Any, Any]:
        init = self._training()["init"]
        if isinstance(init, np.ndarray):
            return init
        if init in ("mv", "ds"):
            import importlib

            aggregate: Any = importlib.import_module("crowdlearn.aggregate")
            # the smoothed Dawid-Skene of SMOOTHED_DS_PARAMS (pseudo-count 0.01, pooled shrinkage)
            agg = (
                aggregate.MajorityVote()
                if init == "mv"
                else aggregate.DawidSkene(**aggregate.dawid_skene.SMOOTHED_DS_PARAMS)
            )
            fitted = agg.fit(annotations, known_labels=known)
            conf: np.ndarray[Any, Any] = np.asarray(fitted.confusions_, dtype=np.float64)
            return conf
        return str(init)

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
        lam, epochs = float(self._method_params().get("lam", self.lam)), max(int(self._training()["epochs"]), 1)
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
        if float(params.get("pool", 0.0)) > 0.0:  # the head factory built a PooledConfusionMatrices
            from crowdlearn.nn.heads.pooled import ConfusionPooling

            regularizers.append(ConfusionPooling(float(params["pool"])))
        if spec.make_criterion is not None:
            return spec.make_criterion(params, regularizers)
        return CrowdLoss(params.get("lam"), regularizers=regularizers)

    def _make_transform(self) -> BatchTransform | None:
        """The method's batch transform given ``mixup`` (default: InputMixup when mixup > 0)."""
        spec, mixup = self._spec(), float(self._training()["mixup"])
        if spec.make_transform is not None:
            own = spec.make_transform(self._method_params(), mixup)
        else:
            own = InputMixup(mixup) if mixup > 0 else None
        if self.augment is None:
            return own
        augment = RandomCropFlip(4)  # "crop-flip", the only value _validate_params lets through
        return augment if own is None else Compose([augment, own])

    # ------------------------------------------------------------------ fit / predict
    def fit(
        self,
        X: Any,
        y: Annotations | npt.ArrayLike | pd.DataFrame,
        X_val: Any = None,
        y_val: npt.ArrayLike | None = None,
        *,
        annotator_features: npt.ArrayLike | None = None,
        known_labels: Any = None,
        resume: bool = False,
    ) -> CrowdClassifier:
        """Learn the classifier and the confusion matrices.

        Parameters
        ----------
        X : ndarray or Tensor of shape (n_items, ...) or torch Dataset of length n_items
            Inputs aligned with the items of ``y`` (row ``n`` is item ``n``).
        y : Annotations, array-like of shape (n_items, n_annotators) or of shape (n_items,)
            The crowd labels, in one of three encodings:

            - an :class:`~crowdlearn.Annotations` (observed triples; item ``n`` is row ``n`` of ``X``);
            - an array (or DataFrame, whose columns are the annotator ids) of shape
              ``(n_items, n_annotators)``: ``y[n, m]`` is annotator ``m``'s class id for item ``n``,
              NaN (float arrays, or None / ``pandas.NA``) or ``-1`` marks a missing label, class ids are
              integers ``>= 0`` and the classes are the distinct observed values. Only observed cells
              become labels (converted once, vectorized, by :func:`crowdlearn.io.from_wide`). Row
              subsets are item subsets, so scikit-learn's splitters can cut ``X`` and ``y`` together;
            - a 1-d array of shape ``(n_items,)``: one label per item (any ids: integers, -1
              included, or strings; none missing) from a single annotator, ordinary
              supervised labels read as a one-annotator crowd.
        X_val : like X, optional
            Validation inputs with known truth (for model selection).
        y_val : array-like of shape (n_val,), optional
            Their true classes (class ids as in the classes of ``y``; or indices ``0..K-1``
            when the class ids are not integers).
        annotator_features : array-like of shape (n_annotators, F), optional
            Features of each annotator (row ``m``: annotator ``m`` of ``y``) for a method
            that uses them (its spec's ``needs_annotator_features``, or a head reading
            ``HeadContext.annotator_features``); kept as ``annotator_features_`` and saved with the model.
        known_labels : array-like of shape (n_items,), Series or dict, optional
            Gold labels: the true class of some items, as class ids (as in ``y``) with -1 for
            unknown items, or a mapping item id -> class id. The gold items' class posteriors are
            fixed to their class: inside the loss their predictions are clamped (the crowd term
            of their labels is ``log A_m[y, z]``) and ``-log f(x_n)[z_n]`` trains the
            classifier on them (:meth:`crowdlearn.train.Trainer.get_loss`); ``init="mv"/"ds"``
            and ``refine_confusions`` use them too: the methods whose spec has
            ``known_labels="clamp"`` (CCEM, GeoCrowdNet F/W, TraceReg, CE, CrowdLayer; not with
            mixup). For ``known_labels="targets"`` (``mv-train``, ``ds-train``, ``mbem``) the
            aggregator behind the targets uses them and gold items get their class as targets.
            Other methods raise. Kept as ``known_labels_`` (class indices, -1 unknown).
        resume : bool, default=False
            Continue the run saved in ``checkpoint_dir``.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            One line: ``y`` of another shape or dtype, a cell that is not a class id, no labels at
            all, a single class, ``X`` and ``y`` with different numbers of rows, bad parameters.
        """
        self._validate_params()
        annotations, from_array = _crowd_labels(y, "y", self._name)
        return self._fit(X, annotations, from_array, X_val, y_val, annotator_features, known_labels, resume, None)

    def partial_fit(
        self,
        X: Any,
        y: Annotations | npt.ArrayLike | pd.DataFrame,
        X_val: Any = None,
        y_val: npt.ArrayLike | None = None,
        *,
        annotator_features: npt.ArrayLike | None = None,
        known_labels: Any = None,
        epochs: int | None = None,
        classes: npt.ArrayLike | None = None,
    ) -> CrowdClassifier:
        """Continue training the fitted model on the labels so far, new items and annotators included.

        ``y`` holds *all* the crowd labels to train on now (the earlier ones and the new ones)
        and ``X`` the inputs of its items, as in :meth:`fit`. Annotators are matched to the
        fitted ones by id (``annotator_ids_``; an array ``y``'s columns are annotators
        ``0..n-1``, so columns may only be appended); an annotator id not seen before is
        appended, and its confusion parameters start where :meth:`fit` starts every annotator's
        (the ``init`` confusions). Classes must be the fitted ones. Training starts from the
        fitted backbone and head (the head's per-annotator parameters grown by the new
        annotators' rows) and runs ``epochs`` epochs (default: the fit's) with the fit's
        validation rule. Unfitted: this is :meth:`fit`. See docs/active.md, "Incremental updates".

        Parameters
        ----------
        X, y, X_val, y_val, annotator_features, known_labels
            As in :meth:`fit` (``annotator_features`` then has one row per annotator of the
            grown id table: ``annotator_ids_`` after the call).
        epochs : int, optional
            Epochs of this training run (None: the fitted ``training_params_["epochs"]``).
        classes : array-like, optional
            scikit-learn's ``partial_fit`` argument, the class ids of every call: checked (the
            classes of ``y``, and a fitted model's ``classes_``, must be among them), not used to
            add classes that ``y`` does not hold.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            One line: a class the model was not fitted on, a method trained in rounds (MBEM, the
            two-stage methods), new annotators for a head without per-annotator rows to grow.
        """
        check_number(epochs, "epochs", self._name, low=1, integer=True, allow_none=True)
        crowd, from_array = _crowd_labels(y, "y", self._name)
        if classes is not None:
            allowed = set(np.asarray(classes).tolist())
            have = crowd.classes.tolist() + (self.classes_.tolist() if hasattr(self, "model_") else [])
            outside = [c for c in have if c not in allowed]
            if outside:
                raise ValueError(f"class {outside[0]!r} of y is not in classes={sorted(allowed, key=str)}")
        if not hasattr(self, "model_"):
            if epochs is not None:
                self.set_params(epochs=epochs)
            return self.fit(X, y, X_val, y_val, annotator_features=annotator_features, known_labels=known_labels)
        self._validate_params()
        if self._spec().targets is not None:
            raise ValueError(f"partial_fit is not supported by method={self.method!r}, which trains in rounds")
        self._check_predict_X(X)  # the fitted input shape
        annotations = self._grown_annotations(crowd, from_array)
        old = self.get_params()
        try:
            if epochs is not None:
                self.epochs = int(epochs)
            elif self.epochs is None:
                self.epochs = int(self.training_params_["epochs"])
            return self._fit(
                X, annotations, from_array, X_val, y_val, annotator_features, known_labels, False, self.model_
            )
        finally:
            self.set_params(epochs=old["epochs"])

    def _grown_annotations(self, crowd: Annotations, from_array: bool) -> Annotations:
        """``crowd`` re-indexed so the fitted annotators and classes keep their indices."""
        fitted_classes = {c: i for i, c in enumerate(self.classes_.tolist())}
        unknown = [c for c in crowd.classes.tolist() if c not in fitted_classes]
        if unknown:
            raise ValueError(
                f"y holds class {unknown[0]!r}, not one of the classes the model was fitted on "
                f"({self.classes_.tolist()}); fit again to add classes"
            )
        old_ids = self.annotator_ids_.tolist()
        position = {a: i for i, a in enumerate(old_ids)}
        new_ids = [a for a in crowd.annotator_ids.tolist() if a not in position]
        if from_array and crowd.annotator_ids.tolist()[: len(old_ids)] != old_ids[: crowd.n_annotators]:
            raise ValueError("an array y's columns are annotators 0..n-1: partial_fit may only append columns")
        ids = old_ids + new_ids
        position.update({a: len(old_ids) + i for i, a in enumerate(new_ids)})
        an_map = np.array([position[a] for a in crowd.annotator_ids.tolist()], dtype=np.int64)
        cl_map = np.array([fitted_classes[c] for c in crowd.classes.tolist()], dtype=np.int64)
        return Annotations(
            crowd.items,
            an_map[crowd.annotators],
            cl_map[crowd.labels],
            n_items=crowd.n_items,
            item_ids=crowd.item_ids,
            annotator_ids=np.asarray(ids, dtype=object) if crowd.annotator_ids.dtype == object else np.asarray(ids),
            classes=self.classes_,
        )

    def _fit(
        self,
        X: Any,
        annotations: Annotations,
        from_array: bool,
        X_val: Any,
        y_val: npt.ArrayLike | None,
        annotator_features: npt.ArrayLike | None,
        known_labels: Any,
        resume: bool,
        warm: CrowdModel | None,
    ) -> CrowdClassifier:
        """The body of :meth:`fit` (``warm`` None) and :meth:`partial_fit` (``warm`` the fitted model)."""
        k, m = annotations.n_classes, annotations.n_annotators
        if annotations.n_labels == 0:
            raise ValueError(
                "y holds no labels: every cell is missing (NaN or -1)"
                if from_array
                else "the annotations hold no labels"
            )
        if k < 2:
            raise ValueError(
                f"the {'labels in y' if from_array else 'annotations'} have {k} class(es); need at least 2"
            )
        inputs = self._check_X(X, annotations.n_items, "X", "y" if from_array else None)
        self.annotator_features_ = self._check_annotator_features(annotator_features, m)
        known = self._check_known_labels(known_labels, annotations)
        self._gold_fit = known is not None  # a recipe's mixup is off with gold labels (see _training)
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
        init = self._initial_confusions(train_ann, known)
        proba: np.ndarray[Any, Any] | None = None
        n_round = 0
        while True:
            targets: Targets | None = None
            if spec.targets is not None:
                ctx = TargetsContext(
                    train_ann, self._method_params(), n_round, proba, int(self.random_state), known_labels=known
                )
                targets = spec.targets(ctx)
                if targets is None:
                    if n_round == 0:
                        raise ValueError(f"method {self.method!r}: its targets hook gave no targets for round 0")
                    break
                if targets.confusions is not None:
                    init = np.asarray(targets.confusions, dtype=np.float64)
            trainer, callbacks, history = self._train_once(
                inputs,
                train_ann,
                valid,
                monitor,
                init,
                None if targets is None else targets.targets,
                resume,
                known if spec.known_labels == "clamp" else None,  # "targets": the hook has them
                warm,
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
        self.known_labels_ = known if known is not None else np.full(annotations.n_items, -1, dtype=np.int64)
        self.training_params_ = self._shown_training()
        self.confusions_ = self._confusions_from_model(inputs, annotations)
        proba = self._proba(inputs)
        labelled = annotations.item_counts > 0
        self.priors_ = proba[labelled].mean(axis=0) if labelled.any() else proba.mean(axis=0)
        if self.refine_confusions and isinstance(self.model_.head, ConfusionMatrices):
            prior = proba
            if known is not None:  # the gold items' posteriors are their class
                prior = proba.copy()
                gold = np.flatnonzero(known >= 0)
                prior[gold] = np.eye(k)[known[gold]]
            refined = posterior_confusions(prior, annotations, self.confusions_, int(self.refine_confusions))
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
            warnings.warn(CollapsedModelWarning(findings.collapse_message()), stacklevel=4)
        if findings.flipped:
            warnings.warn(FlippedClassesWarning(findings.flip_message()), stacklevel=4)

    def _train_once(
        self,
        inputs: Inputs,
        train_ann: Annotations,
        valid: ValidationSet | None,
        monitor: tuple[str, Literal["min", "max"]] | None,
        init: str | np.ndarray[Any, Any],
        targets: np.ndarray[Any, Any] | None,
        resume: bool,
        known: npt.NDArray[np.int64] | None = None,
        warm: CrowdModel | None = None,
    ) -> tuple[Trainer, list[Callback], History]:
        """One training run: a fresh seeded model (or one grown from ``warm``), the trainer, ``Trainer.fit``."""
        k, m = train_ann.n_classes, train_ann.n_annotators
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))
            if warm is None:
                backbone = self._make_backbone(inputs, k)
            else:
                backbone = copy.deepcopy(warm.backbone)
            self._representation_dim = self._check_backbone_output(backbone, inputs, k)
            head = self._make_head(m, k, init, train_ann)
        if warm is not None:
            _grow_head(head, warm.head, self.method)
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
        training = self._training()
        trainer = Trainer(
            model,
            self._make_criterion(),
            epochs=int(training["epochs"]),
            batch_size=int(training["batch_size"]),
            lr=float(training["lr"]),
            confusion_lr=None if training["confusion_lr"] is None else float(training["confusion_lr"]),
            weight_decay=float(training["weight_decay"]),
            schedule=training["schedule"],
            transform=self._make_transform(),
            device=self.device,
            amp=_amp_value(self.amp),
            channels_last=bool(self.channels_last),
            random_state=int(self.random_state),
            callbacks=callbacks,
            sink=self.sink or print,
            distributed=bool(self.distributed),
        )
        history = trainer.fit(
            inputs,
            train_ann,
            valid=valid,
            resume_from=self.checkpoint_dir if resume else None,
            targets=targets,
            known_labels=known,
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
            out, rep = probe.head_inputs(inputs.get(idx))
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
        bs = max(int(self._training()["batch_size"]), 256)
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
        bs = max(int(self._training()["batch_size"]), 256)
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
        bs = max(int(self._training()["batch_size"]), 256)
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

    def score(self, X: Any, y: Annotations | npt.ArrayLike | pd.DataFrame) -> float:
        """Accuracy against true classes, or the mean log-likelihood of crowd labels.

        The score scikit-learn's ``GridSearchCV`` and ``cross_val_score`` maximize by default.

        Parameters
        ----------
        X : like the ``X`` of :meth:`fit`, of n rows
        y : array-like of shape (n,), or crowd labels: array-like of shape (n, n_annotators) or Annotations
            A 1-d ``y`` holds true classes: the score is the accuracy of :meth:`predict`, in [0, 1].
            Crowd labels (encoded as in :meth:`fit`; an array's columns are the fitted annotators
            in ``annotator_ids_`` order, a DataFrame's column names and an Annotations' ids are
            looked up in ``annotator_ids_``) give the mean over their observed labels of
            ``log P(annotator m says y | x) = log (A_m f(x))[y]``, in (-inf, 0], higher is better:
            minus the held-out negative log-likelihood that ``validation="holdout"`` minimizes.
            It measures how well the model explains the crowd, with no truth: it is not an
            accuracy.

        Returns
        -------
        float

        Raises
        ------
        ValueError
            One line: rows of ``X`` and ``y`` differ, a class or an annotator the model was not
            fitted on, no labels, ``X`` unlike the training inputs.
        """
        self._check_fitted()
        positional = y is not None and not isinstance(y, (Annotations, pd.DataFrame))
        if positional:
            y = np.asarray(y)
            if y.ndim == 1:
                pred = self.predict_proba(X).argmax(axis=1)
                yi = self._class_indices(y, self.classes_, "y")
                if len(yi) != len(pred):
                    raise ValueError(f"X has {len(pred)} rows but y has {len(yi)} labels")
                return float(np.mean(pred == yi))
            if y.ndim == 2 and y.shape[1] != self.n_annotators_:
                raise ValueError(
                    f"y has {y.shape[1]} columns but {self._name} was fitted on {self.n_annotators_} annotators "
                    "(column m of y holds the labels of annotator_ids_[m])"
                )
        crowd, from_array = _crowd_labels(y, "y", self._name)
        inputs = self._check_predict_X(X)
        if len(inputs) != crowd.n_items:
            raise ValueError(f"X has {len(inputs)} rows but y has {crowd.n_items} items")
        if crowd.n_labels == 0:
            raise ValueError(
                "y holds no labels: every cell is missing (NaN or -1)" if from_array else "y holds no labels"
            )
        return self._crowd_log_likelihood(inputs, self._fitted_indices(crowd, positional))

    def _fitted_indices(self, crowd: Annotations, positional: bool) -> Annotations:
        """``crowd`` with its annotators and classes re-indexed as the fitted model's."""
        known_a = {a: i for i, a in enumerate(self.annotator_ids_.tolist())}
        a_map = np.arange(crowd.n_annotators, dtype=np.int64)
        if not positional:
            for j, a in enumerate(crowd.annotator_ids.tolist()):
                if a not in known_a and np.any(crowd.annotators == j):
                    raise ValueError(f"y holds labels of annotator {a!r}, not an annotator of the fitted model")
                a_map[j] = known_a.get(a, 0)
        known_c = {c: i for i, c in enumerate(self.classes_.tolist())}
        c_map = np.zeros(crowd.n_classes, dtype=np.int64)
        for j, c in enumerate(crowd.classes.tolist()):
            if c not in known_c:
                raise ValueError(
                    f"y holds class {c!r}, not one of the classes the model was fitted on ({self.classes_.tolist()})"
                )
            c_map[j] = known_c[c]
        return Annotations(
            crowd.items,
            a_map[crowd.annotators],
            c_map[crowd.labels],
            n_items=crowd.n_items,
            n_annotators=self.n_annotators_,
            n_classes=self.n_classes_,
        )

    def _crowd_log_likelihood(self, inputs: Inputs, crowd: Annotations) -> float:
        """Mean ``log P(label | x, annotator)`` of the labels of ``crowd`` (indexed as the model):
        the head's label distribution, as in the held-out ``valid_loss`` of
        :meth:`crowdlearn.train.Trainer.validation_step`."""
        from crowdlearn.train.batching import make_batch

        model = self.model_
        device = next(model.parameters()).device
        model.eval()
        total, count = 0.0, 0
        bs = max(int(self._training()["batch_size"]), 256)
        with torch.no_grad():
            for start in range(0, crowd.n_items, bs):
                batch = make_batch(inputs, crowd, np.arange(start, min(start + bs, crowd.n_items), dtype=np.int64))
                if batch.labels.numel() == 0:
                    continue
                batch = batch.to(device)
                logits, rep = model.head_inputs(batch.x)
                logp = model.label_log_probs(logits, batch.rows, batch.annotators, batch.labels, rep)
                total += float(logp.sum())
                count += int(batch.labels.numel())
        return total / count

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
            "training": getattr(self, "training_params_", None) or self._shown_training(),
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
            name = params["backbone"] or "mlp"
            want = 3 if name in IMAGE_BACKBONES else 1
            if shape is None or len(shape) != want:
                what = "images (n, C, H, W)" if want == 3 else "2-d inputs"
                raise ValueError(f"{path}: the built-in backbone {name!r} needs {what}, saved input shape {shape}")
            body = _builtin_backbone(name, tuple(int(v) for v in shape), k)
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
        saved_training = meta.get("training")  # absent from files written before the recipes
        est.training_params_ = dict(saved_training) if isinstance(saved_training, dict) else est._shown_training()
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


def _grow_head(head: nn.Module, fitted: nn.Module, method: str) -> None:
    """Copy a fitted head's parameters and buffers into ``head``, built for as many or more annotators.

    A tensor of the same shape is copied whole; one whose first dimension grew (per-annotator
    rows) gets the fitted rows first and keeps its initial values in the new rows.
    """
    old = fitted.state_dict()
    new = head.state_dict()
    for name, value in new.items():
        was = old.get(name)
        if was is None:
            raise ValueError(f"partial_fit: the head of method={method!r} has a new tensor {name!r}; fit again")
        if was.shape == value.shape:
            value.copy_(was)
        elif was.ndim == value.ndim and was.shape[1:] == value.shape[1:] and was.shape[0] < value.shape[0]:
            value[: was.shape[0]].copy_(was)
        else:
            raise ValueError(
                f"partial_fit cannot grow the head of method={method!r}: its tensor {name!r} has shape "
                f"{tuple(was.shape)} and would need {tuple(value.shape)}; fit again on all labels"
            )
    head.load_state_dict(new)


def _amp_value(amp: bool | str) -> bool | Literal["float16", "bfloat16"]:
    """``amp`` as the Trainer takes it (validated by ``_validate_params``)."""
    if amp == "bfloat16":
        return "bfloat16"
    if amp == "float16":
        return "float16"
    return bool(amp)


def _builtin_backbone(name: str, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """A built-in backbone for rows of ``input_shape``: (D,) features or (C, H, W) images."""
    if name in IMAGE_BACKBONES:
        from crowdlearn.nn import CIFAR10_MEAN, CIFAR10_STD, ImageBackbone, SmallResNet, resnet18, resnet34

        channels = int(input_shape[0])
        body: nn.Module
        if name == "small-resnet":
            body = SmallResNet(n_classes, in_channels=channels)
        elif name == "resnet18":
            body = resnet18(n_classes, in_channels=channels)
        else:
            body = resnet34(n_classes, in_channels=channels)
        if channels == 3:
            return ImageBackbone(body, mean=CIFAR10_MEAN, std=CIFAR10_STD)
        return ImageBackbone(body, mean=(0.5,) * channels, std=(0.25,) * channels)
    n_features = int(input_shape[0])
    if name == "mlp":
        return MLP(n_features, n_classes, hidden=(128,), dropout=0.5, batch_norm=True, input_norm=True, affine=False)
    if name == "linear":
        return MLP(n_features, n_classes, hidden=(), dropout=0.0, input_norm=True, affine=False)
    raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES} or a torch.nn.Module")
