"""head_learn_rate_scale: the head's weights step at a multiple of the optimizer's rate."""

import math

import numpy
import pytest
import spacy
from gp_testing import make_examples
from thinc.api import Optimizer


def _params(model, nodes):
    """Every weight array of the given nodes (thinc params and torch shims'), copied."""
    arrays = {}
    # Keyed by place in the walk: ids differ between two builds of the same model.
    for place, node in enumerate(nodes):
        for name in node.param_names:
            arrays[(place, node.name, name)] = node.get_param(name).copy()
        for shim in node.shims:
            for name, tensor in shim._model.named_parameters():
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
