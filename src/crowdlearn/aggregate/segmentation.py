"""Image segmentation aggregation: binary masks of one image from several annotators -> one mask.

Input of every aggregator here: ``masks``, one binary mask per answer (``n_answers`` arrays; the
masks of one task share a shape, tasks may differ), and ``tasks`` of shape (n_answers,), the
task index (``0 .. n_tasks - 1``) of each answer. Output: ``segmentations_``, a list of
``n_tasks`` boolean masks, each of its task's shape. Pixels are the units of vectorization: every
step is a numpy reduction over the stacked masks of a task, ``(n_task_answers, *shape)``.

* :class:`SegmentationMajorityVote`: a pixel is in when its (weighted) "in" votes are at least
  half of the (weighted) votes; vectorized over all tasks of one shape at once.
* :class:`SegmentationEM`: a one-coin model per answer (Lee et al., 2018), by EM per task.
* :class:`SegmentationRASA`: votes reweighted by each answer's IoU with the current aggregate
  (Li & Fukumoto, 2019), per task.

crowd-kit's names and pandas layout: :mod:`crowdlearn.compat.crowdkit.aggregation.image_segmentation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from scipy.special import entr, expit, xlogy

from crowdlearn._checks import check_number, show

__all__ = ["SegmentationEM", "SegmentationMajorityVote", "SegmentationRASA", "group_masks"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


def _as_mask(value: Any, row: int) -> BoolArray:
    a = np.asarray(value)
    if a.ndim == 0:
        raise ValueError(f"segmentation of answer {row}: expected an array (a binary mask), got {show(value)}")
    if a.dtype == np.bool_:
        return a
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"segmentation of answer {row}: expected a binary mask, got an array of dtype {a.dtype}")
    bad = (a != 0) & (a != 1)
    if bad.any():
        raise ValueError(
            f"segmentation of answer {row}: expected 0 / 1 (or bool) pixels, got {show(a[bad].flat[0])} "
            f"at pixel {tuple(int(i) for i in np.argwhere(bad)[0])}"
        )
    out: BoolArray = a.astype(bool)
    return out


def group_masks(
    masks: Sequence[npt.ArrayLike] | npt.NDArray[Any], tasks: npt.ArrayLike, n_tasks: int | None = None
) -> list[tuple[int, npt.NDArray[np.int64], BoolArray]]:
    """Check and group the answers by task.

    Parameters
    ----------
    masks : sequence of n_answers array-likes, or ndarray of shape (n_answers, *shape)
        Binary masks (bool, or 0 / 1 numbers).
    tasks : array-like of int, shape (n_answers,)
        Task index of each answer, in ``0 .. n_tasks - 1``.
    n_tasks : int, optional
        Number of tasks (default ``max(tasks) + 1``); every task needs at least one answer.

    Returns
    -------
    list of (task, answer rows of shape (n_task_answers,), stacked masks of shape (n_task_answers, *shape))
        One entry per task, in task order.
    """
    t = np.asarray(tasks)
    if t.ndim != 1 or len(t) != len(masks):
        raise ValueError(f"tasks must have shape ({len(masks)},) (one task per mask), got shape {t.shape}")
    if len(t) and not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"tasks must be integer task indices, got dtype {t.dtype}")
    t = t.astype(np.int64)
    if len(t) and t.min() < 0:
        row = int(np.argmin(t))
        raise ValueError(f"tasks[{row}] = {int(t[row])}: task indices must be >= 0")
    n = int(t.max()) + 1 if n_tasks is None and len(t) else int(n_tasks or 0)
    if len(t) and t.max() >= n:
        row = int(np.argmax(t))
        raise ValueError(f"tasks[{row}] = {int(t[row])}: task indices must be < n_tasks = {n}")
    counts = np.bincount(t, minlength=n)
    if n and (counts == 0).any():
        raise ValueError(f"task {int(np.flatnonzero(counts == 0)[0])} has no segmentation")
    order = np.argsort(t, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    stacked = isinstance(masks, np.ndarray) and masks.ndim >= 2
    out = []
    for task in range(n):
        rows = order[starts[task] : starts[task + 1]]
        if stacked:
            group = _as_mask(np.asarray(masks)[rows], int(rows[0]))
        else:
            arrays = [_as_mask(masks[int(r)], int(r)) for r in rows]
            shape = arrays[0].shape
            for r, a in zip(rows, arrays):
                if a.shape != shape:
                    raise ValueError(
                        f"segmentation of answer {int(r)} has shape {a.shape}, but answer {int(rows[0])} of the "
                        f"same task {task} has shape {shape}: the masks of a task must share a shape"
                    )
            group = np.stack(arrays)
        out.append((task, rows, group))
    return out


def _check_weights(weights: npt.ArrayLike | None, n_answers: int, owner: str) -> FloatArray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_answers,):
        raise ValueError(f"{owner}: weights must have shape ({n_answers},) (one per answer), got {w.shape}")
    if not np.isfinite(w).all():
        row = int(np.flatnonzero(~np.isfinite(w))[0])
        raise ValueError(f"{owner}: weights[{row}] = {show(w[row])}; expected a finite number")
    return w


class SegmentationMajorityVote:
    r"""Pixel-wise (weighted) majority vote over binary masks.

        A pixel of task :math:`t` is in the aggregate when
        :math:`2 \sum_i w_i m_i[p] - \sum_i w_i \ge 0` over the task's answers :math:`i` (weights
        :math:`w_i`, 1 by default): at least half of the weighted votes, ties included. All tasks of
        one mask shape and one number of answers are reduced at once (a sum over the answer axis of
    their stacked masks).

        Reference: D. Jung-Lin Lee, A. Das Sarma, A. Parameswaran, "Aggregating Crowdsourced Image
        Segmentations", CEUR Workshop Proceedings 2173, 2018.

        Attributes
        ----------
        segmentations_ : list of ndarray of bool
            Aggregated mask of each task, of its masks' shape.

        Examples
        --------
        >>> import numpy as np
        >>> masks = np.array([[[1, 0], [1, 1]], [[0, 1], [1, 1]], [[0, 1], [1, 1]]], dtype=bool)
        >>> SegmentationMajorityVote().fit_predict(masks, [0, 0, 0])[0].astype(int).tolist()
        [[0, 1], [1, 1]]
    """

    segmentations_: list[BoolArray]

    def fit(
        self,
        masks: Sequence[npt.ArrayLike] | npt.NDArray[Any],
        tasks: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
        *,
        n_tasks: int | None = None,
    ) -> Self:
        """Vote.

        Parameters
        ----------
        masks : sequence of n_answers binary masks, or ndarray of shape (n_answers, *shape)
        tasks : array-like of int, shape (n_answers,)
            Task index of each answer.
        weights : array-like of float, shape (n_answers,), optional
            Weight of each answer (e.g. its annotator's skill); default 1.
        n_tasks : int, optional
            Number of tasks (default ``max(tasks) + 1``).
        """
        w = _check_weights(weights, len(masks), type(self).__name__)
        groups = group_masks(masks, tasks, n_tasks)
        out: list[BoolArray] = [np.zeros(0, dtype=bool)] * len(groups)
        # tasks with the same mask shape and number of answers are stacked to
        # (n_tasks_in_bucket, n_answers, *shape) and reduced over axis 1 at once
        buckets: dict[tuple[int, ...], list[tuple[int, npt.NDArray[np.int64], BoolArray]]] = {}
        for g in groups:
            buckets.setdefault(g[2].shape, []).append(g)
        for same in buckets.values():
            stacked = np.stack([g[2] for g in same])
            k = stacked.shape[1]
            if w is None:
                score = 2.0 * stacked.sum(axis=1, dtype=np.int64) - float(k)
            else:
                wb = w[np.stack([g[1] for g in same])]  # (n_tasks_in_bucket, n_answers)
                votes = np.einsum("tk...,tk->t...", stacked, wb)
                score = 2.0 * votes - wb.sum(axis=1).reshape((-1,) + (1,) * (stacked.ndim - 2))
            for t, g in enumerate(same):
                out[g[0]] = score[t] >= 0
        self.segmentations_ = out
        return self

    def fit_predict(
        self,
        masks: Sequence[npt.ArrayLike] | npt.NDArray[Any],
        tasks: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
        *,
        n_tasks: int | None = None,
    ) -> list[BoolArray]:
        """Fit and return ``segmentations_``."""
        return self.fit(masks, tasks, weights, n_tasks=n_tasks).segmentations_


class _Iterative:
    def __init__(self, *, n_iter: int = 10, tol: float = 1e-5) -> None:
        self.n_iter = n_iter
        self.tol = tol

    def _aggregate_one(self, masks: BoolArray) -> tuple[BoolArray, list[float]]:
        raise NotImplementedError

    def fit(
        self, masks: Sequence[npt.ArrayLike] | npt.NDArray[Any], tasks: npt.ArrayLike, *, n_tasks: int | None = None
    ) -> Self:
        """Aggregate each task's masks.

        Parameters
        ----------
        masks : sequence of n_answers binary masks, or ndarray of shape (n_answers, *shape)
        tasks : array-like of int, shape (n_answers,)
            Task index of each answer.
        n_tasks : int, optional
            Number of tasks (default ``max(tasks) + 1``).
        """
        owner = type(self).__name__
        check_number(self.n_iter, "n_iter", owner, low=0, integer=True)
        check_number(self.tol, "tol", owner, allow_neg_inf=True)
        results = [self._aggregate_one(g[2]) for g in group_masks(masks, tasks, n_tasks)]
        self.segmentations_ = [r[0] for r in results]
        self.loss_histories_ = [r[1] for r in results]
        return self

    def fit_predict(
        self, masks: Sequence[npt.ArrayLike] | npt.NDArray[Any], tasks: npt.ArrayLike, *, n_tasks: int | None = None
    ) -> list[BoolArray]:
        """Fit and return ``segmentations_``."""
        return self.fit(masks, tasks, n_tasks=n_tasks).segmentations_


class SegmentationEM(_Iterative):
    r"""EM for one image: a per-pixel prior and a one-coin accuracy per answer.

    Each answer :math:`i` of a task marks a pixel correctly with probability :math:`s_i`
    (its accuracy); pixel :math:`p` is in with prior :math:`\pi_p`. Start: :math:`\pi` = the
    mean mask, :math:`s` from the rounded mean mask (the majority vote). Then ``n_iter`` times:

    * E-step: :math:`q_p \propto \pi_p \prod_i s_i^{m_{ip}} (1 - s_i)^{1 - m_{ip}}` against
      :math:`(1 - \pi_p) \prod_i (1 - s_i)^{m_{ip}} s_i^{1 - m_{ip}}` (log space); posteriors
      below ``eps`` are set to 0;
    * M-step: :math:`1 - s_i` = the expected share of mismatched pixels inside the region any
      answer marks, :math:`(|m_i| + \sum_p q_p - 2 \sum_p m_{ip} q_p) / |\cup_i m_i|`, and
      :math:`\pi = q` (the M-step of a free per-pixel prior);

    stopping after the first iteration whose evidence lower bound (per answer-pixel, in
    ``loss_histories_``) rose by less than ``tol``. The aggregate is :math:`q > 1/2`; a task
    whose answers mark no pixel gives an empty mask. A pixel whose evidence is certain both
    ways (an accuracy of exactly 0 or 1 on each side) has posterior 0.

    Reference: D. Jung-Lin Lee, A. Das Sarma, A. Parameswaran, "Aggregating Crowdsourced Image
    Segmentations", CEUR Workshop Proceedings 2173, 2018.

    Parameters
    ----------
    n_iter : int, default=10
        Maximum EM iterations (0: the strict majority of the mean mask).
    tol : float, default=1e-5
        Stop when the bound rises by less than this.
    eps : float, default=1e-15
        Posteriors below it are set to 0.

    Attributes
    ----------
    segmentations_ : list of ndarray of bool
        Aggregated mask of each task.
    loss_histories_ : list of list of float
        Per task, the evidence lower bound per answer-pixel after each iteration.
    """

    def __init__(self, *, n_iter: int = 10, tol: float = 1e-5, eps: float = 1e-15) -> None:
        super().__init__(n_iter=n_iter, tol=tol)
        self.eps = eps

    def _aggregate_one(self, masks: BoolArray) -> tuple[BoolArray, list[float]]:
        n = masks.shape[0]
        m = masks.reshape(n, -1).astype(np.float64)
        region = float(np.count_nonzero(masks.reshape(n, -1).any(axis=0)))
        if region == 0:
            return np.zeros(masks.shape[1:], dtype=bool), []
        sizes = m.sum(axis=1)

        def m_step(q: FloatArray) -> FloatArray:
            out: FloatArray = 1.0 - (sizes + q.sum() - 2.0 * (m @ q)) / region
            return out

        def log_terms(s: FloatArray) -> tuple[FloatArray, FloatArray]:
            # log P(answers at p | in) and log P(answers at p | out), shape (n_pixels,)
            with np.errstate(divide="ignore"):
                ls, l1s = np.log(s)[:, None], np.log1p(-s)[:, None]
            return _sum_select(m, ls, l1s), _sum_select(m, l1s, ls)

        prior = m.mean(axis=0)
        s = m_step(np.round(prior))
        history: list[float] = []
        for _ in range(int(self.n_iter)):
            lin, lout = log_terms(s)
            with np.errstate(divide="ignore"):
                pos, neg = np.log(prior) + lin, np.log1p(-prior) + lout
            both = np.isneginf(pos) & np.isneginf(neg)
            with np.errstate(invalid="ignore"):
                q = np.where(both, 0.0, expit(pos - neg))
            q[q < float(self.eps)] = 0.0
            s = m_step(q)
            lin, lout = log_terms(s)
            with np.errstate(invalid="ignore"):  # 0 * -inf: the term is 0
                fit_in = np.where(q > 0, q * lin, 0.0)
                fit_out = np.where(q < 1, (1 - q) * lout, 0.0)
            prior_terms = xlogy(q, prior) + xlogy(1 - q, 1 - prior)
            bound = float((fit_in + fit_out + prior_terms + entr(q) + entr(1 - q)).sum()) / m.size
            prior = q
            history.append(float(bound))
            if len(history) > 1 and history[-1] - history[-2] < self.tol:
                break
        return (prior > 0.5).reshape(masks.shape[1:]), history


def _sum_select(m: FloatArray, if_in: FloatArray, if_out: FloatArray) -> FloatArray:
    """``sum_i (m_i * if_in_i + (1 - m_i) * if_out_i)`` per pixel, with ``0 * -inf = 0``.

    ``m`` (n_answers, n_pixels) of 0 / 1; ``if_in``, ``if_out`` (n_answers, 1). Finite values: one
    matrix-vector product, ``sum(if_out) + (if_in - if_out) @ m``.
    """
    a_col, b_col = if_in[:, 0], if_out[:, 0]
    if np.isfinite(a_col).all() and np.isfinite(b_col).all():
        fast: FloatArray = b_col.sum() + (a_col - b_col) @ m
        return fast
    a = np.where(m > 0, if_in, 0.0)
    b = np.where(m > 0, 0.0, if_out)
    out: FloatArray = (a + b).sum(axis=0)
    return out


class SegmentationRASA(_Iterative):
    r"""RASA for one image: votes reweighted by each answer's agreement with the aggregate.

    Start with equal weights :math:`w_i = 1/n`. Each iteration: the aggregate is
    :math:`a = [\sum_i w_i m_i \ge 1/2]`; each answer's distance is :math:`d_i = 1 - IoU(m_i, a)`
    (two empty masks agree: IoU 1) and its weight :math:`\log(1 / (d_i + 10^{-5}) + 1)`,
    normalised to sum 1. Stops after the first iteration whose relative change of the weighted
    vote, :math:`\|v_t - v_{t-1}\|^2 / \|v_t\|^2`, is below ``tol`` (in ``loss_histories_``).

    Reference: J. Li, F. Fukumoto, "A Dataset of Crowdsourced Word Sequences: Collections and
    Answer Aggregation for Ground Truth Creation", AnnoNLP 2019 (RASA for sequences; here for masks).

    Parameters
    ----------
    n_iter : int, default=10
        Maximum iterations (0: the equal-weight vote, ties in).
    tol : float, default=1e-5

    Attributes
    ----------
    segmentations_ : list of ndarray of bool
        Aggregated mask of each task.
    loss_histories_ : list of list of float
        Per task, the relative change of the weighted vote from the second iteration on.
    """

    def _aggregate_one(self, masks: BoolArray) -> tuple[BoolArray, list[float]]:
        n = masks.shape[0]
        m = masks.reshape(n, -1)
        mf = m.astype(np.float64)
        w = np.full(n, 1.0 / n)
        agg = w @ mf >= 0.5
        last: FloatArray | None = None
        history: list[float] = []
        for _ in range(int(self.n_iter)):
            vote = w @ mf
            agg = vote >= 0.5
            inter = (m & agg).sum(axis=1).astype(np.float64)
            union = (m | agg).sum(axis=1).astype(np.float64)
            iou = np.divide(inter, union, out=np.ones(n), where=union > 0)
            w = np.log(1.0 / (1.0 - iou + 1e-5) + 1.0)
            w /= w.sum()
            if last is not None:
                norm = float(vote @ vote)
                delta = vote - last
                change = float(delta @ delta) / norm if norm > 0 else 0.0
                history.append(change)
                if change < self.tol:
                    break
            last = vote
        return agg.reshape(masks.shape[1:]), history
