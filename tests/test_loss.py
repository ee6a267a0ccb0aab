"""The multi-label loss and its gradient (loss.py) against naive references, finite
differences and hand-made gold, hard and soft targets."""

import math

import numpy
import pytest
from gp_testing import naive_soft_loss, scores_and_gold
from hypothesis import given, settings
from hypothesis import strategies as st
from thinc.api import NumpyOps

from spacy_globalpointer.loss import _flat_terms, _padded_terms, global_pointer_loss

OPS = NumpyOps()


def naive_loss(scores: numpy.ndarray, gold: set) -> float:
    """Sum over labels of log(1 + sum_P e^-s) + log(1 + sum_Q e^s), looping over i, j, a.

    scores: banded (n, width, labels); gold: {(start, end_inclusive, label)}.
    """
    n, width, n_labels = scores.shape
    total = 0.0
    for a in range(n_labels):
        pos = neg = 0.0
        for i in range(n):
            for j in range(i, min(n, i + width)):
                s = float(scores[i, j - i, a])
                if (i, j, a) in gold:
                    pos += math.exp(-s)
                else:
                    neg += math.exp(s)
        total += math.log1p(pos) + math.log1p(neg)
    return total


def as_rows(gold: set) -> numpy.ndarray:
    return numpy.asarray([(i, j - i, a) for i, j, a in sorted(gold)], dtype="i").reshape(-1, 3)


def test_loss_equals_naive_reference_on_random_batch():
    rng = numpy.random.default_rng(0)
    shapes = [(5, 5, 3), (7, 3, 3), (1, 1, 3), (4, 4, 3)]
    golds = [{(0, 2, 1), (1, 1, 0), (0, 4, 2)}, {(2, 4, 0), (6, 6, 1)}, set(), {(3, 3, 2)}]
    scores = [rng.normal(scale=3, size=s).astype("f") for s in shapes]
    loss, _ = global_pointer_loss(OPS, scores, [as_rows(g) for g in golds])
    expected = sum(naive_loss(s, g) for s, g in zip(scores, golds))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_loss_gradient_matches_finite_differences():
    rng = numpy.random.default_rng(1)
    scores = [rng.normal(size=(6, 4, 2)), rng.normal(size=(3, 3, 2))]
    gold = [as_rows({(0, 3, 1), (2, 2, 0), (2, 3, 0)}), as_rows({(1, 2, 1)})]
    _, grads = global_pointer_loss(OPS, scores, gold)
    eps = 1e-6
    for b, s in enumerate(scores):
        for index in numpy.ndindex(s.shape):
            plus = [x.copy() for x in scores]
            minus = [x.copy() for x in scores]
            plus[b][index] += eps
            minus[b][index] -= eps
            numeric = (global_pointer_loss(OPS, plus, gold)[0] - global_pointer_loss(OPS, minus, gold)[0]) / (2 * eps)
            assert grads[b][index] == pytest.approx(numeric, abs=1e-5)


def test_padding_gets_no_gradient_and_unannotated_docs_are_skipped():
    scores = [numpy.full((3, 3, 1), 5.0, dtype="f"), numpy.full((2, 2, 1), 5.0, dtype="f")]
    loss, grads = global_pointer_loss(OPS, scores, [as_rows({(0, 0, 0)}), None])
    # the three band cells with i + d >= n are padding
    assert grads[0][2, 1, 0] == grads[0][2, 2, 0] == grads[0][1, 2, 0] == 0
    assert not grads[1].any()
    assert loss == pytest.approx(naive_loss(scores[0], {(0, 0, 0)}), rel=1e-6)


def test_loss_is_finite_for_empty_docs_no_gold_and_extreme_scores():
    scores = [
        numpy.zeros((0, 0, 2), dtype="f"),
        numpy.full((4, 4, 2), 1e4, dtype="f"),
        numpy.full((4, 4, 2), -1e4, dtype="f"),
    ]
    gold = [as_rows(set()), as_rows(set()), as_rows({(0, 3, 0)})]
    loss, grads = global_pointer_loss(OPS, scores, gold)
    assert math.isfinite(loss) and all(numpy.isfinite(g).all() for g in grads)
    # all-negative doc with huge positive scores: loss ~ log(sum e^s) = 1e4 + log(#spans)
    assert loss == pytest.approx(2 * (1e4 + math.log(10)) + 1e4, rel=1e-4)
    assert global_pointer_loss(OPS, [], [])[0] == 0.0


@settings(max_examples=60, deadline=None)
@given(scores_and_gold())
def test_loss_is_finite_non_negative_and_matches_reference(data):
    scores, gold = data
    loss, grads = global_pointer_loss(OPS, [scores], [as_rows(gold)])
    assert math.isfinite(loss) and loss >= 0
    assert numpy.isfinite(grads[0]).all()
    assert loss == pytest.approx(naive_loss(scores.astype("float64"), gold), rel=1e-4, abs=1e-4)


def test_loss_all_masked_batch_is_zero_with_zero_gradients():
    scores = [numpy.zeros((0, 0, 2), dtype="f"), numpy.full((3, 3, 2), 7.0, dtype="f"), numpy.zeros((0, 0, 2), dtype="f")]
    loss, grads = global_pointer_loss(OPS, scores, [as_rows(set()), None, None])
    assert loss == 0.0
    assert [g.shape for g in grads] == [(0, 0, 2), (3, 3, 2), (0, 0, 2)]
    assert not any(g.any() for g in grads)


@pytest.mark.parametrize("value", [-1e4, -3.0, 0.0, 3.0, 1e4])
def test_loss_with_only_positives(value):
    n, width, n_labels = 4, 3, 2
    scores = numpy.full((n, width, n_labels), value, dtype="f")
    gold = {(i, j, a) for i in range(n) for j in range(i, min(n, i + width)) for a in range(n_labels)}
    loss, grads = global_pointer_loss(OPS, [scores], [as_rows(gold)])
    n_spans = len(gold) // n_labels  # 9 real spans per label
    # no negatives: per label log(1 + n e^-s), computed stably
    expected = n_labels * (numpy.logaddexp(0.0, -value + math.log(n_spans)))
    assert math.isfinite(loss) and loss == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert numpy.isfinite(grads[0]).all()
    valid = numpy.arange(n)[:, None] + numpy.arange(width)[None, :] < n
    assert (grads[0][valid] <= 0).all() and not grads[0][~valid].any()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_extreme_scores_any_precision_match_float64_reference(dtype):
    rng = numpy.random.default_rng(3)
    scores = rng.choice([-1e4, 1e4, -2.0, 0.5], size=(6, 4, 2)).astype(dtype)
    gold = {(0, 0, 0), (1, 3, 1), (2, 2, 0), (5, 5, 1)}
    loss, grads = global_pointer_loss(OPS, [scores], [as_rows(gold)])
    assert math.isfinite(loss) and numpy.isfinite(grads[0]).all()
    assert grads[0].dtype == numpy.result_type(dtype, numpy.float32)
    reference = naive_loss_stable(scores.astype("float64"), gold)
    assert loss == pytest.approx(reference, rel=1e-6)


def naive_loss_stable(scores: numpy.ndarray, gold: set) -> float:
    """naive_loss with log-sum-exp over Python lists, for scores where exp overflows."""
    n, width, n_labels = scores.shape
    total = 0.0
    for a in range(n_labels):
        pos, neg = [0.0], [0.0]
        for i in range(n):
            for j in range(i, min(n, i + width)):
                s = float(scores[i, j - i, a])
                (pos.append(-s) if (i, j, a) in gold else neg.append(s))
        total += float(numpy.logaddexp.reduce(pos)) + float(numpy.logaddexp.reduce(neg))
    return total


def test_float16_loss_keeps_float32_precision():
    """Summed in float16, 2e4 + 12 would round to a multiple of 16."""
    scores = numpy.full((4, 4, 2), 1e4, dtype="float16")
    gold = {(0, 0, 1)}
    loss, _ = global_pointer_loss(OPS, [scores], [as_rows(gold)])
    assert loss == pytest.approx(naive_loss_stable(scores.astype("float64"), gold), rel=1e-6)
    assert abs(loss - 2e4) > 1  # not rounded to float16's spacing


@st.composite
def batches(draw):
    """Docs with random scores in a random float type, gold with duplicates, some unannotated."""
    dtype = draw(st.sampled_from(["float16", "float32", "float64"]))
    n_labels = draw(st.integers(1, 3))
    docs = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(0, 6))
        width = draw(st.integers(1, n)) if n else 0
        values = draw(st.lists(st.sampled_from([-1e4, -8.0, -1.0, 0.0, 0.5, 3.0, 1e4]), min_size=n * width * n_labels, max_size=n * width * n_labels))
        scores = numpy.asarray(values, dtype=dtype).reshape(n, width, n_labels)
        if draw(st.booleans()) and n:
            rows = []
            for _ in range(draw(st.integers(0, 5))):
                i = draw(st.integers(0, n - 1))
                rows.append((i, draw(st.integers(i, min(n - 1, i + width - 1))), draw(st.integers(0, n_labels - 1))))
            docs.append((scores, rows + rows[:1]))  # a duplicate when there is a span
        else:
            docs.append((scores, None if draw(st.booleans()) else []))
    return docs


@settings(max_examples=60, deadline=None)
@given(batches())
def test_batch_loss_with_duplicates_and_unannotated_docs_equals_reference(docs):
    scores = [s for s, _ in docs]
    gold = [None if rows is None else numpy.asarray([(i, j - i, a) for i, j, a in rows], dtype="i").reshape(-1, 3) for _, rows in docs]
    loss, grads = global_pointer_loss(OPS, scores, gold)
    expected = sum(naive_loss_stable(s.astype("float64"), set(rows)) for s, rows in docs if rows is not None)
    assert math.isfinite(loss) and loss >= 0
    assert loss == pytest.approx(expected, rel=1e-5, abs=1e-5)
    for (s, rows), g in zip(docs, grads):
        assert g.shape == s.shape and numpy.isfinite(g).all()
        if rows is None:
            assert not g.any()


def test_flat_and_padded_loss_paths_agree():
    """The numpy path (one flat array, sparse positives) and the padded one (CuPy's) give
    the same loss and gradients, with masked cells, duplicates and gold on masked cells."""
    from spacy_globalpointer.loss import _flat_terms, _padded_terms

    rng = numpy.random.default_rng(4)
    for _ in range(30):
        n_labels = int(rng.integers(1, 5))
        scores, gold, cells = [], [], []
        for _ in range(int(rng.integers(1, 6))):
            n = int(rng.integers(1, 30))
            width = int(rng.integers(1, n + 1))
            scores.append(rng.normal(scale=4, size=(n, width, n_labels)).astype("f"))
            real = numpy.arange(n)[:, None] + numpy.arange(width)[None, :] < n
            cells.append(real & (rng.random((n, width)) > 0.2))
            rows = []
            for _ in range(int(rng.integers(0, 5))):
                i = int(rng.integers(0, n))
                rows.append((i, int(rng.integers(0, min(width, n - i))), int(rng.integers(0, n_labels))))
            gold.append(numpy.asarray(rows + rows[:1], dtype="i").reshape(-1, 3))
        loss_flat, d_flat = _flat_terms(OPS, scores, gold, cells, n_labels)
        loss_padded, d_padded = _padded_terms(OPS, scores, gold, cells, n_labels)
        assert loss_flat == pytest.approx(loss_padded, rel=1e-6)
        for a, b in zip(d_flat, d_padded):
            assert a.shape == b.shape
            numpy.testing.assert_allclose(a, b, atol=1e-5)


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
