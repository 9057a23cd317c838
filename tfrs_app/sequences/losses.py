"""GRU4Rec's ranking losses and final activations, on the original's score layout.

Layout (GRU4Rec's training function, Hidasi et al. ICLR 2016, section 3.1.2; the reference code
hidasib/GRU4Rec ``gru4rec.py`` and hidasib/GRU4Rec_PyTorch_Official ``gru4rec_pytorch.py``):
``scores`` [B, C] float32 holds, for mini-batch row i, the scores of C candidate items, where
column j < B is the target of row j (so row i's positive is the diagonal entry ``scores[i, i]``
and the other rows' targets are its in-batch negatives) and columns B..C-1 are the extra
negatives sampled once per step and shared by the whole mini-batch (Hidasi & Karatzoglou,
CIKM 2018, "additional samples").

``negative_mask`` [B, C] bool says which columns are negatives of which row; the caller sets
False on the diagonal, on columns holding the row's own target item (accidental hits) and on
the columns of inactive rows. This is a deliberate departure from the reference code, which
masks only the diagonal (``softmax_neg``'s ``1 - eye``) and so also pushes down a sampled copy
of the target. Every loss returns the per-row loss [B]; the caller averages over active rows.

Sums and means are over the masked columns only. A row without negatives gets loss 0 and
finite gradients (masked softmaxes fill with -inf only where the row has at least one
negative, and masked means divide with ``divide_no_nan``).
"""
from __future__ import annotations

from typing import Callable, Optional

import tfrs_app  # noqa: F401  (legacy Keras before TensorFlow)
import tensorflow as tf

LOSSES = ("cross-entropy", "bpr", "top1", "bpr-max", "top1-max")
# bpr-max's log argument can underflow to 0 when every negative outscores the positive by a lot;
# the reference code adds this constant inside the log (gru4rec.py ``bpr_max``, 1e-24).
BPR_MAX_EPSILON = 1e-24


def _as_float_mask(negative_mask: tf.Tensor) -> tf.Tensor:
    return tf.cast(negative_mask, tf.float32)


def _positive_scores(scores: tf.Tensor) -> tf.Tensor:
    """r_i = scores[i, i] as a column [B, 1] (the reference code's ``gpu_diag_wide``)."""
    return tf.linalg.diag_part(scores)[:, None]


def _masked_mean(values: tf.Tensor, negative_mask: tf.Tensor) -> tf.Tensor:
    """Mean of ``values`` [B, C] over each row's negatives [B]; 0 for a row without any."""
    weights = _as_float_mask(negative_mask)
    total = tf.reduce_sum(tf.where(negative_mask, values, 0.0), axis=1)
    return tf.math.divide_no_nan(total, tf.reduce_sum(weights, axis=1))


def negative_softmax(scores: tf.Tensor, negative_mask: tf.Tensor) -> tf.Tensor:
    """s_j: softmax of each row's scores over its negatives only [B, C] (0 off the mask).

    The reference code's ``softmax_neg`` (the weights of BPR-max and TOP1-max, CIKM 2018,
    "ranking-max loss family"), with the mask in place of its ``1 - eye``. Off-mask columns are
    filled with -inf; a row without negatives is filled with 0 instead (a finite, uniform
    softmax that the mask then zeroes), so it yields zeros rather than 0 / 0.
    """
    has_negative = tf.reduce_any(negative_mask, axis=1, keepdims=True)
    fill = tf.where(has_negative, float("-inf"), 0.0)
    logits = tf.where(negative_mask, scores, fill)
    return tf.nn.softmax(logits, axis=1) * _as_float_mask(negative_mask)


def cross_entropy(scores: tf.Tensor, negative_mask: tf.Tensor, logq: Optional[tf.Tensor] = None) -> tf.Tensor:
    """-log softmax(r)_i over the positive and its negatives [B] (the XE loss, made stable in
    the reference code's 2016 update and used throughout CIKM 2018).

    ``logq`` [C] (log sampling probability of each column's item, already multiplied by the
    logq weight) is subtracted from every column, the positive included, before the softmax: the
    PyTorch port's ``xe_loss_with_softmax`` (``O - logq * log(P0[Y])``). The reference code
    computes ``-log(softmax + 1e-24)`` over all columns; log_softmax is its exact, stable form
    (no 55-nat cap), and the mask drops accidental hits and inactive columns.
    """
    if logq is not None:
        scores = scores - tf.cast(logq, scores.dtype)[None, :]
    batch = tf.shape(scores)[0]
    diagonal = tf.eye(batch, tf.shape(scores)[1], dtype=tf.bool)
    logits = tf.where(negative_mask | diagonal, scores, float("-inf"))
    return -tf.linalg.diag_part(tf.nn.log_softmax(logits, axis=1))


def bpr(scores: tf.Tensor, negative_mask: tf.Tensor) -> tf.Tensor:
    """Mean over negatives of -log sigmoid(r_i - r_j) [B] (ICLR 2016, section 3.1.3, BPR).

    The paper's 1 / N_S mean. The reference code's ``bpr`` averages over all C columns, so the
    positive's own constant log 2 is in it and the scale is 1 / C instead of 1 / (C - 1).
    """
    return _masked_mean(-tf.math.log_sigmoid(_positive_scores(scores) - scores), negative_mask)


def top1(scores: tf.Tensor, negative_mask: tf.Tensor) -> tf.Tensor:
    """Mean over negatives of sigmoid(r_j - r_i) + sigmoid(r_j ** 2) [B] (ICLR 2016, section
    3.1.3, TOP1: the relative rank plus a term pushing the negatives' scores towards 0).

    The paper's 1 / N_S mean. The reference code's ``top1`` averages over all C columns and
    subtracts the positive's sigmoid(r_i ** 2) / C, leaving its constant sigmoid(0) / C in.
    """
    pairwise = tf.sigmoid(scores - _positive_scores(scores)) + tf.sigmoid(tf.square(scores))
    return _masked_mean(pairwise, negative_mask)


def bpr_max(scores: tf.Tensor, negative_mask: tf.Tensor, bpreg: float) -> tf.Tensor:
    """-log(sum_j s_j sigmoid(r_i - r_j) + eps) + bpreg * sum_j s_j r_j ** 2 [B].

    CIKM 2018, BPR-max with score regularisation ("ranking-max loss family"), s_j from
    :func:`negative_softmax`; ``eps`` is the reference code's 1e-24. A row without negatives
    gets 0 (not -log(eps)).
    """
    weights = negative_softmax(scores, negative_mask)
    pairwise = tf.sigmoid(_positive_scores(scores) - scores)
    ranking = -tf.math.log(tf.reduce_sum(weights * pairwise, axis=1) + BPR_MAX_EPSILON)
    regulariser = bpreg * tf.reduce_sum(weights * tf.square(scores), axis=1)
    return tf.where(tf.reduce_any(negative_mask, axis=1), ranking + regulariser, 0.0)


def top1_max(scores: tf.Tensor, negative_mask: tf.Tensor) -> tf.Tensor:
    """sum_j s_j (sigmoid(r_j - r_i) + sigmoid(r_j ** 2)) [B] (CIKM 2018, TOP1-max;
    s_j from :func:`negative_softmax`, so a row without negatives sums to 0)."""
    weights = negative_softmax(scores, negative_mask)
    pairwise = tf.sigmoid(scores - _positive_scores(scores)) + tf.sigmoid(tf.square(scores))
    return tf.reduce_sum(weights * pairwise, axis=1)


def session_loss(name: str, scores: tf.Tensor, negative_mask: tf.Tensor, bpreg: float = 1.0,
                 logq: Optional[tf.Tensor] = None) -> tf.Tensor:
    """The per-row loss [B] named by GRU4Rec's ``loss`` parameter (one of :data:`LOSSES`).

    ``bpreg`` is used by "bpr-max" only. ``logq`` is cross-entropy's correction only, as in the
    PyTorch port, which applies it in ``xe_loss_with_softmax`` alone; passing it with another loss
    is a configuration error, not something to ignore silently.
    """
    if name not in LOSSES:
        raise ValueError(f"session loss: unknown loss {name!r}; choose from {list(LOSSES)}")
    if logq is not None and name != "cross-entropy":
        raise ValueError(f"session loss: the logq correction applies to 'cross-entropy' only, not {name!r}")
    if name == "cross-entropy":
        return cross_entropy(scores, negative_mask, logq)
    if name == "bpr":
        return bpr(scores, negative_mask)
    if name == "top1":
        return top1(scores, negative_mask)
    if name == "bpr-max":
        return bpr_max(scores, negative_mask, bpreg)
    return top1_max(scores, negative_mask)


def _elu(alpha: float) -> Callable[[tf.Tensor], tf.Tensor]:
    """x if x >= 0 else alpha * (exp(x) - 1), the reference code's ``Elu``. expm1 sees min(x, 0)
    so the branch tf.where discards never overflows to inf (which would turn its zero gradient
    into 0 * inf = NaN)."""
    def elu(x: tf.Tensor) -> tf.Tensor:
        return tf.where(x >= 0.0, x, alpha * tf.math.expm1(tf.minimum(x, 0.0)))
    return elu


def final_activation(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """The activation applied to the scores before the loss, by GRU4Rec's ``final_act`` name:
    "linear", "tanh", "relu" or "elu-<alpha>" (e.g. the reference code's "elu-1"; the PyTorch
    port's ``elu_param``, which it applies before bpr-max only)."""
    if name == "linear":
        return tf.identity
    if name == "tanh":
        return tf.tanh
    if name == "relu":
        return tf.nn.relu
    if name.startswith("elu-"):
        try:
            alpha = float(name[len("elu-"):])
        except ValueError:
            raise ValueError(f"final activation: {name!r} needs a number after 'elu-', e.g. 'elu-1'") from None
        return _elu(alpha)
    raise ValueError(f"final activation: unknown activation {name!r}; choose 'linear', 'tanh', 'relu' or 'elu-<alpha>'")
