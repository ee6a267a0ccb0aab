"""The scoring head against a naive implementation written straight from the formulas."""


import numpy
import pytest
import torch

from spacy_globalpointer.model import build_head_layers


def _head_model(efficient: bool, max_length=None, n_in: int = 6, n_labels: int = 2):
    from thinc.api import Model, noop

    from spacy_globalpointer.model import build_global_pointer

    model = build_global_pointer(noop(), nO=n_labels, head_width=4, efficient=efficient, max_length=max_length)
    head: Model = model.get_ref("head")
    head.set_dim("nI", n_in)
    build_head_layers(head)
    return head


@pytest.mark.parametrize("efficient", [False, True])
def test_head_gradient_matches_finite_differences(efficient):
    torch.manual_seed(0)
    head = _head_model(efficient, max_length=3)
    rng = numpy.random.default_rng(3)
    X = [rng.normal(size=(5, 6)).astype("f"), rng.normal(size=(2, 6)).astype("f")]
    Y, backprop = head.begin_update(X)
    weights = [rng.normal(size=y.shape).astype("f") for y in Y]

    def objective(xs):
        return sum(float((w * y).sum()) for w, y in zip(weights, head.predict(xs)))

    dX = backprop(weights)
    eps = 1e-2
    for doc in range(2):
        for i, j in [(0, 0), (1, 3), (X[doc].shape[0] - 1, 5)]:
            plus = [x.copy() for x in X]
            minus = [x.copy() for x in X]
            plus[doc][i, j] += eps
            minus[doc][i, j] -= eps
            numeric = (objective(plus) - objective(minus)) / (2 * eps)
            assert numeric == pytest.approx(float(dX[doc][i, j]), rel=2e-2, abs=2e-3)



def _resolve(architecture: str, extra: str = ""):
    from spacy.util import registry
    from thinc.api import Config

    config = f"""
[model]
@architectures = "{architecture}"
head_width = 4
{extra}

[model.tok2vec]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 8
depth = 1
embed_size = 50
window_size = 1
maxout_pieces = 2
subword_features = true
"""
    return registry.resolve(Config().from_str(config))["model"]


def _initialized(model):
    import spacy

    model.get_ref("head").set_dim("nO", 2)
    docs = [spacy.blank("en").make_doc(text) for text in ("a b c d", "e f")]
    model.initialize(X=docs)
    return model, docs


@pytest.mark.parametrize(
    "architecture,efficient",
    [("spacy-globalpointer.GlobalPointer.v1", False), ("spacy-globalpointer.GlobalPointer.v2", True)],
)
def test_config_without_efficient_builds_each_versions_default(architecture, efficient):
    model, _ = _initialized(_resolve(architecture))
    head = model.get_ref("head")
    assert head.attrs["efficient"] is efficient
    assert head.layers[0].shims[0]._model.efficient is efficient
    assert head.attrs["mixed_precision"] is False


def test_v1_takes_no_mixed_precision_argument():
    with pytest.raises(Exception, match="mixed_precision"):
        _resolve("spacy-globalpointer.GlobalPointer.v1", "mixed_precision = true")


@pytest.mark.parametrize("efficient", [False, True])
def test_mixed_precision_on_cpu_changes_nothing(efficient):
    """On CPU mixed precision is a no-op: the same scores and input gradients, bit for bit."""
    torch.manual_seed(0)
    plain, docs = _initialized(_resolve("spacy-globalpointer.GlobalPointer.v2", f"efficient = {str(efficient).lower()}"))
    mixed = _resolve(
        "spacy-globalpointer.GlobalPointer.v2", f"efficient = {str(efficient).lower()}\nmixed_precision = true"
    )
    mixed.get_ref("head").set_dim("nO", 2)
    mixed.initialize(X=docs)
    mixed.get_ref("tok2vec").from_bytes(plain.get_ref("tok2vec").to_bytes())
    shim = mixed.get_ref("head").layers[0].shims[0]
    shim._model.load_state_dict(plain.get_ref("head").layers[0].shims[0]._model.state_dict())
    assert mixed.get_ref("head").attrs["mixed_precision"] is True
    assert shim._mixed_precision is False  # thinc's autocast and scaler are CUDA-only
    for y_plain, y_mixed in zip(plain.predict(docs), mixed.predict(docs)):
        assert y_plain.dtype == y_mixed.dtype == numpy.float32
        numpy.testing.assert_array_equal(y_plain, y_mixed)
    X = plain.get_ref("tok2vec").predict(docs)
    results = []
    for model in (plain, mixed):
        Y, backprop = model.get_ref("head").begin_update(X)
        results.append((Y, backprop([numpy.ones_like(y) for y in Y])))
    (Y_plain, dX_plain), (Y_mixed, dX_mixed) = results
    for a, b in zip(Y_plain + dX_plain, Y_mixed + dX_mixed):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("efficient", [False, True])
def test_prediction_equals_the_training_forward(efficient):
    """predict calls the torch module directly, begin_update goes through thinc's wrapper:
    the same scores, bit for bit, for docs of any length, empty ones included."""
    torch.manual_seed(0)
    head = _head_model(efficient, max_length=4)
    rng = numpy.random.default_rng(5)
    X = [rng.normal(size=(n, 6)).astype("f") for n in (7, 0, 2, 30, 1)]
    predicted = head.predict(X)
    trained, _ = head.begin_update(X)
    assert [y.shape for y in predicted] == [(7, 4, 2), (0, 0, 2), (2, 2, 2), (30, 4, 2), (1, 1, 2)]
    for a, b in zip(predicted, trained):
        numpy.testing.assert_array_equal(a, b)
