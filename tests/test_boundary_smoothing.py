"""Boundary smoothing: soft targets around each gold span (Zhu & Li, 2022), adapted to
the multi-label loss. The loss against a naive loop over the formula, the targets against
hand-made examples, and the component setting end to end."""

import numpy
import pytest
import spacy
from gp_testing import NESTED_TRAIN, make_examples, naive_soft_loss, train_pipeline
from thinc.api import NumpyOps

from spacy_globalpointer.gold import smooth_boundaries
from spacy_globalpointer.scoring import _flat_terms, _padded_terms, global_pointer_loss

OPS = NumpyOps()


def _random_case(rng):
    n, width, n_labels = 7, 4, 3
    scores = rng.normal(scale=2, size=(n, width, n_labels))
    valid = (numpy.arange(n)[:, None] + numpy.arange(width)[None, :] < n) & (rng.random((n, width)) > 0.15)
    cells = numpy.argwhere(valid)
    picked = cells[rng.choice(len(cells), size=5, replace=False)]
    rows = numpy.concatenate([picked, rng.integers(0, n_labels, size=(5, 1))], axis=1).astype("i")
    targets = numpy.asarray([1.0, 0.7, 0.05, 0.0, 0.3], dtype="f")
    return scores, valid, rows, targets


def test_soft_loss_and_gradient_match_the_formula():
    rng = numpy.random.default_rng(7)
    for _ in range(5):
        scores, valid, rows, targets = _random_case(rng)
        reference = {tuple(int(v) for v in r): float(t) for r, t in zip(rows, targets)}
        loss, (grad,) = global_pointer_loss(OPS, [scores], [rows], [valid], [targets])
        assert loss == pytest.approx(naive_soft_loss(scores, valid, reference), rel=1e-5)
        eps = 1e-6
        for index in numpy.ndindex(scores.shape):
            plus, minus = scores.copy(), scores.copy()
            plus[index] += eps
            minus[index] -= eps
            numeric = (naive_soft_loss(plus, valid, reference) - naive_soft_loss(minus, valid, reference)) / (2 * eps)
            assert grad[index] == pytest.approx(numeric, abs=1e-5)


def test_flat_and_padded_paths_agree_with_soft_targets():
    rng = numpy.random.default_rng(8)
    scores, valid, rows, targets = [], [], [], []
    for _ in range(4):
        s, v, r, t = _random_case(rng)
        scores.append(s.astype("f"))
        valid.append(v)
        rows.append(r)
        targets.append(t)
    loss_flat, d_flat = _flat_terms(OPS, scores, rows, valid, 3, targets)
    loss_padded, d_padded = _padded_terms(OPS, scores, rows, valid, 3, targets)
    assert loss_flat == pytest.approx(loss_padded, rel=1e-6)
    for a, b in zip(d_flat, d_padded):
        numpy.testing.assert_allclose(a, b, atol=1e-6)


def test_targets_of_one_are_the_hard_loss_bit_for_bit_and_duplicates_keep_the_largest():
    rng = numpy.random.default_rng(9)
    scores, valid, rows, _ = _random_case(rng)
    scores = scores.astype("f")
    hard = global_pointer_loss(OPS, [scores], [rows], [valid])
    soft = global_pointer_loss(OPS, [scores], [rows], [valid], [numpy.ones(len(rows), dtype="f")])
    assert hard[0] == soft[0]
    assert numpy.array_equal(hard[1][0], soft[1][0])
    # The first row twice, with 0.2 and 1.0: it is a plain positive.
    doubled = numpy.concatenate([rows[:1], rows])
    twice = global_pointer_loss(OPS, [scores], [doubled], [valid],
                                [numpy.concatenate([[0.2], numpy.ones(len(rows))]).astype("f")])
    assert twice[0] == hard[0]


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_targets_outside_zero_one_are_refused_with_the_value(bad):
    scores, valid, rows, targets = _random_case(numpy.random.default_rng(10))
    targets[2] = bad
    with pytest.raises(ValueError, match=r"targets\[0\] holds .*must be in \[0, 1\]"):
        global_pointer_loss(OPS, [scores], [rows], [valid], [targets])
    with pytest.raises(ValueError, match="has 4 values for 5 gold rows"):
        global_pointer_loss(OPS, [scores], [rows], [valid], [targets[:4]])


def test_smoothing_spreads_epsilon_over_the_valid_neighbours():
    n, width = 5, 3
    real = numpy.arange(n)[:, None] + numpy.arange(width)[None, :] < n
    # Tokens 1..2 (start 1, offset 1), label 0: its distance-1 neighbours are tokens 0..2,
    # 2..2, 1..1 and 1..3, a quarter of 0.2 each.
    rows, targets = smooth_boundaries(numpy.array([[1, 1, 0]]), real, 0.2, 1)
    got = {tuple(r): round(float(t), 6) for r, t in zip(rows.tolist(), targets)}
    assert got == {(1, 1, 0): 0.8, (0, 2, 0): 0.05, (2, 0, 0): 0.05, (1, 0, 0): 0.05, (1, 2, 0): 0.05}
    # Token 1 a whitespace token (no span starts or ends there): 0..2 and 2..2 remain.
    valid = real.copy()
    valid[1, :] = False
    valid[0, 1] = False
    rows, targets = smooth_boundaries(numpy.array([[2, 0, 1]]), valid, 0.2, 1)
    # Token 2 alone (start 2, offset 0), label 1: 1..2 (starts on 1), 2..1 (empty) and
    # 3..2 (empty) are out; 2..3 stays. All of 0.2 goes there.
    assert {tuple(r): round(float(t), 6) for r, t in zip(rows.tolist(), targets)} == {
        (2, 0, 1): 0.8, (2, 1, 1): 0.2}
    # A one-token doc has no neighbour: the gold span keeps 1.
    rows, targets = smooth_boundaries(numpy.array([[0, 0, 0]]), numpy.ones((1, 1), dtype=bool), 0.3, 2)
    assert rows.tolist() == [[0, 0, 0]] and targets.tolist() == [1.0]
    # Two nested gold spans of one label, each the other's neighbour: targets add up.
    # Token 1 alone has two neighbours (0..1, 1..2), tokens 1..2 four (above).
    rows, targets = smooth_boundaries(numpy.array([[1, 0, 0], [1, 1, 0], [1, 1, 0]]), real, 0.2, 1)
    got = {tuple(r): round(float(t), 6) for r, t in zip(rows.tolist(), targets)}
    assert got[(1, 0, 0)] == 0.85 and got[(1, 1, 0)] == 0.9  # 0.8 + 0.2/4, 0.8 + 0.2/2
    assert got[(0, 1, 0)] == 0.1 and got[(1, 2, 0)] == 0.05  # the duplicate row counted once
    # Capped at 1: in a two-token doc with all three spans gold, each one-token span gives
    # all of its 0.9 to the whole (its one neighbour), which gives half of its 0.9 to each:
    # 0.1 + 0.45 = 0.55 for the halves, 0.1 + 0.9 + 0.9 -> 1 for the whole.
    rows, targets = smooth_boundaries(numpy.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]),
                                      numpy.array([[True, True], [True, False]]), 0.9, 1)
    assert rows.tolist() == [[0, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert targets.tolist() == pytest.approx([0.55, 1.0, 0.55])
    rows, targets = smooth_boundaries(numpy.array([[5, 2, 0]]), numpy.ones((12, 6), dtype=bool), 0.24, 2)
    assert len(rows) == 13 and sorted(targets.tolist())[-1] == pytest.approx(0.76)
    assert targets.sum() == pytest.approx(1.0)


def test_component_trains_with_smoothing_and_refuses_bad_settings(tmp_path):
    nlp, examples = train_pipeline({"boundary_smoothing": 0.1, "boundary_smoothing_distance": 1}, n_updates=60)
    assert nlp.get_pipe("global_pointer").cfg["boundary_smoothing"] == 0.1
    doc = nlp(NESTED_TRAIN[0][0])
    assert [(s.text, s.label_) for s in doc.spans["sc"]] == [
        ("University of Cambridge", "ORG"), ("Cambridge", "GPE"), ("England", "GPE")]
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    assert reloaded.config["components"]["global_pointer"]["boundary_smoothing"] == 0.1
    # The smoothed loss at the same scores is above the hard one (mass off the gold).
    pipe = nlp.get_pipe("global_pointer")
    scores = pipe.model.predict([eg.predicted for eg in make_examples(nlp)])
    smoothed = pipe.get_loss(make_examples(nlp), scores)[0]
    pipe.cfg["boundary_smoothing"] = 0.0
    hard = pipe.get_loss(make_examples(nlp), scores)[0]
    assert smoothed > hard
    pipe.cfg["boundary_smoothing"] = -0.5  # edited on the live component: checked when used
    with pytest.raises(ValueError, match=r"'global_pointer': boundary_smoothing in cfg must be a share"):
        pipe.get_loss(make_examples(nlp), scores)
    for key, value, match in [("boundary_smoothing", 1.0, r"boundary_smoothing .* must be a share in \[0, 1\).*1\.0"),
                              ("boundary_smoothing", "0.1", "boundary_smoothing .* got '0.1'"),
                              ("boundary_smoothing_distance", 0, "boundary_smoothing_distance .* at least 1, got 0")]:
        blank = spacy.blank("en")
        with pytest.raises(ValueError, match=match):
            blank.add_pipe("global_pointer", config={key: value})
