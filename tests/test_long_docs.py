"""Span-width bound, banded computation and the score budget for long documents."""

import warnings

import numpy
import pytest
import spacy
from gp_testing import NESTED_TRAIN, make_examples, train_pipeline
from thinc.api import NumpyOps, noop

from spacy_globalpointer import band as band_module
from spacy_globalpointer.architectures import build_global_pointer
from spacy_globalpointer.band import SMALL_CHUNK, chunk_docs, span_width
from spacy_globalpointer.loss import global_pointer_loss
from spacy_globalpointer.model import build_head_layers

OPS = NumpyOps()


def _heads(widths, n_in=6, n_labels=2, efficient=False):
    """Heads sharing one torch module, differing only in max_length."""
    heads = []
    for max_length in widths:
        model = build_global_pointer(noop(), nO=n_labels, head_width=8, efficient=efficient, max_length=max_length)
        head = model.get_ref("head")
        head.set_dim("nI", n_in)
        if heads:
            head._layers[:] = heads[0].layers  # same weights
        else:
            build_head_layers(head)
        heads.append(head)
    return heads


@pytest.mark.parametrize("efficient", [False, True])
@pytest.mark.parametrize("width", [1, 3, None])
def test_banded_equals_full_scores_loss_and_gradients(width, efficient):
    rng = numpy.random.default_rng(0)
    X = [rng.normal(size=(n, 6)).astype("f") for n in (7, 2, 5)]
    full, banded = _heads([None, width], efficient=efficient)
    Y_full, backprop_full = full.begin_update(X)
    Y_band, backprop_band = banded.begin_update(X)
    spans = ([(0, 0, 1), (2, 1, 0), (1, 3, 1)], [(1, 0, 0)], [])
    # gold inside the band only: the component skips (and counts) the rest
    gold = [
        numpy.asarray([r for r in rows if r[1] < y.shape[1]], dtype="i").reshape(-1, 3)
        for rows, y in zip(spans, Y_band)
    ]
    for y_full, y_band in zip(Y_full, Y_band):
        w = y_band.shape[1]
        assert w == (y_full.shape[1] if width is None else min(width, y_full.shape[0]))
        numpy.testing.assert_allclose(y_band, y_full[:, :w], atol=1e-5)
    # The loss on the band equals the loss on the full scores restricted to the band:
    # spans outside it are left out by giving them -inf scores (no negative mass).
    restricted = []
    for y_full, y_band in zip(Y_full, Y_band):
        r = numpy.full_like(y_full, -numpy.inf)
        r[:, : y_band.shape[1]] = y_full[:, : y_band.shape[1]]
        restricted.append(r)
    loss_band, d_band = global_pointer_loss(OPS, Y_band, gold)
    loss_full, d_full = global_pointer_loss(OPS, restricted, gold)
    assert loss_band == pytest.approx(loss_full, rel=1e-5)
    for db, df in zip(d_band, d_full):
        numpy.testing.assert_allclose(db, df[:, : db.shape[1]], atol=1e-6)
        assert not df[:, db.shape[1] :].any()
    # and the gradients reaching the encoder agree
    for dx_band, dx_full in zip(backprop_band(d_band), backprop_full(d_full)):
        numpy.testing.assert_allclose(dx_band, dx_full, atol=1e-5)


def test_span_width_and_budget():
    assert span_width(100, 5, None, 10**9) == 100
    assert span_width(100, 5, 8, 10**9) == 8
    assert span_width(5, 5, 8, 10**9) == 5
    assert span_width(0, 5, 8, 10**9) == 0
    # 1000 tokens x 5 labels under a budget of 50,000 scores: width 10
    assert span_width(1000, 5, None, 50_000) == 10
    assert span_width(10**6, 5, None, 50_000) == 1  # never below one token


def test_chunks_cover_each_nonempty_doc_once_within_budget(monkeypatch):
    lengths = [5, 0, 300, 12, 7, 300, 1]
    widths = [span_width(n, 2, 16, 20_000) for n in lengths]
    chunks = chunk_docs(lengths, widths, 2, 20_000)
    flat = sorted(i for chunk in chunks for i in chunk)
    assert flat == [0, 2, 3, 4, 5, 6]
    for chunk in chunks:
        longest = max(lengths[i] for i in chunk)
        padded = len(chunk) * longest * max(widths[i] for i in chunk) * 2
        assert padded <= 20_000 or len(chunk) == 1
        # docs at least 3/4 of the longest, but for chunks too small to be worth a call
        assert all(4 * lengths[i] >= 3 * longest for i in chunk) or padded <= SMALL_CHUNK
    assert [sorted(c) for c in chunks] == [[2, 5], [0, 3, 4, 6]]
    # without the small-chunk exemption: a new chunk below 3/4 of the longest's length
    with monkeypatch.context() as patch:
        patch.setattr(band_module, "SMALL_CHUNK", 0)
        chunks = chunk_docs(lengths, widths, 2, 20_000)
    assert [sorted(c) for c in chunks] == [[2, 5], [3], [4], [0], [6]]
    lengths = [100, 76, 75, 74, 56, 55]
    widths = [span_width(n, 2, 16, 20_000) for n in lengths]
    with monkeypatch.context() as patch:
        patch.setattr(band_module, "SMALL_CHUNK", 0)
        chunks = chunk_docs(lengths, widths, 2, 10**6)
    assert [sorted(c) for c in chunks] == [[0, 1, 2], [3, 4], [5]]  # 75 >= 75, 56 >= 55.5


def test_long_doc_under_small_budget_matches_region_processed_whole(trained_nlp):
    nlp, _ = trained_nlp
    gp = nlp.get_pipe("global_pointer")
    sentences = [text for text, _ in NESTED_TRAIN if text]
    long_text = " ".join(sentences * 200)
    long_doc = nlp.make_doc(long_text)
    assert len(long_doc) > 5000
    head = gp.model.get_ref("head")
    budget = head.attrs["score_budget"]
    head.attrs["score_budget"] = len(long_doc) * 5 * len(gp.labels)  # a band of 5 tokens
    try:
        with pytest.warns(UserWarning, match="score_budget"):
            scores = gp.predict([long_doc])
        assert scores[0].shape == (len(long_doc), 5, len(gp.labels))
        gp.set_annotations([long_doc], scores)
    finally:
        head.attrs["score_budget"] = budget
    # a region in the middle, short enough to be scored whole as its own doc
    middle = len(long_doc) // 2
    region = long_doc[middle - 100 : middle + 100]
    region_doc = nlp(region.text)
    # the CNN encoder sees 4 tokens either side: compare spans away from the region edges
    margin = 8

    def inner(spans, offset):
        return [
            (s.start - offset, s.end - offset, s.label_, round(float(v), 4))
            for s, v in zip(spans, spans.attrs["scores"])
            if margin <= s.start - offset and s.end - offset <= len(region) - margin
        ]

    from_long = [t for t in inner(long_doc.spans["sc"], region.start) if 0 <= t[0] < len(region)]
    # window semantics: in the long doc only spans of up to 5 tokens are scored
    from_region = [t for t in inner(region_doc.spans["sc"], 0) if t[1] - t[0] <= 5]
    assert from_region and [t[:3] for t in from_long] == [t[:3] for t in from_region]
    numpy.testing.assert_allclose([t[3] for t in from_long], [t[3] for t in from_region], atol=1e-3)


def test_gold_spans_longer_than_max_length_are_reported_and_skipped():
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    gp = nlp.add_pipe("global_pointer", config={"model": {"max_length": 2}})
    examples = make_examples(nlp)
    with pytest.warns(UserWarning, match=r"3 of 7 gold spans are longer than max_length=2.*max_length=3 covers"):
        optimizer = nlp.initialize(lambda: examples)
    report = gp.gold_span_report
    assert report["longer_than_max_length"] == 3 and report["suggested_max_length"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(30):
            losses = nlp.update(examples, sgd=optimizer)
    assert numpy.isfinite(losses["global_pointer"])
    assert gp.gold_span_stats["too_long"] == 30 * 3
    doc = nlp(NESTED_TRAIN[0][0])
    assert all(len(span) <= 2 for span in doc.spans["sc"])
    assert ("Cambridge", "GPE") in [(s.text, s.label_) for s in doc.spans["sc"]]


def test_max_length_bounds_training_nested_spans_still_learned():
    nlp, examples = train_pipeline({"model": {"max_length": 4}}, n_updates=40)
    assert nlp.evaluate(examples)["spans_sc_f"] == 1.0
