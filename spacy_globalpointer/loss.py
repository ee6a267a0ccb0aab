"""The multi-label loss and its gradient on banded span scores: small pure functions
over arrays, and the count of values that are not finite.

A doc's scores have shape (n, width, n_labels); ``scores[i, d, a]`` is s_a(i, i + d),
valid where i + d < n (``band.span_mask``), or where a caller's mask says so
(``band.valid_cells``: no span starts or ends on a whitespace token).
"""

import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy
from thinc.api import Ops
from thinc.types import Floats3d, Ints2d

from .band import span_mask


def global_pointer_loss(
    ops: Ops,
    scores: Sequence[Floats3d],
    gold: Sequence[Optional[Ints2d]],
    valid: Optional[Sequence[Any]] = None,
    targets: Optional[Sequence[Optional[Any]]] = None,
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

    targets[b], if given, holds a soft target t in [0, 1] for each of gold[b]'s rows
    (boundary smoothing gives the gold span 1 - eps and its neighbours the rest); every
    other valid span has t = 0. The loss is then
        L_a = log(1 + sum t e^{-s}) + log(1 + sum (1 - t) e^{s})
    over the valid spans, which is the loss above when every t is 0 or 1: a row with
    t = 1 (the default) is a plain positive. A row listed twice keeps its largest t.

    Duplicate gold rows count once (the positives are a set). Rows outside the
    valid band raise a ValueError. Scores in a type narrower than float32 (float16,
    as from mixed-precision heads) are computed in float32, so the summed loss
    keeps its precision; the gradients come back in the computation's type.
    """
    xp = ops.xp
    if len(scores) != len(gold):
        raise ValueError(f"Got {len(scores)} score arrays but {len(gold)} gold entries.")
    scores = [_at_least_float32(xp, s) for s in scores]
    rows = [b for b, s in enumerate(scores) if gold[b] is not None and s.size]
    # Docs that give no loss get zero gradients; the others are filled in below.
    d_scores: List[Any] = [None if b in rows else ops.alloc3f(*s.shape) for b, s in enumerate(scores)]
    if not rows:
        return 0.0, d_scores
    n_labels = scores[rows[0]].shape[2]
    cells = []
    for b in rows:
        n, width, _ = scores[b].shape
        doc_cells = span_mask(ops, n, width) if valid is None else xp.asarray(valid[b], dtype=bool)
        if doc_cells.shape != (n, width):
            raise ValueError(
                f"valid[{b}] has shape {tuple(doc_cells.shape)}, expected {(n, width)} "
                "(n_tokens, width) to match its scores."
            )
        cells.append(doc_cells)
    _check_gold(xp, [gold[b] for b in rows], [scores[b].shape for b in rows], rows)
    doc_gold, doc_targets = [gold[b] for b in rows], None
    if targets is not None:
        if len(targets) != len(gold):
            raise ValueError(f"Got {len(gold)} gold entries but {len(targets)} target entries.")
        doc_gold, doc_targets = zip(*(_unique_targets(xp, gold[b], targets[b], b) for b in rows))
    if xp is numpy:
        terms = _flat_terms
    else:
        terms = _padded_terms  # CuPy has no reduceat
    loss, d_rows = terms(ops, [scores[b] for b in rows], list(doc_gold), cells, n_labels, doc_targets)
    for b, d in zip(rows, d_rows):
        d_scores[b] = d
    return loss, d_scores


def _flat_terms(
    ops: Ops, scores: List[Any], gold: List[Any], cells: List[Any], n_labels: int,
    targets: Optional[Sequence[Any]] = None,
) -> Tuple[float, List[Any]]:
    """Both terms over all docs' spans as one (spans, labels) array, summed per doc with
    reduceat: no padding, so a batch of short docs beside a long one costs what it holds.
    The positive term only visits the gold cells (a few per doc), not the whole band.
    targets: soft targets of the gold rows (rows unique per doc), or None (all 1)."""
    xp = ops.xp
    sizes = [int(s.shape[0] * s.shape[1]) for s in scores]
    starts = numpy.cumsum([0] + sizes[:-1])
    S = xp.concatenate([s.reshape(-1, n_labels) for s in scores])
    real = xp.concatenate([c.reshape(-1) for c in cells])
    neg_logits = xp.where(real[:, None], S, xp.asarray(-xp.inf, dtype=S.dtype))
    # Gold cells as (flat cell, label), each once, where a span may be (the positives).
    counts = [len(rows) for rows in gold]
    cell = label = xp.zeros((0,), dtype="int64")
    weight = xp.zeros((0,), dtype=S.dtype) if targets is not None else None
    if sum(counts):
        rows = xp.concatenate([rows for rows in gold if len(rows)]).astype("int64")
        widths = xp.repeat(xp.asarray([s.shape[1] for s in scores]), counts)
        flat = xp.repeat(xp.asarray(starts), counts) + rows[:, 0] * widths + rows[:, 1]
        if targets is None:
            cell, label = xp.divmod(xp.unique(flat * n_labels + rows[:, 2]), n_labels)
        else:  # rows already unique per doc (_unique_targets)
            cell, label = flat, rows[:, 2]
            weight = xp.concatenate([t for t in targets if len(t)]).astype(S.dtype)
        keep = real[cell]
        cell, label = cell[keep], label[keep]
        weight = None if weight is None else weight[keep]
    if weight is None:
        neg_logits[cell, label] = -xp.inf
        pos_values = -S[cell, label]
    else:
        # A soft cell is in both terms, weighted: e^{s} by 1 - t, e^{-s} by t (log 0 = -inf).
        with numpy.errstate(divide="ignore"):
            neg_logits[cell, label] = S[cell, label] + xp.log1p(-weight)
            pos_values = -S[cell, label] + xp.log(weight)
    neg_lse = _segment_logsumexp_with_zero(xp, neg_logits, starts, sizes)
    # Positive term per (doc, label) group: log(1 + sum e^{-s}) over its gold cells.
    group = (xp.searchsorted(xp.asarray(starts), cell, side="right") - 1) * n_labels + label
    shift = xp.zeros(len(scores) * n_labels, dtype=S.dtype)
    xp.maximum.at(shift, group, pos_values)
    pos_exps = xp.zeros_like(shift)
    xp.add.at(pos_exps, group, xp.exp(pos_values - shift[group]))
    pos_lse = (shift + xp.log(xp.exp(-shift) + pos_exps)).reshape(len(scores), n_labels)
    loss = float((pos_lse + neg_lse).sum())
    d_flat = xp.exp(neg_logits - xp.repeat(neg_lse, sizes, axis=0))
    d_pos = xp.exp(pos_values - pos_lse.reshape(-1)[group])
    if weight is None:
        d_flat[cell, label] = -d_pos
    else:
        d_flat[cell, label] -= d_pos  # the negative term's share stays
    d_rows = [
        d_flat[start : start + size].reshape(s.shape)
        for start, size, s in zip(starts, sizes, scores)
    ]
    return loss, d_rows


def _segment_logsumexp_with_zero(xp: Any, logits: Any, starts: Any, sizes: List[int]) -> Any:
    """log(1 + sum(exp(segment))) for each segment of rows; -inf entries contribute nothing."""
    shift = xp.maximum(xp.maximum.reduceat(logits, starts, axis=0), 0.0)
    exps = xp.exp(logits - xp.repeat(shift, sizes, axis=0))
    return shift + xp.log(xp.exp(-shift) + xp.add.reduceat(exps, starts, axis=0))


def _padded_terms(
    ops: Ops, scores: List[Any], gold: List[Any], cells: List[Any], n_labels: int,
    targets: Optional[Sequence[Any]] = None,
) -> Tuple[float, List[Any]]:
    """Both terms with the docs padded into (docs, spans, labels), for array modules
    without reduceat (CuPy). targets: as for _flat_terms."""
    xp = ops.xp
    flat_scores, flat_valid, flat_target = [], [], []
    for b, (doc_scores, spans, doc_cells) in enumerate(zip(scores, gold, cells)):
        doc_valid = xp.broadcast_to(doc_cells[:, :, None], doc_scores.shape)
        target = xp.zeros(doc_scores.shape, dtype=doc_scores.dtype)
        if len(spans):
            target[spans[:, 0], spans[:, 1], spans[:, 2]] = 1.0 if targets is None else targets[b]
        flat_scores.append(doc_scores.reshape(-1, n_labels))
        flat_valid.append(doc_valid.reshape(-1, n_labels))
        flat_target.append(target.reshape(-1, n_labels))
    S = ops.pad(flat_scores)
    padded_valid = ops.pad(flat_valid)
    T = ops.pad(flat_target)
    positive = (T > 0) & padded_valid
    negative = padded_valid & (T < 1)
    neg_inf = xp.asarray(-xp.inf, dtype=S.dtype)
    # log t and log(1 - t) where they are finite; the masks drop the rest.
    pos_logits = xp.where(positive, -S + xp.log(xp.where(positive, T, 1)), neg_inf)
    neg_logits = xp.where(negative, S + xp.log1p(-xp.where(negative, T, 0)), neg_inf)
    pos_lse = _logsumexp_with_zero(xp, pos_logits)
    neg_lse = _logsumexp_with_zero(xp, neg_logits)
    loss = float((pos_lse + neg_lse).sum())
    d_padded = xp.exp(neg_logits - neg_lse[:, None, :]) - xp.exp(pos_logits - pos_lse[:, None, :])
    d_rows = []
    for row, doc_scores in enumerate(scores):
        n, width, _ = doc_scores.shape
        d_rows.append(d_padded[row, : n * width].reshape(n, width, n_labels))
    return loss, d_rows


def _unique_targets(xp: Any, rows: Any, targets: Optional[Any], doc_index: int) -> Tuple[Any, Any]:
    """A doc's gold rows, each once, with their soft targets (a row listed twice keeps
    its largest); no targets: all 1. Raises on a count or value that does not fit."""
    if targets is None:
        targets = xp.ones((len(rows),), dtype="float32")
    targets = xp.asarray(targets, dtype="float32").reshape(-1)
    if len(targets) != len(rows):
        raise ValueError(f"targets[{doc_index}] has {len(targets)} values for {len(rows)} gold rows.")
    bad = ~((targets >= 0) & (targets <= 1))  # NaN fails both
    if bool(bad.any()):
        value = float(targets[xp.nonzero(bad)[0][0]])
        raise ValueError(f"targets[{doc_index}] holds {value!r}: soft targets must be in [0, 1].")
    if not len(rows):
        return rows, targets
    # Sorted by row, then by target: the last of each run of equal rows has the largest.
    order = xp.lexsort(xp.stack([targets, rows[:, 2], rows[:, 1], rows[:, 0]]))
    rows, targets = rows[order], targets[order]
    last = xp.ones((len(rows),), dtype=bool)
    last[:-1] = (rows[1:] != rows[:-1]).any(axis=1)
    return rows[last], targets[last]


def _at_least_float32(xp: Any, scores: Any) -> Any:
    dtype = numpy.dtype(scores.dtype)
    if dtype.kind == "f" and dtype.itemsize >= 4:
        return scores
    return scores.astype("float32")


def _check_gold(xp: Any, gold: List[Any], shapes: List[Tuple[int, ...]], doc_indices: List[int]) -> None:
    """Raise if any doc's gold row is not a valid span of its band (one test for the batch)."""
    counts = [len(rows) for rows in gold]
    if not sum(counts):
        return
    rows = xp.concatenate([rows for rows in gold if len(rows)])
    n, width, n_labels = (xp.repeat(xp.asarray([shape[k] for shape in shapes]), counts) for k in range(3))
    if bool(_outside_band(rows, n, width, n_labels).any()):
        for rows, shape, b in zip(gold, shapes, doc_indices):
            if len(rows):
                _check_gold_rows(xp, rows, shape, b)


def _outside_band(rows: Any, n: Any, width: Any, n_labels: Any) -> Any:
    """Boolean per gold row (start, offset, label): not a valid cell of the band (the
    sizes are numbers, or arrays of one per row)."""
    starts, offsets, labels = rows[:, 0], rows[:, 1], rows[:, 2]
    return (
        (starts < 0)
        | (offsets < 0)
        | (offsets >= width)
        | (starts + offsets >= n)
        | (labels < 0)
        | (labels >= n_labels)
    )


def _check_gold_rows(xp: Any, spans: Any, shape: Tuple[int, ...], doc_index: int) -> None:
    """Raise if a gold row (start, offset, label) is not a valid span of the band."""
    bad = _outside_band(spans, *shape)
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


def check_finite_scores(name: str, xp: Any, scores: Sequence[Any]) -> None:
    """Raise if a score is not finite, before any gradient exists: an optimizer step would
    spread NaN into every weight."""
    n_not_finite = count_not_finite(xp, scores)
    if n_not_finite:
        raise ValueError(
            f"'{name}': {n_not_finite} of {sum(int(s.size) for s in scores)} span scores in "
            "this batch are not finite (NaN or inf), so the update was stopped before any "
            "weight changed. The encoder's output or the learning rate is probably at fault."
        )


def check_finite_loss(name: str, loss: float) -> None:
    if not math.isfinite(loss):
        raise ValueError(
            f"'{name}': the loss is not finite ({loss}); the update was stopped before any "
            "weight changed."
        )


def count_not_finite(xp: Any, arrays: Sequence[Any]) -> int:
    """How many values (NaN, inf) of the arrays are not finite."""
    # A finite sum (the usual case) means every value is finite: no mask of the array's size.
    # inf - inf or an overflowing sum only sends the array to the exact count.
    with numpy.errstate(over="ignore", invalid="ignore"):
        return sum(
            int(a.size - xp.isfinite(a).sum()) for a in arrays if not bool(xp.isfinite(a.sum()))
        )
