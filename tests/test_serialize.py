"""Saving and loading the component (serialize.py): what the cfg file holds, settings
changed before saving, corrupt files named, and pipelines saved by older versions."""

import json
import re
import warnings
from pathlib import Path

import numpy
import pytest
import spacy
import srsly
from gp_testing import NESTED_TRAIN, spans_and_scores
from thinc.api import Config

import spacy_globalpointer

DATA = Path(__file__).parent / "data"


def test_saved_cfg_holds_labels_input_width_and_the_version_that_saved_it(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    nlp.to_disk(tmp_path / "model")
    saved = srsly.read_json(tmp_path / "model" / "global_pointer" / "cfg")
    assert saved == {"labels": ["GPE", "ORG"], "input_width": 96, "version": spacy_globalpointer.__version__}


def _char_spans(docs, key="sc"):
    return [[[span.start_char, span.end_char, span.label_] for span in doc.spans[key]] for doc in docs]


def test_pipeline_saved_by_0_1_0_gives_the_spans_it_gave_then(tmp_path):
    """tests/data/pipeline_0_1_0 was trained and saved by the 0.1.0 code (make_pipeline_0_1_0.py):
    its config.cfg says threshold = 0.0, a logit then; its cfg records no version."""
    recorded = json.loads((DATA / "pipeline_0_1_0_spans.json").read_text())
    assert srsly.read_json(DATA / "pipeline_0_1_0" / "global_pointer" / "cfg").keys() == {"labels", "input_width"}
    with pytest.warns(UserWarning, match=r"records no version.*logit \(0.0\); it is read as the probability 0.5"):
        nlp = spacy.load(DATA / "pipeline_0_1_0")
    assert nlp.get_pipe("global_pointer").threshold == 0.5
    assert _char_spans(nlp.pipe(recorded["texts"])) == recorded["spans"]
    # Saved again beside the same config.cfg (threshold = 0.0), it is read the same way.
    nlp.to_disk(tmp_path / "again")
    assert "version" not in srsly.read_json(tmp_path / "again" / "global_pointer" / "cfg")
    with pytest.warns(UserWarning, match="read as the probability 0.5"):
        again = spacy.load(tmp_path / "again")
    assert _char_spans(again.pipe(recorded["texts"])) == recorded["spans"]
    # Once its config says 0.5, the pipeline is a current one.
    fixed = spacy.load(DATA / "pipeline_0_1_0", config={"components": {"global_pointer": {"threshold": 0.5}}})
    fixed.to_disk(tmp_path / "fixed")
    assert srsly.read_json(tmp_path / "fixed" / "global_pointer" / "cfg")["version"] == spacy_globalpointer.__version__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _char_spans(spacy.load(tmp_path / "fixed").pipe(recorded["texts"])) == recorded["spans"]


def test_a_current_pipeline_saved_with_a_deliberate_threshold_of_zero_keeps_it(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    nlp.to_disk(tmp_path / "model")
    zero = spacy.load(tmp_path / "model", config={"components": {"global_pointer": {"threshold": 0.0}}})
    zero.to_disk(tmp_path / "zero")
    assert Config().from_disk(tmp_path / "zero" / "config.cfg")["components"]["global_pointer"]["threshold"] == 0.0
    loaded = spacy.load(tmp_path / "zero")
    assert loaded.get_pipe("global_pointer").cfg["threshold"] == 0.0
    with pytest.warns(UserWarning, match="threshold = 0.0 predicts every span"):
        doc = loaded("Bank of England raised rates.")
    n = len(doc)
    assert len(doc.spans["sc"]) == n * (n + 1) // 2 * 2  # every span, both labels


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
    """Save nlp as 0.1.0's development versions did: no version recorded, settings and a
    gold span report in the cfg file, the threshold a logit there and in config.cfg, which
    has no overwrite_ents. (The released 0.1.0 kept only labels and input_width in the cfg
    file: tests/data/pipeline_0_1_0.)"""
    nlp.to_disk(path)
    cfg_path = path / "global_pointer" / "cfg"
    saved = srsly.read_json(cfg_path)
    del saved["version"]
    legacy = {
        **saved, "spans_key": "sc", "threshold": logit_threshold,
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
