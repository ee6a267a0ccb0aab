"""Span metrics shared by scripts/evaluate.py and the benchmark (bench/run.py): P/R/F on
sets of character-offset spans, overall, per type and against the outermost gold spans,
and recall on nested gold spans.

No imports of sibling modules: it loads as `span_metrics` (a script run from scripts/)
and as `scripts.span_metrics` (the bench, imported from project/) alike.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Sequence, Set, Tuple

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
