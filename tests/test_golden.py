"""A saved pipeline predicts and trains as it did when its golden file was written.

tests/data/golden_pipeline/ (both head variants, one on a band of 4 tokens, one writing
doc.ents) and golden_predictions.json were written by tests/data/make_golden.py with the
code of commit aa17177, before the head's speed work. Spans and entities must be the same;
scores, probabilities, the loss and its gradients equal within a float32 error bound
relative to their magnitudes (below), so that the test holds on any CPU: float32 results
differ between CPUs, thread counts and batch shapes (SIMD widths, BLAS kernels and FMA
change the order and rounding of sums). tests/data/golden_spread.py measures how far they
move on a machine, as a share of these tolerances.
"""

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Tuple

import numpy
import pytest
import spacy
from spacy.language import Language

DATA = Path(__file__).parent / "data"

# Float32 error bounds. A sum of n float32 terms computed in any order (or with FMA) is
# within n * u * sum|terms| of the exact sum (u = eps / 2, Higham's gamma_n), so two
# machines' results differ by at most n * eps * sum|terms|. Errors of successive layers
# add up to first order, so n is the number of terms accumulated along the longest chain
# of sums a value depends on. For the golden model (HashEmbedCNN, width 16, head_width 8):
# embedding mixer 4 x 16 = 64, LayerNorm mean and variance 2 x 16, window maxout
# 3 x 16 = 48, LayerNorm 2 x 16, residual 1, q/k projection 16, RoPE 2, q.k 8, start/end
# biases 1 + 1: 205 terms, rounded up to FORWARD_TERMS = 256. Training adds the loss's sums
# over a doc's band (up to 136 cells) and the backward pass's sums over cells and
# projections (32 + 32): TRAINING_TERMS = 512. sum|terms| is not known from the outputs;
# a small value that comes from cancelling large ones (a score near 0 from large q and k)
# carries the rounding of its peers, so the scale is the largest magnitude of that
# quantity in its doc or batch, not the value itself.
EPS32 = float(numpy.finfo(numpy.float32).eps)
FORWARD_TERMS = 256
TRAINING_TERMS = 512


def score_tolerance(reference: Any) -> float:
    """The bound on |score - golden| for one doc's raw scores."""
    reference = numpy.asarray(reference, dtype="float64")
    return FORWARD_TERMS * EPS32 * float(numpy.abs(reference).max()) if reference.size else 0.0


def probability_tolerance(raw: Any) -> float:
    """The sigmoid's slope is at most 1/4; its own rounding a few eps on values <= 1."""
    return score_tolerance(raw) / 4 + 4 * EPS32


def training_tolerances(expected: Dict[str, Any], scores: List[Any]) -> Dict[str, Any]:
    """Bounds for the loss and gradients of the training batch, whose scores are ``scores``.

    The gradient of each cell is a softmax weight w (negatives: e^s / (1 + sum e^s),
    positives likewise with -s), whose Jacobian rows have an l1 norm <= 2 w: an error ds in
    the scores moves it by at most 2 |w| ds. The loss moves by at most sum|w| ds.
    """
    d_scores = [numpy.abs(numpy.asarray(d, dtype="float64")) for d in expected["train_d_scores"]]
    d_encoded = [numpy.asarray(d, dtype="float64") for d in expected["train_d_encoded"]]
    ds = FORWARD_TERMS * EPS32 * max(float(numpy.abs(s).max()) for s in scores if s.size)
    own = TRAINING_TERMS * EPS32
    return {
        "ds": ds,
        "loss": sum(float(d.sum()) for d in d_scores) * ds + own * abs(expected["train_loss"]),
        # elementwise, relative to each weight
        "d_scores": [d * (2 * ds + own) for d in d_scores],
        # the backward sums mix weights of both signs: scale by the doc's largest value
        "d_encoded": [(2 * ds + own) * float(numpy.abs(d).max()) for d in d_encoded],
    }


def _make_golden() -> ModuleType:
    """The generator script, for its training examples."""
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loss_and_gradients(nlp: Language, name: str) -> Tuple[float, List[Any], List[Any], List[Any]]:
    """The loss, d_scores and d_encoded of the golden training batch, and its scores."""
    pipe = nlp.get_pipe(name)
    examples = _make_golden()._examples(nlp)
    scores, _ = pipe.model.begin_update([eg.predicted for eg in examples])
    loss, d_scores = pipe.get_loss(examples, scores)
    head, tok2vec = pipe.model.get_ref("head"), pipe.model.get_ref("tok2vec")
    _, backprop = head.begin_update(tok2vec.predict([eg.predicted for eg in examples]))
    d_encoded = backprop(d_scores)
    as_numpy = pipe.model.ops.to_numpy
    return float(loss), [as_numpy(d) for d in d_scores], [as_numpy(d) for d in d_encoded], [
        as_numpy(s) for s in scores
    ]


@pytest.fixture(scope="module")
def golden():
    return json.loads((DATA / "golden_predictions.json").read_text(encoding="utf8"))


@pytest.fixture(scope="module")
def nlp():
    return spacy.load(DATA / "golden_pipeline")


def _span_cells(nlp: Language, name: str, doc_spans: List[List[Any]], raw: Any) -> List[float]:
    """The golden raw score of each [start, end, label] span."""
    label_ids = {label: i for i, label in enumerate(nlp.get_pipe(name).labels)}
    return [float(raw[start, end - start - 1, label_ids[label]]) for start, end, label in doc_spans]


@pytest.mark.parametrize("name", ["gp", "gp_efficient"])
def test_golden_decisions_are_clear_of_the_tolerance(nlp, golden, name):
    """Spans are compared exactly below: that holds on a machine whose scores are within
    the tolerance only if no decision of the golden file is closer to its boundary. Every
    scored cell is further than the tolerance from the threshold (logit 0), and spans that
    compete for doc.ents differ in score by more than twice it. A regenerated golden file
    that fails this must be regenerated with other texts or seed, not excused."""
    expected = golden["components"][name]
    pipe = nlp.get_pipe(name)
    assert pipe.logit_threshold == 0.0
    for raw, doc_spans in zip(expected["raw_scores"], expected["spans"]):
        raw = numpy.asarray(raw, dtype="float64")
        if not raw.size:
            continue
        tolerance = score_tolerance(raw)
        n, width, _ = raw.shape
        real = numpy.arange(n)[:, None] + numpy.arange(width)[None, :] < n
        assert numpy.abs(raw[real]).min() > tolerance
        if pipe.cfg["annotate_ents"]:
            cells = _span_cells(nlp, name, doc_spans, raw)
            for a, (start_a, end_a, _) in enumerate(doc_spans):
                for b, (start_b, end_b, _) in enumerate(doc_spans[:a]):
                    if start_a < end_b and start_b < end_a:  # they share a token
                        assert abs(cells[a] - cells[b]) > 2 * tolerance


@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_saved_pipeline_gives_the_golden_spans_and_probabilities(nlp, golden, batch_size):
    docs = list(nlp.pipe(golden["texts"], batch_size=batch_size))
    assert [[[e.start, e.end, e.label_] for e in doc.ents] for doc in docs] == golden["ents"]
    for name, expected in golden["components"].items():
        key = nlp.get_pipe(name).key
        assert [[[s.start, s.end, s.label_] for s in doc.spans[key]] for doc in docs] == expected["spans"]
        for doc, probabilities, raw in zip(docs, expected["probabilities"], expected["raw_scores"]):
            numpy.testing.assert_allclose(
                doc.spans[key].attrs["scores"], probabilities, rtol=0, atol=probability_tolerance(raw)
            )


@pytest.mark.parametrize("name", ["gp", "gp_efficient"])
def test_saved_pipeline_gives_the_golden_raw_scores(nlp, golden, name):
    raw = nlp.get_pipe(name).predict([nlp.make_doc(text) for text in golden["texts"]])
    expected = golden["components"][name]["raw_scores"]
    assert len(raw) == len(expected)
    for y, reference in zip(raw, expected):
        reference = numpy.asarray(reference, dtype="f")
        if reference.size:
            assert y.shape == reference.shape
            numpy.testing.assert_allclose(y, reference, rtol=0, atol=score_tolerance(reference))
        else:
            assert y.size == 0


@pytest.mark.parametrize("name", ["gp", "gp_efficient"])
def test_saved_pipeline_gives_the_golden_loss_and_gradients(nlp, golden, name):
    expected = golden["components"][name]
    loss, d_scores, d_encoded, scores = loss_and_gradients(nlp, name)
    tolerances = training_tolerances(expected, scores)
    assert abs(loss - expected["train_loss"]) <= tolerances["loss"]
    assert len(d_scores) == len(expected["train_d_scores"])
    for actual, reference, tolerance in zip(d_scores, expected["train_d_scores"], tolerances["d_scores"]):
        reference = numpy.asarray(reference).reshape(actual.shape)
        assert (numpy.abs(actual - reference) <= tolerance.reshape(actual.shape)).all()
    assert len(d_encoded) == len(expected["train_d_encoded"])
    for actual, reference, tolerance in zip(d_encoded, expected["train_d_encoded"], tolerances["d_encoded"]):
        numpy.testing.assert_allclose(actual, numpy.asarray(reference).reshape(actual.shape), rtol=0, atol=tolerance)


def test_tolerances_are_float32_sized():
    """The bounds stay a few hundred ulps of the magnitudes: a changed computation (a
    missing bias, a wrong scale) still fails by orders of magnitude more."""
    assert score_tolerance([6.0, -1.0]) == pytest.approx(256 * 6.0 * 2.0**-23)
    assert score_tolerance([]) == 0.0
    assert 1e-5 < score_tolerance([6.3]) < 1e-3


def test_a_changed_computation_fails_the_tolerance(golden):
    """A change far smaller than any bug (one weight of the q/k projection moved by 1e-3)
    moves the raw scores past the tolerance: the bound does not hide real changes."""
    import torch

    changed = spacy.load(DATA / "golden_pipeline")
    pipe = changed.get_pipe("gp")
    head = next(node.shims[0]._model for node in pipe.model.walk() if node.shims)
    with torch.no_grad():
        head.qk.weight[0, 0] += 1e-3
    raw = pipe.predict([changed.make_doc(text) for text in golden["texts"]])
    excess = [
        float(numpy.abs(y - numpy.asarray(reference)).max()) / score_tolerance(reference)
        for y, reference in zip(raw, golden["components"]["gp"]["raw_scores"])
        if y.size
    ]
    assert max(excess) > 1
