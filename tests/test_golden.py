"""A saved pipeline predicts and trains as it did when its golden file was written.

tests/data/golden_pipeline/ (both head variants, one on a band of 4 tokens, one writing
doc.ents) and golden_predictions.json were written by tests/data/make_golden.py with the
code of commit aa17177, before the head's speed work: spans must be the same, scores,
the loss and its gradients equal to 1e-6.
"""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy
import pytest
import spacy

DATA = Path(__file__).parent / "data"
ATOL = 1e-6


def _make_golden() -> ModuleType:
    """The generator script, for its training examples."""
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def golden():
    return json.loads((DATA / "golden_predictions.json").read_text(encoding="utf8"))


@pytest.fixture(scope="module")
def nlp():
    return spacy.load(DATA / "golden_pipeline")


@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_saved_pipeline_gives_the_golden_spans_and_probabilities(nlp, golden, batch_size):
    docs = list(nlp.pipe(golden["texts"], batch_size=batch_size))
    assert [[[e.start, e.end, e.label_] for e in doc.ents] for doc in docs] == golden["ents"]
    for name, expected in golden["components"].items():
        key = nlp.get_pipe(name).key
        assert [[[s.start, s.end, s.label_] for s in doc.spans[key]] for doc in docs] == expected["spans"]
        for doc, probabilities in zip(docs, expected["probabilities"]):
            numpy.testing.assert_allclose(doc.spans[key].attrs["scores"], probabilities, atol=ATOL)


@pytest.mark.parametrize("name", ["gp", "gp_efficient"])
def test_saved_pipeline_gives_the_golden_raw_scores(nlp, golden, name):
    raw = nlp.get_pipe(name).predict([nlp.make_doc(text) for text in golden["texts"]])
    expected = golden["components"][name]["raw_scores"]
    assert len(raw) == len(expected)
    for y, reference in zip(raw, expected):
        reference = numpy.asarray(reference, dtype="f")
        if reference.size:
            assert y.shape == reference.shape
            numpy.testing.assert_allclose(y, reference, atol=ATOL)
        else:
            assert y.size == 0


@pytest.mark.parametrize("name", ["gp", "gp_efficient"])
def test_saved_pipeline_gives_the_golden_loss_and_gradients(nlp, golden, name):
    expected = golden["components"][name]
    pipe = nlp.get_pipe(name)
    examples = _make_golden()._examples(nlp)
    scores, _ = pipe.model.begin_update([eg.predicted for eg in examples])
    loss, d_scores = pipe.get_loss(examples, scores)
    assert loss == pytest.approx(expected["train_loss"], abs=ATOL, rel=1e-6)
    head, tok2vec = pipe.model.get_ref("head"), pipe.model.get_ref("tok2vec")
    _, backprop = head.begin_update(tok2vec.predict([eg.predicted for eg in examples]))
    d_encoded = backprop(d_scores)
    for actual, reference in zip(d_scores, expected["train_d_scores"]):
        numpy.testing.assert_allclose(actual, numpy.asarray(reference).reshape(actual.shape), atol=ATOL)
    for actual, reference in zip(d_encoded, expected["train_d_encoded"]):
        numpy.testing.assert_allclose(actual, numpy.asarray(reference).reshape(actual.shape), atol=ATOL)
