"""The global_pointer component inside spaCy pipelines."""

import copy
import importlib
import re
import warnings

import numpy
import pytest
import spacy
import srsly
from gp_testing import NESTED_TRAIN, make_examples, train_pipeline
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config

from spacy_globalpointer.pipeline import DEFAULT_MODEL_CONFIG

NESTED_EXPECTED = [
    ("University of Cambridge", "ORG"),
    ("Cambridge", "GPE"),
    ("England", "GPE"),
]


def spans_and_scores(doc, key="sc"):
    group = doc.spans[key]
    return [(s.start, s.end, s.label_) for s in group], numpy.asarray(group.attrs["scores"])


@pytest.mark.parametrize("efficient", [False, True])
def test_overfits_nested_spans_and_round_trips(efficient, tmp_path):
    nlp, examples = train_pipeline({"model": {"efficient": efficient}}, n_updates=50)
    assert nlp.evaluate(examples)["spans_sc_f"] == 1.0
    doc = nlp(NESTED_TRAIN[0][0])
    assert [(s.text, s.label_) for s in doc.spans["sc"]] == NESTED_EXPECTED
    assert (doc.spans["sc"].attrs["scores"] > 0.5).all()  # probabilities above the threshold
    assert len(nlp("").spans["sc"]) == 0
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    texts = [text for text, _ in NESTED_TRAIN]
    for before, after in zip(nlp.pipe(texts), reloaded.pipe(texts)):
        spans_before, scores_before = spans_and_scores(before)
        spans_after, scores_after = spans_and_scores(after)
        assert spans_before == spans_after
        numpy.testing.assert_allclose(scores_before, scores_after, atol=1e-6)
    via_bytes = spacy.blank("en")
    via_bytes.add_pipe("global_pointer", config={"model": {"efficient": efficient}})
    via_bytes.from_bytes(nlp.to_bytes())
    spans_bytes, scores_bytes = spans_and_scores(via_bytes(texts[0]))
    assert spans_bytes == spans_and_scores(doc)[0]
    numpy.testing.assert_allclose(scores_bytes, doc.spans["sc"].attrs["scores"], atol=1e-6)


def test_batch_invariance(trained_nlp):
    nlp, _ = trained_nlp
    text = NESTED_TRAIN[1][0]
    alone = nlp(text)
    longer = ["word " * 300, "Another rather long sentence about the Bank of England in London. " * 20]
    docs = list(nlp.pipe([longer[0], text, longer[1]], batch_size=3))
    spans_alone, scores_alone = spans_and_scores(alone)
    spans_batched, scores_batched = spans_and_scores(docs[1])
    assert spans_alone == spans_batched
    numpy.testing.assert_allclose(scores_alone, scores_batched, atol=1e-5)
    # raw scores too, not only those above threshold
    raw_alone = nlp.get_pipe("global_pointer").predict([nlp.make_doc(text)])[0]
    raw_batch = nlp.get_pipe("global_pointer").predict([nlp.make_doc(t) for t in [longer[0], text]])[1]
    assert raw_alone.shape == raw_batch.shape
    numpy.testing.assert_allclose(raw_alone, raw_batch, atol=1e-5)


def test_empty_whitespace_and_mixed_batches(trained_nlp):
    nlp, _ = trained_nlp
    texts = ["", "   ", "\n", NESTED_TRAIN[0][0], "", "x"]
    docs = list(nlp.pipe(texts, batch_size=4))
    assert [len(d.spans["sc"]) for d in docs][:3] == [0, 0, 0]
    assert spans_and_scores(docs[3])[0] == spans_and_scores(nlp(texts[3]))[0]
    assert len(docs[0].spans["sc"].attrs["scores"]) == 0
    assert list(nlp.pipe(["", ""]))[0].spans["sc"].attrs["scores"].shape == (0,)


@pytest.mark.slow
def test_multiprocess_pipe_matches_single_process(trained_nlp):
    nlp, _ = trained_nlp
    texts = [text for text, _ in NESTED_TRAIN] * 4
    single = [spans_and_scores(d) for d in nlp.pipe(texts)]
    multi = [spans_and_scores(d) for d in nlp.pipe(texts, n_process=2, batch_size=3)]
    assert [s for s, _ in single] == [s for s, _ in multi]
    for (_, a), (_, b) in zip(single, multi):
        numpy.testing.assert_allclose(a, b, atol=1e-6)


def test_labels_from_initialize_argument_and_add_label_rules():
    nlp = spacy.blank("en")
    gp = nlp.add_pipe("global_pointer")
    assert gp.add_label("ORG") == 1 and gp.add_label("ORG") == 0
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    assert gp.labels == ("ORG", "GPE")  # ORG added first, then the data's other labels
    with pytest.raises(ValueError, match="'LOC'.*after initialization"):
        gp.add_label("LOC")


def test_explicit_labels_keep_their_order():
    nlp = spacy.blank("en")
    gp = nlp.add_pipe("global_pointer")
    examples = make_examples(nlp)
    gp.initialize(lambda: examples, nlp=nlp, labels=["PER", "ORG", "GPE"])
    assert gp.labels == ("PER", "ORG", "GPE")
    assert gp.model.get_ref("head").get_dim("nO") == 3


def test_no_labels_raises_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("global_pointer")
    unlabelled = [Example(nlp.make_doc("No spans here."), nlp.make_doc("No spans here."))]
    with pytest.raises(ValueError, match="has no labels"):
        nlp.initialize(lambda: unlabelled)


def test_unknown_label_at_update_raises():
    nlp = spacy.blank("en")
    nlp.add_pipe("global_pointer")
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    bad = make_examples(nlp, [("Paris is nice.", [(0, 5, "CITY")])])
    with pytest.raises(ValueError, match=r"\['CITY'\]"):
        nlp.update(bad, sgd=optimizer)


def test_misaligned_gold_spans_are_counted_and_warned():
    nlp = spacy.blank("en")
    gp = nlp.add_pipe("global_pointer")
    text = "New York City is big."
    reference = nlp.make_doc(text)
    reference.spans["sc"] = [reference.char_span(0, 13, label="GPE"), reference.char_span(4, 8, label="GPE")]
    # the predicted doc is tokenised differently: "New York" is one token, so "York" cannot align
    predicted = spacy.tokens.Doc(nlp.vocab, words=["New York", "City", "is", "big", "."], spaces=[True, True, True, False, False])
    example = Example(predicted, reference)
    with pytest.warns(UserWarning, match="1 gold span"):
        optimizer = nlp.initialize(lambda: [example])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nlp.update([example], sgd=optimizer)
        nlp.update([example], sgd=optimizer)
    assert sum("do not align" in str(w.message) for w in caught) == 1
    assert gp.gold_span_stats["misaligned"] == 2


def test_annotate_ents_writes_best_non_overlapping_spans():
    nlp, _ = train_pipeline({"annotate_ents": True}, n_updates=50)
    doc = nlp(NESTED_TRAIN[0][0])
    assert len(doc.spans["sc"]) == 3
    ents = [(e.text, e.label_) for e in doc.ents]
    assert ("England", "GPE") in ents
    # of the nested pair, exactly one survives
    assert len([e for e in ents if "Cambridge" in e[0]]) == 1


def test_custom_spans_key_and_threshold():
    nlp, examples = train_pipeline({"spans_key": "entities"}, n_updates=50)
    doc = nlp(NESTED_TRAIN[0][0])
    assert "sc" not in doc.spans
    assert [(s.text, s.label_) for s in doc.spans["entities"]] == NESTED_EXPECTED
    assert nlp.evaluate(examples)["spans_entities_f"] == 1.0
    nlp.get_pipe("global_pointer").cfg["threshold"] = 1.0
    assert len(nlp(NESTED_TRAIN[0][0]).spans["entities"]) == 0


def test_default_config_architecture_output_shapes():
    model = registry.resolve(Config().from_str(DEFAULT_MODEL_CONFIG))["model"]
    head = model.get_ref("head")
    head.set_dim("nO", 4)
    nlp = spacy.blank("en")
    docs = [nlp.make_doc("a b c d e"), nlp.make_doc(""), nlp.make_doc("word " * 40)]
    model.initialize(X=docs)
    Y = model.predict(docs)
    assert [y.shape for y in Y] == [(5, 5, 4), (0, 0, 4), (40, 32, 4)]  # max_length = 32


REGISTERED = {
    "spacy_factories": {"global_pointer"},
    "spacy_architectures": {
        "spacy-globalpointer.GlobalPointer.v1",
        "spacy-globalpointer.GlobalPointer.v2",
        "spacy-globalpointer.GlobalPointer.v3",
    },
    "spacy_scorers": {"spacy-globalpointer.spans_scorer.v1"},
    "spacy_augmenters": {"spacy-globalpointer.whitespace_augmenter.v1"},
    "spacy_tokenizers": {"spacy-globalpointer.language_tokenizer.v1"},
}


def test_setup_cfg_entry_points_are_the_registered_names():
    """setup.cfg names exactly the registered functions, checked without installing it."""
    import configparser
    from pathlib import Path

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[1] / "setup.cfg")
    found = {}
    for group, lines in setup["options.entry_points"].items():
        for line in filter(None, (line.strip() for line in lines.splitlines())):
            name, target = (part.strip() for part in line.split("="))
            module, function = target.split(":")
            found.setdefault(group, set()).add(name)
            registered = getattr(registry, group[len("spacy_") :]).get(name)
            assert getattr(importlib.import_module(module), function) is registered, line
    assert found == REGISTERED


def test_every_entry_point_is_the_registered_function():
    """The installed entry points (setup.cfg) name exactly the registered functions, so a
    typo or a missing entry point fails here rather than in a user's spacy train. It reads the
    installed metadata: after a change to setup.cfg it passes once the package is installed
    again (pip install -e .)."""
    from importlib.metadata import distribution

    entry_points = [ep for ep in distribution("spacy-globalpointer").entry_points if ep.group.startswith("spacy_")]
    found = {}
    for ep in entry_points:
        found.setdefault(ep.group, set()).add(ep.name)
        registered = getattr(registry, ep.group[len("spacy_") :]).get(ep.name)
        assert ep.load() is registered, ep
    assert found == REGISTERED


def test_registered_scorer_gives_spancat_scores(trained_nlp):
    nlp, examples = trained_nlp
    scorer = registry.get("scorers", "spacy-globalpointer.spans_scorer.v1")()
    predicted = [Example(nlp(eg.reference.text), eg.reference) for eg in examples]
    scores = scorer(predicted, spans_key="sc", labels=["GPE", "ORG"])
    assert scores["spans_sc_f"] == 1.0 and set(scores["spans_sc_per_type"]) == {"GPE", "ORG"}
    assert "ents_f" not in scores


@pytest.mark.parametrize(
    "bad,match",
    [({"head_width": 7}, "head_width"), ({"max_length": 0}, "max_length"), ({"score_budget": -1}, "score_budget")],
)
def test_bad_model_settings_name_the_value(bad, match):
    nlp = spacy.blank("en")
    with pytest.raises(Exception, match=match):
        nlp.add_pipe("global_pointer", config={"model": bad})


# ---------------------------------------------------------------- whitespace tokens


def test_no_predicted_span_starts_or_ends_on_whitespace(trained_nlp):
    nlp, _ = trained_nlp
    gp = nlp.get_pipe("global_pointer")
    doc = nlp.make_doc("The  University of\nCambridge  ")
    n = len(doc)
    # hand-made scores: every span of every label is above threshold
    scores = numpy.full((n, n, len(gp.labels)), 5.0, dtype="f")
    gp.set_annotations([doc], [scores])
    expected = [
        (i, j, label)
        for i in range(n)
        for j in range(i + 1, n + 1)
        for label in gp.labels
        if not doc[i].is_space and not doc[j - 1].is_space
    ]
    assert [(s.start, s.end, s.label_) for s in doc.spans["sc"]] == expected
    assert len(doc.spans["sc"].attrs["scores"]) == len(expected)


MESSY_VARIANTS = {
    "one double space": lambda text: text.replace(" ", "  ", 1),
    "one newline": lambda text: text.replace(" ", "\n", 1),
    "all spaces doubled": lambda text: text.replace(" ", "  "),
}


@pytest.mark.parametrize("variant", sorted(MESSY_VARIANTS))
def test_messy_whitespace_never_bounds_a_span_of_a_trained_model(trained_nlp, variant):
    nlp, _ = trained_nlp
    for text, _ in NESTED_TRAIN:
        doc = nlp(MESSY_VARIANTS[variant](text))
        assert all(not (s[0].is_space or s[-1].is_space) for s in doc.spans["sc"]), doc.text


# ---------------------------------------------------------------- settings come from the config


def test_load_time_config_overrides_apply(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    nlp.to_disk(tmp_path / "model")
    text = NESTED_TRAIN[0][0]
    assert len(spacy.load(tmp_path / "model")(text).spans["sc"]) == 3
    overrides = {"components": {"global_pointer": {"threshold": 1.0, "annotate_ents": True}}}
    loaded = spacy.load(tmp_path / "model", config=overrides)
    gp = loaded.get_pipe("global_pointer")
    assert gp.threshold == 1.0 and gp.cfg["annotate_ents"] is True
    assert len(loaded(text).spans["sc"]) == 0
    ents = spacy.load(tmp_path / "model", config={"components": {"global_pointer": {"annotate_ents": True}}})
    assert [e.text for e in ents(text).ents] == [e.text for e in ents(text).ents if e.text] != []


def test_edited_config_file_applies(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    nlp.to_disk(tmp_path / "model")
    config_path = tmp_path / "model" / "config.cfg"
    config = Config().from_disk(config_path)
    config["components"]["global_pointer"]["threshold"] = 1.0
    config.to_disk(config_path)
    loaded = spacy.load(tmp_path / "model")
    assert loaded.get_pipe("global_pointer").threshold == 1.0
    assert len(loaded(NESTED_TRAIN[0][0]).spans["sc"]) == 0


def test_saved_cfg_holds_only_labels_and_input_width(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    nlp.to_disk(tmp_path / "model")
    saved = srsly.read_json(tmp_path / "model" / "global_pointer" / "cfg")
    assert saved == {"labels": ["GPE", "ORG"], "input_width": 96}


def test_settings_changed_after_building_warn_at_save(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    gp = nlp.get_pipe("global_pointer")
    gp.cfg["threshold"] = 0.9
    try:
        with pytest.warns(UserWarning, match=r"settings \{'threshold': 0.9\} were changed"):
            nlp.to_disk(tmp_path / "model")
    finally:
        gp.cfg["threshold"] = 0.5
    assert spacy.load(tmp_path / "model").get_pipe("global_pointer").threshold == 0.5


def save_as_0_1_0(nlp, path, logit_threshold: float = 0.0) -> None:
    """Save nlp as spacy-globalpointer 0.1.0 did (checked against a pipeline saved by
    0.1.0): settings and a gold span report in the cfg file, the threshold a logit there
    and in config.cfg, which has no overwrite_ents."""
    nlp.to_disk(path)
    cfg_path = path / "global_pointer" / "cfg"
    legacy = {
        **srsly.read_json(cfg_path), "spans_key": "sc", "threshold": logit_threshold,
        "annotate_ents": False, "gold_span_report": {"spans": 7, "misaligned": 0},
    }
    srsly.write_json(cfg_path, legacy)
    config = Config().from_disk(path / "config.cfg")
    config["components"]["global_pointer"]["threshold"] = logit_threshold
    del config["components"]["global_pointer"]["overwrite_ents"]
    config.to_disk(path / "config.cfg")


def test_pipeline_saved_with_a_logit_threshold_is_migrated(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    save_as_0_1_0(nlp, tmp_path / "old", logit_threshold=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = spacy.load(tmp_path / "old")
        loaded("Bank of England")
    messages = [str(w.message) for w in caught]
    assert any(re.search(r"threshold was a logit \(0.0\); it is read as the probability 0.5", m) for m in messages)
    assert not any("predicts every span" in m for m in messages)  # migrated: no false alarm
    assert loaded.get_pipe("global_pointer").threshold == 0.5
    assert loaded.get_pipe("global_pointer").cfg["overwrite_ents"] is False
    texts = [text for text, _ in NESTED_TRAIN]
    for old, new in zip(loaded.pipe(texts), nlp.pipe(texts)):
        assert spans_and_scores(old)[0] == spans_and_scores(new)[0]
    # saved again with the old config, it still reads as the same probability
    loaded.to_disk(tmp_path / "again")
    with pytest.warns(UserWarning, match="read as the probability 0.5"):
        assert spacy.load(tmp_path / "again").get_pipe("global_pointer").threshold == 0.5
    # a load-time override is a probability
    with pytest.warns(UserWarning, match=r"config's threshold 0.9 is used, as a probability"):
        overridden = spacy.load(tmp_path / "old", config={"components": {"global_pointer": {"threshold": 0.9}}})
    assert overridden.get_pipe("global_pointer").threshold == 0.9


def test_pipeline_saved_with_a_negative_logit_threshold_is_refused_with_its_probability(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    save_as_0_1_0(nlp, tmp_path / "old", logit_threshold=-0.75)
    with pytest.raises(Exception, match=r"probability in \[0, 1\].*-0.75 is 0.320821"):
        spacy.load(tmp_path / "old")
    loaded = spacy.load(tmp_path / "old", config={"components": {"global_pointer": {"threshold": 0.320821}}})
    assert loaded.get_pipe("global_pointer").threshold == 0.320821


def test_older_cfg_settings_that_differ_from_the_config_are_named(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    save_as_0_1_0(nlp, tmp_path / "old")
    cfg_path = tmp_path / "old" / "global_pointer" / "cfg"
    srsly.write_json(cfg_path, {**srsly.read_json(cfg_path), "annotate_ents": True})
    with pytest.warns(UserWarning, match=r"holds settings \{'annotate_ents': True\}.*values \{'annotate_ents': False\} are used"):
        loaded = spacy.load(tmp_path / "old")
    assert loaded.get_pipe("global_pointer").cfg["annotate_ents"] is False


@pytest.mark.parametrize(
    "key,value",
    [("threshold", "abc"), ("threshold", None), ("threshold", [1]),
     ("annotate_ents", "yes"), ("spans_key", ""), ("labels", ["A", "A"]), ("labels", ["A", 3]),
     ("input_width", -2), ("input_width", "96")],
)
def test_corrupt_saved_cfg_fails_at_load_naming_the_file(trained_nlp, tmp_path, key, value):
    nlp, _ = trained_nlp
    nlp.to_disk(tmp_path / "model")
    cfg_path = tmp_path / "model" / "global_pointer" / "cfg"
    srsly.write_json(cfg_path, {**srsly.read_json(cfg_path), key: value})
    with pytest.raises(ValueError, match=rf"{key}.*{re.escape(str(cfg_path))}|{re.escape(str(cfg_path))}.*'{key}'"):
        spacy.load(tmp_path / "model")


@pytest.mark.parametrize(
    "setting,value",
    [("threshold", "abc"), ("threshold", float("inf")), ("threshold", 1.5), ("threshold", -0.1), ("annotate_ents", 1), ("overwrite_ents", "no"), ("spans_key", 5)],
)
def test_bad_settings_in_the_config_name_the_value(setting, value):
    nlp = spacy.blank("en")
    with pytest.raises(Exception, match=rf"{setting}.*{re.escape(repr(value))}"):
        nlp.add_pipe("global_pointer", config={setting: value})


def test_a_threshold_of_zero_warns_that_it_keeps_every_span(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model", config={"components": {"global_pointer": {"threshold": 0.0}}})
    with pytest.warns(UserWarning, match="threshold = 0.0 predicts every span"):
        doc = loaded("Bank of England raised rates.")
    n = len(doc)
    assert len(doc.spans["sc"]) == n * (n + 1) // 2 * 2  # every span, both labels


def test_threshold_edited_into_cfg_is_checked(trained_nlp):
    nlp, _ = trained_nlp
    gp = nlp.get_pipe("global_pointer")
    gp.cfg["threshold"] = "abc"
    try:
        with pytest.raises(ValueError, match=r"threshold in cfg must be a probability in \[0, 1\], got 'abc'"):
            nlp("Bank of England")
    finally:
        gp.cfg["threshold"] = 0.5


# ---------------------------------------------------------------- non-finite scores


def poison_encoder(nlp) -> None:
    tok2vec = nlp.get_pipe("global_pointer").model.get_ref("tok2vec")
    for node in tok2vec.walk():
        for name in node.param_names:
            if node.has_param(name):
                node.set_param(name, node.get_param(name) * numpy.nan)
                return


def test_nan_scores_stop_the_update_before_any_weight_changes():
    nlp, examples = train_pipeline(n_updates=2)
    optimizer = nlp.resume_training()
    poison_encoder(nlp)
    head = nlp.get_pipe("global_pointer").model.get_ref("head")
    before = head.to_bytes()
    with pytest.raises(ValueError, match=r"\d+ of \d+ span scores in this batch are not finite"):
        nlp.update(examples, sgd=optimizer)
    assert head.to_bytes() == before


def test_nan_scores_at_prediction_warn_with_a_count():
    nlp, _ = train_pipeline(n_updates=2)
    poison_encoder(nlp)
    doc = nlp.make_doc("Bank of England raised rates.")
    n_labels = len(nlp.get_pipe("global_pointer").labels)
    with pytest.warns(UserWarning, match=rf"{len(doc) * len(doc) * n_labels} span score\(s\) in this batch are not finite"):
        doc = nlp(doc)
    assert len(doc.spans["sc"]) == 0


# ---------------------------------------------------------------- doc.ents beside spaCy's components


def ents_pipeline(before: bool, overwrite: bool):
    nlp, _ = train_pipeline({"annotate_ents": True, "overwrite_ents": overwrite}, n_updates=50)
    ruler = nlp.add_pipe("entity_ruler", first=before, config={"overwrite_ents": False})
    ruler.add_patterns([{"label": "PLACE", "pattern": "Cambridge"}, {"label": "VERB", "pattern": "is"}])
    return nlp


def test_annotate_ents_keeps_entities_set_before_it():
    doc = ents_pipeline(before=True, overwrite=False)(NESTED_TRAIN[0][0])
    # the ruler's entities stay; of ours only those overlapping none of them are added
    assert [(e.text, e.label_) for e in doc.ents] == [("Cambridge", "PLACE"), ("is", "VERB"), ("England", "GPE")]


def test_annotate_ents_overwrite_replaces_entities_set_before_it():
    doc = ents_pipeline(before=True, overwrite=True)(NESTED_TRAIN[0][0])
    ents = [(e.text, e.label_) for e in doc.ents]
    assert ("is", "VERB") not in ents and ("England", "GPE") in ents


def test_factory_declares_doc_ents_and_evaluate_scores_them():
    meta = spacy.language.Language.get_factory_meta("global_pointer")
    assert "doc.ents" in meta.assigns and "doc.spans" in meta.assigns
    # the standard head, whose 50 updates rank each nested pair as the assertions expect
    nlp, examples = train_pipeline({"annotate_ents": True, "model": {"efficient": False}}, n_updates=50)
    for eg in examples:
        eg.reference.ents = [s for s in eg.reference.spans["sc"] if s.label_ == "GPE"]
    scores = nlp.evaluate(examples)
    assert scores["spans_sc_f"] == 1.0
    # the ORG/GPE nested pair: the higher-scoring span wins doc.ents, so ents are not perfect
    assert scores["ents_p"] is not None and scores["ents_r"] == 1.0
    assert "ents_f" not in train_pipeline(n_updates=1)[0].evaluate(examples)


def test_mixed_precision_comes_from_the_config_not_the_saved_weights(trained_nlp):
    nlp, _ = trained_nlp
    text = NESTED_TRAIN[0][0]
    loaded = spacy.blank("en")
    loaded.add_pipe("global_pointer", config={"model": {"mixed_precision": True}})
    loaded.from_bytes(nlp.to_bytes())
    assert loaded.get_pipe("global_pointer").model.get_ref("head").attrs["mixed_precision"] is True
    spans, scores = spans_and_scores(loaded(text))
    assert spans == spans_and_scores(nlp(text))[0]
    numpy.testing.assert_array_equal(scores, spans_and_scores(nlp(text))[1])


def v3_config(**settings) -> dict:
    """The factory's default model on GlobalPointer.v3 (a new @architectures replaces the
    whole block, tok2vec included)."""
    from spacy_globalpointer.pipeline import DEFAULT_MODEL

    model = {**copy.deepcopy(dict(DEFAULT_MODEL)), "@architectures": "spacy-globalpointer.GlobalPointer.v3"}
    return {"model": {**model, **settings}}


WIDTH_BIAS = v3_config(width_bias=True)


def test_width_bias_head_overfits_and_round_trips(tmp_path):
    nlp, examples = train_pipeline(WIDTH_BIAS, n_updates=50)
    assert nlp.evaluate(examples)["spans_sc_f"] == 1.0
    module = nlp.get_pipe("global_pointer").model.get_ref("head").layers[0].shims[0]._model
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
