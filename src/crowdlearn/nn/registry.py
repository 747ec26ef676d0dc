"""The method registry: every deep crowd method is a :class:`MethodSpec`, looked up by name.

A spec names its head factory, its regularizers (each with a named weight), its declared
parameters (constraints and defaults, checked in one place: :meth:`MethodSpec.resolve_params`),
what it needs (the item representation, annotator features), the confusion initialisations it
accepts and its citation. :class:`~crowdlearn.CrowdClassifier`, its docstring's method table and
the CLI's ``--method`` choices and help read the registry; nothing else names a method.

This module and :mod:`crowdlearn.nn.methods` import no torch (heads and regularizers are built
by their factories), so the command line can list the methods without loading torch.

Third-party packages add methods through the entry-point group ``crowdlearn.methods``: each entry
point loads to a :class:`MethodSpec` (or a zero-argument callable returning one, or a sequence of
specs); the group is read once, on the first lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdlearn._checks import check_number, show

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crowdlearn.annotations import Annotations
    from crowdlearn.nn.losses import Regularizer
    from crowdlearn.train.transforms import BatchTransform

__all__ = [
    "ALL_INITS",
    "BASE_TRAINING",
    "DEFAULT_RIDGE",
    "ENTRY_POINT_GROUP",
    "HeadContext",
    "MethodParam",
    "MethodSpec",
    "Targets",
    "TargetsContext",
    "available_methods",
    "get_method",
    "method_table",
    "register_method",
    "unregister_method",
]

#: Ridge ``eps`` added to the Gram matrices before the log-determinant (``G + eps * I``;
#: :mod:`crowdlearn.nn.functional` re-exports it). With probabilities in ``[0, 1]`` the Gram
#: entries are O(1) or larger, so ``1e-6`` changes the value of a well-conditioned Gram matrix by
#: a relative ``~1e-6`` while bounding the log-det of a rank-deficient one below by ``K log(eps)``
#: (finite, with finite gradients).
DEFAULT_RIDGE = 1e-6
#: The entry-point group third-party methods register under.
ENTRY_POINT_GROUP = "crowdlearn.methods"
#: The confusion initialisations of ``CrowdClassifier(init=...)``; "array" stands for an (M, K, K) array.
ALL_INITS: tuple[str, ...] = ("identity", "uniform", "mv", "ds", "array")
#: The training parameters of ``CrowdClassifier`` a method's :attr:`MethodSpec.recipe` may set,
#: with the library's base values (used where neither the user nor the recipe gives one).
#: ``confusion_lr=None`` means the backbone's ``lr``.
BASE_TRAINING: Mapping[str, Any] = {
    "lr": 1e-3,
    "confusion_lr": None,
    "epochs": 100,
    "batch_size": 128,
    "weight_decay": 1e-4,
    "schedule": "constant",
    "init": "identity",
    "mixup": 0.0,
}


@dataclass(frozen=True)
class MethodParam:
    """One declared numeric parameter of a method.

    Parameters
    ----------
    name : str
        Its key in ``method_params`` (and the CLI's ``--method-param NAME=VALUE``).
    default : float
    help : str
        One line for the docs and the CLI.
    low : float or None, default=None
        Lower bound (None: any finite number).
    strict : bool, default=False
        ``value > low`` instead of ``value >= low``.
    high : float or None, default=None
        Upper bound, inclusive (None: none).
    integer : bool, default=False
    top_level : bool, default=False
        Also a :class:`~crowdlearn.CrowdClassifier` parameter of the same name (``lam``, ``eps``):
        its value there is the default unless ``method_params`` sets it.
    """

    name: str
    default: float
    help: str
    low: float | None = None
    strict: bool = False
    integer: bool = False
    top_level: bool = False
    high: float | None = None

    def check(self, value: Any, owner: str, where: str) -> float | int:
        """``value`` checked against the constraints (one-line ValueError naming ``where``)."""
        try:
            check_number(value, self.name, owner, low=self.low, strict=self.strict, integer=self.integer)
            if self.high is not None and value > self.high:
                raise ValueError
        except ValueError:
            bound = "" if self.low is None else (f" > {self.low:g}" if self.strict else f" >= {self.low:g}")
            if self.high is not None:
                bound += (" and" if bound else "") + f" <= {self.high:g}"
            kind = "an integer" if self.integer else "a finite number"
            raise ValueError(f"{where} must be {kind}{bound}, got {show(value)}") from None
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class HeadContext:
    """What a head factory receives.

    Attributes
    ----------
    n_annotators, n_classes : int
        ``M`` and ``K``.
    init : str or ndarray of shape (M, K, K)
        The resolved initial confusions: "identity", "uniform" or column-stochastic matrices
        ("mv"/"ds" already fitted).
    init_scale : float
        Diagonal logit of ``init="identity"``.
    params : mapping of str to number
        The method's resolved parameters (:meth:`MethodSpec.resolve_params`).
    annotations : Annotations or None
        The training labels (after any held-out split), for a head that sizes or initialises
        itself from them; None when a saved model is rebuilt.
    annotator_features : ndarray of shape (M, F) or None
        ``CrowdClassifier.fit(..., annotator_features=...)``, rows in annotator index order
        (float32); None when none were given. Also given when a saved model is rebuilt.
    representation_dim : int or None
        ``H``, the size of the backbone's item representation, for a method with
        ``needs_representation`` (measured on two rows before the head is built, and saved with
        the model); None otherwise.
    """

    n_annotators: int
    n_classes: int
    init: str | np.ndarray[Any, Any]
    init_scale: float
    params: Mapping[str, Any]
    annotations: Annotations | None = None
    annotator_features: np.ndarray[Any, Any] | None = None
    representation_dim: int | None = None


@dataclass(frozen=True)
class TargetsContext:
    """What a method's ``targets`` hook receives before each training round.

    Attributes
    ----------
    annotations : Annotations
        The training labels (after any held-out split).
    params : mapping of str to number
        The method's resolved parameters.
    round : int
        0 before the first training, then 1, 2, ...
    proba : ndarray of shape (n_items, K) or None
        The previous round's classifier probabilities of every training item (None in round 0).
    random_state : int
    known_labels : ndarray of int of shape (n_items,) or None
        Gold class index of each item, -1 unknown (``CrowdClassifier.fit(..., known_labels=...)``,
        for a method whose spec has ``known_labels="targets"``); None without gold labels.
    """

    annotations: Annotations
    params: Mapping[str, Any]
    round: int
    proba: np.ndarray[Any, Any] | None
    random_state: int = 0
    known_labels: np.ndarray[Any, Any] | None = None


@dataclass(frozen=True)
class Targets:
    """One training round's soft targets (and the confusions that go with them).

    Attributes
    ----------
    targets : ndarray of shape (n_items, K)
        Each item's target distribution (rows of unlabelled items are unused).
    confusions : ndarray of shape (M, K, K) or None
        Column-stochastic confusions given to the head factory as its ``init`` (e.g. the
        aggregator's, so ``confusions_`` and held-out-label validation use them); None keeps the
        estimator's ``init``.
    """

    targets: np.ndarray[Any, Any]
    confusions: np.ndarray[Any, Any] | None = None


@dataclass(frozen=True)
class MethodSpec:
    """A deep crowd method as data.

    Parameters
    ----------
    name : str
        ``CrowdClassifier(method=name)``, ``crowdlearn train --method name``.
    summary : str
        One line for the method table of the docstring and the CLI help.
    make_head : callable
        ``make_head(HeadContext) -> nn.Module``: the head, called as
        ``head(log_probs (E, K), annotators (E,)) -> (E, K)`` log P(label | item, annotator);
        ``head.confusions()`` (M, K, K), when it has one, gives ``confusions_`` (identity
        matrices otherwise); ``head.param_groups(lr, weight_decay)``, when it has one, gives its
        optimizer groups (otherwise one group at ``confusion_lr`` without decay).
    regularizers : tuple of callables, default=()
        Each ``factory(params) -> Regularizer``; the loss is ``nll + sum_i w_i r_i``.
    params : tuple of MethodParam, default=()
        The declared parameters (``lam`` and ``eps`` are top-level ones).
    inits : tuple of str, default=ALL_INITS
        The ``init`` values it accepts ("array" for an (M, K, K) array); ALL_INITS also for a
        head that ignores ``init``.
    needs_representation : bool, default=False
        The head is called as ``head(log_probs, annotators, rows=rows (E,),
        representation=(E, H))``, the backbone's item representation of each observed label
        (``forward_features``; the built-in backbones have it, a user backbone returning only
        logits gets a clear error at ``fit``).
    needs_annotator_features : bool, default=False
        The head needs annotator features: ``fit(..., annotator_features=(M, F))`` must give
        them (they reach the head factory as ``HeadContext.annotator_features``). A head that
        can use them but does not need them reads the context's field, which is None without.
    refines_confusions : bool, default=False
        ``refine_confusions`` applies (the head is :class:`~crowdlearn.nn.ConfusionMatrices`).
    instance_dependent : bool, default=False
        The confusions depend on the item: the head defines ``pair_confusions(annotators (E,),
        representation (E, H) or None) -> (E, K, K)``; ``confusions_`` is each annotator's mean
        over the training items it labelled, and ``predict_confusions`` gives the per-pair ones.
    make_criterion : callable or None, default=None
        ``make_criterion(params, regularizers) -> nn.Module`` replaces the coupled cross-entropy
        (:class:`~crowdlearn.nn.CrowdLoss`) as the loss; a criterion with ``takes_batch = True``
        is called with the whole :class:`~crowdlearn.train.Batch` (see
        :meth:`~crowdlearn.train.Trainer.get_loss`).
    make_transform : callable or None, default=None
        ``make_transform(params, mixup) -> BatchTransform or None``: the method's batch transform
        given ``CrowdClassifier(mixup=...)`` (default: :class:`~crowdlearn.train.InputMixup`
        when ``mixup > 0``).
    targets : callable or None, default=None
        ``targets(TargetsContext) -> Targets or None``: per-item soft targets before each
        training round (round 0 first; None ends the rounds; round 0 must give targets). Each
        round trains a fresh model with the same seed; the last round's model is kept. The
        two-stage methods use one round, MBEM several.
    known_labels : {"none", "clamp", "targets"}, default="none"
        How ``CrowdClassifier.fit(..., known_labels=...)`` (gold labels) reaches the method.
        ``"clamp"``: the trainer fixes the gold items' predictions to their class inside the
        method's criterion and adds the classifier's cross-entropy on them
        (:meth:`~crowdlearn.train.Trainer.get_loss`), for a criterion that reads the classifier
        only through the logits it is given (CCEM and its regularized variants, CE, CrowdLayer).
        ``"targets"``: the ``targets`` hook reads them (``TargetsContext.known_labels``) and gives
        the gold items their class as targets (the two-stage methods, MBEM). ``"none"``: gold
        labels are refused with a clear error.
    recipe : mapping, default={}
        The method's default training recipe: values of :data:`BASE_TRAINING`'s keys (``lr``,
        ``confusion_lr``, ``epochs``, ``batch_size``, ``weight_decay``, ``schedule``, ``init``,
        ``mixup``) that ``CrowdClassifier`` uses when its parameter is left at None; the other
        keys keep the base values. See :meth:`training`.
    citation : str, default=""
    """

    name: str
    summary: str
    make_head: Callable[[HeadContext], nn.Module]
    regularizers: tuple[Callable[[Mapping[str, Any]], Regularizer], ...] = ()
    params: tuple[MethodParam, ...] = ()
    inits: tuple[str, ...] = ALL_INITS
    needs_representation: bool = False
    needs_annotator_features: bool = False
    refines_confusions: bool = False
    instance_dependent: bool = False
    make_criterion: Callable[[Mapping[str, Any], list[Regularizer]], nn.Module] | None = None
    make_transform: Callable[[Mapping[str, Any], float], BatchTransform | None] | None = None
    targets: Callable[[TargetsContext], Targets | None] | None = None
    known_labels: str = "none"
    recipe: Mapping[str, Any] = field(default_factory=dict)
    citation: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name and self.name == self.name.strip()):
            raise ValueError(f"a method name must be a non-empty string without surrounding blanks, got {self.name!r}")
        if not callable(self.make_head):
            raise TypeError(f"method {self.name!r}: make_head must be callable, got {type(self.make_head).__name__}")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"method {self.name!r}: duplicate parameter names in {names}")
        bad = [i for i in self.inits if i not in ALL_INITS]
        if bad or not self.inits:
            raise ValueError(f"method {self.name!r}: inits must be a non-empty subset of {ALL_INITS}, got {self.inits}")
        unknown = sorted(set(self.recipe) - set(BASE_TRAINING), key=str)
        if unknown:
            raise ValueError(
                f"method {self.name!r}: recipe key {unknown[0]!r} is not a training parameter "
                f"(one of {', '.join(BASE_TRAINING)})"
            )
        if self.known_labels not in ("none", "clamp", "targets"):
            raise ValueError(
                f"method {self.name!r}: known_labels must be 'none', 'clamp' or 'targets', got {self.known_labels!r}"
            )
        if self.known_labels == "targets" and self.targets is None:
            raise ValueError(f"method {self.name!r}: known_labels='targets' needs a targets hook")
        object.__setattr__(self, "recipe", MappingProxyType(dict(self.recipe)))  # frozen, like the spec
        init = self.recipe.get("init")
        if init is not None and not (isinstance(init, str) and init in self.inits):
            raise ValueError(f"method {self.name!r}: recipe init={init!r} is not one of its inits {self.inits}")

    def training(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The training parameters of a run: ``given`` (the estimator's values; None = not set),
        else the method's :attr:`recipe`, else :data:`BASE_TRAINING`.

        Parameters
        ----------
        given : mapping
            Values of (some of) :data:`BASE_TRAINING`'s keys.

        Returns
        -------
        dict
            One value per key of :data:`BASE_TRAINING` (``confusion_lr`` may stay None: ``lr``).
        """
        out = dict(BASE_TRAINING)
        out.update(self.recipe)
        out.update({k: v for k, v in given.items() if k in BASE_TRAINING and v is not None})
        return out

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the declared parameters."""
        return tuple(p.name for p in self.params)

    def resolve_params(
        self, method_params: Mapping[str, Any] | None, top_level: Mapping[str, Any], owner: str
    ) -> dict[str, Any]:
        """The method's parameters: defaults, then top-level values, then ``method_params``; checked.

        Parameters
        ----------
        method_params : mapping or None
            ``CrowdClassifier(method_params=...)``.
        top_level : mapping
            The estimator's values of the top-level parameters (``lam``, ``eps``).
        owner : str
            Class name for the messages.

        Raises
        ------
        ValueError
            An unknown key (the message lists the method's parameters) or a value out of range.
        """
        given = dict(method_params or {})
        unknown = sorted(set(given) - set(self.param_names), key=str)
        if unknown:
            known = ", ".join(self.param_names) or "none"
            raise ValueError(
                f"method_params={{{unknown[0]!r}: ...}} is not a parameter of method {self.name!r} "
                f"(its parameters: {known})"
            )
        out: dict[str, Any] = {}
        for p in self.params:
            if p.name in given:
                out[p.name] = p.check(given[p.name], owner, f"method_params[{p.name!r}] of method {self.name!r}")
            elif p.top_level and p.name in top_level:
                out[p.name] = p.check(top_level[p.name], owner, f"{p.name}=")
            else:
                out[p.name] = p.default
        return out

    def accepts_init(self, init: Any) -> bool:
        """Whether ``init`` (a string or an array) is one of :attr:`inits`."""
        if isinstance(init, np.ndarray):
            return "array" in self.inits
        return isinstance(init, str) and init != "array" and init in self.inits


_REGISTRY: dict[str, MethodSpec] = {}
_ENTRY_POINTS_LOADED = False


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry; returns it.

    Raises
    ------
    ValueError
        A method of that name is already registered.
    TypeError
        ``spec`` is not a :class:`MethodSpec`.
    """
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"register_method needs a MethodSpec, got {type(spec).__name__}")
    if spec.name in _REGISTRY:
        raise ValueError(f"a method named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Remove a registered method (for tests and interactive use); KeyError if it is unknown."""
    if name not in _REGISTRY:
        raise KeyError(f"no method named {name!r} is registered")
    del _REGISTRY[name]


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP!r}"
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, MethodSpec):
                obj = obj()
        except Exception as exc:  # a broken plug-in: one clear line naming it
            raise RuntimeError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
        specs = [obj] if isinstance(obj, MethodSpec) else obj
        if not (isinstance(specs, Sequence) and specs and all(isinstance(s, MethodSpec) for s in specs)):
            raise RuntimeError(f"{where} must give a MethodSpec or a list of them, got {type(obj).__name__}")
        for spec in specs:
            if _REGISTRY.get(spec.name) is spec:
                continue
            try:
                register_method(spec)
            except ValueError as exc:
                raise RuntimeError(f"{where}: {exc}") from None
    _ENTRY_POINTS_LOADED = True  # only once every entry point loaded: a broken one errs at every lookup


def available_methods(*, entry_points: bool = True) -> tuple[str, ...]:
    """Names of the registered methods (built-ins first, in registration order).

    Parameters
    ----------
    entry_points : bool, default=True
        Load the ``crowdlearn.methods`` entry points first (once); False lists what is
        registered now without importing any plug-in (used at import time for docstrings).
    """
    if entry_points:
        _load_entry_points()
    return tuple(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    """The spec registered as ``name``.

    Raises
    ------
    ValueError
        No such method; the message lists the known names.
    """
    _load_entry_points()
    spec = _REGISTRY.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"unknown method {show(name)}; known methods: {', '.join(_REGISTRY)}")
    return spec


def method_table(names: Sequence[str] | None = None, indent: str = "    ") -> str:
    """The method list of :class:`~crowdlearn.CrowdClassifier`'s docstring, from the registry.

    Parameters
    ----------
    names : sequence of str, optional
        The methods to list (default: every registered one, entry points loaded).
    indent : str, default="    "
    """
    lines = []
    for name in available_methods() if names is None else names:
        spec = _REGISTRY[name]
        params = ", ".join(f"``{p.name}``" for p in spec.params)
        tail = f" Parameters: {params}." if params else ""
        cite = f" ({spec.citation})" if spec.citation else ""
        lines.append(f'{indent}- ``"{name}"``: {spec.summary}{cite}.{tail}')
    return "\n".join(lines)
