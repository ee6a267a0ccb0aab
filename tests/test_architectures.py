"""The registered architectures (architectures.py): each version's defaults and arguments,
resolved from configs, and the shapes of what they output."""

import copy

import numpy
import pytest
import spacy
import torch
from gp_testing import NESTED_TRAIN, spans_and_scores, train_pipeline
from spacy.util import registry
from thinc.api import Config

import spacy_globalpointer
from spacy_globalpointer.architectures import DEFAULT_MODEL_CONFIG
from spacy_globalpointer.model import wrapped_module


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
    assert wrapped_module(head.layers[0]).efficient is efficient
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
    wrapped_module(mixed.get_ref("head").layers[0]).load_state_dict(
        wrapped_module(plain.get_ref("head").layers[0]).state_dict()
    )
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


def test_default_config_architecture_output_shapes():
    model = registry.resolve(Config().from_str(DEFAULT_MODEL_CONFIG))["model"]
    head = model.get_ref("head")
    head.set_dim("nO", 4)
    nlp = spacy.blank("en")
    docs = [nlp.make_doc("a b c d e"), nlp.make_doc(""), nlp.make_doc("word " * 40)]
    model.initialize(X=docs)
    Y = model.predict(docs)
    assert [y.shape for y in Y] == [(5, 5, 4), (0, 0, 4), (40, 32, 4)]  # max_length = 32


@pytest.mark.parametrize(
    "bad,match",
    [({"head_width": 7}, "head_width"), ({"max_length": 0}, "max_length"), ({"score_budget": -1}, "score_budget")],
)
def test_bad_model_settings_name_the_value(bad, match):
    nlp = spacy.blank("en")
    with pytest.raises(Exception, match=match):
        nlp.add_pipe("global_pointer", config={"model": bad})


def v3_config(**settings) -> dict:
    """The factory's default model on GlobalPointer.v3 (a new @architectures replaces the
    whole block, tok2vec included)."""
    from spacy_globalpointer.architectures import DEFAULT_MODEL

    model = {**copy.deepcopy(dict(DEFAULT_MODEL)), "@architectures": "spacy-globalpointer.GlobalPointer.v3"}
    return {"model": {**model, **settings}}


WIDTH_BIAS = v3_config(width_bias=True)


def test_width_bias_head_overfits_and_round_trips(tmp_path):
    nlp, examples = train_pipeline(WIDTH_BIAS, n_updates=50)
    assert nlp.evaluate(examples)["spans_sc_f"] == 1.0
    module = wrapped_module(nlp.get_pipe("global_pointer").model.get_ref("head").layers[0])
    assert module.width_bias is not None and float(module.width_bias.abs().sum()) > 0  # it learned
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    texts = [text for text, _ in NESTED_TRAIN]
    for before, after in zip(nlp.pipe(texts), reloaded.pipe(texts)):
        assert spans_and_scores(before)[0] == spans_and_scores(after)[0]
        numpy.testing.assert_allclose(spans_and_scores(before)[1], spans_and_scores(after)[1], atol=1e-6)
    # Weights with a width bias do not load into a head configured without one.
    with pytest.raises(ValueError, match="width_bias"):
        spacy.load(tmp_path / "model", config={"components": {"global_pointer": {"model": {"width_bias": False}}}})


def test_v3_without_width_bias_scores_as_v2():
    """v3's new option off, the same seed: the same weights and the same scores as v2."""
    v2, _ = train_pipeline(n_updates=3)
    v3, _ = train_pipeline(v3_config(), n_updates=3)
    docs = [text for text, _ in NESTED_TRAIN]
    for a, b in zip(v2.get_pipe("global_pointer").predict([v2.make_doc(t) for t in docs]),
                    v3.get_pipe("global_pointer").predict([v3.make_doc(t) for t in docs])):
        numpy.testing.assert_array_equal(a, b)


def test_every_version_is_exported_as_the_registered_builder():
    for version, builder in [
        ("v1", spacy_globalpointer.build_global_pointer),
        ("v2", spacy_globalpointer.build_global_pointer_v2),
        ("v3", spacy_globalpointer.build_global_pointer_v3),
        ("v4", spacy_globalpointer.build_global_pointer_v4),
    ]:
        assert registry.architectures.get(f"spacy-globalpointer.GlobalPointer.{version}") is builder
        assert builder.__name__ in spacy_globalpointer.__all__
