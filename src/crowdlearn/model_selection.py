"""Model selection without clean labels: truth-free criteria and a grid search over them.

Most users have crowd labels only, so a hyperparameter search cannot score its candidates by
accuracy. The criteria here score a :class:`~crowdlearn.CrowdClassifier` by how well its crowd
model predicts crowd labels it was not trained on: the negative log-likelihood (NLL) of held-out
labels, per label, in nats, under the model's own likelihood of a label,

    NLL = -(1 / |H|) * sum_{(n, m, y) in H} log P_theta(annotator m says y | x_n),

the quantity the trainer records as ``valid_loss`` with held-out labels
(:meth:`crowdlearn.train.Trainer.run_validation`). ``P_theta`` is the method's head applied to
``f(x_n)``: ``(A_m f(x_n))_y`` for CCEM, GeoCrowdNet, TraceReg, MaxMIG and the two-stage methods
(``mv-train``, ``ds-train``, ``mbem``: their aggregator's confusions, fitted on the training
labels of the split, kept fixed), ``f(x_n)_y`` for ``ce`` (no annotator model: the identity),
the per-pair confusion for the instance-dependent heads (CoNAL, MaDL, Annot-Mix, ...), the
annotator's softmax output for CrowdLayer.

Criteria (``CrowdSearchCV(criterion=...)``; scores are ``-NLL``: higher is better):

- ``"holdout"``: one split, ``Annotations.split_holdout(holdout_fraction)`` (each annotator's
  labels, rounded down; the estimator's ``holdout_fraction``), as ``validation="holdout"`` does
  today. The score is ``-min_e NLL(e)`` over the epochs ``e``; the best epoch is that ``e``.
- ``"kfold"``: each annotator's labels dealt into ``cv`` folds
  (:meth:`~crowdlearn.Annotations.split_kfold`); ``cv`` fits, fit ``f`` trained on the other
  folds and scored on fold ``f``: ``score_f = -min_e NLL_f(e)``; the point's score is the mean
  over the folds, ``(1 / cv) * sum_f score_f``.
- ``"holdout-items"`` and ``"kfold-items"``: the same over whole items
  (``split_holdout(holdout_fraction, by="item")``, ``split_kfold(cv, by="item")``): every label of
  a held-out item is held out, so the fit never sees those items' labels and ``H`` scores how the
  model predicts the crowd on new items. With ``"holdout"``/``"kfold"`` a held-out label's item
  keeps its other labels in training, and a model that fits those items' labels closely (through
  the classifier or the confusions) is rewarded for it.
- a callable ``criterion(estimator, X, held_out) -> float`` (higher is better): called on each
  fold's estimator, trained on the fold's training labels for all its ``epochs``, with the
  fold's held-out :class:`~crowdlearn.Annotations`; the k-fold splits are used.
- ``ensemble=k``: the top ``k`` grid points by the criterion are each refit on all labels and
  their predicted class probabilities averaged (:class:`CrowdEnsemble`), the ensembling of top
  configurations studied by crowd-hpo (M. Herde et al., "crowd-hpo: Realistic Hyperparameter
  Optimization and Benchmarking for Learning from Crowds with Noisy Labels", TMLR 2025).

Refit: the best point (and each ensemble member) is trained on all labels with
``validation="none"`` and stopped after ``round(mean_f (best_epoch_f + 1))`` epochs (rounding
half up), the mean over the folds of the epoch count each fold's criterion picked; the learning
rate and ``lam`` schedules still run over the point's ``epochs``, so those epochs follow the
fold runs' trajectory. With a callable criterion every fit runs all ``epochs``.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from crowdlearn._checks import param_error, show
from crowdlearn.annotations import Annotations
from crowdlearn.estimators import CrowdClassifier, NotFittedError
from crowdlearn.train import Callback, EarlyStopping, Inputs, ValidationSet
from crowdlearn.train.trainer import Trainer, TrainingDivergedError

__all__ = [
    "FORBIDDEN_GRID_KEYS",
    "CrowdEnsemble",
    "CrowdSearchCV",
    "HeldOutNLL",
    "StopAfter",
    "expand_param_grid",
    "fit_seed_ensemble",
]

#: A criterion: ``"holdout"``, ``"kfold"``, ``"holdout-items"``, ``"kfold-items"`` or
#: ``criterion(estimator, X, held_out) -> float``.
Criterion = (
    Literal["holdout", "kfold", "holdout-items", "kfold-items"] | Callable[[CrowdClassifier, Any, Annotations], float]
)
#: The named criteria: (one split or ``cv`` folds, held-out unit of :meth:`Annotations.split_holdout`).
_CRITERIA: dict[str, tuple[bool, Literal["annotator", "item"]]] = {
    "holdout": (True, "annotator"),
    "kfold": (False, "annotator"),
    "holdout-items": (True, "item"),
    "kfold-items": (False, "item"),
}
#: Parameters the search sets itself or that cannot vary between its fits.
FORBIDDEN_GRID_KEYS: dict[str, str] = {
    "validation": "the search selects the epochs by its criterion",
    "callbacks": "give them to the estimator; every fit calls them",
    "sink": "give it to the estimator",
    "checkpoint_dir": "the search's fits would overwrite each other's checkpoints",
    "distributed": "the search runs its fits one after another in one process",
}
_METHOD_PARAM_PREFIX = "method_params__"


class HeldOutNLL(Callback):
    """After every epoch: the NLL of held-out crowd labels, recorded as ``valid_loss``.

    The same quantity and divergence rule as a trainer given held-out labels as its validation
    data (:meth:`~crowdlearn.train.Trainer.run_validation`,
    :meth:`~crowdlearn.train.Trainer.check_divergence`), for a fit whose validation labels are
    chosen outside the estimator (a k-fold split). Reset at every training run (a method that
    trains in rounds keeps its last round's values).

    Parameters
    ----------
    X : array-like of shape (n_items, ...)
        The inputs of the fit.
    held_out : Annotations
        The held-out labels (the fit's index spaces).

    Attributes
    ----------
    losses_ : list of float
        The held-out NLL after each epoch of the last training run.
    """

    def __init__(self, X: Any, held_out: Annotations) -> None:
        self.valid = ValidationSet(X if isinstance(X, Inputs) else Inputs(X), annotations=held_out)
        self.n_classes = held_out.n_classes

    def on_train_begin(self, trainer: Trainer) -> None:
        self.losses_: list[float] = []

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        measured = trainer.run_validation(self.valid)
        for key, value in measured.items():
            trainer.history.record(key, value)
        self.losses_.append(float(measured["valid_loss"]))
        trainer.check_divergence(measured, epoch, self.n_classes)


class StopAfter(Callback):
    """Stop training after ``n_epochs`` epochs (every training run; schedules keep ``epochs``)."""

    def __init__(self, n_epochs: int) -> None:
        self.n_epochs = int(n_epochs)

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        if epoch + 1 >= self.n_epochs:
            trainer.stop_training = True


class CrowdEnsemble:
    """The average of fitted classifiers' class probabilities.

    ``predict_proba(X) = (1 / R) * sum_r estimators[r].predict_proba(X)``.

    Parameters
    ----------
    estimators : sequence of fitted CrowdClassifier
        Fitted on the same annotations (the same ``classes_``).

    Attributes
    ----------
    estimators_ : list of CrowdClassifier
    classes_ : ndarray of shape (n_classes,)
    """

    def __init__(self, estimators: Sequence[CrowdClassifier]) -> None:
        if not estimators:
            raise ValueError("a CrowdEnsemble needs at least one fitted estimator")
        first = estimators[0]
        for i, est in enumerate(estimators):
            est._check_fitted()
            if est.classes_.tolist() != first.classes_.tolist():
                raise ValueError(f"estimators[{i}] has classes {est.classes_.tolist()}, not {first.classes_.tolist()}")
        self.estimators_ = list(estimators)
        self.classes_ = first.classes_.copy()

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        """Mean class probabilities of the members, shape (n, n_classes), columns in ``classes_`` order."""
        total = np.zeros(0)
        for r, est in enumerate(self.estimators_):
            p = est.predict_proba(X)
            total = p if r == 0 else total + p
        out: np.ndarray[Any, Any] = total / len(self.estimators_)
        return out

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """Most probable class id of each row under the mean probabilities, shape (n,)."""
        out: np.ndarray[Any, Any] = self.classes_[self.predict_proba(X).argmax(axis=1)]
        return out

    def score(self, X: Any, y: npt.ArrayLike) -> float:
        """Accuracy of :meth:`predict` against true classes ``y`` (shape (n,))."""
        pred = self.predict_proba(X).argmax(axis=1)
        yi = self.estimators_[0]._class_indices(y, self.classes_, "y")
        if len(yi) != len(pred):
            raise ValueError(f"X has {len(pred)} rows but y has {len(yi)} labels")
        return float(np.mean(pred == yi))


#: ``random_state`` of member ``r`` of :func:`fit_seed_ensemble`: ``random_state + SEED_STRIDE * r``.
SEED_STRIDE = 100


def fit_seed_ensemble(
    estimator: CrowdClassifier,
    X: Any,
    y: Any,
    X_val: Any = None,
    y_val: npt.ArrayLike | None = None,
    *,
    n_members: int = 5,
    reset_backbone: bool = True,
    **fit_params: Any,
) -> CrowdEnsemble:
    """Fit ``n_members`` copies of ``estimator`` that differ only in their seed; their mean (a deep ensemble).

    Member ``r`` is a clone of ``estimator`` with ``random_state = estimator.random_state +
    SEED_STRIDE * r`` (member 0 is the estimator's own seed), fitted with ``fit(X, y, X_val,
    y_val, **fit_params)``: the data order, the head's initialisation, dropout and mixup draws
    and the built-in backbones' initial weights differ between members. A backbone given as a
    module is copied as given by every fit; with ``reset_backbone=True`` the copy of each member
    after the first is re-initialised (``reset_parameters()`` of every submodule that has one,
    under ``torch.manual_seed`` of the member's seed) so that members also start from different
    weights, while member 0 stays exactly ``estimator.fit``. The members' class probabilities are
    averaged (:class:`CrowdEnsemble`).

    ``docs/benchmarks.md`` ("Deep ensembles") measures it against single models on Music and
    LabelMe. The cost is ``n_members`` fits.

    Parameters
    ----------
    estimator : CrowdClassifier
        The configuration of every member (not fitted itself).
    X, y, X_val, y_val, **fit_params
        As :meth:`CrowdClassifier.fit`; every member gets the same data.
    n_members : int, default=5
        ``R >= 1``.
    reset_backbone : bool, default=True
        Re-initialise a backbone module for members 1, 2, ... (no effect on a built-in backbone named by a
        string, which each fit builds from its seed).

    Returns
    -------
    CrowdEnsemble
        ``estimators_`` in member order.
    """
    import copy

    import torch

    if isinstance(n_members, bool) or not isinstance(n_members, (int, np.integer)) or n_members < 1:
        raise param_error("fit_seed_ensemble", "n_members", "an int >= 1", n_members)
    members = []
    for r in range(int(n_members)):
        seed = int(estimator.random_state) + SEED_STRIDE * r
        member = _clone(estimator)
        member.set_params(random_state=seed)
        if r > 0 and reset_backbone and isinstance(estimator.backbone, torch.nn.Module):
            backbone = copy.deepcopy(estimator.backbone)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                for module in backbone.modules():
                    reset = getattr(module, "reset_parameters", None)
                    if callable(reset):
                        reset()
            member.set_params(backbone=backbone)
        members.append(member.fit(X, y, X_val, y_val, **fit_params))
    return CrowdEnsemble(members)


def _clone(estimator: CrowdClassifier) -> CrowdClassifier:
    params = estimator.get_params(deep=False)
    if isinstance(params.get("method_params"), dict):
        params["method_params"] = dict(params["method_params"])
    return type(estimator)(**params)


def _configured(estimator: CrowdClassifier, point: Mapping[str, Any], **extra: Any) -> CrowdClassifier:
    """A copy of ``estimator`` with the grid point's parameters (and ``extra``) set."""
    est = _clone(estimator)
    est.set_params(**_resolve(estimator, point), **extra)
    return est


def _resolve(estimator: CrowdClassifier, point: Mapping[str, Any]) -> dict[str, Any]:
    """A grid point as ``set_params`` arguments: ``method_params__<name>`` merged into ``method_params``."""
    out: dict[str, Any] = {k: v for k, v in point.items() if not k.startswith(_METHOD_PARAM_PREFIX)}
    nested = {k[len(_METHOD_PARAM_PREFIX) :]: v for k, v in point.items() if k.startswith(_METHOD_PARAM_PREFIX)}
    if nested:
        base = out["method_params"] if "method_params" in out else estimator.method_params
        out["method_params"] = {**(base or {}), **nested}
    return out


def _describe(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={show(v)}" for k, v in point.items())


def _default_key_name(key: str) -> str:
    return f"param_grid[{key!r}]"


def expand_param_grid(
    estimator: CrowdClassifier,
    param_grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]],
    *,
    key_name: Callable[[str], str] = _default_key_name,
) -> list[dict[str, Any]]:
    """Every point of a parameter grid, each checked on a copy of ``estimator`` before any training.

    Parameters
    ----------
    estimator : CrowdClassifier
        The base estimator; a point overrides only the parameters it names.
    param_grid : dict of str to list, or list of such dicts
        Keys: ``estimator``'s parameters (``method`` included), ``method_params`` (a list of
        dicts) or ``method_params__<name>`` (values of one method parameter, merged into
        ``method_params``). Each value: a non-empty list (or tuple, or 1-d array) of values. A list
        of dicts is the union of their grids, in order.
    key_name : callable, default=``param_grid[key]``
        How a key is named in messages (the command line names the TOML key).

    Returns
    -------
    list of dict
        The points in order: the product of the values, the first key varying slowest.

    Raises
    ------
    ValueError
        One line naming the key (an unknown or forbidden key, a value that is not a list, an
        empty list) or the point and the parameter (a value the estimator rejects).
    """
    grids = [param_grid] if isinstance(param_grid, Mapping) else list(param_grid)
    if isinstance(param_grid, (str, bytes)) or not grids:
        raise ValueError(
            f"param_grid must be a dict of lists or a non-empty list of such dicts, got {show(param_grid)}"
        )
    valid = estimator._get_param_names()
    points: list[dict[str, Any]] = []
    for grid in grids:
        if not isinstance(grid, Mapping):
            raise ValueError(f"param_grid must be a dict of lists or a list of such dicts, got an item {show(grid)}")
        if not grid:
            raise ValueError("param_grid holds an empty grid (no keys)")
        for key, values in grid.items():
            name = key_name(str(key))
            if not isinstance(key, str):
                raise ValueError(f"{name}: grid keys must be parameter names (str)")
            if key in FORBIDDEN_GRID_KEYS:
                raise ValueError(f"{name}: {key!r} cannot be searched ({FORBIDDEN_GRID_KEYS[key]})")
            if key.startswith(_METHOD_PARAM_PREFIX):
                if not key[len(_METHOD_PARAM_PREFIX) :]:
                    raise ValueError(f"{name}: give the method parameter's name after {_METHOD_PARAM_PREFIX!r}")
            elif key not in valid:
                shown = ", ".join(n for n in valid if n not in FORBIDDEN_GRID_KEYS)
                raise ValueError(
                    f"{name}: {key!r} is not a parameter of {type(estimator).__name__} (its parameters: {shown}; "
                    f"method parameters as {key_name(_METHOD_PARAM_PREFIX + '<name>')})"
                )
            if isinstance(values, np.ndarray):
                values = values.tolist() if values.ndim == 1 else values
            if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (list, tuple)):
                raise ValueError(f"{name} must be a list of values, got {show(values)}")
            if len(values) == 0:
                raise ValueError(f"{name} is an empty list; give at least one value")
            if key == "method_params":
                for v in values:
                    if v is not None and not isinstance(v, Mapping):
                        raise ValueError(
                            f"{name}: each value must be a dict of method parameters or None, got {show(v)}"
                        )
            if key.startswith(_METHOD_PARAM_PREFIX) and "method_params" in grid:
                raise ValueError(f"{name}: give method parameters either as method_params dicts or by name, not both")
        keys = list(grid)
        for combo in itertools.product(*(list(grid[k]) for k in keys)):
            points.append(dict(zip(keys, combo)))
    for i, point in enumerate(points):
        try:
            _configured(estimator, point)._validate_params()
        except (ValueError, TypeError) as exc:
            where = ", ".join(f"{key_name(k)}={show(v)}" for k, v in point.items())
            raise ValueError(f"grid point {i + 1} of {len(points)} ({where}): {' '.join(str(exc).split())}") from None
    return points


def _rank(scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Rank 1 = the highest score; ties share the smallest rank; NaN ranks last."""
    from scipy.stats import rankdata

    filled = np.where(np.isnan(scores), -np.inf, scores)
    return np.asarray(rankdata(-filled, method="min"), dtype=np.int64)


class CrowdSearchCV:
    """Exhaustive search over a parameter grid, scored by a truth-free criterion.

    Every grid point is trained on each split's training labels and scored on its held-out
    crowd labels (see the module docstring for the criteria and their formulas); the best point
    is then refit on all labels. scikit-learn's ``GridSearchCV`` surface: ``fit``,
    ``cv_results_``, ``best_params_``, ``best_score_``, ``best_index_``, ``best_estimator_``,
    ``predict``/``predict_proba``.

    Parameters
    ----------
    estimator : CrowdClassifier
        The base estimator (not modified; every fit uses a copy). Its ``validation`` is not used:
        the search sets ``validation="none"`` and selects epochs by its criterion.
    param_grid : dict of str to list, or list of such dicts
        See :func:`expand_param_grid` (``method`` and ``method_params__<name>`` included).
    criterion : {"holdout", "kfold", "holdout-items", "kfold-items"} or callable, default="kfold"
        ``"holdout"``: one split of ``estimator.holdout_fraction`` of each annotator's labels;
        ``"kfold"``: ``cv`` folds of each annotator's labels; ``"holdout-items"`` /
        ``"kfold-items"``: the same over whole items (all labels of a held-out item held out);
        a callable ``criterion(estimator, X, held_out) -> float``, higher is better, on the
        ``cv`` folds of each annotator's labels.
    cv : int, default=3
        Folds of the k-fold criteria and of a callable criterion (>= 2); not used by the
        one-split ones. The defaults, ``"kfold"`` with 3 folds, are the search measured closest
        to clean-validation tuning (docs/benchmarks.md, "Truth-free search"); a point costs
        ``cv`` fits.
    refit : bool, default=True
        Refit the best point on all labels (``best_estimator_``).
    ensemble : int or None, default=None
        Refit the top ``ensemble`` points (by ``rank_test_score``, ties in grid order) and
        predict with the mean of their class probabilities (``ensemble_``). Needs ``refit``.
    random_state : int, default=0
        Seeds the splits of the labels (the same splits for every point). The fits use each
        point's ``random_state``.
    verbose : {0, 1}, default=0
        1: one line per fit through ``sink``.
    sink : callable or None, default=None
        Receives the verbose lines (None: ``print``).

    Attributes
    ----------
    cv_results_ : dict of str to ndarray
        One entry per grid point, in grid order: ``params`` (the point's dict),
        ``param_<key>`` (object arrays, None where a point does not set the key),
        ``split<f>_test_score`` (``-NLL`` of fold ``f``; the callable's value), ``mean_test_score``,
        ``std_test_score``, ``rank_test_score`` (1 is best; NaN scores rank last),
        ``split<f>_best_epoch`` (0-based epoch picked in fold ``f``; -1 with a callable or after a
        divergence), ``refit_epochs`` (the epochs a refit of the point trains), ``mean_fit_time``,
        ``std_fit_time`` (seconds per fold fit), ``diverged`` (a fold's training diverged:
        :class:`~crowdlearn.train.TrainingDivergedError`; its scores are NaN), ``fit_warnings``
        (the first warning a fold fit raised, "" without).
    best_index_ : int
        The point with rank 1 (the first in grid order among ties).
    best_params_ : dict
    best_score_ : float
    best_estimator_ : CrowdClassifier
        The best point refit on all labels for ``refit_epochs_`` epochs (with ``refit``).
    refit_epochs_ : int
    ensemble_ : CrowdEnsemble or None
        The top points refit on all labels (``best_estimator_`` is its first member).
    ensemble_indices_ : list of int
        Their grid indices (empty without ``ensemble``).
    n_splits_ : int
        Splits per point (1 for ``"holdout"`` and ``"holdout-items"``).
    classes_ : ndarray of shape (n_classes,)

    Examples
    --------
    >>> import numpy as np
    >>> from crowdlearn import Annotations, CrowdClassifier
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 60); X = rng.normal(size=(60, 3)) + 2 * y[:, None]
    >>> ann = Annotations(np.repeat(np.arange(60), 3), np.tile([0, 1, 2], 60), np.repeat(y, 3))
    >>> search = CrowdSearchCV(CrowdClassifier(method="ccem", epochs=3), {"lr": [1e-5, 1e-2]})
    >>> search.fit(X, ann).best_params_
    {'lr': 0.01}
    """

    def __init__(
        self,
        estimator: CrowdClassifier,
        param_grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]],
        *,
        criterion: Criterion = "kfold",
        cv: int = 3,
        refit: bool = True,
        ensemble: int | None = None,
        random_state: int = 0,
        verbose: int = 0,
        sink: Callable[[str], Any] | None = None,
    ) -> None:
        self.estimator = estimator
        self.param_grid = param_grid
        self.criterion = criterion
        self.cv = cv
        self.refit = refit
        self.ensemble = ensemble
        self.random_state = random_state
        self.verbose = verbose
        self.sink = sink

    _PARAMS = ("estimator", "param_grid", "criterion", "cv", "refit", "ensemble", "random_state", "verbose", "sink")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (``deep`` adds the estimator's as ``estimator__<name>``)."""
        out = {name: getattr(self, name) for name in self._PARAMS}
        if deep:
            out.update({f"estimator__{k}": v for k, v in self.estimator.get_params(deep=False).items()})
        return out

    def set_params(self, **params: Any) -> CrowdSearchCV:
        """Set parameters (``name`` or ``estimator__name``); returns self."""
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in self._PARAMS:
                raise ValueError(
                    f"Invalid parameter {name!r} for CrowdSearchCV; valid parameters: {', '.join(self._PARAMS)}"
                )
            if sub:
                self.estimator.set_params(**{sub: value})
            else:
                setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        return (
            f"CrowdSearchCV(estimator={self.estimator!r}, param_grid={self.param_grid!r}, criterion={self.criterion!r})"
        )

    # ------------------------------------------------------------------ validation
    def _validate(self) -> list[dict[str, Any]]:
        c = "CrowdSearchCV"
        if not isinstance(self.estimator, CrowdClassifier):
            raise param_error(c, "estimator", "a CrowdClassifier", type(self.estimator).__name__)
        crit = self.criterion
        if not (callable(crit) or (isinstance(crit, str) and crit in _CRITERIA)):
            expected = "'holdout', 'kfold', 'holdout-items', 'kfold-items' or a callable(estimator, X, held_out)"
            raise param_error(c, "criterion", expected, crit)
        if isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise param_error(c, "cv", "an int >= 2", self.cv)
        if not isinstance(self.refit, bool):
            raise param_error(c, "refit", "a bool", self.refit)
        ens = self.ensemble
        if ens is not None and (isinstance(ens, bool) or not isinstance(ens, (int, np.integer)) or ens < 1):
            raise param_error(c, "ensemble", "None or an int >= 1", ens)
        if ens is not None and not self.refit:
            raise ValueError("ensemble needs refit=True (the members are refit on all labels)")
        rs = self.random_state
        if isinstance(rs, bool) or not isinstance(rs, (int, np.integer)) or rs < 0:
            raise param_error(c, "random_state", "an int >= 0", rs)
        if self.verbose not in (0, 1):
            raise param_error(c, "verbose", "0 or 1", self.verbose)
        for name in ("distributed", "checkpoint_dir"):
            if getattr(self.estimator, name) not in (False, None):
                raise ValueError(f"estimator {name}={show(getattr(self.estimator, name))}: {FORBIDDEN_GRID_KEYS[name]}")
        points = expand_param_grid(self.estimator, self.param_grid)
        if ens is not None and ens > len(points):
            raise param_error(c, "ensemble", f"at most the {len(points)} grid points", ens)
        return points

    def _splits(
        self, annotations: Annotations, points: list[dict[str, Any]]
    ) -> list[list[tuple[Annotations, Annotations]]]:
        """The (train, held-out) splits of each point (shared by the points with the same fraction)."""
        cache: dict[float, list[tuple[Annotations, Annotations]]] = {}
        out = []
        one_split, by = _CRITERIA[self.criterion] if isinstance(self.criterion, str) else (False, "annotator")
        for i, point in enumerate(points):
            if one_split:
                fraction = float(_configured(self.estimator, point).holdout_fraction)
                if fraction not in cache:
                    train, held = annotations.split_holdout(fraction, random_state=int(self.random_state), by=by)
                    if held.n_labels == 0:
                        few = "annotators have too few" if by == "annotator" else "too few labelled items"
                        raise ValueError(
                            f"holdout_fraction={show(fraction)} holds out no labels ({few}); "
                            f"raise it or use criterion={str(self.criterion).replace('holdout', 'kfold')!r}"
                        )
                    cache[fraction] = [(train, held)]
                out.append(cache[fraction])
            else:
                if i == 0:
                    folds = annotations.split_kfold(int(self.cv), random_state=int(self.random_state), by=by)
                    for f, (train, held) in enumerate(folds):
                        if held.n_labels == 0 or train.n_labels == 0:
                            raise ValueError(
                                f"cv={self.cv}: fold {f} has no {'held-out' if held.n_labels == 0 else 'training'} "
                                f"labels ({annotations.n_labels} labels in all); use fewer folds"
                            )
                    cache[0.0] = folds
                out.append(cache[0.0])
        return out

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, annotations: Annotations, **fit_params: Any) -> CrowdSearchCV:
        """Score every grid point, then refit the best on all labels.

        Parameters
        ----------
        X : ndarray or Tensor of shape (n_items, ...) or torch Dataset of length n_items
            Inputs aligned with ``annotations``' items.
        annotations : Annotations
            The crowd labels (no truth is used).
        **fit_params
            Passed to every ``CrowdClassifier.fit`` (e.g. ``annotator_features``); ``X_val``,
            ``y_val`` and ``resume`` are refused (the search is truth-free and not resumable).

        Returns
        -------
        self
        """
        points = self._validate()
        for name in ("X_val", "y_val", "resume"):
            if name in fit_params:
                raise ValueError(f"CrowdSearchCV.fit does not take {name}: the search uses no truth and cannot resume")
        if not isinstance(annotations, Annotations):
            raise TypeError(f"annotations must be a crowdlearn.Annotations, got {type(annotations).__name__}")
        n_rows = len(X)
        if n_rows != annotations.n_items:
            raise ValueError(
                f"X has {n_rows} rows but the annotations have {annotations.n_items} items; "
                "row n of X must hold the input of item n (annotations.item_ids[n])"
            )
        splits = self._splits(annotations, points)
        n_splits = len(splits[0])
        say = self.sink or print
        n_points = len(points)
        scores = np.full((n_points, n_splits), np.nan)
        best_epochs = np.full((n_points, n_splits), -1, dtype=np.int64)
        fit_times = np.full((n_points, n_splits), np.nan)
        diverged = np.zeros(n_points, dtype=bool)
        fit_warnings = [""] * n_points
        refit_epochs = np.zeros(n_points, dtype=np.int64)
        for i, point in enumerate(points):
            for f, (train, held) in enumerate(splits[i]):
                est = _configured(self.estimator, point)
                user_cbs = list(est.callbacks or ())
                recorder: HeldOutNLL | None = None
                stopper: EarlyStopping | None = None
                if callable(self.criterion):
                    extra: list[Callback] = []
                else:
                    recorder = HeldOutNLL(X, held)
                    patience = est.patience
                    stopper = EarlyStopping("valid_loss", mode="min", patience=patience, restore_best=False)
                    extra = [recorder, stopper]
                est.set_params(validation="none", callbacks=[*extra, *user_cbs])
                start = time.perf_counter()
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        est.fit(X, train, **fit_params)
                except TrainingDivergedError as err:
                    diverged[i] = True
                    fit_times[i, f] = time.perf_counter() - start
                    if self.verbose:
                        say(f"point {i + 1}/{n_points} split {f + 1}/{n_splits}: diverged ({err})")
                    break
                fit_times[i, f] = time.perf_counter() - start
                if caught and not fit_warnings[i]:
                    fit_warnings[i] = " ".join(str(caught[0].message).split())
                if callable(self.criterion):
                    value = self.criterion(est, X, held)
                    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                        raise TypeError(f"the criterion must return a number, got {type(value).__name__}")
                    scores[i, f] = float(value)
                else:
                    assert recorder is not None and stopper is not None
                    if stopper.best_epoch_ is None:  # no finite held-out loss: treated as divergence
                        diverged[i] = True
                        break
                    best_epochs[i, f] = int(stopper.best_epoch_)
                    scores[i, f] = -recorder.losses_[int(stopper.best_epoch_)]
                if self.verbose:
                    say(
                        f"point {i + 1}/{n_points} split {f + 1}/{n_splits} ({_describe(point)}): "
                        f"score {scores[i, f]:.4f}"
                        + (f" at epoch {best_epochs[i, f] + 1}" if best_epochs[i, f] >= 0 else "")
                        + f" ({fit_times[i, f]:.1f} s)"
                    )
            if diverged[i]:
                scores[i] = np.nan
                best_epochs[i] = -1
            est_epochs = int(_configured(self.estimator, point)._training()["epochs"])
            if callable(self.criterion) or diverged[i]:
                refit_epochs[i] = est_epochs
            else:
                refit_epochs[i] = min(est_epochs, math.floor(float(np.mean(best_epochs[i] + 1)) + 0.5))

        mean = scores.mean(axis=1)
        std = scores.std(axis=1)
        rank = _rank(mean)
        results: dict[str, Any] = {"params": np.empty(n_points, dtype=object)}
        for i, p in enumerate(points):
            results["params"][i] = dict(p)
        keys = list(dict.fromkeys(k for p in points for k in p))
        for key in keys:
            col = np.empty(n_points, dtype=object)
            col[:] = [p.get(key) for p in points]
            results[f"param_{key}"] = col
        for f in range(n_splits):
            results[f"split{f}_test_score"] = scores[:, f].copy()
        results["mean_test_score"] = mean
        results["std_test_score"] = std
        results["rank_test_score"] = rank
        for f in range(n_splits):
            results[f"split{f}_best_epoch"] = best_epochs[:, f].copy()
        results["refit_epochs"] = refit_epochs
        results["mean_fit_time"] = np.nanmean(fit_times, axis=1)
        results["std_fit_time"] = np.nanstd(fit_times, axis=1)
        results["diverged"] = diverged
        warn_col = np.empty(n_points, dtype=object)
        warn_col[:] = fit_warnings
        results["fit_warnings"] = warn_col
        self.cv_results_ = results
        self.n_splits_ = n_splits
        finite = np.flatnonzero(np.isfinite(mean))
        if finite.size == 0:
            raise ValueError(
                f"every one of the {n_points} grid points diverged or had no finite score; "
                "try smaller learning rates or regularization weights"
            )
        order = sorted(finite.tolist(), key=lambda j: (int(rank[j]), j))
        self.best_index_ = int(order[0])
        self.best_params_ = dict(points[self.best_index_])
        self.best_score_ = float(mean[self.best_index_])
        self.refit_epochs_ = int(refit_epochs[self.best_index_])
        self.ensemble_: CrowdEnsemble | None = None
        self.ensemble_indices_: list[int] = []
        if not self.refit:
            return self
        members = [self.best_index_]
        if self.ensemble is not None:
            members = order[: int(self.ensemble)]
            if len(members) < int(self.ensemble):
                warnings.warn(
                    f"ensemble={self.ensemble} but only {len(members)} grid points have a finite score; "
                    f"the ensemble has {len(members)} members",
                    UserWarning,
                    stacklevel=2,
                )
        fitted = [self._refit(X, annotations, points[j], int(refit_epochs[j]), fit_params) for j in members]
        self.best_estimator_ = fitted[0]
        self.classes_ = fitted[0].classes_.copy()
        if self.ensemble is not None:
            self.ensemble_ = CrowdEnsemble(fitted)
            self.ensemble_indices_ = [int(j) for j in members]
        return self

    def _refit(
        self, X: Any, annotations: Annotations, point: Mapping[str, Any], n_epochs: int, fit_params: dict[str, Any]
    ) -> CrowdClassifier:
        est = _configured(self.estimator, point)
        user_cbs = list(est.callbacks or ())
        est.set_params(validation="none", callbacks=[StopAfter(n_epochs), *user_cbs])
        if self.verbose:
            (self.sink or print)(
                f"refit ({_describe(point)}) on all {annotations.n_labels} labels for {n_epochs} epochs"
            )
        est.fit(X, annotations, **fit_params)
        est.set_params(callbacks=self.estimator.callbacks)
        return est

    # ------------------------------------------------------------------ results and prediction
    def results_frame(self) -> pd.DataFrame:
        """``cv_results_`` as a DataFrame, one row per grid point (without the ``params`` column)."""
        if not hasattr(self, "cv_results_"):
            raise NotFittedError("This CrowdSearchCV instance is not fitted yet; call fit(X, annotations) first.")
        return pd.DataFrame({k: v for k, v in self.cv_results_.items() if k != "params"})

    def _predictor(self) -> CrowdClassifier | CrowdEnsemble:
        if getattr(self, "ensemble_", None) is not None:
            assert self.ensemble_ is not None
            return self.ensemble_
        if not hasattr(self, "best_estimator_"):
            raise NotFittedError(
                "This CrowdSearchCV instance has no refit model; call fit(X, annotations) with refit=True first."
            )
        return self.best_estimator_

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        """Class probabilities of ``ensemble_`` (if any) or ``best_estimator_``, shape (n, n_classes)."""
        return self._predictor().predict_proba(X)

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """Most probable class id of each row (``ensemble_`` or ``best_estimator_``), shape (n,)."""
        return self._predictor().predict(X)

    def score(self, X: Any, y: npt.ArrayLike) -> float:
        """Accuracy of :meth:`predict` against true classes ``y`` (shape (n,))."""
        return self._predictor().score(X, y)
