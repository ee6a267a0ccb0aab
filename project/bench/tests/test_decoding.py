"""Decoding variants of bench/thresholds.py (decode-variants): flat decoding and per-label
thresholds, on hand-made scored spans."""

import pytest

from bench.thresholds import non_overlapping, per_label_thresholds


def test_non_overlapping_keeps_the_best_scoring_spans_that_share_no_character():
    doc = [
        ((0, 10, "ORG"), 0.9),  # best: taken
        ((5, 10, "LOC"), 0.95),  # better still: taken first, so ORG (0, 10) overlaps it
        ((0, 4, "PER"), 0.8),  # no overlap with (5, 10): taken
        ((10, 15, "LOC"), 0.7),  # touches (5, 10) at 10 but shares no character: taken
        ((12, 20, "ORG"), 0.6),  # overlaps (10, 15): dropped
        ((30, 35, "PER"), 0.4),  # below the threshold
    ]
    assert non_overlapping(doc, 0.5) == {(5, 10, "LOC"), (0, 4, "PER"), (10, 15, "LOC")}
    assert non_overlapping(doc, 0.3) == {(5, 10, "LOC"), (0, 4, "PER"), (10, 15, "LOC"), (30, 35, "PER")}
    assert non_overlapping([], 0.5) == set()


def test_ties_go_to_the_earlier_span():
    assert non_overlapping([((3, 8, "A"), 0.7), ((0, 5, "B"), 0.7)], 0.5) == {(0, 5, "B")}


def test_per_label_thresholds_are_tuned_one_label_at_a_time():
    # A: the gold span scores 0.6 and a wrong one 0.55 -> 0.6 is best (F 1.0 against 0.67).
    # B: the gold span scores 0.3 and nothing else -> the lowest grid value that keeps it.
    scored = [[((0, 2, "A"), 0.6), ((3, 4, "A"), 0.55), ((5, 9, "B"), 0.3)]]
    gold = [{(0, 2, "A"), (5, 9, "B")}]
    grid = [0.2, 0.25, 0.3, 0.5, 0.55, 0.6, 0.7]
    assert per_label_thresholds(scored, gold, grid) == {"A": 0.6, "B": 0.2}


def test_pooled_labels_keep_the_best_label_scored_by_the_sum():
    from bench.thresholds import pooled_labels

    doc = [((0, 5, "ORG"), 0.3), ((0, 5, "LOC"), 0.35), ((7, 9, "PER"), 0.9)]
    pooled = dict(pooled_labels(doc))
    assert set(pooled) == {(0, 5, "LOC"), (7, 9, "PER")}
    assert pooled[(0, 5, "LOC")] == pytest.approx(0.65) and pooled[(7, 9, "PER")] == pytest.approx(0.9)
