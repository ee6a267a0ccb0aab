"""Tests for the benchmark code in project/bench: the CRF tagger component, the scoring
helpers and the configs (no real training; the results store and page: test_results_store.py,
test_report.py)."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.training import Example

PROJECT = Path(__file__).resolve().parents[2]

pytest.importorskip("torchcrf")

from bench import common, configs, registry, results, thresholds, timing, training  # noqa: E402  (after the skip: crf_component needs torchcrf)  # noqa: E402
from bench import crf_component as crf  # noqa: E402
from scripts import span_metrics  # noqa: E402

TINY_TOK2VEC = {
    "@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None, "width": 32, "depth": 1,
    "embed_size": 500, "window_size": 1, "maxout_pieces": 2, "subword_features": True,
}
FLAT = [
    ("Alice met Bob in Paris today .", [(0, 5, "PER"), (10, 13, "PER"), (17, 22, "LOC")]),
    ("Visit New York now", [(6, 14, "LOC")]),
    ("Nothing here", []),
]


def _crf_nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("bench_crf_tagger", config={
        "model": {"@architectures": "spacy-globalpointer-bench.CRFTagger.v1", "tok2vec": TINY_TOK2VEC}
    })
    examples = []
    for text, ents in FLAT:
        gold = nlp.make_doc(text)
        gold.ents = [gold.char_span(s, e, label=lab) for s, e, lab in ents]
        examples.append(Example(nlp.make_doc(text), gold))
    return nlp, examples


def test_crf_trains_and_decodes_valid_spans(tmp_path):
    nlp, examples = _crf_nlp()
    optimizer = nlp.initialize(lambda: examples)
    assert nlp.get_pipe("bench_crf_tagger").tags == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    first = nlp.update(examples, sgd=optimizer, losses={})["bench_crf_tagger"]
    for _ in range(40):
        last = nlp.update(examples, sgd=optimizer, losses={})["bench_crf_tagger"]
    assert last < first / 10
    docs = list(nlp.pipe([text for text, _ in FLAT] + [""]))
    for doc in docs:
        previous_end = 0
        for ent in doc.ents:  # doc.ents itself rejects overlaps; check bounds and labels
            assert previous_end <= ent.start < ent.end <= len(doc)
            assert ent.label_ in {"PER", "LOC"}
            previous_end = ent.end
    assert [(e.text, e.label_) for e in docs[1].ents] == [("New York", "LOC")]
    assert len(docs[-1].ents) == 0
    nlp.to_disk(tmp_path / "crf")
    reloaded = spacy.load(tmp_path / "crf")
    assert [(e.start, e.end, e.label_) for e in reloaded(FLAT[0][0]).ents] == [
        (e.start, e.end, e.label_) for e in docs[0].ents
    ]


def test_viterbi_matches_brute_force():
    nlp, examples = _crf_nlp()
    nlp.initialize(lambda: examples)
    layer = nlp.get_pipe("bench_crf_tagger").model.get_ref("crf")
    rng = numpy.random.default_rng(0)
    n_tags = layer.get_dim("nO")
    for name, shape in (("transitions", (n_tags, n_tags)), ("start", (n_tags,)), ("end", (n_tags,))):
        layer.set_param(name, rng.normal(size=shape).astype("float32"))
    trans, start, end = (layer.get_param(n) for n in ("transitions", "start", "end"))
    emissions = [rng.normal(size=(n, n_tags)).astype("float32") for n in (4, 1, 3)]

    def score(em, path):
        total = start[path[0]] + end[path[-1]] + sum(em[i, t] for i, t in enumerate(path))
        return total + sum(trans[a, b] for a, b in zip(path, path[1:]))

    decoded = crf.viterbi_decode(layer, emissions)
    for em, path in zip(emissions, decoded):
        best = max(itertools.product(range(n_tags), repeat=len(em)), key=lambda p: score(em, p))
        assert tuple(path) == best


def test_tags_to_spans_reads_stray_inside_tags_as_starts():
    assert crf.tags_to_spans(["B-A", "I-A", "O", "I-B", "I-B", "B-A", "B-A", "I-B"]) == [
        (0, 2, "A"), (3, 5, "B"), (5, 6, "A"), (6, 7, "A"), (7, 8, "B")
    ]
    assert crf.tags_to_spans([]) == []


def test_score_predictions_nested_and_outermost():
    gold = {(0, 10, "A"), (0, 4, "B"), (12, 15, "A")}
    pred = {(0, 4, "B"), (12, 15, "A"), (5, 6, "A")}
    scores = span_metrics.score_predictions([pred], [gold])
    assert scores["overall"]["tp"] == 2 and scores["overall"]["predicted"] == 3
    assert scores["nested_gold"] == {"found": 1, "spans": 2, "recall": 0.5}
    assert scores["outermost"]["gold"] == 2 and scores["outermost"]["tp"] == 1
    assert scores["per_type"]["B"]["f"] == 1.0


@pytest.mark.slow
def test_entry_points_run_as_scripts_from_project():
    # The bench imports bench and scripts as packages, evaluate.py its sibling span_metrics:
    # both must work as the commands in project.yml run them, with nothing on PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for command in (["-m", "bench", "--help"], ["-m", "bench", "report", "--help"],
                    ["-m", "bench", "time", "parts", "--help"], ["scripts/evaluate.py", "--help"]):
        out = subprocess.run([sys.executable, *command], cwd=PROJECT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{command}: {out.stderr}"
    assert "--figures" in out.stdout or "--figures" in subprocess.run(
        [sys.executable, "-m", "bench", "report", "--help"], cwd=PROJECT, env=env, capture_output=True,
        text=True, timeout=120).stdout


def test_written_configs_are_current_and_load():
    for encoder in registry.ENCODERS:
        for system in registry.SYSTEMS:
            path = configs.config_path(PROJECT / "bench" / "configs", encoder, system)
            text = configs.config_text(encoder, system)
            assert path.read_text(encoding="utf8") == text, f"rerun python bench/configs.py ({path.name})"
            config = spacy.util.load_config_from_str(text, interpolate=True)
            assert config["nlp"]["pipeline"] == [registry.ENCODERS[encoder].pipe, registry.SYSTEMS[system].component]


def test_parse_overrides_reads_json_values_and_rejects_malformed_items():
    parsed = common.parse_overrides(["training.optimizer.learn_rate=0.002", "training.dropout=0.2",
                                        "components.x.flag=true", "nlp.lang=zh"])
    assert parsed == {"training.optimizer.learn_rate": 0.002, "training.dropout": 0.2,
                      "components.x.flag": True, "nlp.lang": "zh"}
    with pytest.raises(common.BadOverride, match="learn_rate"):
        common.parse_overrides(["learn_rate"])
    assert common.parse_overrides(common.override_args(parsed)[1::2]) == parsed  # the runner's round trip


def test_pick_threshold_chooses_the_dev_f1_maximum():
    gold = [{(0, 4, "A"), (5, 9, "B")}]
    scored = [[((0, 4, "A"), 0.5), ((5, 9, "B"), -0.6), ((2, 3, "A"), -1.2)]]
    best, curve = thresholds.pick_threshold(scored, gold, [-1.5, -1.0, -0.5, 0.0])
    # -1.5 keeps all three (P 2/3, R 1); -1.0 keeps exactly the gold; higher drops B.
    assert best["threshold"] == -1.0 and best["f"] == 1.0
    assert [round(row["f"], 3) for row in curve] == [0.8, 1.0, 0.667, 0.667]


def test_threshold_family_maps_variants_to_their_pipe():
    assert [registry.threshold_family(s) for s in ("global_pointer", "global_pointer_efficient",
                                                     "spancat", "spancat_1_3", "crf", "ner")] == [
        "global_pointer", "global_pointer", "spancat", "spancat", None, None]


def _base_config(encoder, system, **overrides):
    return spacy.util.load_config_from_str(configs.config_text(encoder, system), overrides=overrides,
                                           interpolate=False).to_str()


def test_config_overrides_rebuild_the_run_config():
    # As train-one writes it for Chinese: another tokenizer, filling an empty base section.
    blank = spacy.blank("zh").config
    run = _base_config("cnn", "crf", **{"nlp.lang": "zh", "nlp.tokenizer": dict(blank["nlp"]["tokenizer"]),
                                       "initialize.tokenizer": dict(blank["initialize"]["tokenizer"]),
                                       "system.seed": 2})
    base = configs.config_text("cnn", "crf")
    overrides, removed = results.config_diff(run, base)
    assert overrides["nlp.tokenizer.@tokenizers"] == "spacy.zh.ChineseTokenizer" and overrides["system.seed"] == 2
    assert removed == []
    def flat(text):
        return results._flatten(spacy.util.load_config_from_str(text, interpolate=False))

    rebuilt = {**flat(base), **overrides}
    del rebuilt["initialize.tokenizer"]  # the empty section the overrides fill
    assert rebuilt == flat(run)


def test_profile_listing_names_no_install_or_checkout_folder():
    import site

    line = f"  8  0.011  {site.getsitepackages()[0]}/thinc/layers/residual.py:28(forward)\n"
    here = f"  1  0.001  {common.PROJECT}/bench/crf_component.py:228(_gold_tags)\n"
    assert timing.relative_listing(line + here) == (
        "  8  0.011  thinc/layers/residual.py:28(forward)\n  1  0.001  project/bench/crf_component.py:228(_gold_tags)\n")


def _curve(*points):
    return [{"step": step, "dev": {"f": f}} for step, f in points]


def test_patience_stops_only_after_that_many_steps_without_a_better_dev_f():
    curve = _curve((100, 0.5), (200, 0.6), (300, 0.59), (400, 0.6))
    assert not training.patience_exhausted(curve, 0)  # off
    assert training.patience_exhausted(curve, 200)  # best at 200 (a tie later is no gain)
    assert not training.patience_exhausted(curve, 300)
    assert not training.patience_exhausted(_curve((100, 0.5), (200, 0.7)), 100)
    assert not training.patience_exhausted([], 100)
    # Not started yet (dev F 0 throughout): patience waits.
    assert not training.patience_exhausted(_curve((100, 0.0), (200, 0.0), (300, 0.0), (400, 0.0)), 200)
    # An early blip, then nothing again (spancat on Weibo): still waiting; it counts again
    # once the model predicts something.
    assert not training.patience_exhausted(_curve((100, 0.0), (200, 0.07), (300, 0.0), (400, 0.0)), 200)
    assert training.patience_exhausted(_curve((100, 0.0), (200, 0.07), (300, 0.0), (400, 0.05)), 200)


def test_conll2003_is_a_flat_dataset_of_the_shared_data():
    spec = registry.dataset("conll2003")
    assert spec.lang == "en" and spec.heldout == "test" and not spec.nested
    assert spec.path("test", Path("/data")) == Path("/data/conll2003/test.jsonl")
    assert "spancat" not in spec.systems and {"crf", "ner"} <= set(spec.systems)


def test_training_step_advances_a_scheduled_learning_rate_as_spacy_train_does():
    # warmup_linear starts at 0: a loop that never steps the schedule trains at rate 0 for
    # ever (the minilm runs before this fix did). After n steps the rate is the schedule's
    # (n+1)th value, as thinc's own generator gives it; the weights move.
    from thinc.api import Adam, warmup_linear

    nlp, examples = _crf_nlp()
    nlp.initialize(lambda: examples)
    optimizer = Adam(warmup_linear(initial_rate=0.01, warmup_steps=4, total_steps=10))
    expected = list(itertools.islice(warmup_linear(initial_rate=0.01, warmup_steps=4, total_steps=10), 4))
    assert optimizer.learn_rate == expected[0] == 0.0
    model = nlp.get_pipe("bench_crf_tagger").model
    before = [p.copy() for node in model.walk() for p in (node.get_param(n) for n in node.param_names)]
    losses = {}
    for _ in range(3):
        training.update(nlp, examples, optimizer, 0.0, losses)
    assert optimizer.learn_rate == pytest.approx(expected[3]) and expected[3] == pytest.approx(0.0075)
    assert losses["bench_crf_tagger"] > 0
    after = [p for node in model.walk() for p in (node.get_param(n) for n in node.param_names)]
    assert any(not numpy.array_equal(b, a) for b, a in zip(before, after))


def test_pipelines_train_with_the_schedule_stepped():
    from bench import pipelines

    examples = pipelines.load_examples(None, "en", 8, 0)
    schedule = {"@schedules": "warmup_linear.v1", "initial_rate": 0.002, "warmup_steps": 4, "total_steps": 100}
    trained = pipelines.build_pipeline("global_pointer_efficient", "cnn", "en", examples, 2, 4, 0,
                                       extra={"training.optimizer.learn_rate": schedule})
    assert trained.optimizer.learn_rate == pytest.approx(0.002 * 2 / 4)  # two steps into the warmup


def test_rotation_and_interleaved_repeats_alternate_the_order():
    assert [timing.rotation("abc", r) for r in range(4)] == [list("abc"), list("bca"), list("cab"), list("abc")]
    assert timing.rotation([], 3) == []
    calls = []

    def task(name, seconds):
        return lambda: calls.append(name) or seconds

    seconds = timing.interleaved({"a": task("a", 1.0), "b": task("b", 2.0)}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert seconds == {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}
    # Ratios repeat by repeat, then the median: (2/1, 6/2, 1/4) -> 2.0, not median(a)/median(b).
    assert timing.paired_median([2.0, 6.0, 1.0], [1.0, 2.0, 4.0]) == 2.0


def test_head_cost_times_a_head_against_its_encoder_and_a_trivial_head():
    from bench import pipelines

    examples = pipelines.load_examples(None, "en", 24, 0)
    assert len(examples) == 24 and any(eg.reference.spans["sc"] for eg in examples)
    built = {
        name: pipelines.build_pipeline(name, "cnn", "en", examples, 2, 8, 0)
        for name in ("global_pointer_efficient", pipelines.TRIVIAL)
    }
    texts = [eg.predicted.text for eg in examples]
    figures = timing.head_cost(built, examples, texts, 4, 16, 8, 2, pipelines.TRIVIAL)
    row = figures["systems"]["global_pointer_efficient"]
    raw, trivial_raw = row["raw_seconds"], figures["systems"][pipelines.TRIVIAL]["raw_seconds"]
    for label in ("batch1", "large"):
        pipe_s, enc_s = raw[f"{label}_pipeline_s"], raw[f"{label}_encoder_s"]
        assert len(pipe_s) == len(enc_s) == 2
        assert row[label]["throughput_vs_encoder"] == pytest.approx(
            sorted(e / p for p, e in zip(pipe_s, enc_s))[0] / 2 + sorted(e / p for p, e in zip(pipe_s, enc_s))[1] / 2)
        assert row[label]["head_share"] == pytest.approx(1 - row[label]["throughput_vs_encoder"])
    assert row["train_vs_trivial_head"] == pytest.approx(
        sum(t / s for s, t in zip(raw["train_s"], trivial_raw["train_s"])) / 2)
    assert "batch1" not in figures["systems"][pipelines.TRIVIAL]
    listings = timing.head_cost_profiles(built["global_pointer_efficient"], examples, texts, 4, 16, 8, 5, True)
    assert any("torch.profiler" in title for title in listings)
    assert all("function calls" in text for title, text in listings.items() if title.startswith("cProfile"))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A global_pointer pipeline updated twice, saved, with 24 docs as JSONL and DocBin."""
    from spacy.tokens import DocBin

    from bench import pipelines

    tmp = tmp_path_factory.mktemp("model")
    examples = pipelines.load_examples(None, "en", 24, 0)
    nlp = pipelines.build_pipeline("global_pointer_efficient", "cnn", "en", examples, 2, 8, 0).nlp
    assert nlp.pipe_names == ["tok2vec", "global_pointer"]
    nlp.get_pipe("global_pointer").cfg["threshold"] = 0.3  # an untrained head: some spans
    nlp.to_disk(tmp / "model")
    texts = [eg.predicted.text for eg in examples]
    (tmp / "docs.jsonl").write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    DocBin(docs=[eg.reference for eg in examples]).to_disk(tmp / "docs.spacy")
    return tmp, texts


def test_time_parts_times_encoder_forward_and_decoding_of_a_saved_pipeline(saved_model, monkeypatch):
    from typer.testing import CliRunner

    from bench import cli, timing_cli

    monkeypatch.setattr(timing_cli, "set_threads", lambda threads: None)  # keep the test process's
    tmp, texts = saved_model
    out = tmp / "parts.json"
    result = CliRunner().invoke(cli.app, ["time", "parts", str(tmp / "model"), str(tmp / "docs.jsonl"), "--docs", "20",
                                          "--batch-size", "8", "--repeats", "2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    reloaded = spacy.load(tmp / "model")
    expected_spans = sum(len(doc.spans["sc"]) for doc in reloaded.pipe(texts[:20], batch_size=8))
    assert figures["docs"] == 20 and figures["spans"] == expected_spans > 0
    assert figures["words"] == sum(len(reloaded.make_doc(text)) for text in texts[:20])
    assert all(len(figures["seconds"][part]) == 2 for part in ("encoder", "forward", "decode"))
    medians = figures["medians"]
    assert figures["head_share"] == pytest.approx(
        (medians["forward"] + medians["decode"]) / sum(medians.values()))
    assert "head share" in result.output


def test_time_pipeline_and_profile_of_a_saved_pipeline(saved_model, monkeypatch):
    from typer.testing import CliRunner

    from bench import cli, timing_cli

    monkeypatch.setattr(timing_cli, "set_threads", lambda threads: None)
    tmp, texts = saved_model
    runner = CliRunner()
    result = runner.invoke(cli.app, ["time", "pipeline", str(tmp / "model"), str(tmp / "docs.spacy"),
                                     str(tmp / "timing.json"), "--batch1-docs", "4", "--large-batch", "8",
                                     "--train-data", str(tmp / "docs.spacy"), "--train-docs", "24"])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp / "timing.json").read_text())
    words = sum(len(spacy.blank("en").make_doc(text)) for text in texts)
    assert figures["full"]["large"]["words"] == figures["encoder_only"]["large"]["words"] == words
    assert figures["full"]["batch1"]["words"] == sum(len(spacy.blank("en").make_doc(t)) for t in texts[:4])
    # 24 docs in batches of 16: the first batch warms up, the second (8 docs) is timed.
    assert figures["train"]["words"] == sum(len(spacy.blank("en").make_doc(t)) for t in texts[16:])
    assert set(figures["code"]) >= {"commit", "package_commit"}
    result = runner.invoke(cli.app, ["time", "profile", str(tmp / "model"), str(tmp / "docs.spacy"),
                                     str(tmp / "profile.txt"), "--docs", "24"])
    assert result.exit_code == 0, result.output
    assert "function calls" in (tmp / "profile.txt").read_text()


def test_time_forward_reports_a_median_per_call():
    figures = timing.head_forward(tokens=4, labels=2, calls=5, repeats=3, warmup=5)
    assert len(figures["seconds_per_call"]) == 3
    assert figures["median_seconds_per_call"] == sorted(figures["seconds_per_call"])[1] > 0
