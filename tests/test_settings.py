"""The component's settings (settings.py): from the config, checked where they enter and
where they are read, each bad value named."""

import re
import warnings

import pytest
import spacy
from gp_testing import NESTED_TRAIN
from thinc.api import Config


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


def test_overwrite_ents_without_annotate_ents_warns_naming_both():
    nlp = spacy.blank("en")
    with pytest.warns(UserWarning, match=r"overwrite_ents = true .* does nothing while annotate_ents = false"):
        nlp.add_pipe("global_pointer", config={"overwrite_ents": True})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spacy.blank("en").add_pipe("global_pointer", config={"overwrite_ents": True, "annotate_ents": True})
