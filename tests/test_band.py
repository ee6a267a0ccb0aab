"""Band arithmetic: the cells that may be predicted, against plain loops."""


import numpy
import pytest
import spacy
from gp_testing import naive_soft_loss
from hypothesis import given, settings
from hypothesis import strategies as st
from thinc.api import NumpyOps

from spacy_globalpointer.band import boundary_tokens, span_mask, valid_cells
from spacy_globalpointer.decode import decode_spans
from spacy_globalpointer.loss import global_pointer_loss

OPS = NumpyOps()


def naive_valid(boundary: list, width: int) -> numpy.ndarray:
    n = len(boundary)
    return numpy.array(
        [[i + d < n and boundary[i] and boundary[i + d] for d in range(width)] for i in range(n)],
        dtype=bool,
    ).reshape(n, width)


@settings(max_examples=60, deadline=None)
@given(boundary=st.lists(st.booleans(), max_size=12), width=st.integers(1, 14))
def test_valid_cells_equal_a_plain_loop(boundary, width):
    expected = naive_valid(boundary, width)
    assert numpy.array_equal(valid_cells(OPS, width, numpy.asarray(boundary, dtype=bool)), expected)


def test_valid_cells_of_docs_without_whitespace_are_shared_and_read_only():
    first = valid_cells(OPS, 4, numpy.ones(6, dtype=bool))
    assert first is valid_cells(OPS, 4, numpy.ones(6, dtype=bool))
    assert numpy.array_equal(first, naive_valid([True] * 6, 4))
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0] = False


def test_boundary_tokens_are_the_non_whitespace_tokens():
    nlp = spacy.blank("en")
    doc = nlp("The  Bank\n\nof England ")
    assert [t.text for t in doc] == ["The", " ", "Bank", "\n\n", "of", "England"]
    assert boundary_tokens(doc).tolist() == [True, False, True, False, True, True]
    assert boundary_tokens(nlp("")).shape == (0,)


def test_decoding_never_keeps_a_span_on_whitespace():
    boundary = numpy.array([True, False, True, True, False])
    scores = numpy.full((5, 5, 2), 3.0, dtype="f")  # every span above threshold
    starts, ends, labels, _ = decode_spans(scores, 0.0, valid_cells(OPS, 5, boundary))
    expected = [
        (i, j + 1, a) for i in range(5) for j in range(i, 5) for a in range(2)
        if boundary[i] and boundary[j]
    ]
    assert list(zip(starts.tolist(), ends.tolist(), labels.tolist())) == expected


def masked_naive_loss(scores: numpy.ndarray, gold: set, valid: numpy.ndarray) -> float:
    """gold: {(start, end_inclusive, label)}, each a positive (target 1)."""
    return naive_soft_loss(scores, valid, {(i, j - i, a): 1.0 for i, j, a in gold})


def test_masked_cells_are_neither_positive_nor_negative():
    rng = numpy.random.default_rng(5)
    scores = rng.normal(scale=2, size=(6, 4, 2)).astype("float64")
    valid = valid_cells(OPS, 4, numpy.array([True, False, True, True, True, False]))
    gold = {(0, 3, 1), (2, 4, 0)}
    rows = numpy.asarray([(i, j - i, a) for i, j, a in sorted(gold)], dtype="i")
    loss, grads = global_pointer_loss(OPS, [scores], [rows], [valid])
    assert loss == pytest.approx(masked_naive_loss(scores, gold, valid), rel=1e-9)
    assert not grads[0][~valid].any()
    # finite differences on the valid cells
    eps = 1e-6
    for index in zip(*numpy.nonzero(valid)):
        for a in range(2):
            plus, minus = scores.copy(), scores.copy()
            plus[index + (a,)] += eps
            minus[index + (a,)] -= eps
            numeric = (
                masked_naive_loss(plus, gold, valid) - masked_naive_loss(minus, gold, valid)
            ) / (2 * eps)
            assert grads[0][index + (a,)] == pytest.approx(numeric, abs=1e-5)


def test_a_mask_of_the_wrong_shape_names_it():
    scores = numpy.zeros((3, 2, 1), dtype="f")
    with pytest.raises(ValueError, match=r"valid\[0\] has shape \(3, 3\), expected \(3, 2\)"):
        global_pointer_loss(
            OPS, [scores], [numpy.zeros((0, 3), dtype="i")], [numpy.ones((3, 3), dtype=bool)]
        )


def test_span_mask_marks_real_spans():
    mask = span_mask(NumpyOps(), 3, 2)
    assert mask.tolist() == [[True, True], [True, True], [True, False]]

