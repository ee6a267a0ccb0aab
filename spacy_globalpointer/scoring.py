"""Loss and decoding on banded span scores: small pure functions over arrays.

A doc's scores have shape (n, width, n_labels); ``scores[i, d, a]`` is s_a(i, i + d),
valid where i + d < n (``band.span_mask``), or where a caller's mask says so
(``band.valid_cells``: no span starts or ends on a whitespace token).
"""

from typing import Any, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span
from thinc.api import Ops
from thinc.types import Floats3d, Ints2d

from .band import span_mask


def global_pointer_loss(
    ops: Ops,
    scores: Sequence[Floats3d],
    gold: Sequence[Optional[Ints2d]],
    valid: Optional[Sequence[Any]] = None,
) -> Tuple[float, List[Floats3d]]:
    """Multi-label categorical cross-entropy, per doc and label, with its gradient.

    gold[b] holds the positive spans of doc b as rows (start, offset, label) with
    offset = end - start - 1 < width; None marks a doc without annotation for
    this key, which contributes no loss and no gradient. valid[b], if given, is a
    boolean (n, width) mask of the spans that may be predicted at all: the others are
    neither positives nor negatives, and get no gradient.

    For each doc and label a, with P the gold spans and Q every other valid span:
        L_a = log(1 + sum_P e^{-s}) + log(1 + sum_Q e^{s})
    Both terms are a log-sum-exp with an extra zero logit (the "1"), computed with
    the max subtracted so that no sentinel values are needed. The gradient of the
    first term is -softmax over {0} U {-s_P} at each positive span; of the second,
    softmax over {0} U {s_Q} at each negative span. Padding never enters.

    Duplicate gold rows count once (the positives are a set). Rows outside the
    valid band raise a ValueError. Scores in a type narrower than float32 (float16,
    as from mixed-precision heads) are computed in float32, so the summed loss
    keeps its precision; the gradients come back in the computation's type.
    """
    xp = ops.xp
    if len(scores) != len(gold):
        raise ValueError(f"Got {len(scores)} score arrays but {len(gold)} gold entries.")
    scores = [_at_least_float32(xp, s) for s in scores]
    d_scores = [ops.alloc3f(*s.shape) for s in scores]
    rows = [b for b, s in enumerate(scores) if gold[b] is not None and s.size]
    if not rows:
        return 0.0, d_scores
    n_labels = scores[rows[0]].shape[2]
    flat_scores, flat_valid, flat_positive = [], [], []
    for b in rows:
        n, width, _ = scores[b].shape
        cells = span_mask(ops, n, width) if valid is None else xp.asarray(valid[b], dtype=bool)
        if cells.shape != (n, width):
            raise ValueError(
                f"valid[{b}] has shape {tuple(cells.shape)}, expected {(n, width)} "
                "(n_tokens, width) to match its scores."
            )
        doc_valid = xp.broadcast_to(cells[:, :, None], scores[b].shape)
        positive = xp.zeros(scores[b].shape, dtype=bool)
        spans = gold[b]
        if len(spans):
            _check_gold_rows(xp, spans, scores[b].shape, b)
            positive[spans[:, 0], spans[:, 1], spans[:, 2]] = True
        flat_scores.append(scores[b].reshape(-1, n_labels))
        flat_valid.append(doc_valid.reshape(-1, n_labels))
        flat_positive.append(positive.reshape(-1, n_labels))
    # Pad into (docs, spans, labels) so both terms are computed for all docs at once.
    S = ops.pad(flat_scores)
    padded_valid = ops.pad(flat_valid)
    positive = ops.pad(flat_positive) & padded_valid
    negative = padded_valid & ~positive
    neg_inf = xp.asarray(-xp.inf, dtype=S.dtype)
    pos_logits = xp.where(positive, -S, neg_inf)
    neg_logits = xp.where(negative, S, neg_inf)
    pos_lse = _logsumexp_with_zero(xp, pos_logits)
    neg_lse = _logsumexp_with_zero(xp, neg_logits)
    loss = float((pos_lse + neg_lse).sum())
    d_padded = xp.exp(neg_logits - neg_lse[:, None, :]) - xp.exp(pos_logits - pos_lse[:, None, :])
    for row, b in enumerate(rows):
        n, width, _ = scores[b].shape
        d_scores[b] = d_padded[row, : n * width].reshape(n, width, n_labels)
    return loss, d_scores


def _at_least_float32(xp: Any, scores: Any) -> Any:
    dtype = numpy.dtype(scores.dtype)
    if dtype.kind == "f" and dtype.itemsize >= 4:
        return scores
    return scores.astype("float32")


def _check_gold_rows(xp: Any, spans: Any, shape: Tuple[int, ...], doc_index: int) -> None:
    """Raise if a gold row (start, offset, label) is not a valid span of the band."""
    n, width, n_labels = shape
    starts, offsets, labels = spans[:, 0], spans[:, 1], spans[:, 2]
    bad = (
        (starts < 0)
        | (offsets < 0)
        | (offsets >= width)
        | (starts + offsets >= n)
        | (labels < 0)
        | (labels >= n_labels)
    )
    n_bad = int(bad.sum())
    if n_bad:
        example = [int(v) for v in spans[xp.nonzero(bad)[0][0]]]
        raise ValueError(
            f"gold[{doc_index}] has {n_bad} span row(s) outside the valid band of its "
            f"scores, shape (n_tokens, width, n_labels) = {tuple(shape)}, e.g. "
            f"(start, offset, label) = {tuple(example)}: rows need 0 <= offset < width, "
            "start + offset < n_tokens and 0 <= label < n_labels."
        )


def _logsumexp_with_zero(xp: Any, logits: Any) -> Any:
    """log(1 + sum(exp(logits), axis=1)); -inf entries contribute nothing."""
    shift = xp.maximum(logits.max(axis=1), 0.0)
    total = xp.exp(-shift) + xp.exp(logits - shift[:, None, :]).sum(axis=1)
    return shift + xp.log(total)


def decode_spans(
    scores: numpy.ndarray, threshold: float, valid: Optional[numpy.ndarray] = None
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Every valid span scoring above threshold, as (starts, ends, labels, scores).

    valid: boolean (n, width) mask of the spans that may be predicted (default: every
    real span, i + d < n). Ends are exclusive. Order is (start, end, label):
    np.nonzero walks the (start, offset, label) axes in C order.
    """
    n, width, _ = scores.shape
    if valid is None:
        valid = numpy.arange(n)[:, None] + numpy.arange(width)[None, :] < n
    starts, offsets, labels = numpy.nonzero((scores > threshold) & valid[:, :, None])
    return starts, starts + offsets + 1, labels, scores[starts, offsets, labels]


def select_non_overlapping(
    starts: numpy.ndarray, ends: numpy.ndarray, scores: numpy.ndarray
) -> List[int]:
    """Indices of the best-scoring spans that share no token, greedily by score.

    Ties go to the earlier span in the given order; the result is in given order.
    """
    order = numpy.argsort(-scores, kind="stable")
    taken = numpy.zeros(int(ends.max()) if len(ends) else 0, dtype=bool)
    chosen = []
    for k in order:
        if not taken[starts[k] : ends[k]].any():
            taken[starts[k] : ends[k]] = True
            chosen.append(int(k))
    return sorted(chosen)


def merge_entities(doc: Doc, spans: List[Span], overwrite: bool) -> List[Span]:
    """The doc's entities with the given non-overlapping spans added.

    overwrite: the spans replace the doc's entities. Otherwise entities that an earlier
    component set win, and only spans that share no token with them are added.
    """
    if overwrite or not doc.ents:
        return list(spans)
    taken = numpy.zeros(len(doc), dtype=bool)
    for ent in doc.ents:
        taken[ent.start : ent.end] = True
    added = [span for span in spans if not taken[span.start : span.end].any()]
    return sorted(list(doc.ents) + added, key=lambda span: span.start)


def count_not_finite(xp: Any, arrays: Sequence[Any]) -> int:
    """How many values (NaN, inf) of the arrays are not finite."""
    return sum(int(a.size - xp.isfinite(a).sum()) for a in arrays)
