"""Decoding (decode.py): hand-made score arrays, a plain loop over cells, and a batch
decoded a padded chunk at a time against that loop."""

import math
import warnings

import numpy
import pytest
from gp_testing import scores_and_gold, train_pipeline
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_globalpointer.band import BandScores
from spacy_globalpointer.decode import (
    chunk_candidates,
    decode_spans,
    probability_to_logit,
    select_non_overlapping,
)


def test_decode_threshold_nesting_and_order():
    scores = numpy.full((4, 3, 2), -1.0, dtype="f")
    scores[0, 2, 0] = 2.0  # tokens 0..2, label 0
    scores[1, 1, 1] = 0.5  # tokens 1..2, label 1 (nested inside the first)
    scores[1, 1, 0] = 0.2  # same span, second label
    scores[0, 0, 1] = 0.0  # exactly at threshold: not kept
    scores[3, 2, 0] = 9.0  # padding (3 + 2 >= 4): never decoded
    starts, ends, labels, values = decode_spans(scores, threshold=0.0)
    assert list(zip(starts, ends, labels)) == [(0, 3, 0), (1, 3, 0), (1, 3, 1)]
    assert values.tolist() == pytest.approx([2.0, 0.2, 0.5])
    starts, ends, labels, _ = decode_spans(scores, threshold=0.3)
    assert list(zip(starts, ends, labels)) == [(0, 3, 0), (1, 3, 1)]
    assert decode_spans(numpy.zeros((0, 0, 2), dtype="f"), 0.0)[0].size == 0


def test_select_non_overlapping_prefers_higher_scores():
    starts = numpy.array([0, 1, 3, 3])
    ends = numpy.array([3, 3, 4, 4])
    scores = numpy.array([1.0, 2.0, 0.5, 0.7])
    assert select_non_overlapping(starts, ends, scores) == [1, 3]
    assert select_non_overlapping(starts[:0], ends[:0], scores[:0]) == []


@settings(max_examples=60, deadline=None)
@given(scores_and_gold(), st.floats(-5, 5))
def test_decoded_spans_are_valid_unique_ordered_and_above_threshold(data, threshold):
    scores, _ = data
    n, width = scores.shape[:2]
    starts, ends, labels, values = decode_spans(scores, threshold)
    triples = list(zip(starts.tolist(), ends.tolist(), labels.tolist()))
    assert triples == sorted(set(triples))
    for (s, e, a), v in zip(triples, values):
        assert 0 <= s < e <= n and e - s <= width
        assert v > threshold and v == scores[s, e - s - 1, a]
    # nothing above threshold is missed
    expected = sum(
        1 for i in range(n) for d in range(width) for a in range(scores.shape[2]) if i + d < n and scores[i, d, a] > threshold
    )
    assert len(triples) == expected


TEXTS = [
    "The University of Cambridge is in England.",
    "Bank of  England raised rates in New York City today.",
    "",
    "Apple.",
    "Apple opened an office in New York City.\n\nThe Bank of England too.",
    "Nothing  to see here.",
]


def _naive_spans(doc, scores, logit_threshold):
    """A loop over every cell: a span (i, i + d) of label a is kept where it is real,
    scores above the threshold, and neither starts nor ends on a whitespace token."""
    n, width, n_labels = scores.shape
    return [
        (i, i + d + 1, a)
        for i in range(n)
        for d in range(width)
        for a in range(n_labels)
        if i + d < n
        and not doc[i].is_space
        and not doc[i + d].is_space
        and scores[i, d, a] > logit_threshold
    ]


@pytest.fixture(scope="module")
def trained():
    nlp, _ = train_pipeline({"model": {"max_length": 4}}, n_updates=40)
    return nlp, nlp.get_pipe("global_pointer")


@pytest.mark.parametrize("threshold", [0.5, 0.02, 0.9])
def test_chunked_and_per_doc_decoding_give_the_naive_spans(trained, threshold):
    nlp, pipe = trained
    pipe.cfg["threshold"] = threshold
    docs = [nlp.make_doc(text) for text in TEXTS]
    scores = pipe.predict(docs)
    assert isinstance(scores, BandScores) and scores.intact()
    # Several docs share a chunk with rows of other lengths and widths.
    assert any(len(indices) > 1 for _, indices in scores.chunks)
    chunked = [nlp.make_doc(text) for text in TEXTS]
    per_doc = [nlp.make_doc(text) for text in TEXTS]
    pipe.set_annotations(chunked, scores)
    pipe.set_annotations(per_doc, list(scores))  # a plain list: doc by doc
    logit = probability_to_logit(threshold)
    n_found = 0
    for k, (a, b) in enumerate(zip(chunked, per_doc)):
        expected = _naive_spans(a, numpy.asarray(scores[k]), logit)
        n_found += len(expected)
        got_a = [(s.start, s.end, pipe.labels.index(s.label_)) for s in a.spans["sc"]]
        got_b = [(s.start, s.end, pipe.labels.index(s.label_)) for s in b.spans["sc"]]
        assert got_a == got_b == expected
        probabilities = [1 / (1 + math.exp(-float(scores[k][s, e - s - 1, label]))) for s, e, label in expected]
        numpy.testing.assert_allclose(a.spans["sc"].attrs["scores"], probabilities, rtol=1e-6)
        assert numpy.array_equal(a.spans["sc"].attrs["scores"], b.spans["sc"].attrs["scores"])
    assert n_found  # the case exercises spans, not only empty groups


def test_a_replaced_item_is_decoded_from_its_new_values(trained):
    nlp, pipe = trained
    pipe.cfg["threshold"] = 0.5
    docs = [nlp.make_doc(text) for text in TEXTS]
    scores = pipe.predict(docs)
    replaced = numpy.full_like(numpy.asarray(scores[0]), -20.0)
    replaced[1, 2, 0] = 20.0  # "University of Cambridge"
    scores[0] = replaced
    assert not scores.intact()
    pipe.set_annotations(docs, scores)
    assert [(s.start, s.end, s.label_) for s in docs[0].spans["sc"]] == [(1, 4, pipe.labels[0])]


def test_non_finite_scores_are_counted_as_doc_by_doc(trained):
    nlp, pipe = trained
    pipe.cfg["threshold"] = 0.5
    docs = [nlp.make_doc(text) for text in TEXTS]
    scores = pipe.predict(docs)
    scores[1][0, 0, 0] = numpy.nan  # in place: the chunk's memory
    scores[4][2, 1, 1] = numpy.inf
    for decoded in (scores, list(scores)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipe.set_annotations([nlp.make_doc(text) for text in TEXTS], decoded)
        assert [str(w.message).split(" span score")[0] for w in caught] == ["'global_pointer': 2"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7), st.integers(1, 4)), min_size=1, max_size=4),
    st.floats(-1.0, 1.0),
    st.integers(0, 2**32 - 1),
)
def test_chunk_candidates_are_the_real_cells_above_threshold(docs, threshold, seed):
    rng = numpy.random.default_rng(seed)
    lengths = [n for n, _ in docs]
    widths = [min(n, w) for n, w in docs]
    chunk = rng.standard_normal((len(docs), max(lengths + [1]), max(widths + [1]), 3)).astype("f")
    above = numpy.flatnonzero(chunk > threshold)
    rows, starts, offsets, labels, values = chunk_candidates(chunk, above, lengths, widths)
    expected = [
        (b, i, d, a)
        for b in range(len(docs))
        for i in range(lengths[b])
        for d in range(widths[b])
        for a in range(3)
        if i + d < lengths[b] and chunk[b, i, d, a] > threshold
    ]
    assert list(zip(rows.tolist(), starts.tolist(), offsets.tolist(), labels.tolist())) == expected
    assert values.tolist() == [chunk[cell] for cell in expected]
