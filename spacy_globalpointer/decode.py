"""Decoding banded span scores into spans: small pure functions over arrays.

A doc's scores have shape (n, width, n_labels); ``scores[i, d, a]`` is the logit that
tokens i..i+d form a span of label a, real where i + d < n (``band.span_mask``). A span
is predicted where its logit is above the logit of the probability threshold, and no
span starts or ends on a whitespace token. ``decode_batch`` is what the component calls;
``select_non_overlapping`` and ``merge_entities`` choose what goes to ``doc.ents``.
"""

import math
import warnings
from typing import Any, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span

from .band import BandScores, boundary_tokens
from .loss import count_not_finite

# (starts, ends, labels, scores) of a doc's decoded spans, ends exclusive.
DecodedSpans = Tuple[List[int], List[int], List[int], List[float]]

# Up to this many cells of a chunk above threshold are sorted out one by one in Python:
# fewer calls than the vectorised path (a sentence at batch size 1 has a handful).
FEW_CANDIDATES = 32


def logit_to_probability(logits: Any) -> numpy.ndarray:
    """The sigmoid, computed without overflow for logits of any size."""
    logits = numpy.asarray(logits, dtype="float64")
    return numpy.exp(-numpy.logaddexp(0.0, -logits))


def probability_to_logit(probability: float) -> float:
    """The logit a probability threshold stands for (0 and 1 give -inf and inf)."""
    if probability <= 0.0:
        return -math.inf
    if probability >= 1.0:
        return math.inf
    return math.log(probability) - math.log1p(-probability)


def decode_spans(
    scores: numpy.ndarray,
    threshold: float,
    valid: Optional[numpy.ndarray] = None,
    *,
    boundary: Optional[numpy.ndarray] = None,
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Every valid span of one doc scoring above threshold, as (starts, ends, labels, scores).

    valid: boolean (n, width) mask of the spans that may be predicted (default: every
    real span, i + d < n). boundary instead: (n,) booleans, the tokens that may start
    or end a span (``band.boundary_tokens``); the same spans as valid_cells' mask,
    checked at the few candidates only. Ends are exclusive. Order is (start, end,
    label): np.nonzero walks the (start, offset, label) axes in C order.
    """
    n, width, n_labels = scores.shape
    # The cells above threshold are few: find them first, then keep the valid ones (one
    # pass over the scores instead of a band-sized mask and a 3-d nonzero).
    above = numpy.flatnonzero(scores > threshold)
    starts, offsets, labels = numpy.unravel_index(above, (n, width, n_labels))
    if valid is not None:
        keep = valid[starts, offsets]
    else:
        last = starts + offsets
        keep = last < n
        if boundary is not None:
            keep &= boundary[starts] & boundary[numpy.minimum(last, n - 1)]
    starts, offsets, labels = starts[keep], offsets[keep], labels[keep]
    return starts, starts + offsets + 1, labels, scores[starts, offsets, labels]


def chunk_candidates(
    chunk: numpy.ndarray, above: numpy.ndarray, lengths: Sequence[int], widths: Sequence[int]
) -> Tuple[numpy.ndarray, ...]:
    """The real cells among a padded chunk's (B, N, W, n_labels) cells above threshold,
    ``above = numpy.flatnonzero(chunk > threshold)`` (the caller has it already), as
    (rows, starts, offsets, labels, scores): row b holds a doc of lengths[b] tokens
    scored to widths[b], so its real cells have start + offset < lengths[b] and
    offset < widths[b]. Order is (row, start, offset, label), C order."""
    rows, starts, offsets, labels = numpy.unravel_index(above, chunk.shape)
    keep = (starts + offsets < numpy.asarray(lengths)[rows]) & (
        offsets < numpy.asarray(widths)[rows]
    )
    rows, starts, offsets, labels = rows[keep], starts[keep], offsets[keep], labels[keep]
    return rows, starts, offsets, labels, chunk[rows, starts, offsets, labels]


def decode_batch(
    to_numpy: Any, docs: List[Doc], scores: List[Any], threshold: float
) -> Tuple[List[DecodedSpans], int]:
    """Each doc's (starts, ends, labels, scores) above the logit threshold, as lists,
    and how many scores are not finite.

    Scores straight from predict (BandScores) are thresholded a padded chunk at a time,
    not a doc at a time; any other list of arrays doc by doc. The same spans either way.
    to_numpy: the model's ops.to_numpy (scores may live on a GPU).
    """
    if not isinstance(scores, BandScores) or not scores.intact():
        values = [to_numpy(doc_scores) for doc_scores in scores]
        found: List[DecodedSpans] = []
        for doc, doc_values in zip(docs, values):
            arrays = decode_spans(doc_values, threshold, boundary=boundary_tokens(doc))
            found.append(tuple(array.tolist() for array in arrays))  # type: ignore[arg-type]
        return found, count_not_finite(numpy, values)
    found = [([], [], [], []) for _ in docs]
    n_not_finite = 0
    for chunk, indices in scores.chunks:
        chunk = to_numpy(chunk)
        with numpy.errstate(over="ignore", invalid="ignore"):  # inf sums: counted below
            chunk_sum = float(chunk.sum())
        if not math.isfinite(chunk_sum):
            n_not_finite += count_not_finite(numpy, [to_numpy(scores[i]) for i in indices])
        shapes = [scores[i].shape for i in indices]
        above = numpy.flatnonzero(chunk > threshold)
        if len(above) <= FEW_CANDIDATES:
            _add_few_candidates(found, docs, chunk, above.tolist(), indices, shapes)
            continue
        rows, starts, offsets, label_ids, values = chunk_candidates(
            chunk, above, [shape[0] for shape in shapes], [shape[1] for shape in shapes]
        )
        bounds = numpy.searchsorted(rows, numpy.arange(len(indices) + 1)).tolist()
        for row, i in enumerate(indices):
            lo, hi = bounds[row], bounds[row + 1]
            if lo == hi:
                continue
            doc_starts, doc_lasts = starts[lo:hi], starts[lo:hi] + offsets[lo:hi]
            boundary = boundary_tokens(docs[i])
            keep = boundary[doc_starts] & boundary[doc_lasts]
            found[i] = (
                doc_starts[keep].tolist(),
                (doc_lasts[keep] + 1).tolist(),
                label_ids[lo:hi][keep].tolist(),
                values[lo:hi][keep].tolist(),
            )
    return found, n_not_finite


def warn_not_finite(name: str, n_not_finite: int) -> None:
    """Warn with decode_batch's count of scores that are not finite, if any."""
    if n_not_finite:
        warnings.warn(
            f"'{name}': {n_not_finite} span score(s) in this batch are not finite "
            "(NaN or inf); no span was predicted from them. The encoder's output is "
            "probably broken (check the tok2vec and its weights).",
            stacklevel=3,
        )


def _add_few_candidates(
    found: List[DecodedSpans],
    docs: List[Doc],
    chunk: Any,
    above: List[int],
    indices: List[int],
    shapes: List[Tuple[int, ...]],
) -> None:
    """Append the real, whitespace-free spans among a chunk's cells above threshold
    (flat indices into chunk, in C order) to their docs' lists in found."""
    _, n_rows, width, n_labels = chunk.shape
    row_size, start_size = n_rows * width * n_labels, width * n_labels
    for cell in above:
        row, rest = divmod(cell, row_size)
        start, rest = divmod(rest, start_size)
        offset, label = divmod(rest, n_labels)
        n_tokens, doc_width = shapes[row][0], shapes[row][1]
        last = start + offset
        if last >= n_tokens or offset >= doc_width:
            continue
        doc = docs[indices[row]]
        if doc[start].is_space or doc[last].is_space:
            continue
        starts, ends, label_ids, span_scores = found[indices[row]]
        starts.append(start)
        ends.append(last + 1)
        label_ids.append(label)
        span_scores.append(float(chunk.flat[cell]))


def span_probabilities(found: List[DecodedSpans]) -> List[numpy.ndarray]:
    """Each doc's span probabilities (float32) from decode_batch's logits: one sigmoid for
    the batch's spans, then each doc's share of it."""
    logits = numpy.asarray([score for *_, doc_scores in found for score in doc_scores], dtype="float32")
    probabilities = logit_to_probability(logits).astype("float32")
    bounds = numpy.cumsum([0] + [len(doc_scores) for *_, doc_scores in found]).tolist()
    return [probabilities[lo:hi].copy() for lo, hi in zip(bounds[:-1], bounds[1:])]


def select_non_overlapping(starts: Sequence[int], ends: Sequence[int], scores: Sequence[float]) -> List[int]:
    """Indices of the best-scoring spans that share no token, greedily by score.

    Ties go to the earlier span in the given order; the result is in given order.
    """
    starts, ends = numpy.asarray(starts, dtype=int), numpy.asarray(ends, dtype=int)
    scores = numpy.asarray(scores)
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
