"""Decisions on a trained model's scored spans, chosen on dev only: the decision threshold
(`tune-threshold`, threshold.json) and other decodings of global_pointer's scores
(`decode-variants`, decoding.json: per-label thresholds, non-overlapping spans for flat
data). No retraining: the same scores, decided differently."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

from bench import registry
from bench.common import SPANS_KEY, code_version, read_json, set_threads, write_json
from bench.corpus import corpus_paths, load_gold
from bench.records import FLAT_DECODING
from scripts.span_metrics import CharSpan, nested_gold, score_predictions

# Grids for the systems whose spans carry a probability. global_pointer's is the sigmoid
# of the span logit -3..1 in steps of 0.25 (the grid of the runs before 0.2.0, when its
# threshold was a logit: the results from then record logits); spancat's is 0.1..0.9.
THRESHOLD_GRIDS = {
    "global_pointer": [round(1 / (1 + math.exp(3.0 - 0.25 * i)), 4) for i in range(17)],
    "spancat": [round(0.1 + 0.05 * i, 2) for i in range(17)],
}


def _scored_spans(nlp: Any, texts: Sequence[str]) -> List[List[Tuple[CharSpan, float]]]:
    out = []
    for doc in nlp.pipe(texts, batch_size=256):
        group = doc.spans.get(SPANS_KEY, [])
        scores = group.attrs.get("scores", []) if len(group) else []
        out.append([((s.start_char, s.end_char, s.label_), float(v)) for s, v in zip(group, scores, strict=True)])
    return out


def _above(scored: Sequence[List[Tuple[CharSpan, float]]], threshold: float) -> List[set]:
    return [{span for span, score in doc if score >= threshold} for doc in scored]


def pick_threshold(scored: Sequence[List[Tuple[CharSpan, float]]], gold: Sequence[set],
                   grid: Sequence[float]) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The grid row (threshold and scores) with the best F1, the lowest threshold of equals,
    and the F1 curve over the grid."""
    curve = [{"threshold": t, **score_predictions(_above(scored, t), gold)["overall"]} for t in grid]
    return max(curve, key=lambda row: (row["f"], -row["threshold"])), curve


Scored = List[List[Tuple[CharSpan, float]]]


def scored_dev_and_heldout(run_dir: Path, pipe_name: str, dataset: str, corpus_dir: Path,
                           grid: Sequence[float]) -> Tuple[float, Tuple[Scored, List[set]], Tuple[Scored, List[set]]]:
    """The run's best model's spans with their scores on dev and the held-out split, every
    span the grid can select (the pipe's threshold lowered below the grid), with the gold;
    and the pipe's own threshold."""
    import spacy

    nlp = spacy.load(run_dir / "model-best")
    pipe = nlp.get_pipe(pipe_name)
    default = float(pipe.cfg["threshold"])
    pipe.cfg["threshold"] = min(grid) - 1e-6
    spec = registry.dataset(dataset)
    paths = corpus_paths(corpus_dir)
    dev_texts, dev_gold = load_gold(paths["dev"], spec.lang)
    test_texts, test_gold = load_gold(paths[spec.heldout], spec.lang)
    return default, (_scored_spans(nlp, dev_texts), dev_gold), (_scored_spans(nlp, test_texts), test_gold)


def tune_threshold(run_dir: Path, corpus_dir: Path, threads: int = 1) -> Dict[str, Any]:
    """Pick the decision threshold that maximises dev F1 on the run's best checkpoint and
    score the held-out split with it; writes threshold.json beside result.json. Tuning
    on dev only: the held-out split is scored once per grid value but never chooses."""
    set_threads(threads)

    import bench.crf_component  # noqa: F401

    result = read_json(run_dir / "result.json")
    family = registry.threshold_family(result["system"])
    if family is None:
        raise ValueError(f"system {result['system']!r} has no span scores to threshold")
    grid = THRESHOLD_GRIDS[family]
    default, (dev_scored, dev_gold), (test_scored, test_gold) = scored_dev_and_heldout(
        run_dir, family, result["dataset"], corpus_dir, grid)
    best, dev_curve = pick_threshold(dev_scored, dev_gold, grid)
    tuned = score_predictions(_above(test_scored, best["threshold"]), test_gold)
    at_default = score_predictions(_above(test_scored, default), test_gold)
    o, d = tuned["overall"], at_default["overall"]
    print(f"{run_dir}: dev-best threshold {best['threshold']} (dev F {best['f']:.4f}); held-out F "
          f"{o['f']:.4f} (P {o['p']:.4f} R {o['r']:.4f}) against {d['f']:.4f} at the default {default}")
    out = {"default_threshold": default, "grid": grid, "dev_curve": dev_curve,
           "best_threshold": best["threshold"], "best_dev_f": best["f"],
           "test_tuned": tuned, "test_default": at_default, "code": code_version()}
    write_json(run_dir / "threshold.json", out)
    return out


def non_overlapping(doc: Sequence[Tuple[CharSpan, float]], threshold: float) -> set:
    """Flat decoding: of the spans at or above threshold, the best-scoring ones that share
    no character, greedily by score (ties: the earlier span), as the component's
    annotate_ents does on tokens."""
    taken: List[Tuple[int, int]] = []
    chosen = set()
    ranked = sorted((item for item in doc if item[1] >= threshold), key=lambda item: (-item[1], item[0]))
    for span, _ in ranked:
        if all(span[1] <= start or end <= span[0] for start, end in taken):
            taken.append((span[0], span[1]))
            chosen.add(span)
    return chosen


def pooled_labels(doc: Sequence[Tuple[CharSpan, float]]) -> List[Tuple[CharSpan, float]]:
    """One candidate per (start, end): its best label, scored by the sum of its labels'
    probabilities, so that a span the model is sure is an entity but unsure of which type
    can still pass (flat data: a span has at most one label)."""
    by_offsets: Dict[Tuple[int, int], List[Tuple[CharSpan, float]]] = {}
    for span, score in doc:
        by_offsets.setdefault((span[0], span[1]), []).append((span, score))
    return [(max(items, key=lambda item: item[1])[0], sum(score for _, score in items))
            for items in by_offsets.values()]


def per_label_thresholds(scored: Sequence[List[Tuple[CharSpan, float]]], gold: Sequence[set],
                         grid: Sequence[float]) -> Dict[str, float]:
    """Each label's threshold: the grid value with its best dev F1 (lowest of equals); a
    label's spans pass or fail on their own, so the labels are tuned one at a time."""
    labels = sorted({span[2] for doc in gold for span in doc} | {span[2] for doc in scored for span, _ in doc})
    chosen = {}
    for label in labels:
        only = [[item for item in doc if item[0][2] == label] for doc in scored]
        gold_l = [{span for span in doc if span[2] == label} for doc in gold]
        best, _ = pick_threshold(only, gold_l, grid)
        chosen[label] = best["threshold"]
    return chosen


def _above_per_label(scored: Sequence[List[Tuple[CharSpan, float]]], thresholds: Dict[str, float],
                     default: float) -> List[set]:
    return [{span for span, score in doc if score >= thresholds.get(span[2], default)} for doc in scored]


def decode_variants(run_dir: Path, corpus_dir: Path, threads: int = 1) -> Dict[str, Any]:
    """Score one trained global_pointer model with other decodings, chosen on dev only:
    the plain threshold (default and dev-tuned), per-label thresholds tuned on dev, and,
    on flat data, non-overlapping decoding (best-scoring spans that share no character).
    Writes decoding.json beside result.json (no retraining: the same scores)."""
    set_threads(threads)

    result = read_json(run_dir / "result.json")
    if registry.threshold_family(result["system"]) != "global_pointer":
        raise ValueError(f"system {result['system']!r} is not a global_pointer system")
    grid = THRESHOLD_GRIDS["global_pointer"]
    default, (dev_scored, dev_gold), (test_scored, test_gold) = scored_dev_and_heldout(
        run_dir, "global_pointer", result["dataset"], corpus_dir, grid)
    best, _ = pick_threshold(dev_scored, dev_gold, grid)
    labels = per_label_thresholds(dev_scored, dev_gold, grid)
    variants: Dict[str, Dict[str, Any]] = {}

    def add(name: str, setting: Any, decode: Callable[[Sequence[List[Tuple[CharSpan, float]]]], List[set]]) -> None:
        variants[name] = {
            "setting": setting,
            "dev": score_predictions(decode(dev_scored), dev_gold)["overall"],
            "test": score_predictions(decode(test_scored), test_gold),
        }

    add("threshold_default", default, lambda sc: _above(sc, default))
    add("threshold_dev_tuned", best["threshold"], lambda sc: _above(sc, best["threshold"]))
    add("per_label_dev_tuned", labels, lambda sc: _above_per_label(sc, labels, default))
    # Flat decoding is a choice for flat data only (no gold span of dev nests in another).
    if not any(nested_gold(doc) for doc in dev_gold):
        add(FLAT_DECODING, default, lambda sc: [non_overlapping(d, default) for d in sc])
        add("non_overlapping_dev_tuned", best["threshold"],
            lambda sc: [non_overlapping(d, best["threshold"]) for d in sc])
        pooled_dev = [pooled_labels(d) for d in dev_scored]
        pooled_best, _ = pick_threshold(pooled_dev, dev_gold, grid)

        def pooled(sc: Sequence[List[Tuple[CharSpan, float]]]) -> List[set]:
            return [non_overlapping(pooled_labels(d), pooled_best["threshold"]) for d in sc]

        add("pooled_labels_non_overlapping_dev_tuned", pooled_best["threshold"], pooled)
    for name, row in variants.items():
        print(f"{run_dir} {name:28} dev F {row['dev']['f']:.4f} | held-out F {row['test']['overall']['f']:.4f}")
    out = {"variants": variants, "code": code_version()}
    write_json(run_dir / "decoding.json", out)
    return out
