"""Pure functions behind the crowd layers: coupled cross-entropy and the volume regularizers.

Notation (Ibrahim, Nguyen & Fu, "Deep Learning From Crowdsourced Labels: Coupled Cross-Entropy
Minimization, Identifiability, and Regularization", ICLR 2023):

- ``K`` classes, ``M`` annotators, a minibatch of ``B`` items with ``E`` observed labels;
- ``f(x)`` in the simplex: the classifier's class posterior (``log_probs`` is ``log f``);
- ``A_m`` (``K x K``), column-stochastic: ``A_m[i, j] = P(annotator m says i | true class j)``;
- ``P(annotator m says y | x) = (A_m f(x))_y``.

Everything is computed in log space: ``log (A_m f(x))_y = logsumexp_j (log A_m[y, j] + log f_j(x))``,
so ``log(0)`` never appears, and only on the observed (item, annotator) pairs: the cost is
``O(E K^2)``, never ``B x M x K``.

None of these functions mutates its inputs.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from crowdlearn.nn.registry import DEFAULT_RIDGE  # the ridge of the log-determinants (torch-free home)

__all__ = [
    "DEFAULT_RIDGE",
    "Reduction",
    "annotator_log_probs",
    "attach_unique",
    "column_softmax",
    "coupled_cross_entropy",
    "distinct_rows",
    "gather_rows",
    "gathered_values",
    "gram_sum",
    "label_log_probs_and_confusions",
    "label_log_probs_of_touched",
    "log_confusions",
    "logdet_gram",
    "logdet_volume_f",
    "logdet_volume_w",
    "trace_regularizer",
    "unique_annotators",
]

Reduction = Literal["none", "mean", "sum"]


def _reduce(values: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "mean":
        if values.numel() == 0:
            raise ValueError("cannot average a loss over zero observed labels (the batch has no labels)")
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def gram_sum(mats: Tensor) -> Tensor:
    """``sum_m A_m^T A_m`` of a stack of matrices, as one ``(M K, K)^T (M K, K)`` product.

    Parameters
    ----------
    mats : Tensor of shape (M, R, K)

    Returns
    -------
    Tensor of shape (K, K)
    """
    flat = mats.reshape(-1, mats.shape[-1])
    return flat.transpose(0, 1) @ flat


def log_confusions(logits: Tensor) -> Tensor:
    """Log confusion matrices from unconstrained logits.

    Parameters
    ----------
    logits : Tensor of shape (M, K, K)
        ``logits[m, i, j]``; the softmax is taken over the row index ``i`` (dim 1).

    Returns
    -------
    Tensor of shape (M, K, K)
        ``log A_m[i, j]``; ``exp`` of every column sums to 1.
    """
    if logits.ndim != 3 or logits.shape[1] != logits.shape[2]:
        raise ValueError(f"confusion logits must have shape (M, K, K), got {tuple(logits.shape)}")
    return torch.log_softmax(logits, dim=1)


#: the attribute of an annotator index tensor holding its (touched, inverse), see unique_annotators
_UNIQUE_ATTR = "_crowdlearn_unique"


def attach_unique(annotators: Tensor, touched: Tensor, inverse: Tensor) -> Tensor:
    """Record ``torch.unique(annotators, return_inverse=True)``, computed elsewhere, on ``annotators``.

    The trainer computes it on the host, where the batch is built, and copies it to the device
    with the batch: on CUDA, :func:`torch.unique` would wait for the device (its output size is
    data-dependent). Returns ``annotators``.

    Parameters
    ----------
    annotators : Tensor of int64 of shape (E,)
    touched : Tensor of int64 of shape (U,)
        The sorted distinct values of ``annotators``, on its device.
    inverse : Tensor of int64 of shape (E,)
        ``touched[inverse] == annotators``, on its device.
    """
    setattr(annotators, _UNIQUE_ATTR, (touched, inverse))
    return annotators


def unique_annotators(annotators: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.unique(annotators, return_inverse=True)``: the batch's distinct annotators (U,),
    sorted, and each label's position among them (E,); the pair recorded by
    :func:`attach_unique` when there is one (no device synchronisation), else computed."""
    known = getattr(annotators, _UNIQUE_ATTR, None)
    if known is not None:
        return known  # type: ignore[no-any-return]
    touched, inverse = torch.unique(annotators, return_inverse=True)
    return touched, inverse


#: the attribute of a parameter naming the rows of its last sparse gradient made by
#: :func:`gather_rows` / :func:`label_log_probs_of_touched` with distinct rows (see distinct_rows)
_ROWS_ATTR = "_crowdlearn_distinct_rows"


def _mark_distinct(weight: Tensor, rows: Tensor) -> None:
    setattr(weight, _ROWS_ATTR, rows)


#: the attribute of a parameter holding the rows its last sparse label likelihood gathered
#: (see gathered_values)
_GATHERED_ATTR = "_crowdlearn_gathered"


def _mark_gathered(weight: Tensor, index: Tensor, values: Tensor) -> None:
    setattr(weight, _GATHERED_ATTR, (index, values, weight._version))


def gathered_values(weight: Tensor, rows: Tensor) -> Tensor | None:
    """``weight[rows]`` (U, ...) as :func:`label_log_probs_of_touched` gathered it in the forward, or None.

    The forward records its gathered rows on the parameter (with a sparse gradient only); a
    lazy optimizer may take them instead of gathering the same rows again when ``rows`` is the
    very index the forward used (the sparse gradient's indices share its storage) and
    ``weight`` has not been modified in place since (its version counter). The record is
    consumed (removed) by the call; the caller may write to the returned tensor.

    Parameters
    ----------
    weight : Tensor of shape (M, ...)
    rows : Tensor of int64 of shape (U,)

    Returns
    -------
    Tensor of shape (U, ...) or None
    """
    known = weight.__dict__.pop(_GATHERED_ATTR, None)
    if known is None:
        return None
    index, values, version = known
    if index.numel() != rows.numel() or index.data_ptr() != rows.data_ptr() or weight._version != version:
        return None
    out: Tensor = values
    return out


def distinct_rows(weight: Tensor, grad: Tensor) -> Tensor | None:
    """The rows of ``weight``'s sparse gradient ``grad`` when they are known sorted and distinct, else None.

    A sparse COO gradient marked coalesced qualifies. :func:`gather_rows` with ``distinct=True``
    (and :func:`label_log_probs_of_touched`) also record the rows they produced on the parameter,
    because autograd's accumulation of a sparse gradient into ``.grad`` drops the coalesced mark:
    ``grad`` qualifies when its indices are those very rows (the same storage; a gradient
    summed from several gathers has new, concatenated indices and does not). No device
    synchronisation. The record is consumed (removed) by the call.

    Parameters
    ----------
    weight : Tensor of shape (M, ...)
    grad : sparse COO Tensor of shape (M, ...) with one sparse dimension

    Returns
    -------
    Tensor of int64 of shape (U,) or None
    """
    known = weight.__dict__.pop(_ROWS_ATTR, None)
    rows = grad._indices()[0]
    if grad.is_coalesced():
        return rows
    if known is not None and known.numel() == rows.numel() and known.data_ptr() == rows.data_ptr():
        return rows
    return None


def gather_rows(weight: Tensor, index: Tensor, *, sparse_grad: bool = False, distinct: bool = False) -> Tensor:
    """Rows ``weight[index]`` of a per-annotator parameter, optionally with a sparse gradient.

    Parameters
    ----------
    weight : Tensor of shape (M, ...)
        A per-annotator parameter (e.g. confusion logits (M, K, K)).
    index : Tensor of int64 of shape (U,)
        The rows to take (e.g. the batch's distinct annotators).
    sparse_grad : bool, default=False
        When True the gradient reaching ``weight`` is a sparse COO tensor holding only the taken
        rows (one sparse dimension, as ``nn.Embedding(sparse=True)`` gives), for a sparse
        optimizer such as :class:`crowdlearn.train.optim.LazyAdam`; when False it is dense
        (:meth:`torch.Tensor.index_select`).
    distinct : bool, default=False
        The caller guarantees ``index`` is sorted and without repeats (e.g. from
        :func:`torch.unique`): the sparse gradient is then marked coalesced, so the optimizer
        does not sort it again. Unchecked.

    Returns
    -------
    Tensor of shape (U, ...)
    """
    if index.ndim != 1:
        raise ValueError(f"index must be 1-d, got shape {tuple(index.shape)}")
    if not sparse_grad:
        return weight.index_select(0, index)
    out: Tensor = _RowsWithSparseGrad.apply(weight, index, distinct)  # type: ignore[no-untyped-call]
    return out


class _RowsWithSparseGrad(torch.autograd.Function):
    """``weight.index_select(0, index)`` whose gradient is a hybrid sparse COO tensor (one sparse
    dimension, the rows; dense values of shape ``weight.shape[1:]``): the layout
    ``nn.Embedding(sparse=True)`` gives, for a parameter of any rank (``F.embedding`` takes
    2-d weights only, and :func:`torch.gather`'s ``sparse_grad`` is element-wise, an index per
    entry, which makes a sparse optimizer's coalescing ``K^2`` times larger). With ``distinct``
    the rows are recorded on the parameter for :func:`distinct_rows`."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, index: Tensor, distinct: bool) -> Tensor:
        ctx.save_for_backward(index)
        ctx.shape = weight.shape
        ctx.distinct = distinct
        ctx.weight = weight if distinct else None
        return weight.index_select(0, index)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (index,) = ctx.saved_tensors
        indices = index.unsqueeze(0)
        out = torch.sparse_coo_tensor(indices, grad, ctx.shape, check_invariants=False, is_coalesced=ctx.distinct)
        if ctx.distinct:
            _mark_distinct(ctx.weight, out._indices()[0])
        return out, None, None


def label_log_probs_of_touched(
    logits: Tensor,
    log_probs: Tensor,
    touched: Tensor,
    inverse: Tensor,
    labels: Tensor,
    *,
    sparse_grad: bool = False,
) -> tuple[Tensor, Tensor]:
    """Each observed label's log-likelihood under the confusions of the batch's annotators.

    The training loss of :class:`~crowdlearn.nn.ConfusionMatrices` in one autograd node:
    ``P = logits[touched]`` (U, K, K), ``log A = log_softmax(P, dim=1)`` and
    ``out[e] = logsumexp_j(log A[inverse_e, y_e, j] + log_probs[e, j])``, the values of
    ``log_confusions(logits)[touched]`` indexed per label, with a hand-written backward
    (``O(E K + U K^2)``, a dozen tensor operations instead of autograd's several dozen). With
    ``q[e] = softmax_j(log A[inverse_e, y_e, :] + log_probs[e])`` and ``g`` the gradient of the
    output: ``d log_probs[e] = g[e] q[e]``; ``G[u, i, :] = sum_{e: inverse_e = u, y_e = i} g[e] q[e]``
    plus the gradient reaching ``log A`` (second output), and ``d P = G - A * G.sum(dim=1)``
    (the backward of the log-softmax over the rows). No double backward.

    Parameters
    ----------
    logits : Tensor of shape (M, K, K)
        The confusion logits (softmax over dim 1).
    log_probs : Tensor of shape (E, K)
        ``log f(x)`` of each label's item.
    touched : Tensor of int64 of shape (U,)
        The batch's distinct annotators, sorted (:func:`torch.unique`).
    inverse : Tensor of int64 of shape (E,)
        Each label's annotator's position in ``touched``.
    labels : Tensor of int64 of shape (E,)
        Each label's class.
    sparse_grad : bool, default=False
        The gradient of ``logits`` as a sparse COO tensor of the ``U`` rows (marked coalesced),
        as :func:`gather_rows` with ``sparse_grad=True, distinct=True`` gives; else dense.

    Returns
    -------
    out : Tensor of shape (E,)
        ``log (A_{m_e} f(x_e))_{y_e}``.
    log_conf : Tensor of shape (U, K, K)
        ``log A`` of the touched annotators (differentiable: a regularizer may use it).
    """
    out, log_conf, _ = _LabelLogProbs.apply(logits, log_probs, touched, inverse, labels, sparse_grad)  # type: ignore[no-untyped-call]
    return out, log_conf


def label_log_probs_and_confusions(
    logits: Tensor,
    log_probs: Tensor,
    touched: Tensor,
    inverse: Tensor,
    labels: Tensor,
    *,
    sparse_grad: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """:func:`label_log_probs_of_touched` plus ``A = exp(log A)`` of the touched annotators (U, K, K),
    differentiable, when the forward formed it anyway (from :data:`_BIG_ROWS` row entries on),
    else None (take ``log_conf.exp()``): a regularizer on ``A`` (TraceReg's trace,
    GeoCrowdNet(W)'s Gram) then needs no ``exp`` pass over the rows. Same parameters."""
    out, log_conf, conf = _LabelLogProbs.apply(logits, log_probs, touched, inverse, labels, sparse_grad)  # type: ignore[no-untyped-call]
    return out, log_conf, conf


def column_softmax(logits: Tensor) -> Tensor:
    """``softmax(logits, dim=1)`` of confusion logits (U, K, K) -> (U, K, K), no gradient needed.

    From :data:`_BIG_ROWS` entries on written out (max, ``exp``, sum, divide: fewer passes over
    the rows than torch's CPU kernel over a strided dimension of size ``K``); below it
    :func:`torch.softmax`. The two agree to rounding."""
    if logits.numel() < _BIG_ROWS:
        return torch.softmax(logits, dim=1)
    conf = (logits - logits.amax(dim=1, keepdim=True)).exp_()
    return conf.div_(conf.sum(dim=1, keepdim=True))


#: From this many entries of the batch's rows (``U K^2``) on, :func:`label_log_probs_of_touched`
#: keeps ``A`` for a backward without ``exp`` and without a dense ``G`` (see ``_LabelLogProbs``);
#: below it one ``log_softmax`` and its one-kernel backward cost less (fewer dispatched
#: operations). Chosen from CPU micro-timings (docs/benchmarks.md, "Training cost ...").
_BIG_ROWS = 8192


class _LabelLogProbs(torch.autograd.Function):
    """See :func:`label_log_probs_of_touched`.

    When ``touched`` holds every row (``U == M``: sorted and distinct, so ``arange(M)``) the
    logits are used without the gather and their gradient is the rows' gradient itself (no
    scatter into zeros).

    From :data:`_BIG_ROWS` entries (``U K^2``) on, the forward keeps ``A`` (U, K, K) from its
    log-softmax (written out: max, ``exp``, sum, divide), so the backward needs no ``exp`` over
    the rows and no dense ``G``: ``G`` is nonzero on the labels' rows ``(u, y_e)`` only, so
    ``d P = -A * S + scatter(g q)`` with ``S[u] = sum_{e: inverse_e = u} g[e] q[e]`` (U, K), one
    product over the rows plus an ``(E, K)`` scatter-add (the log-softmax backward over the
    rows, ``G - A * G.sum(dim=1)``, without materialising ``G``). Below it, where the number of
    dispatched operations costs more than the passes over the rows, the forward is one
    ``log_softmax`` and the backward scatters ``g q`` into a dense ``G`` and runs the
    log-softmax backward in one kernel. The two agree to rounding."""

    @staticmethod
    def forward(
        ctx: Any, logits: Tensor, log_probs: Tensor, touched: Tensor, inverse: Tensor, labels: Tensor, sparse: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        k = logits.shape[1]
        every = touched.numel() == logits.shape[0]
        rows = logits if every else logits.index_select(0, touched)  # (U, K, K)
        if sparse and not every:  # for the lazy optimizer's step (not read again here)
            _mark_gathered(logits, touched, rows)
        big = rows.numel() >= _BIG_ROWS
        if big:
            top = rows.amax(dim=1, keepdim=True)  # (U, 1, K): the log-softmax over the rows, stabilised
            conf = (rows - top).exp_()  # (U, K, K), unnormalised
            total = conf.sum(dim=1, keepdim=True)  # (U, 1, K)
            conf.div_(total)  # A
            log_conf = rows - total.log_().add_(top)  # (U, K, K)
        else:
            log_conf = torch.log_softmax(rows, dim=1)  # (U, K, K)
        flat = torch.add(labels, inverse, alpha=k)  # (E,): row (u, y) of log_conf viewed as (U K, K)
        joint = log_conf.view(-1, k).index_select(0, flat).add_(log_probs)  # (E, K)
        out = torch.logsumexp(joint, dim=1)
        # A (big) or log A (small): what the backward needs
        ctx.save_for_backward(conf if big else log_conf, joint, out, touched, inverse, flat)
        ctx.big = big
        ctx.shape = logits.shape
        ctx.every = every
        ctx.sparse = sparse and not every
        ctx.weight = logits if ctx.sparse else None
        ctx.set_materialize_grads(False)
        return out, log_conf, (conf if big else None)

    @staticmethod
    @torch.autograd.function.once_differentiable  # type: ignore[misc]
    def backward(
        ctx: Any, g_out: Tensor | None, g_conf: Tensor | None, g_a: Tensor | None = None
    ) -> tuple[Tensor | None, ...]:
        conf, joint, out, touched, inverse, flat = ctx.saved_tensors
        u, k = conf.shape[0], conf.shape[1]
        w: Tensor | None = None
        if g_a is not None:  # the third output A (big only): d log A = g_a * A
            g_conf = torch.addcmul(g_conf, g_a, conf) if g_conf is not None else g_a * conf
        if not ctx.big:  # conf is log A here
            if g_out is not None:
                w = (joint - out.unsqueeze(1)).exp_().mul_(g_out.unsqueeze(1))  # (E, K)
                big_g = torch.zeros((u * k, k), dtype=w.dtype, device=w.device).index_add_(0, flat, w).view(u, k, k)
                if g_conf is not None:
                    big_g.add_(g_conf)
            else:
                big_g = g_conf if g_conf is not None else torch.zeros_like(conf)
            # the log-softmax's backward over the rows, G - A * G.sum(dim=1), in one kernel
            grad_rows = torch._log_softmax_backward_data(big_g, conf, 1, conf.dtype)  # (U, K, K)
        elif g_out is not None:
            w = (joint - out.unsqueeze(1)).exp_().mul_(g_out.unsqueeze(1))  # (E, K): g[e] q[e]
            col = torch.zeros((u, k), dtype=w.dtype, device=w.device).index_add_(0, inverse, w)  # (U, K)
            if g_conf is not None:
                col.add_(g_conf.sum(dim=1))
                grad_rows = torch.addcmul(g_conf, conf, col.unsqueeze(1), value=-1.0)  # (U, K, K)
            else:
                grad_rows = conf * col.neg_().unsqueeze(1)
            grad_rows.view(-1, k).index_add_(0, flat, w)
        elif g_conf is not None:
            grad_rows = torch.addcmul(g_conf, conf, g_conf.sum(dim=1, keepdim=True), value=-1.0)
        else:
            grad_rows = torch.zeros_like(conf)
        grad_logits: Tensor | None = None
        if ctx.needs_input_grad[0]:
            if ctx.every:
                grad_logits = grad_rows
            elif ctx.sparse:
                grad_logits = torch.sparse_coo_tensor(
                    touched.unsqueeze(0), grad_rows, ctx.shape, check_invariants=False, is_coalesced=True
                )
                _mark_distinct(ctx.weight, grad_logits._indices()[0])
            else:
                grad_logits = grad_rows.new_zeros(ctx.shape).index_copy_(0, touched, grad_rows)
        grad_lp = w if ctx.needs_input_grad[1] else None
        return grad_logits, grad_lp, None, None, None, None


def annotator_log_probs(log_probs: Tensor, log_conf: Tensor, annotators: Tensor) -> Tensor:
    """Log distribution of each observed annotator's label given the item.

    Parameters
    ----------
    log_probs : Tensor of shape (E, K)
        ``log f(x_n)`` of the item of each observed pair (rows repeated per label).
    log_conf : Tensor of shape (M, K, K)
        ``log A_m`` (see :func:`log_confusions`).
    annotators : Tensor of int64 of shape (E,)
        Annotator index ``m_e`` of each pair.

    Returns
    -------
    Tensor of shape (E, K)
        ``out[e, i] = log (A_{m_e} f(x_{n_e}))_i``, computed as
        ``logsumexp_j(log A_{m_e}[i, j] + log f_j)``; ``O(E K^2)``.
    """
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must have shape (E, K), got {tuple(log_probs.shape)}")
    if annotators.shape != (log_probs.shape[0],):
        raise ValueError(
            f"annotators must have shape ({log_probs.shape[0]},) to match log_probs, got {tuple(annotators.shape)}"
        )
    if log_conf.ndim != 3 or log_conf.shape[1:] != (log_probs.shape[1], log_probs.shape[1]):
        raise ValueError(
            f"log_conf must have shape (M, {log_probs.shape[1]}, {log_probs.shape[1]}), got {tuple(log_conf.shape)}"
        )
    gathered = log_conf.index_select(0, annotators)  # (E, K, K)
    return torch.logsumexp(gathered + log_probs.unsqueeze(1), dim=2)


def coupled_cross_entropy(
    log_probs: Tensor,
    log_conf: Tensor,
    rows: Tensor,
    annotators: Tensor,
    labels: Tensor,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    """Coupled cross-entropy (CCEM) over the observed labels of a minibatch.

    ``-(1/E) sum_e log (A_{m_e} f(x_{n_e}))_{y_e}`` (``reduction="mean"``).
    See :class:`crowdlearn.nn.CoupledCrossEntropy`.

    Parameters
    ----------
    log_probs : Tensor of shape (B, K)
        ``log f(x)`` of the batch items (e.g. ``log_softmax`` of the logits).
    log_conf : Tensor of shape (M, K, K)
        ``log A_m`` (see :func:`log_confusions`).
    rows : Tensor of int64 of shape (E,)
        Row of ``log_probs`` (item in the batch) of each observed label.
    annotators : Tensor of int64 of shape (E,)
        Annotator index of each label, in ``[0, M)``.
    labels : Tensor of int64 of shape (E,)
        Class said by the annotator, in ``[0, K)``.
    reduction : {"none", "mean", "sum"}, default="mean"

    Returns
    -------
    Tensor
        Scalar, or shape (E,) with ``reduction="none"``.
    """
    if not (rows.shape == annotators.shape == labels.shape) or rows.ndim != 1:
        raise ValueError(
            "rows, annotators and labels must be 1-d with the same length, got shapes "
            f"{tuple(rows.shape)}, {tuple(annotators.shape)}, {tuple(labels.shape)}"
        )
    per_pair = annotator_log_probs(log_probs.index_select(0, rows), log_conf, annotators)  # (E, K)
    nll = -per_pair.gather(1, labels.unsqueeze(1)).squeeze(1)
    return _reduce(nll, reduction)


def _full_precision(t: Tensor) -> torch.autocast:
    """A context with autocast off on ``t``'s device: the Gram products and log-determinants
    below must not run in bfloat16 / float16 when a caller wraps them in ``torch.autocast``."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def _ridge_logdet(gram: Tensor, eps: float) -> Tensor:
    """``log det(gram + eps I)`` in float64 (K x K is tiny; float32 loses the small eigenvalues).

    Returned in ``gram``'s dtype, but never below float32 (a half-precision Gram matrix gives a
    float32 value)."""
    if eps <= 0:
        raise ValueError(f"eps must be > 0 so the log-determinant stays finite, got {eps!r}")
    with _full_precision(gram):
        out: Tensor = _RidgeLogDet.apply(gram, float(eps))  # type: ignore[no-untyped-call]
    return out


class _RidgeLogDet(torch.autograd.Function):
    """``log det(gram + eps I)`` of a symmetric ``K x K`` matrix as one autograd node: a Cholesky
    factorization ``L`` in float64, ``2 sum log diag L``, and the gradient
    ``(gram + eps I)^{-1}`` from ``L`` (:func:`torch.cholesky_inverse`). NaN when the matrix is
    not positive definite (``gram + eps I`` is for a finite Gram matrix; a non-finite input
    gives NaN). No double backward."""

    @staticmethod
    def forward(ctx: Any, gram: Tensor, eps: float) -> Tensor:
        g = gram.to(torch.float64, copy=True)
        g.diagonal().add_(eps)
        chol, info = torch.linalg.cholesky_ex(g)
        value = chol.diagonal().log().sum().mul_(2.0)
        value = torch.where(info == 0, value, torch.full_like(value, float("nan")))
        ctx.save_for_backward(chol)
        ctx.dtype = gram.dtype
        return value.to(gram.dtype if gram.dtype in (torch.float32, torch.float64) else torch.float32)

    @staticmethod
    @torch.autograd.function.once_differentiable  # type: ignore[misc]
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (chol,) = ctx.saved_tensors
        return torch.cholesky_inverse(chol).mul_(grad.to(torch.float64)).to(ctx.dtype), None


def logdet_gram(gram: Tensor, *, eps: float = DEFAULT_RIDGE) -> Tensor:
    """``log det(gram + eps I)`` of a symmetric positive semi-definite ``K x K`` Gram matrix.

    Parameters
    ----------
    gram : Tensor of shape (K, K)
    eps : float, default=DEFAULT_RIDGE (1e-6)

    Returns
    -------
    Tensor
        Scalar, ``gram``'s dtype (computed in float64).
    """
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
        raise ValueError(f"gram must have shape (K, K), got {tuple(gram.shape)}")
    return _ridge_logdet(gram, eps)


def logdet_volume_f(probs: Tensor, *, eps: float = DEFAULT_RIDGE) -> Tensor:
    """``log det(F F^T + eps I)`` for the batch predictions ``F = probs^T`` (GeoCrowdNet(F)).

    GeoCrowdNet(F) minimizes ``CCEM - lambda * logdet_volume_f(probs)``.

    Parameters
    ----------
    probs : Tensor of shape (B, K)
        Predicted class probabilities ``f(x_n)`` of the batch (rows in the simplex).
    eps : float, default=DEFAULT_RIDGE (1e-6)
        Ridge added to the ``K x K`` Gram matrix: keeps the value finite and differentiable when
        ``B < K`` or when the predictions collapse onto fewer than ``K`` directions.

    Returns
    -------
    Tensor
        Scalar: float64 for float64 ``probs``, else float32 (computed in float64, with autocast
        off, so a bfloat16 or float16 batch under ``torch.autocast`` still gives a float32 value).
    """
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (B, K), got {tuple(probs.shape)}")
    with _full_precision(probs):  # the Gram product in float32 even under autocast
        p = probs.float() if probs.dtype not in (torch.float32, torch.float64) else probs
        gram = p.transpose(0, 1) @ p
    return _ridge_logdet(gram, eps)


def logdet_volume_w(confusions: Tensor, *, eps: float = DEFAULT_RIDGE) -> Tensor:
    """``log det(W^T W + eps I)`` with ``W = [A_1; ...; A_M]`` of shape (MK, K) (GeoCrowdNet(W)).

    GeoCrowdNet(W) minimizes ``CCEM - lambda * logdet_volume_w(confusions)``. ``W^T W`` equals
    ``sum_m A_m^T A_m`` and is formed that way (``O(M K^3)``).

    Parameters
    ----------
    confusions : Tensor of shape (M, K, K)
        Column-stochastic confusion matrices ``A_m`` (probabilities, not logits).
    eps : float, default=DEFAULT_RIDGE (1e-6)
        Ridge added to the ``K x K`` Gram matrix.

    Returns
    -------
    Tensor
        Scalar.
    """
    if confusions.ndim != 3 or confusions.shape[1] != confusions.shape[2]:
        raise ValueError(f"confusions must have shape (M, K, K), got {tuple(confusions.shape)}")
    with _full_precision(confusions):  # the Gram product in float32 even under autocast
        a = confusions.float() if confusions.dtype not in (torch.float32, torch.float64) else confusions
        gram = gram_sum(a)
    return _ridge_logdet(gram, eps)


def trace_regularizer(confusions: Tensor, weights: Tensor | None = None) -> Tensor:
    """``sum_m w_m trace(A_m)``, TraceReg's term (Tanno et al., CVPR 2019: loss = CCEM + lambda * this).

    :class:`~crowdlearn.nn.TraceRegularizer` passes the batch's annotators with ``w_m`` their
    shares of the batch's labels (``n_m / E``), so the term is the mean over the batch's labels
    of the trace of each label's annotator (see there for why).

    Parameters
    ----------
    confusions : Tensor of shape (M, K, K)
        Column-stochastic confusion matrices.
    weights : Tensor of shape (M,), optional
        ``w_m``; None: every weight 1 (the plain sum over the ``M`` matrices).

    Returns
    -------
    Tensor
        Scalar.
    """
    if confusions.ndim != 3 or confusions.shape[1] != confusions.shape[2]:
        raise ValueError(f"confusions must have shape (M, K, K), got {tuple(confusions.shape)}")
    traces = torch.diagonal(confusions, dim1=1, dim2=2).sum(dim=1)  # (M,)
    if weights is None:
        return traces.sum()
    if weights.shape != traces.shape:
        raise ValueError(f"weights must have shape ({traces.shape[0]},), got {tuple(weights.shape)}")
    return (weights.to(traces.dtype) * traces).sum()
