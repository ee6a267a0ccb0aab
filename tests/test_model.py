"""The head layer (model.py) against a naive implementation written straight from the
formulas, and the head's learning rate against plain SGD's step."""

import math

import numpy
import pytest
import spacy
import torch
from gp_testing import make_examples
from thinc.api import Optimizer

from spacy_globalpointer.model import build_head_layers, wrapped_module


def _head_model(efficient: bool, max_length=None, n_in: int = 6, n_labels: int = 2):
    from thinc.api import Model, noop

    from spacy_globalpointer.architectures import build_global_pointer

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


def _params(model, nodes):
    """Every weight array of the given nodes (thinc params and torch shims'), copied."""
    arrays = {}
    # Keyed by place in the walk: ids differ between two builds of the same model.
    for place, node in enumerate(nodes):
        for name in node.param_names:
            arrays[(place, node.name, name)] = node.get_param(name).copy()
        if node.shims:
            for name, tensor in wrapped_module(node).named_parameters():
                arrays[(place, "torch", name)] = tensor.detach().numpy().copy()
    return arrays


def _one_step(scale: float):
    """Deltas of the head's and the embedded tok2vec's weights after one plain-SGD update,
    from the same initial weights (fixed seed)."""
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("global_pointer", config={"head_learn_rate_scale": scale})
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    # beta1 = beta2 = 0: thinc's plain SGD, weights -= lr_scale * learn_rate * gradient.
    sgd = Optimizer(0.05, beta1=0.0, beta2=0.0, L2=0.0, grad_clip=0.0, use_averages=False)
    head_nodes = list(pipe.model.get_ref("head").walk())
    tok2vec_nodes = list(pipe.model.get_ref("tok2vec").walk())
    before = (_params(pipe.model, head_nodes), _params(pipe.model, tok2vec_nodes))
    nlp.update(examples, sgd=sgd)
    after = (_params(pipe.model, head_nodes), _params(pipe.model, tok2vec_nodes))
    return [{key: after[i][key] - before[i][key] for key in before[i]} for i in (0, 1)]


def test_the_head_steps_scale_times_as_far_and_the_tok2vec_as_before():
    head_1, tok2vec_1 = _one_step(1.0)
    head_4, tok2vec_4 = _one_step(4.0)
    assert head_1 and tok2vec_1
    assert any(numpy.abs(delta).max() > 0 for delta in head_1.values())
    assert any(numpy.abs(delta).max() > 0 for delta in tok2vec_1.values())
    for key, delta in head_1.items():
        # Same gradient from the same weights: only the step's size differs.
        numpy.testing.assert_allclose(head_4[key], 4.0 * delta, rtol=1e-4, atol=1e-7)
    for key, delta in tok2vec_1.items():
        numpy.testing.assert_allclose(tok2vec_4[key], delta, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "bad,match",
    [
        (0, r"'global_pointer': head_learn_rate_scale .* must be a positive.*got 0"),
        (-1.0, r"'global_pointer': head_learn_rate_scale .* must be a positive.*got -1\.0"),
        ("2", r"'global_pointer': head_learn_rate_scale .* must be a positive.*got '2'"),
        (True, r"head_learn_rate_scale.*True is not"),  # the config's type check
    ],
)
def test_bad_scales_are_refused_with_the_value(bad, match):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match=match):
        nlp.add_pipe("global_pointer", config={"head_learn_rate_scale": bad})


def test_a_scale_edited_on_the_live_component_is_checked_when_used(tmp_path):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("global_pointer", config={"head_learn_rate_scale": 10.0})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    nlp.update(examples, sgd=optimizer)
    nlp.to_disk(tmp_path / "model")
    assert spacy.load(tmp_path / "model").config["components"]["global_pointer"]["head_learn_rate_scale"] == 10.0
    # inf and nan cannot be written in a config; a live edit can set them.
    for bad in (-2, math.inf, math.nan):
        pipe.cfg["head_learn_rate_scale"] = bad
        with pytest.raises(ValueError, match=rf"head_learn_rate_scale in cfg .* got {bad!r}"):
            nlp.update(examples, sgd=optimizer)


def test_wrapped_module_is_the_module_thinc_runs_and_saves():
    """wrapped_module reads thinc's private PyTorchShim._model (prediction calls the module
    itself, skipping the shim's eval/train switch): it must be the module the wrapper runs
    and whose weights the shim saves and loads. Fails if thinc moves or renames it."""
    torch.manual_seed(0)
    head = _head_model(False)
    module = wrapped_module(head.layers[0])
    assert isinstance(module, torch.nn.Module) and type(module).__name__ == "GlobalPointerHead"
    X = [numpy.random.default_rng(0).normal(size=(5, 6)).astype("f")]
    with torch.no_grad():
        module.qk.weight.mul_(2.0)  # an edit to the module shows in the wrapper's output
    doubled, _ = head.begin_update(X)
    other = _head_model(False)
    other.from_bytes(head.to_bytes())
    for name, tensor in wrapped_module(other.layers[0]).state_dict().items():
        assert torch.equal(tensor, module.state_dict()[name])
    numpy.testing.assert_array_equal(other.predict(X)[0], doubled[0])
