"""Span metrics shared by scripts/evaluate.py and the benchmark (bench/): P/R/F on
sets of character-offset spans, overall, per type and against the outermost gold spans,
and recall on nested gold spans; and why a system trails: its errors by kind and P/R/F by
span length (`error_breakdown`).

No imports of sibling modules: it loads as `span_metrics` (a script run from scripts/)
and as `scripts.span_metrics` (the bench, imported from project/) alike.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

CharSpan = Tuple[int, int, str]


def char_spans(spans: Iterable[Any]) -> Set[CharSpan]:
    """(start_char, end_char, label) of spaCy spans: character offsets, so gold and
    predicted tokenizations need not agree."""
    return {(s.start_char, s.end_char, s.label_) for s in spans}


def nested_gold(spans: Set[CharSpan]) -> Set[CharSpan]:
    """Gold spans inside, or containing, another gold span."""
    out = set()
    for a in spans:
        for b in spans:
            if a[:2] != b[:2] and (
                (b[0] <= a[0] and a[1] <= b[1]) or (a[0] <= b[0] and b[1] <= a[1])
            ):
                out.add(a)
                break
    return out


def outermost(spans: Set[CharSpan]) -> Set[CharSpan]:
    """Spans not inside another span (what a flat tagger is trained on)."""
    return {a for a in spans if not any(b != a and b[0] <= a[0] and a[1] <= b[1]
                                        and (b[0], b[1]) != (a[0], a[1]) for b in spans)}


def prf(tp: int, n_pred: int, n_gold: int) -> Dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": p, "r": r, "f": f}


def prf_counts(tp: int, n_pred: int, n_gold: int) -> Dict[str, Any]:
    """P/R/F with the counts behind them."""
    return {**prf(tp, n_pred, n_gold), "tp": tp, "predicted": n_pred, "gold": n_gold}


def score_predictions(pred_sets: Sequence[Set[CharSpan]], gold_sets: Sequence[Set[CharSpan]]) -> Dict[str, Any]:
    """P/R/F on character offsets (tokenization-independent), overall, per type, against
    the outermost gold spans, and recall on nested gold spans; one set per doc."""
    tp = n_pred = n_gold = 0
    per_type: Dict[str, List[int]] = {}
    outer = [0, 0, 0]
    nested = [0, 0]
    for pred, gold in zip(pred_sets, gold_sets, strict=True):
        tp += len(pred & gold)
        n_pred += len(pred)
        n_gold += len(gold)
        for label in {s[2] for s in pred | gold}:
            counts = per_type.setdefault(label, [0, 0, 0])
            p_l = {s for s in pred if s[2] == label}
            g_l = {s for s in gold if s[2] == label}
            counts[0] += len(p_l & g_l)
            counts[1] += len(p_l)
            counts[2] += len(g_l)
        gold_outer = outermost(gold)
        outer[0] += len(pred & gold_outer)
        outer[1] += len(pred)
        outer[2] += len(gold_outer)
        n = nested_gold(gold)
        nested[0] += len(n & pred)
        nested[1] += len(n)
    return {
        "overall": prf_counts(tp, n_pred, n_gold),
        "per_type": {label: prf_counts(*c) for label, c in sorted(per_type.items())},
        "outermost": prf_counts(*outer),
        "nested_gold": {"found": nested[0], "spans": nested[1],
                        "recall": nested[0] / nested[1] if nested[1] else None},
    }


# --- error breakdown ---------------------------------------------------------------------

# Kinds of false positive and false negative, in order of precedence: a span is counted once,
# under the first kind that applies. An exact-offset match with another label is the
# strongest evidence of what went wrong, so `type` comes before `boundary`.
FP_KINDS = ("type", "boundary", "boundary_and_type", "spurious")
FN_KINDS = ("type", "boundary", "boundary_and_type", "missed")
# Span length buckets in tokens: (name, shortest, longest), None for no upper bound.
LENGTH_BUCKETS: Tuple[Tuple[str, int, Optional[int]], ...] = (
    ("1-2", 1, 2), ("3-5", 3, 5), ("6-10", 6, 10), ("11-20", 11, 20), ("21+", 21, None),
)
LENGTH_UNITS = {"zh": "characters"}  # every other language: whitespace-separated words


def span_length(text: str, start: int, end: int, lang: str) -> int:
    """A span's length in tokens: characters for Chinese (the corpus's tokens), else
    whitespace-separated words; whitespace is never a token. At least 1, so a span of
    only whitespace still lands in a bucket."""
    piece = text[start:end]
    n = len("".join(piece.split())) if LENGTH_UNITS.get(lang) == "characters" else len(piece.split())
    return max(n, 1)


def length_bucket(n: int) -> str:
    for name, low, high in LENGTH_BUCKETS:
        if n >= low and (high is None or n <= high):
            return name
    raise ValueError(f"span length {n} < 1")


def nesting_roles(gold: Set[CharSpan]) -> Dict[CharSpan, Tuple[bool, bool]]:
    """(inner, outer) of each gold span: inner when another gold span (other offsets)
    contains it, outer when it contains one; a span can be both, or neither (flat)."""
    roles = {}
    for a in gold:
        inner = any(b[:2] != a[:2] and b[0] <= a[0] and a[1] <= b[1] for b in gold)
        outer = any(b[:2] != a[:2] and a[0] <= b[0] and b[1] <= a[1] for b in gold)
        roles[a] = (inner, outer)
    return roles


def role_recall(pred_sets: Sequence[Set[CharSpan]],
                gold_sets: Sequence[Set[CharSpan]]) -> Dict[str, Dict[str, Any]]:
    """Recall of the inner, outer and flat gold spans (nesting_roles): "inner_spans",
    "outer_spans", "flat_spans", each {"recall", "found", "spans"} (recall None without
    spans of the role)."""
    counts = {"inner_spans": [0, 0], "outer_spans": [0, 0], "flat_spans": [0, 0]}
    for pred, gold in zip(pred_sets, gold_sets, strict=True):
        for span, (inner, outer) in nesting_roles(gold).items():
            for role, applies in (("inner_spans", inner), ("outer_spans", outer),
                                  ("flat_spans", not (inner or outer))):
                if applies:
                    counts[role][0] += span in pred
                    counts[role][1] += 1
    return {role: {"recall": found / spans if spans else None, "found": found, "spans": spans}
            for role, (found, spans) in counts.items()}


def _overlaps(a: CharSpan, b: CharSpan) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _error_kind(span: CharSpan, others: Set[CharSpan], unmatched: str) -> str:
    """Why `span` (a prediction, or a gold span) has no exact match in `others` (the gold
    spans, or the predictions): the first kind of FP_KINDS / FN_KINDS that applies."""
    overlapping = [o for o in others if _overlaps(span, o)]
    if any(o[:2] == span[:2] for o in overlapping):
        return "type"  # same offsets; the label differs, since the span is unmatched
    if any(o[2] == span[2] for o in overlapping):
        return "boundary"
    if overlapping:
        return "boundary_and_type"  # only spans of other labels, none at the same offsets
    return unmatched


def error_breakdown(pred_sets: Sequence[Set[CharSpan]], gold_sets: Sequence[Set[CharSpan]],
                    texts: Sequence[str], lang: str) -> Dict[str, Any]:
    """Why a system trails, one set of (start_char, end_char, label) per doc:

    "errors": false positives (predictions without an exact gold match) by kind: `type`
    (a gold span has the same offsets, another label), `boundary` (overlaps a gold span of
    the same label), `boundary_and_type` (overlaps gold spans of other labels only),
    `spurious` (overlaps no gold span); false negatives by the symmetric kinds, `missed`
    for no overlapping prediction. Precedence in that order, one kind per span.

    "by_length": P/R/F per span length bucket (LENGTH_BUCKETS) in tokens of `lang`
    (span_length): precision over the predictions of that length, recall over the gold
    spans of that length (a true positive has the same length on both sides)."""
    fp = dict.fromkeys(FP_KINDS, 0)
    fn = dict.fromkeys(FN_KINDS, 0)
    buckets = {name: [0, 0, 0] for name, _, _ in LENGTH_BUCKETS}  # tp, predicted, gold
    tp = n_pred = n_gold = 0
    for pred, gold, text in zip(pred_sets, gold_sets, texts, strict=True):
        tp += len(pred & gold)
        n_pred += len(pred)
        n_gold += len(gold)
        for span in pred:
            counts = buckets[length_bucket(span_length(text, span[0], span[1], lang))]
            counts[1] += 1
            if span in gold:
                counts[0] += 1
            else:
                fp[_error_kind(span, gold, "spurious")] += 1
        for span in gold:
            buckets[length_bucket(span_length(text, span[0], span[1], lang))][2] += 1
            if span not in pred:
                fn[_error_kind(span, pred, "missed")] += 1
    return {
        "errors": {"tp": tp, "predicted": n_pred, "gold": n_gold,
                   "fp": {"total": n_pred - tp, **fp}, "fn": {"total": n_gold - tp, **fn}},
        "by_length": {"unit": LENGTH_UNITS.get(lang, "words"),
                      "buckets": {name: prf_counts(*c) for name, c in buckets.items()}},
    }
