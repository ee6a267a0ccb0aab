"""Gold spans: aligned to the predicted tokens and the scored band, skips counted.

A gold span the loss cannot use is never dropped in silence: each one is counted
under a reason, and the component warns with the count.
"""

import warnings
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

import numpy
from spacy.attrs import IDX, LENGTH
from spacy.language import Language
from spacy.tokens import Span
from spacy.training import Example
from thinc.api import Ops

from .band import boundary_tokens, valid_cells

# Why a gold span was not learned, and what the user can do about it.
SKIP_REASONS: Dict[str, str] = {
    "empty": "are empty (zero tokens)",
    "misaligned": "do not align with the predicted tokens",
    "whitespace": (
        "start or end on a whitespace token (no span may: trim the whitespace from the "
        "gold offsets)"
    ),
    "too_long": "are longer than the scored band (max_length or score_budget)",
}
SKIP_HINT = " Further skipped spans are counted in the component's gold_span_stats."
# Share of the training spans the max_length suggested at initialize() covers.
SPAN_LENGTH_COVERAGE = 0.995


def new_counts() -> Dict[str, int]:
    return dict.fromkeys(SKIP_REASONS, 0)


def skip_message(name: str, reason: str, count: int) -> str:
    return f"'{name}': {count} gold span(s) {SKIP_REASONS[reason]} and were skipped."


def warn_skipped(
    name: str, counts: Mapping[str, int], warned: Optional[Set[str]] = None, hint: bool = False
) -> None:
    """Warn once per reason (per ``warned`` set) with the number of skipped spans."""
    for reason, count in counts.items():
        if not count or (warned is not None and reason in warned):
            continue
        if warned is not None:
            warned.add(reason)
        warnings.warn(skip_message(name, reason, count) + (SKIP_HINT if hint else ""), stacklevel=3)


def aligned_gold(eg: Example, key: str, counts: Dict[str, int]) -> List[Span]:
    """The reference spans under key as spans of eg.predicted, learnable ones only.

    Counts into counts the empty (zero-token) spans, those that do not align with the
    predicted tokens, and those whose first or last token is whitespace.
    """
    reference = list(eg.reference.spans.get(key, []))
    non_empty = [span for span in reference if len(span)]
    if same_tokens(eg):
        # Token i is the same token in both docs, so the spans' indices hold as they are;
        # this skips spaCy's general alignment, a noticeable share of a training step.
        aligned = non_empty
    else:
        aligned = [
            span for span in eg.get_aligned_spans_y2x(non_empty, allow_overlap=True) if len(span)
        ]
    bounded = [span for span in aligned if not (span[0].is_space or span[-1].is_space)]
    counts["empty"] += len(reference) - len(non_empty)
    counts["misaligned"] += len(non_empty) - len(aligned)
    counts["whitespace"] += len(aligned) - len(bounded)
    return bounded


def gold_rows(
    eg: Example, key: str, label_ids: Mapping[str, int], width: int, counts: Dict[str, int]
) -> Optional[numpy.ndarray]:
    """Rows (start, offset, label) of the gold spans the band of this width can hold.

    A reference doc without doc.spans[key] is unannotated for this key (None): it
    gives no loss and no gradient, and is not taken as a doc with no entities. An
    empty doc.spans[key] means "no entities": every span is a negative. Duplicates are
    one positive; one span with two labels is two positives.
    """
    if key not in eg.reference.spans:
        return None
    rows = []
    for span in aligned_gold(eg, key, counts):
        offset = span.end - span.start - 1
        if offset >= width:
            counts["too_long"] += 1
            continue
        rows.append((span.start, offset, label_ids[span.label_]))
    return numpy.asarray(rows, dtype="int32").reshape(-1, 3)


def same_tokens(eg: Example) -> bool:
    """Whether predicted and reference docs have the same text and token boundaries."""
    predicted, reference = eg.predicted, eg.reference
    if len(predicted) != len(reference) or predicted.text != reference.text:
        return False
    return bool(
        numpy.array_equal(predicted.to_array([IDX, LENGTH]), reference.to_array([IDX, LENGTH]))
    )


def length_report(
    name: str,
    lengths: Iterable[int],
    counts: Mapping[str, int],
    max_length: Optional[int],
    coverage: float,
) -> Dict[str, int]:
    """Summarise the learnable gold spans' lengths; warn about those max_length cuts."""
    lengths = list(lengths)
    report = {"spans": len(lengths), **{reason: counts[reason] for reason in SKIP_REASONS}}
    if not lengths:
        return report
    suggestion = int(numpy.ceil(numpy.quantile(lengths, coverage)))
    n_too_long = sum(length > max_length for length in lengths) if max_length else 0
    report.update(
        longer_than_max_length=n_too_long, longest=max(lengths), suggested_max_length=suggestion
    )
    if n_too_long:
        warnings.warn(
            f"'{name}': {n_too_long} of {len(lengths)} gold spans are longer than "
            f"max_length={max_length} tokens (longest: {max(lengths)}); they cannot be "
            f"predicted and are skipped in training. max_length={suggestion} covers "
            f"{coverage:.1%} of the training spans.",
            stacklevel=3,
        )
    return report


class Survey(NamedTuple):
    """What initialize needs to know of the training data."""

    n_examples: int
    n_spans: int  # gold spans under the key, learnable or not
    labels: Set[str]
    lengths: List[int]  # token lengths of the learnable spans
    sample: List[Example]  # the first few examples, to infer the model's dimensions


def survey_examples(
    examples: Iterable[Example], key: str, counts: Dict[str, int], sample_size: int = 10
) -> Survey:
    """Read the training examples once: labels, span lengths, skipped spans (counts)."""
    n_examples = n_spans = 0
    labels: Set[str] = set()
    lengths: List[int] = []
    sample: List[Example] = []
    for eg in examples:
        n_examples += 1
        reference = eg.reference.spans.get(key, [])
        n_spans += len(reference)
        labels.update(span.label_ for span in reference)
        lengths.extend(len(span) for span in aligned_gold(eg, key, counts))
        if len(sample) < sample_size:
            sample.append(eg)
    return Survey(n_examples, n_spans, labels, lengths, sample)


def warn_if_mostly_misaligned(
    name: str, counts: Mapping[str, int], n_spans: int, nlp: Optional[Language]
) -> None:
    """Most gold spans not aligning with the tokens means the tokenizer does not fit the
    data (a language set without its tokenizer, say): say so before a long run."""
    if not n_spans or counts["misaligned"] * 2 <= n_spans:
        return
    tokenizer = ""
    if nlp is not None:
        tokenizer = (
            f" The pipeline's language is {nlp.lang!r}, its tokenizer "
            f"{type(nlp.tokenizer).__module__}.{type(nlp.tokenizer).__name__}."
        )
    warnings.warn(
        f"'{name}': {counts['misaligned']} of {n_spans} gold spans do not align with the "
        f"tokenizer's tokens, so they cannot be learned.{tokenizer} Check [nlp] lang and "
        "[nlp.tokenizer] in the config (leave the tokenizer out to get the language's own), "
        "or the corpus's character offsets.",
        stacklevel=3,
    )


def check_labels(name: str, examples: Iterable[Example], key: str, labels: Iterable[str]) -> None:
    """Raise for gold labels that initialize never saw: the output layer has no row for them."""
    known = set(labels)
    unknown = {
        span.label_
        for eg in examples
        for span in eg.reference.spans.get(key, [])
        if span.label_ not in known
    }
    if unknown:
        raise ValueError(
            f"'{name}' got gold spans with label(s) {sorted(unknown)} under "
            f"doc.spans[{key!r}] that were not seen in initialize(); known labels: "
            f"{sorted(known)}. Pass all labels to initialize (e.g. via `spacy init labels`)."
        )


def smooth_boundaries(
    rows: numpy.ndarray, valid: numpy.ndarray, epsilon: float, distance: int
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Boundary smoothing (Zhu & Li, ACL 2022) for the multi-label loss: soft targets.

    Each gold row (start, offset, label) keeps 1 - epsilon; epsilon is shared equally by
    the spans of the same label whose start and end together lie within ``distance``
    tokens of its own (|start' - start| + |end' - end| <= distance) and that may be
    predicted at all (``valid``, the (n, width) mask of the band). A gold span with no
    such neighbour keeps 1. Targets landing on the same span add up, capped at 1.
    Returns the rows, each once, and their targets (a gold row listed twice is one).
    """
    rows = numpy.unique(numpy.asarray(rows, dtype="int64").reshape(-1, 3), axis=0)
    if not len(rows) or epsilon == 0:
        return rows, numpy.ones((len(rows),), dtype="float32")
    n, width = valid.shape
    moves = numpy.asarray([(ds, de) for ds in range(-distance, distance + 1)
                           for de in range(-distance, distance + 1)
                           if 0 < abs(ds) + abs(de) <= distance], dtype="int64")
    starts = rows[:, None, 0] + moves[None, :, 0]
    ends = rows[:, None, 0] + rows[:, None, 1] + moves[None, :, 1]
    offsets = ends - starts
    inside = (starts >= 0) & (offsets >= 0) & (offsets < width) & (ends < n)
    ok = numpy.zeros(inside.shape, dtype=bool)
    ok[inside] = valid[starts[inside], offsets[inside]]
    n_neighbours = ok.sum(axis=1)
    own = numpy.where(n_neighbours > 0, 1.0 - epsilon, 1.0)
    share = numpy.divide(epsilon, n_neighbours, out=numpy.zeros(len(rows)), where=n_neighbours > 0)
    which, move = numpy.nonzero(ok)
    all_rows = numpy.concatenate([
        rows,
        numpy.stack([starts[which, move], offsets[which, move], rows[which, 2]], axis=1),
    ])
    all_targets = numpy.concatenate([own, share[which]])
    unique, inverse = numpy.unique(all_rows, axis=0, return_inverse=True)
    targets = numpy.minimum(numpy.bincount(inverse.reshape(-1), weights=all_targets), 1.0)
    return unique, targets.astype("float32")


class LossTargets(NamedTuple):
    """What the loss needs per doc: gold rows (None: unannotated), the valid cells, and
    soft targets of the rows (None: every row is a plain positive)."""

    gold: List[Optional[Any]]
    valid: List[Any]
    targets: Optional[List[Optional[Any]]]


def loss_targets(
    ops: Ops,
    examples: Sequence[Example],
    widths: Sequence[int],
    key: str,
    label_ids: Mapping[str, int],
    counts: Dict[str, int],
    smoothing: float = 0.0,
    distance: int = 1,
) -> LossTargets:
    """Each example's gold rows for a band of widths[b], on the ops' device, with its
    valid cells (no span starts or ends on a whitespace token) and, with smoothing > 0,
    its boundary-smoothed soft targets. Skipped gold spans are counted into counts."""
    gold: List[Optional[Any]] = []
    valid, targets = [], []
    for eg, width in zip(examples, widths):
        rows = gold_rows(eg, key, label_ids, width, counts)
        doc_valid = valid_cells(ops, width, boundary_tokens(eg.predicted))
        doc_targets = None
        if rows is not None and smoothing:
            rows, soft = smooth_boundaries(rows, ops.to_numpy(doc_valid), smoothing, distance)
            doc_targets = ops.asarray1f(soft)
        gold.append(None if rows is None else ops.asarray2i(rows))
        valid.append(doc_valid)
        targets.append(doc_targets)
    return LossTargets(gold, valid, targets if smoothing else None)
