"""What a ``global_pointer`` component will make of a corpus: spans per label, span lengths
against the model's ``max_length``, nested and crossing pairs, and the spans training
skips, with a few examples of each problem (the computation behind ``debug-data``, which
reads the corpora and prints the report: :mod:`spacy_globalpointer.debug_data`). Works on
any iterable of ``Example``s and returns a plain dict.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy.tokens import Span
from spacy.training import Example

from .band import span_width
from .gold import SPAN_LENGTH_COVERAGE, aligned_gold, length_report, new_counts

N_EXAMPLES = 5


Extent = Tuple[int, int, str]  # start_char, end_char, label


def overlapping_pairs(extents: Iterable[Extent]) -> Iterator[Tuple[str, Extent, Extent]]:
    """Pairs of distinct non-empty spans that overlap, as ``(kind, a, b)``: ``nested`` (one
    inside the other), ``crossing`` (neither inside the other) or ``same_extent`` (the same
    offsets under two labels)."""
    spans = sorted({e for e in extents if e[1] > e[0]}, key=lambda e: (e[0], -e[1], e[2]))
    for i, a in enumerate(spans):
        # Sorted by start, then longest first: a later span that starts inside this one
        # is either inside it or crosses its end.
        for j in range(i + 1, len(spans)):
            b = spans[j]
            if b[0] >= a[1]:
                break
            if b[:2] == a[:2]:
                yield "same_extent", a, b
            else:
                yield ("nested" if b[1] <= a[1] else "crossing"), a, b


def span_pairs(extents: Sequence[Extent]) -> Dict[str, int]:
    """Counts of :func:`overlapping_pairs` by kind, and ``duplicates``: repeats of a span."""
    non_empty = [e for e in extents if e[1] > e[0]]
    counts = {"nested": 0, "crossing": 0, "same_extent": 0}
    for kind, _, _ in overlapping_pairs(non_empty):
        counts[kind] += 1
    counts["duplicates"] = len(non_empty) - len(set(non_empty))
    return counts


def misaligned_spans(eg: Example, key: str) -> List[Span]:
    """The non-empty reference spans under ``key`` that no span of the predicted tokens
    matches (only when both docs have the same text; else none can be named)."""
    if eg.reference.text != eg.predicted.text:
        return []
    reference = [span for span in eg.reference.spans.get(key, []) if len(span)]
    aligned = eg.get_aligned_spans_y2x(reference, allow_overlap=True)
    found = Counter((s.start_char, s.end_char, s.label_) for s in aligned if len(s))
    missing = []
    for span in reference:
        extent = (span.start_char, span.end_char, span.label_)
        if found[extent]:
            found[extent] -= 1
        else:
            missing.append(span)
    return missing


def describe(doc_index: int, span: Span, tokens: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """A span as a plain dict for the report's examples."""
    out: Dict[str, Any] = {
        "doc": doc_index,
        "start_char": span.start_char,
        "end_char": span.end_char,
        "label": span.label_,
        "text": span.text,
    }
    if tokens is not None:  # the predicted tokens it overlaps, for a misaligned span
        out["tokens"] = list(tokens)
    return out


def _show_skipped(
    doc_index: int, eg: Example, key: str, shown: Dict[str, List[Any]], n_examples: int
) -> None:
    """Add examples of misaligned and whitespace-bounded spans of one doc to ``shown``."""
    misaligned = misaligned_spans(eg, key)
    for span in misaligned[: max(0, n_examples - len(shown["misaligned"]))]:
        overlap = [
            t.text
            for t in eg.predicted
            if t.idx < span.end_char and t.idx + len(t) > span.start_char
        ]
        shown["misaligned"].append(describe(doc_index, span, overlap))
    skip = {(s.start_char, s.end_char) for s in misaligned}
    for span in eg.reference.spans.get(key, []):
        # A token starts with whitespace only if it is a whitespace token.
        bounded = span.text == span.text.strip()
        if len(span) and not bounded and (span.start_char, span.end_char) not in skip:
            if len(shown["whitespace"]) < n_examples:
                shown["whitespace"].append(describe(doc_index, span))


def analyse_corpus(
    examples: Iterable[Example],
    key: str,
    max_length: Optional[int],
    *,
    score_budget: Optional[int] = None,
    n_labels: Optional[int] = None,
    extra_cell_values: int = 0,
    n_examples: int = N_EXAMPLES,
) -> Dict[str, Any]:
    """What training on ``examples`` would see of ``doc.spans[key]``.

    ``skipped`` counts the spans training skips, as the component does; ``too_long`` is
    measured against each doc's scored band (``max_length``, narrowed by ``score_budget``
    for ``n_labels`` labels, default: this corpus's, plus ``extra_cell_values`` values a band
    cell holds beside the labels' scores: band.values_per_cell). Lengths are in predicted
    tokens.
    """
    counts = new_counts()
    labels: Counter = Counter()
    pairs: Counter = Counter()
    lengths: List[int] = []
    doc_lengths: List[Tuple[int, List[int]]] = []
    shown: Dict[str, List[Dict[str, Any]]] = {
        "misaligned": [],
        "whitespace": [],
        "longer_than_max_length": [],
        "crossing": [],
    }
    n_docs = unannotated = without_spans = 0
    for i, eg in enumerate(examples):
        n_docs += 1
        if key not in eg.reference.spans:
            unannotated += 1
            continue
        reference = list(eg.reference.spans[key])
        without_spans += not reference
        labels.update(span.label_ for span in reference)
        before = dict(counts)
        learnable = aligned_gold(eg, key, counts)
        if (
            counts["misaligned"] > before["misaligned"]
            or counts["whitespace"] > before["whitespace"]
        ):
            _show_skipped(i, eg, key, shown, n_examples)
        for span in learnable:
            too_long = max_length is not None and len(span) > max_length
            if too_long and len(shown["longer_than_max_length"]) < n_examples:
                shown["longer_than_max_length"].append(describe(i, span))
        span_lengths = [len(span) for span in learnable]
        lengths.extend(span_lengths)
        doc_lengths.append((len(eg.predicted), span_lengths))
        extents = [(s.start_char, s.end_char, s.label_) for s in reference]
        doc_pairs = span_pairs(extents)
        pairs.update(doc_pairs)
        if doc_pairs["crossing"] and len(shown["crossing"]) < n_examples:
            _, *crossing = next(p for p in overlapping_pairs(extents) if p[0] == "crossing")
            text = eg.reference.text
            pair = [[*extent, text[extent[0] : extent[1]]] for extent in crossing]
            shown["crossing"].append({"doc": i, "spans": pair})
    n_labels = len(labels) if n_labels is None else n_labels
    for n_tokens, span_lengths in doc_lengths:
        # As the model cuts the band of each doc (no budget: max_length alone).
        width = span_width(
            n_tokens, n_labels + extra_cell_values, max_length, score_budget or sys.maxsize
        )
        counts["too_long"] += sum(length > width for length in span_lengths)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report says it; no warning on top
        summary = length_report("debug-data", lengths, counts, max_length, SPAN_LENGTH_COVERAGE)
    return {
        "docs": n_docs,
        "unannotated_docs": unannotated,
        "docs_without_spans": without_spans,
        "spans": sum(labels.values()),
        "labels": dict(labels.most_common()),
        "learnable_spans": len(lengths),
        "length_counts": dict(sorted(Counter(lengths).items())),
        "longest": summary.get("longest", 0),
        "longer_than_max_length": summary.get("longer_than_max_length", 0),
        "suggested_max_length": summary.get("suggested_max_length"),
        "pairs": {
            name: pairs[name] for name in ("nested", "crossing", "same_extent", "duplicates")
        },
        "skipped": dict(counts),
        "examples": shown,
    }
