"""bench/registry.py: each dataset, system and encoder named once, and what the rest of the
benchmark derives from it (configs, threshold families, the data's own nestedness)."""

import json
from pathlib import Path

import pytest
import spacy

from bench import configs, registry


def test_every_registered_encoder_and_system_has_a_config_naming_its_pipes():
    for encoder in registry.ENCODERS.values():
        for system in registry.SYSTEMS.values():
            config = spacy.util.load_config_from_str(configs.config_text(encoder.name, system.name),
                                                     interpolate=False)
            assert config["nlp"]["pipeline"] == [encoder.pipe, system.component]
            assert dict(config["training"]["score_weights"]) == {system.score_weight: 1.0}
    assert registry.ENCODER_PIPES == ("tok2vec", "transformer")


def test_unknown_names_are_errors_that_list_the_known_ones():
    with pytest.raises(registry.UnknownName, match="unknown dataset 'germeval'; known: genia, cluener"):
        registry.dataset("germeval")
    with pytest.raises(registry.UnknownName, match="unknown system 'bert'"):
        configs.config_text("cnn", "bert")
    with pytest.raises(registry.UnknownName, match="unknown encoder 'gru'"):
        configs.config_text("gru", "crf")
    with pytest.raises(registry.UnknownName, match="has no split 'dev'"):
        registry.dataset("cluener").path("dev")


def test_threshold_families_and_flat_systems():
    assert {name: registry.threshold_family(name) for name in registry.SYSTEMS} == {
        "global_pointer": "global_pointer", "global_pointer_efficient": "global_pointer",
        "spancat": "spancat", "spancat_1_3": "spancat", "crf": None, "ner": None}
    assert [s.name for s in registry.SYSTEMS.values() if not s.nested] == ["crf", "ner"]


def _has_nesting(path: Path) -> bool:
    with path.open(encoding="utf8") as lines:
        for line in lines:
            spans = sorted((e["start"], -e["end"]) for e in json.loads(line)["entities"])
            ends = [-end for _, end in spans]
            # Sorted by start (longest first): a span nests if it ends within an earlier one.
            if any(ends[j] <= ends[i] for i in range(len(spans)) for j in range(i + 1, len(spans))
                   if spans[j][0] < ends[i]):
                return True
    return False


@pytest.mark.parametrize("name", list(registry.DATASETS))
def test_nestedness_and_splits_agree_with_the_shared_data(name):
    spec = registry.dataset(name)
    heldout = spec.path(spec.heldout)
    if not heldout.exists():
        pytest.skip(f"{heldout} not on this machine")
    assert all(spec.path(split).exists() for split in spec.splits)
    assert _has_nesting(heldout) == spec.nested
