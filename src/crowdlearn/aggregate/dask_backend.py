"""Dask backend of MajorityVote, DawidSkene, OneCoinDawidSkene and MACE: truth inference past one machine.

The estimators dispatch here when ``fit`` is given a :class:`dask.dataframe.DataFrame` of
crowd-kit style columns ``task``, ``worker``, ``label`` (read one from a Parquet dataset with
:func:`read_parquet_labels`)::

    import dask.dataframe as dd
    from crowdlearn.aggregate import DawidSkene
    frame = read_parquet_labels("labels/")          # or any Dask DataFrame with task, worker, label
    ds = DawidSkene(n_iter=50).fit(frame)           # same class, same parameters
    ds.confusions_, ds.priors_, ds.log_likelihood_  # numpy, as in memory
    ds.probas_frame_.to_parquet("posteriors/")      # lazy per-item outputs (Dask collections)

Layout of the computation (one Dask graph per pass, run on whatever scheduler is active: the
default ``dask.distributed`` client if there is one, else Dask's default):

* **Partitioned by item.** Every item's labels must sit in one partition (items are encoded
  *locally* in each partition). A frame whose partitions hold disjoint item ranges (data sorted by
  item, e.g. a Parquet dataset written in item order) passes at once; otherwise a hash check over
  the per-partition item sets runs, and an item found in two partitions is an error that names it
  (fix: ``frame.shuffle("task")``).
* **Global ids without collecting the labels.** A first pass reduces each partition to its
  distinct annotators (first-appearance order) and classes, merged pairwise in partition order, so
  annotator and class indices are global and equal to those of the in-memory fit of the
  concatenated partitions.
* **EM.** Each partition is encoded once into its one-hot label matrix (CSR, local items x
  global annotator-class columns) and, by default, persisted on the workers (``persist=False``
  re-reads and re-encodes the partitions every pass: memory bounded by a few partitions, the
  out-of-core mode). One pass per iteration fuses the E-step of the partition with the partial
  sufficient statistics of the next M-step (annotator count matrices, class-prior sums, the
  log-likelihood); these are summed by a tree reduction (fan-in 8) and the M-step runs on the
  client. Per-item posteriors never leave the workers.

The results equal the in-memory ones on the same data and initialisation up to summation order
(tested to 1e-10), including ``known_labels`` and the stopping rule (``n_iter_``). Not supported
here: ``init="spectral"`` (its moments need all labels at once), ``known_labels`` as an array (use
a Series or mapping item id -> class id), and the aggregators other than MajorityVote,
DawidSkene, OneCoinDawidSkene and MACE (``compute()`` the frame).

Fitted attributes: as in memory (``confusions_``, ``priors_``, ``skills_``, ``log_likelihood_``,
``n_iter_``, ``classes_``, ``annotator_ids_``), except that the per-item outputs are lazy Dask
collections indexed by task: ``probas_frame_`` (one column per class) and ``labels_frame_``
(class ids, named ``agg_label``), also returned by ``fit_predict_proba`` / ``fit_predict``;
``labels_``, ``probas_`` and ``item_ids_`` are not set.
"""

from __future__ import annotations

import itertools
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crowdlearn._checks import show
from crowdlearn.aggregate.base import (
    FRAME_COLUMNS,
    BaseAggregator,
    FloatArray,
    IntArray,
    IterationCallback,
    break_ties,
    check_priors,
    is_dask_frame,
    posterior_from_log,
    safe_log,
    shrink_counts,
    spmm,
)
from crowdlearn.annotations import Annotations, AnnotationsError

if TYPE_CHECKING:
    from crowdlearn.aggregate.dawid_skene import _DawidSkeneEM

__all__ = ["SUPPORTED", "fit_dask", "is_dask_frame", "read_parquet_labels"]

#: Names of the aggregators with a Dask backend.
SUPPORTED = ("MajorityVote", "DawidSkene", "OneCoinDawidSkene", "MACE")

#: Fan-in of the tree reduction of the partial statistics.
FAN_IN = 8


def _require_dask() -> Any:
    try:
        import dask
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "the Dask backend needs dask: pip install 'crowdlearn[dask]' (dask[dataframe,distributed])"
        ) from None
    return dask


#: Column names tried, in order, when ``read_parquet_labels`` is not told them.
COLUMN_GUESSES = {
    "item": ("task", "item", "item_id"),
    "annotator": ("worker", "annotator", "annotator_id"),
    "label": ("label",),
}


def read_parquet_labels(
    path: str | Path,
    *,
    item_col: str | None = None,
    annotator_col: str | None = None,
    label_col: str | None = None,
) -> Any:
    """A Parquet dataset (a file or a folder of files) as a Dask DataFrame ``task, worker, label``.

    Parameters
    ----------
    path : str or Path
        A ``.parquet`` file or a folder of them (one Dask partition per file / row group).
    item_col, annotator_col, label_col : str, optional
        Column names in the files, renamed to ``task``, ``worker``, ``label``. Default: the first
        present of ``task``/``item``/``item_id``, ``worker``/``annotator``/``annotator_id`` and
        ``label``.

    Returns
    -------
    dask.dataframe.DataFrame with columns ``task``, ``worker``, ``label`` (lazy).
    """
    _require_dask()
    import dask.dataframe as dd

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such Parquet file or dataset folder")
    files = [p] if p.is_file() else sorted(p.rglob("*.parquet"))
    if not files:
        raise AnnotationsError(f"{p}: the folder holds no .parquet files (expected a Parquet dataset)")
    try:
        import pyarrow.parquet as pq

        names = list(pq.read_schema(files[0]).names)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise AnnotationsError(f"{files[0]}: not a readable Parquet file ({' '.join(str(exc).split())})") from None

    def pick(given: str | None, role: str) -> str:
        if given is not None:
            return given
        return next((c for c in COLUMN_GUESSES[role] if c in names), COLUMN_GUESSES[role][0])

    wanted = [pick(item_col, "item"), pick(annotator_col, "annotator"), pick(label_col, "label")]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise AnnotationsError(
            f"{p}: column(s) {missing} not found; the files have {names} "
            "(name the columns with item_col=, annotator_col=, label_col=)"
        )
    frame = dd.read_parquet(str(p), columns=wanted)
    return frame.rename(columns=dict(zip(wanted, FRAME_COLUMNS)))


# ---------------------------------------------------------------------------- partitions
@dataclass
class _Part:
    """One encoded partition: local items, global annotators and classes.

    ``X`` is the one-hot label matrix (n_items, n_annotators * K) (CSR, rows = local items in
    first-appearance order), ``known_idx`` / ``known_cls`` the local rows with a known class.
    """

    index: int
    item_ids: np.ndarray[Any, Any]
    X: sp.csr_matrix
    n_classes: int
    known_idx: IntArray
    known_cls: IntArray
    known_found: np.ndarray[Any, Any]

    @property
    def n_items(self) -> int:
        return int(self.X.shape[0])

    def triples(self) -> tuple[IntArray, IntArray, IntArray]:
        """(items, annotators, labels) of the partition's labels, local item indices."""
        K = self.n_classes
        rows = np.repeat(np.arange(self.n_items, dtype=np.int64), np.diff(self.X.indptr))
        cols = self.X.indices.astype(np.int64)
        return rows, cols // K, cols % K

    def votes(self) -> FloatArray:
        rows, _, labels = self.triples()
        K = self.n_classes
        v = np.bincount(rows * K + labels, minlength=self.n_items * K).astype(np.float64)
        return v.reshape(self.n_items, K)

    def clamp(self, T: FloatArray) -> None:
        if self.known_idx.size:
            T[self.known_idx] = 0.0
            T[self.known_idx, self.known_cls] = 1.0


def _summarise(df: pd.DataFrame, index: int) -> dict[str, Any]:
    """Pass 1 on one partition: distinct annotators (first appearance), classes, item range."""
    missing = [c for c in FRAME_COLUMNS if c not in df.columns]
    if missing:
        raise AnnotationsError(
            f"the Dask DataFrame is missing column(s) {missing}; expected crowd-kit style columns "
            f"'task', 'worker', 'label', got {list(df.columns)}"
        )
    for name, col in zip(("item", "annotator", "label"), FRAME_COLUMNS):
        na = df[col].isna().to_numpy()
        if na.any():
            row = int(np.flatnonzero(na)[0])
            raise AnnotationsError(
                f"partition {index}, row {row}: missing {name} id (NaN/empty); every label needs an {name}"
            )
    tasks = df["task"]
    span: tuple[Any, Any] | None = None
    if len(tasks):
        try:
            span = (tasks.min(), tasks.max())
        except TypeError:  # mixed id types: no order, the hash check decides
            span = (None, None)
    return {
        "annotators": pd.unique(df["worker"].to_numpy()),
        "labels": pd.unique(df["label"].to_numpy()),
        "n_rows": len(df),
        "range": span,
    }


def _merge_summaries(*parts: dict[str, Any]) -> dict[str, Any]:
    """Ordered merge: first-appearance order over the partitions is kept."""
    return {
        "annotators": pd.unique(np.concatenate([p["annotators"] for p in parts])),
        "labels": pd.unique(np.concatenate([p["labels"] for p in parts])),
        "n_rows": sum(p["n_rows"] for p in parts),
    }


def _item_buckets(df: pd.DataFrame, n_buckets: int) -> list[np.ndarray[Any, Any]]:
    items = pd.unique(df["task"].to_numpy())
    h = pd.util.hash_array(np.asarray(items)) % np.uint64(n_buckets)
    return [items[h == b] for b in range(n_buckets)]


def _bucket_duplicate(*arrays: np.ndarray[Any, Any]) -> tuple[Any, int, int] | None:
    """(item id, first partition, second partition) of an item in two of ``arrays`` (one per partition)."""
    owner = np.repeat(np.arange(len(arrays)), [len(a) for a in arrays])
    ids = pd.Series(np.concatenate(arrays) if arrays else np.zeros(0))
    dup = ids.duplicated(keep=False).to_numpy()
    if not dup.any():
        return None
    first = ids[dup].iloc[0]
    where = owner[(ids == first).to_numpy()]
    return first, int(where[0]), int(where[1])


def _encode(
    df: pd.DataFrame,
    index: int,
    annotator_ids: np.ndarray[Any, Any],
    classes: np.ndarray[Any, Any],
    known: pd.Series | None,
) -> _Part:
    ann = Annotations.from_ids(
        df["task"].to_numpy(),
        df["worker"].to_numpy(),
        df["label"].to_numpy(),
        classes=list(classes),
        annotator_ids=list(annotator_ids),
        source=f"partition {index}",
    )
    K = ann.n_classes
    cols = (ann.annotators * K + ann.labels).astype(np.int32)
    # CSR directly from the item-grouped order (Annotations.by_item is a stable sort by item)
    order = ann.by_item.order
    counts = np.bincount(ann.items, minlength=ann.n_items)
    indptr = np.zeros(ann.n_items + 1, dtype=np.int32)
    np.cumsum(counts, out=indptr[1:])
    X = sp.csr_matrix(
        (np.ones(ann.n_labels, dtype=np.float64), cols[order], indptr),
        shape=(ann.n_items, ann.n_annotators * K),
    )
    known_idx = np.zeros(0, dtype=np.int64)
    known_cls = np.zeros(0, dtype=np.int64)
    found: np.ndarray[Any, Any] = np.zeros(0, dtype=object)
    if known is not None and len(known):
        pos = pd.Index(ann.item_ids).get_indexer(known.index)
        hit = pos >= 0
        known_idx = pos[hit].astype(np.int64)
        known_cls = ann.class_index(known.to_numpy()[hit].tolist())
        found = known.index.to_numpy()[hit]
    return _Part(index, np.asarray(ann.item_ids), X, K, known_idx, known_cls, found)


# ---------------------------------------------------------------------------- models
class _Model:
    """Per-partition numerics of one estimator: E-step log joint, partial M-step statistics."""

    def __init__(self, n_annotators: int, n_classes: int, smoothing: float, fixed_priors: FloatArray | None) -> None:
        self.M, self.K, self.smoothing, self.fixed_priors = n_annotators, n_classes, smoothing, fixed_priors

    def log_lik(self, part: _Part, params: Any) -> FloatArray:  # (n_items, K), without the prior
        raise NotImplementedError

    def stats(self, part: _Part, T: FloatArray) -> list[FloatArray]:
        raise NotImplementedError

    def confusion_params(self, stats: list[FloatArray]) -> Any:
        raise NotImplementedError

    def priors(self, psum: FloatArray, n_items: int) -> FloatArray:
        if self.fixed_priors is not None:
            return self.fixed_priors
        if n_items == 0:
            return np.full(self.K, 1.0 / self.K)
        out: FloatArray = psum / n_items
        return out


class _DSModel(_Model):
    """Full confusions (M, K, K): counts ``X.T @ T`` reduced, columns normalised."""

    def __init__(
        self,
        n_annotators: int,
        n_classes: int,
        smoothing: float,
        fixed_priors: FloatArray | None,
        shrinkage: str = "uniform",
    ) -> None:
        super().__init__(n_annotators, n_classes, smoothing, fixed_priors)
        self.shrinkage = shrinkage  # DawidSkene.shrinkage

    def log_lik(self, part: _Part, params: Any) -> FloatArray:
        return spmm(part.X, safe_log(params).reshape(self.M * self.K, self.K))

    def stats(self, part: _Part, T: FloatArray) -> list[FloatArray]:
        return [spmm(part.X.T, T)]

    def confusion_params(self, stats: list[FloatArray]) -> Any:
        return shrink_counts(stats[0].reshape(self.M, self.K, self.K), self.smoothing, self.shrinkage)


class _OneCoinModel(_Model):
    """One accuracy per annotator (M,): agreement and label counts reduced."""

    def log_lik(self, part: _Part, params: Any) -> FloatArray:
        from crowdlearn.aggregate.dawid_skene import one_coin_log_lik

        items, annotators, labels = part.triples()
        return one_coin_log_lik(items, annotators, labels, part.n_items, self.K, params)

    def stats(self, part: _Part, T: FloatArray) -> list[FloatArray]:
        items, annotators, labels = part.triples()
        agree = np.bincount(annotators, weights=T[items, labels], minlength=self.M).astype(np.float64)
        total = np.bincount(annotators, weights=T.sum(axis=1)[items], minlength=self.M).astype(np.float64)
        return [agree, total]

    def confusion_params(self, stats: list[FloatArray]) -> Any:
        from crowdlearn.aggregate.dawid_skene import one_coin_skills

        return one_coin_skills(stats[0], stats[1], self.K, self.smoothing)


class _MACEModel(_Model):
    """MACE: per-annotator "knew it" / "spammed" weights (M,) and strategies (M, K).

    Parameters are ``(know, spam, xi)`` as in :class:`~crowdlearn.aggregate.MACE`'s EM loop; the
    partial statistics are the expected "knew it" counts (M,), the spam counts (M, K) and the
    label counts (M,), all taken under the parameters that produced the posteriors.
    """

    def __init__(self, est: Any, n_annotators: int, n_classes: int, fixed_priors: FloatArray | None) -> None:
        super().__init__(n_annotators, n_classes, float(est.smoothing), fixed_priors)
        self.vb = est.method == "vb"
        self.a_em, self.a_vb, self.s_vb = (
            float(est.competence_smoothing),
            float(est.competence_prior),
            float(est.strategy_prior),
        )

    def log_lik(self, part: _Part, params: Any) -> FloatArray:
        from crowdlearn.aggregate.dawid_skene import per_label_log_joint_arrays

        items, an, lb = part.triples()
        know, spam, xi = params
        kn, sx = know[an], spam[an] * xi[an, lb]
        return per_label_log_joint_arrays(items, lb, safe_log(kn + sx), safe_log(sx), part.n_items, self.K)

    def mace_stats(self, part: _Part, T: FloatArray, params: Any) -> list[FloatArray]:
        items, an, lb = part.triples()
        know, spam, xi = params
        kn, sx = know[an], spam[an] * xi[an, lb]
        knew = T[items, lb] * kn / (kn + sx)
        M, K = self.M, self.K
        n_knew = np.bincount(an, weights=knew, minlength=M).astype(np.float64)
        spam_counts = np.bincount(an * K + lb, weights=1.0 - knew, minlength=M * K).reshape(M, K).astype(np.float64)
        n_m = np.bincount(an, minlength=M).astype(np.float64)
        return [n_knew, spam_counts, n_m]

    def update(self, stats: list[Any]) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The M-step of MACE (EM or VB) from the reduced statistics."""
        from scipy.special import digamma

        n_knew, spam_counts, n_m = stats[0], stats[1], stats[2]
        M, K = self.M, self.K
        if self.vb:
            a, s = self.a_vb, self.s_vb
            log_tot = digamma(n_m + 2 * a)
            know = np.exp(digamma(n_knew + a) - log_tot)
            spam = np.exp(digamma(n_m - n_knew + a) - log_tot)
            xi = np.exp(digamma(spam_counts + s) - digamma(spam_counts.sum(axis=1, keepdims=True) + K * s))
            return know, spam, xi
        a, s = self.a_em, self.smoothing
        denom = n_m + 2 * a
        know = np.divide(n_knew + a, denom, out=np.full(M, 0.5), where=denom > 0)
        smoothed = np.asarray(spam_counts + s, dtype=np.float64)
        tot = smoothed.sum(axis=1, keepdims=True)
        xi = np.divide(smoothed, tot, out=np.full((M, K), 1.0 / K), where=tot > 0)
        return know, 1.0 - know, xi


def _mace_pass(part: _Part, model: _MACEModel, state: tuple[Any, FloatArray] | None, m_params: Any) -> list[Any]:
    """MACE's share of one pass: posteriors under ``state`` (None: the vote), statistics under ``m_params``."""
    if state is None:
        T, ll = _start_posteriors(part), 0.0
    else:
        T, ll = _e_step(model, part, state[0], state[1])
    return [*model.mace_stats(part, T, m_params), T.sum(axis=0), part.n_items, ll]


def _start_posteriors(part: _Part) -> FloatArray:
    votes = part.votes()
    tot = votes.sum(axis=1, keepdims=True)
    T: FloatArray = np.divide(votes, tot, out=np.full_like(votes, 1.0 / part.n_classes), where=tot > 0)
    part.clamp(T)
    return T


def _e_step(model: _Model, part: _Part, params: Any, priors: FloatArray) -> tuple[FloatArray, float]:
    """Posteriors (n_items, K) and the partition's log-likelihood (known items: complete data)."""
    log_joint = model.log_lik(part, params)
    log_joint += safe_log(priors)
    known_ll = float(log_joint[part.known_idx, part.known_cls].sum()) if part.known_idx.size else 0.0
    T, log_norm = posterior_from_log(log_joint)
    if part.known_idx.size:
        ll = float(log_norm.sum() - log_norm[part.known_idx].sum()) + known_ll
        part.clamp(T)
    else:
        ll = float(log_norm.sum())
    return T, ll


def _em_pass(part: _Part, model: _Model, state: tuple[Any, FloatArray] | None) -> list[Any]:
    """One partition's share of one EM iteration: [M-step stats..., prior sums (K,), n_items, ll].

    The item count rides along so that no extra pass over the data is needed for it (with
    ``persist=False`` every pass re-reads the files).
    """
    if state is None:
        T, ll = _start_posteriors(part), 0.0
    else:
        T, ll = _e_step(model, part, state[0], state[1])
    return [*model.stats(part, T), T.sum(axis=0), part.n_items, ll]


def _sum_lists(*lists: list[Any]) -> list[Any]:
    out = list(lists[0])
    for other in lists[1:]:
        for i, v in enumerate(other):
            out[i] = out[i] + v
    return out


def _outputs(
    part: _Part,
    model: _Model | None,
    state: tuple[Any, FloatArray] | None,
    classes: np.ndarray[Any, Any],
    tie_break: str,
    seed: int | None,
) -> pd.DataFrame:
    """Per-item posteriors of the partition as a DataFrame indexed by task (column per class) + label."""
    if state is None or model is None:
        T = _start_posteriors(part)
    else:
        T, _ = _e_step(model, part, state[0], state[1])
    rng = np.random.default_rng(None if seed is None else [seed, part.index])
    best = break_ties(T, tie_break, rng) if tie_break != "argmax" else np.argmax(T, axis=1)
    frame = pd.DataFrame(T, index=pd.Index(part.item_ids, name="task"), columns=_class_columns(classes))
    frame["__label__"] = classes[best]
    return frame


def _class_columns(classes: np.ndarray[Any, Any]) -> pd.Index:
    out: pd.Index = pd.Index(classes.tolist(), name="label")
    return out


# ---------------------------------------------------------------------------- driver
class _Runner:
    """Graph building on the active scheduler: delayed partitions, broadcast, tree reduction."""

    def __init__(self, frame: Any, persist: bool) -> None:
        dask = _require_dask()
        self.dask = dask
        self.delayed = dask.delayed
        self.frame = frame
        self.frames = frame.to_delayed()
        self.persist = persist
        self.parts: list[Any] = []
        # scatter only to a distributed client that is the active scheduler (not under
        # dask.config.set(scheduler="synchronous") with a client around)
        from dask.base import get_scheduler

        active = get_scheduler()  # type: ignore[no-untyped-call]
        self.client: Any = getattr(active, "__self__", None)
        if type(self.client).__name__ != "Client":
            self.client = None

    def compute(self, obj: Any) -> Any:
        (out,) = self.dask.compute(obj)
        return out

    def broadcast(self, value: Any) -> Any:
        """One graph node (or one scattered future) for a value used by every partition."""
        if self.client is not None:
            return self.client.scatter(value, broadcast=True, hash=False)
        return self.delayed(value, name=f"crowdlearn-{uuid.uuid4().hex}", traverse=False)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.delayed(fn, pure=False)(*args)

    def tree(self, values: list[Any], merge: Callable[..., Any]) -> Any:
        while len(values) > 1:
            values = [self.call(merge, *values[i : i + FAN_IN]) for i in range(0, len(values), FAN_IN)]
        return values[0]

    def summarise(self) -> dict[str, Any]:
        summaries = [self.call(_summarise, f, i) for i, f in enumerate(self.frames)]
        ranges = [self.call(lambda s: s["range"], s) for s in summaries]
        merged, ranges_v = self.dask.compute(self.tree(summaries, _merge_summaries), ranges)
        merged["ranges"] = list(ranges_v)
        return dict(merged)

    def check_partitioned(self, ranges: list[tuple[Any, Any] | None]) -> None:
        """Error naming an item whose labels are split over two partitions.

        ``ranges``: (min, max) item id of each partition, None for an empty partition,
        ``(None, None)`` where the ids have no order. Disjoint ranges prove the partitioning;
        otherwise each partition's distinct items are hashed into buckets and each bucket is
        checked for an item from two partitions (one shuffle of the distinct item ids).
        """
        spans = [r for r in ranges if r is not None]
        if all(r[0] is not None for r in spans):
            try:
                spans.sort(key=lambda r: r[0])
                if all(x[1] < y[0] for x, y in itertools.pairwise(spans)):
                    return
            except TypeError:  # ids of types without a common order: the hash check decides
                pass
        n_buckets = max(1, len(self.frames))
        lists = [self.call(_item_buckets, f, n_buckets) for f in self.frames]
        found = self.compute(
            [
                self.call(_bucket_duplicate, *[self.call(operator.getitem, lst, b) for lst in lists])
                for b in range(n_buckets)
            ]
        )
        for hit in found:
            if hit is not None:
                item, first, second = hit
                raise AnnotationsError(
                    f"item {show(item)} has labels in partitions {first} and {second}; the Dask backend needs every "
                    "item's labels in one partition: repartition with frame.shuffle('task') (or sort the data by item)"
                )

    def encode(self, annotator_ids: np.ndarray[Any, Any], classes: np.ndarray[Any, Any], known: Any) -> None:
        ids, cls = self.broadcast(annotator_ids), self.broadcast(classes)
        kn = self.broadcast(known)
        parts = [self.call(_encode, f, i, ids, cls, kn) for i, f in enumerate(self.frames)]
        if self.persist:
            parts = list(self.dask.persist(*parts))
        self.parts = parts

    def em_pass(self, model: _Model, state: tuple[Any, FloatArray] | None) -> list[Any]:
        st = self.broadcast(state)
        m = self.broadcast(model)
        return list(self.compute(self.tree([self.call(_em_pass, p, m, st) for p in self.parts], _sum_lists)))

    def mace_pass(self, model: _MACEModel, state: tuple[Any, FloatArray] | None, m_params: Any) -> list[Any]:
        st, m, mp = self.broadcast(state), self.broadcast(model), self.broadcast(m_params)
        return list(self.compute(self.tree([self.call(_mace_pass, p, m, st, mp) for p in self.parts], _sum_lists)))

    def known_found(self) -> np.ndarray[Any, Any]:
        got = self.compute([self.call(lambda p: p.known_found, p) for p in self.parts])
        return np.concatenate(got) if got else np.zeros(0, dtype=object)

    def outputs(
        self, model: _Model | None, state: Any, classes: np.ndarray[Any, Any], tie_break: str, seed: int | None
    ) -> Any:
        import dask.dataframe as dd

        st, m, cls = self.broadcast(state), self.broadcast(model), self.broadcast(classes)
        meta = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in classes.tolist()})
        meta.columns = _class_columns(classes)
        meta["__label__"] = pd.Series(dtype=classes.dtype)
        meta.index = pd.Index(np.zeros(0, dtype=object), name="task")
        pieces = [self.call(_outputs, p, m, st, cls, tie_break, seed) for p in self.parts]
        return dd.from_delayed(pieces, meta=meta, verify_meta=False)


def _known_series(known_labels: Any, owner: str) -> pd.Series | None:
    if known_labels is None:
        return None
    if isinstance(known_labels, (pd.Series, dict)):
        s = pd.Series(known_labels)
        if s.isna().any():
            raise AnnotationsError(f"known_labels of {owner} has a missing class for item {show(s.index[s.isna()][0])}")
        return s
    raise AnnotationsError(
        "known_labels for a Dask DataFrame must be a pandas Series or dict item id -> class id "
        f"(there is no global item index); got {type(known_labels).__name__}"
    )


def fit_dask(
    estimator: BaseAggregator,
    frame: Any,
    *,
    known_labels: Any = None,
    callback: IterationCallback | None = None,
    persist: bool = True,
) -> BaseAggregator:
    """Fit ``estimator`` (MajorityVote, DawidSkene or OneCoinDawidSkene) on a Dask DataFrame.

    ``estimator.fit(frame)`` calls this with the defaults; call it directly for ``persist``.

    Parameters
    ----------
    estimator : MajorityVote, DawidSkene or OneCoinDawidSkene
        Its parameters are used as in memory.
    frame : dask.dataframe.DataFrame
        Columns ``task``, ``worker``, ``label``; every item's labels in one partition.
    known_labels : Series or dict, optional
        Item id -> class id of items with a known class (DawidSkene family), as in memory.
    callback : callable, optional
        ``callback(iterations_done, log_likelihood)`` after every EM iteration.
    persist : bool, default=True
        Keep the encoded partitions on the workers between iterations (spilled to their local
        disk under a worker memory limit). ``False``: re-read and re-encode every partition in
        every pass, holding only the partitions in flight (the out-of-core mode).

    Returns
    -------
    estimator, fitted; see the module docstring for its attributes.
    """
    from crowdlearn.aggregate.dawid_skene import DawidSkene, OneCoinDawidSkene
    from crowdlearn.aggregate.mace import MACE
    from crowdlearn.aggregate.majority import MajorityVote

    owner = type(estimator).__name__
    if type(estimator) not in (MajorityVote, DawidSkene, OneCoinDawidSkene, MACE):
        raise TypeError(
            f"{owner} has no Dask backend (supported: {', '.join(SUPPORTED)}); "
            "pass frame.compute() (a pandas DataFrame) to fit it in memory"
        )
    if not is_dask_frame(frame):
        raise TypeError(f"expected a Dask DataFrame with columns task, worker, label; got {type(frame).__name__}")
    runner = _Runner(frame, persist)
    summary = runner.summarise()
    if summary["n_rows"] == 0:
        raise AnnotationsError(f"{owner}: the Dask DataFrame has no labels")
    labels = summary["labels"]
    classes = Annotations.from_ids(np.arange(len(labels)), np.zeros(len(labels)), labels).classes
    annotator_ids = np.asarray(summary["annotators"])
    if annotator_ids.dtype.kind in "US":
        annotator_ids = annotator_ids.astype(object)
    runner.check_partitioned(summary["ranges"])
    M, K = len(annotator_ids), len(classes)

    estimator._callback = callback
    estimator._frame_output = True
    estimator.classes_ = classes
    estimator.annotator_ids_ = annotator_ids
    for name in ("labels_", "probas_", "item_ids_"):
        estimator.__dict__.pop(name, None)
    # parameter checks on a stand-in with the global sizes (no labels needed)
    stand_in = Annotations(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), n_annotators=M, n_classes=K
    )
    estimator._validate_params(stand_in)

    if isinstance(estimator, MACE):
        if known_labels is not None:
            raise TypeError("MACE.fit has no known_labels")
        runner.encode(annotator_ids, classes, None)
        _fit_mace(estimator, runner, M, K, classes)
        return estimator
    if isinstance(estimator, MajorityVote):
        if known_labels is not None:
            raise TypeError("MajorityVote.fit has no known_labels")
        _fit_majority(estimator, runner, classes, annotator_ids)
        return estimator
    assert isinstance(estimator, (DawidSkene, OneCoinDawidSkene))
    if isinstance(estimator, DawidSkene) and estimator.init_confusions is None and estimator.init == "spectral":
        raise ValueError(
            "init='spectral' is not supported by the Dask backend (its moments need all labels at once); "
            "use init='mv' or pass init_confusions"
        )
    known = _known_series(known_labels, owner)
    if known is not None and len(known):
        bad = ~pd.Index(known.to_numpy()).isin(pd.Index(classes))
        if bad.any():
            raise AnnotationsError(
                f"known_labels: class {show(known.to_numpy()[bad][0])} is not one of the classes {classes.tolist()}"
            )
    runner.encode(annotator_ids, classes, known)
    if known is not None and len(known):
        found = runner.known_found()
        absent = ~known.index.isin(pd.Index(found))
        if absent.any():
            raise AnnotationsError(
                f"known_labels: item id {show(known.index[absent][0])} has no labels in the Dask DataFrame"
            )
    _fit_em(estimator, runner, M, K, classes)
    return estimator


def _fit_em(est: _DawidSkeneEM, runner: _Runner, M: int, K: int, classes: np.ndarray[Any, Any]) -> None:
    from crowdlearn.aggregate.dawid_skene import DawidSkene, _check_confusions

    fixed = check_priors(est.priors, K, type(est).__name__)
    smoothing = float(est.smoothing)
    model: _Model = (
        _DSModel(M, K, smoothing, fixed, str(est.shrinkage))
        if isinstance(est, DawidSkene)
        else _OneCoinModel(M, K, smoothing, fixed)
    )
    history: list[float] = []

    def m_step(stats: list[Any]) -> tuple[Any, FloatArray]:
        return model.confusion_params(stats[:-3]), model.priors(stats[-3], int(stats[-2]))

    state: tuple[Any, FloatArray] | None
    t_state: tuple[Any, FloatArray] | None  # parameters of the current posteriors (None: the vote)
    if isinstance(est, DawidSkene) and est.init_confusions is not None:
        stand_in = Annotations(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), n_annotators=M, n_classes=K
        )
        conf0 = _check_confusions(est.init_confusions, stand_in, type(est).__name__)
        state = (conf0, fixed if fixed is not None else np.full(K, 1.0 / K))
        stats = runner.em_pass(model, state)
        history.append(float(stats[-1]))
        t_state = state
    else:
        stats = runner.em_pass(model, None)
        state = m_step(stats)
        t_state = None
    n_done = 0
    for _ in range(est.n_iter):
        state = m_step(stats)
        stats = runner.em_pass(model, state)
        history.append(float(stats[-1]))
        t_state = state
        n_done += 1
        if est._iteration_done(n_done, history, est.tol):
            break
    params, priors = state
    est.priors_ = np.asarray(priors, dtype=np.float64)
    if isinstance(est, DawidSkene):
        est.confusions_ = params
        est.skills_ = np.einsum("mjj,j->m", params, est.priors_)
    else:
        est.skills_ = np.asarray(params, dtype=np.float64)
    est.log_likelihood_ = history
    est.n_iter_ = n_done
    _set_outputs(est, runner.outputs(model if t_state is not None else None, t_state, classes, "argmax", None), classes)


def _fit_mace(est: Any, runner: _Runner, M: int, K: int, classes: np.ndarray[Any, Any]) -> None:
    """MACE's loop (crowdlearn.aggregate.mace) with every pass over the data fused and reduced."""
    fixed = check_priors(est.priors, K, type(est).__name__)
    model = _MACEModel(est, M, K, fixed)
    params: Any = (np.full(M, 0.5), np.full(M, 0.5), np.full((M, K), 1.0 / K))
    # two M-steps from the vote settle the competences and strategies jointly
    for _ in range(2):
        stats = runner.mace_pass(model, None, params)
        params = model.update(stats)
    pri = model.priors(stats[-3], int(stats[-2]))
    state: tuple[Any, FloatArray] | None = None  # parameters of the current posteriors (None: the vote)
    history: list[float] = []
    n_done = 0
    if est.n_iter > 0:
        stats = runner.mace_pass(model, None, params)  # statistics of the vote under the settled parameters
    for _ in range(est.n_iter):
        # M-step from the last posteriors, then one pass: their E-step fused with the next statistics
        params = model.update(stats)
        pri = model.priors(stats[-3], int(stats[-2]))
        state = (params, pri)
        stats = runner.mace_pass(model, state, params)
        history.append(float(stats[-1]))
        n_done += 1
        if est._iteration_done(n_done, history, est.tol):
            break
    know, spam, xi = params
    theta = know / (know + spam)
    xi = xi / xi.sum(axis=1, keepdims=True)
    est.priors_ = np.asarray(pri, dtype=np.float64)
    est.competences_ = theta
    est.strategies_ = xi
    est.skills_ = theta
    conf = (1.0 - theta)[:, None, None] * xi[:, :, None] * np.ones((1, 1, K))
    idx = np.arange(K)
    conf[:, idx, idx] += theta[:, None]
    est.confusions_ = conf
    est.log_likelihood_ = history
    est.n_iter_ = n_done
    _set_outputs(est, runner.outputs(model if state is not None else None, state, classes, "argmax", None), classes)


def _fit_majority(
    est: Any, runner: _Runner, classes: np.ndarray[Any, Any], annotator_ids: np.ndarray[Any, Any]
) -> None:
    from crowdlearn.aggregate.majority import VOTE_CONFUSION_SMOOTHING

    M, K = len(annotator_ids), len(classes)
    if est.weights is not None:
        raise ValueError("MajorityVote(weights=...) is not supported by the Dask backend; fit it in memory")
    runner.encode(annotator_ids, classes, None)
    model = _DSModel(M, K, VOTE_CONFUSION_SMOOTHING, None)
    stats = runner.em_pass(model, None)
    est.priors_ = model.priors(stats[-3], int(stats[-2]))
    est.confusions_ = model.confusion_params(stats[:-3])
    seed = est.random_state if isinstance(est.random_state, int) else None
    if isinstance(est.random_state, np.random.Generator):
        seed = int(est.random_state.integers(2**63 - 1))
    _set_outputs(est, runner.outputs(None, None, classes, est.tie_break, seed), classes)


def _set_outputs(est: Any, frame: Any, classes: np.ndarray[Any, Any]) -> None:
    est.probas_frame_ = frame[[c for c in classes.tolist()]]
    est.labels_frame_ = frame["__label__"].rename("agg_label")
