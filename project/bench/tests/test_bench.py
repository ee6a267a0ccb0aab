"""Tests for the benchmark code in project/bench: the CRF tagger component, the scoring
helpers, the configs and the results-page generator (no real training)."""

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

from bench import common, configs, registry, report, results, thresholds, timing, training  # noqa: E402  (after the skip: crf_component needs torchcrf)  # noqa: E402
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


def _result(system, f, train_wps, flat=False):
    overall = {"p": f, "r": f, "f": f}
    return {
        "dataset": "genia", "encoder": "cnn", "system": system, "seed": 0, "flat": flat, "steps": 100,
        "spancat_sizes": [1, 2, 3, 4] if system == "spancat" else None,
        "train_words_per_second": train_wps, "train_seconds": 10.0,
        "best": {"step": 100, "train_seconds": 9.0, "dev_f": f},
        "curve": [{"step": 50, "epoch": 0, "train_seconds": 5.0, "dev": {"f": f / 2}},
                  {"step": 100, "epoch": 0, "train_seconds": 10.0, "dev": {"f": f}}],
        "test": {"overall": overall, "outermost": overall,
                 "per_type": {"DNA": {"f": f}, "protein": {"f": f}},
                 "nested_gold": {"found": 1, "spans": 2, "recall": 0.5}},
        "machine": {"cpu": "test cpu", "cores": 2},
    }


def _timing(bs1, large, enc_large):
    return {"train": {"words_per_second": bs1 * 3},
            "full": {"batch1": {"words_per_second": bs1}, "large": {"words_per_second": large}},
            "encoder_only": {"batch1": {"words_per_second": bs1 * 2}, "large": {"words_per_second": enc_large}},
            "peak_rss_mb": 500.0}


def test_report_builds_tables_from_results_json(tmp_path):
    runs = tmp_path / "runs"
    for system, f, wps in (("global_pointer", 0.72, 5000.0), ("spancat", 0.68, 3000.0), ("crf", 0.65, 2000.0)):
        path = runs / "genia" / "cnn" / system / "seed0" / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_result(system, f, wps, flat=system == "crf")))
        for repeat, speed in enumerate((1000.0, 1200.0, 1100.0)):
            timing = runs / "genia" / "cnn" / "timing" / "s1" / f"{system}-seed0-r{repeat}.json"
            timing.parent.mkdir(parents=True, exist_ok=True)
            timing.write_text(json.dumps(_timing(speed, speed * 10, speed * 40)))
    assert results.fold(runs, results.Kind.runs, tmp_path / "results") == {
        tmp_path / "results" / "genia.json": (3, 9)}
    data = results.load(tmp_path / "results")
    runs_, timings = data["runs"], data["timings"]
    assert len(runs_) == 3 and len(timings) == 9
    rows = report.summarize(runs_, timings)
    gp = rows[("genia", "cnn", "global_pointer")]
    assert gp["pred_large"] == 11000.0 and gp["repeats"] == 3  # median of the repeats
    assert gp["head_share_large"] == pytest.approx(0.75)
    page = report.build_page(runs_, timings, commands=["python bench/run.py run genia"])
    assert "| global_pointer | 72.0 | 72.0 | 72.0 | 72.0 | 50.0 | 1 | ? |" in page
    assert "| F per type | DNA | protein |" in page
    assert "spancat n-gram sizes covering 99.5% of the training spans: 1-4." in page
    assert "| GENIA test F1: global_pointer vs best spancat (cnn) | +3.0 points | +4.0 points | **met** |" in page
    assert "genia: global_pointer vs CRF, training words/s (cnn) | >= 1.30x | 1.00x | **missed**" in page
    assert "| global_pointer | 5,000 | 3,300 | 100 | 9 | 1,100 | 11,000 | 44,000 | 50.0% / 75.0% | 500 | s1 (?) | 3 |" in page
    assert "prediction batch 256 (cnn) | >= 1.00x | 1.00x | **met** |" in page
    assert "median of 3 paired repeats" in page


def test_report_draws_figures(tmp_path):
    pytest.importorskip("matplotlib")
    results = [_result("global_pointer", 0.72, 5000.0), _result("crf", 0.65, 2000.0, flat=True)]
    for r in results:
        r["dataset"] = "cluener"
    timings = [dict(_timing(1000.0, 9000.0, 20000.0), dataset="cluener", encoder="cnn", system=s,
                    seed=0, repeat=0) for s in ("global_pointer", "crf")]
    rows = report.summarize(results, timings)
    figures = report.make_figures(rows, tmp_path / "figures")
    assert {p.name for p in figures} == {"cluener-cnn-f1.png", "cluener-cnn-speed.png", "cluener-cnn-curve.png"}
    assert all(p.stat().st_size > 1000 for p in figures)


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


def _tuned_result(system, seed, f, tuned_f, threshold, overrides):
    result = _result(system, f, 1000.0)
    result.update(seed=seed, overrides=overrides, steps=4000, encoder="bilstm")
    result["threshold"] = {"best_threshold": threshold, "test_tuned": {"overall": {"f": tuned_f}}}
    return result


def test_tuned_section_reports_medians_and_paired_margin():
    runs = [_tuned_result("global_pointer", 0, 0.73, 0.74, -0.25, {"training.optimizer.learn_rate": 0.002}),
            _tuned_result("global_pointer", 1, 0.71, 0.72, 0.0, {"training.optimizer.learn_rate": 0.002}),
            _tuned_result("spancat", 0, 0.70, 0.705, 0.4, {}),
            _tuned_result("spancat", 1, 0.68, 0.69, 0.35, {})]
    text = "\n".join(report.tuned_section(runs))
    assert "### genia, bilstm encoder, 4000 steps" in text
    assert ("| global_pointer | learn_rate=0.002 | 0: 73.0, 1: 71.0 | 72.0 | 0: 74.0 (t=-0.25), 1: 72.0 (t=0.0) "
            "| 73.0 |") in text
    assert "| spancat (99.5% sizes) | defaults | 0: 70.0, 1: 68.0 | 69.0 |" in text
    # medians 73.0 - 69.75; seed by seed 74.0 - 70.5 and 72.0 - 69.0
    assert ("global_pointer (threshold tuned on dev) minus spancat (99.5% sizes): **+3.2 points** (medians); "
            "seed by seed: +3.5, +3.0. Target: +3.0.") in text


def test_tuned_section_compares_flat_data_with_the_crf():
    runs = [_tuned_result("global_pointer", 0, 0.66, 0.67, -0.25, {}),
            _tuned_result("crf", 0, 0.68, 0.0, 0.0, {"training.optimizer.learn_rate": 0.002})]
    for r in runs:
        r["dataset"] = "cluener"
    del runs[1]["threshold"]  # the CRF has no threshold: compared on its plain F
    text = "\n".join(report.tuned_section(runs))
    assert "| CRF tagger | learn_rate=0.002 | 0: 68.0 | 68.0 | — |" in text
    assert "global_pointer (threshold tuned on dev) minus CRF tagger: **-1.0 points**" in text
    assert "Target: +0.0." in text


def test_sweep_section_lists_every_run_with_its_budget(tmp_path):
    sweep = tmp_path / "sweeps" / "device-1"
    for name, system, f in (("global_pointer-lr2e-3", "global_pointer", 0.73), ("spancat", "spancat", 0.70),
                            ("global_pointer", "global_pointer", 0.71)):
        result = _result(system, f, 1000.0)
        result.update(max_train_seconds=200.0, steps_run=2900, overrides={"training.optimizer.learn_rate": 0.002}
                      if "lr" in name else {})
        path = sweep / "genia" / "cnn" / name / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(result))
    results.fold(sweep, results.Kind.sweep, tmp_path / "results")
    sweeps = results.load(tmp_path / "results")["sweeps"]
    assert list(sweeps) == ["device-1"]
    text = "\n".join(report.sweep_section(sweeps["device-1"]))
    assert "3 runs, up to 14 at a time" in text
    gp_lr = "| cnn | global_pointer | learn_rate=0.002 | 0 | 200 s | 2900 | 1 | 73.0 | 73.0 | 73.0 | 73.0 | — | 50.0 |"
    gp = "| cnn | global_pointer | defaults | 0 | 200 s | 2900 | 1 | 71.0 |"
    assert gp_lr in text and text.index(gp) < text.index(gp_lr)  # a system's runs in run dir order
    assert "| cnn | spancat (99.5% sizes) | defaults | 0 | 200 s | 2900 |" in text
    page = report.build_page([], [], sweeps=sweeps)
    assert "## Tuning sweep: device-1" in page


def _base_config(encoder, system, **overrides):
    return spacy.util.load_config_from_str(configs.config_text(encoder, system), overrides=overrides,
                                           interpolate=False).to_str()


def test_collect_folds_runs_with_relative_paths_and_config_overrides(tmp_path):
    runs = tmp_path / "runs"
    run = runs / "genia" / "cnn" / "global_pointer" / "seed0"
    run.mkdir(parents=True)
    result = _result("global_pointer", 0.72, 5000.0)
    (run / "result.json").write_text(json.dumps(result))
    (run / "threshold.json").write_text(json.dumps(
        {"best_threshold": -0.25, "test_tuned": result["test"], "test_default": result["test"]}))
    (run / "config.cfg").write_text(_base_config(
        "cnn", "global_pointer", **{"paths.train": "/elsewhere/project/corpus/bench/genia/train.spacy",
                                    "training.max_steps": 100}))
    timing = runs / "genia" / "cnn" / "timing" / "s1" / "global_pointer-seed0-r0.json"
    timing.parent.mkdir(parents=True)
    timing.write_text(json.dumps(dict(_timing(1000.0, 9000.0, 20000.0),
                                      model=str(run / "model-best"), data="/data/test.spacy")))
    out = tmp_path / "results"
    results.fold(runs, results.Kind.runs, out)
    text = (out / "genia.json").read_text(encoding="utf8")
    assert '"/' not in text  # no absolute path of the machine the runs ran on
    data = json.loads(text)
    assert data["kind"] == "runs" and len(text.splitlines()) == 9  # one record a line
    (record,) = data["runs"]
    assert record["path"] == "genia/cnn/global_pointer/seed0"
    assert record["config_overrides"] == {"paths.train": "corpus/bench/genia/train.spacy", "training.max_steps": 100}
    assert "config_removed" not in record
    assert record["threshold"] == {"best_threshold": -0.25, "test_tuned": result["test"]}  # test_default == test
    (timed,) = data["timings"]
    assert (timed["system"], timed["session"], timed["seed"], timed["repeat"]) == ("global_pointer", "s1", 0, 0)
    assert timed["model"].endswith("model-best") and not timed["model"].startswith("/")
    assert timed["data"] == "test.spacy"  # outside any project: the name alone

    # Folding again replaces a run; other runs (a later seed, another dataset) are added.
    result["test"]["overall"]["f"] = 0.5
    (run / "result.json").write_text(json.dumps(result))
    (run / "config.cfg").unlink()
    seed1 = runs / "genia" / "cnn" / "global_pointer" / "seed1"
    seed1.mkdir()
    (seed1 / "result.json").write_text(json.dumps(dict(result, seed=1)))
    other = tmp_path / "more" / "weibo" / "cnn" / "crf" / "seed0"
    other.mkdir(parents=True)
    (other / "result.json").write_text(json.dumps(dict(_result("crf", 0.6, 1.0, flat=True), dataset="weibo")))
    results.fold(runs, results.Kind.runs, out)
    assert results.fold(tmp_path / "more", results.Kind.runs, out) == {out / "weibo.json": (1, 0)}
    loaded = results.load(out)
    assert [(r["dataset"], r["seed"], r["test"]["overall"]["f"]) for r in loaded["runs"]] == [
        ("genia", 0, 0.5), ("genia", 1, 0.5), ("weibo", 0, 0.6)]
    assert len(loaded["timings"]) == 1
    with pytest.raises(ValueError, match="kind"):
        (out / "tuned.json").write_text(json.dumps({"kind": "runs", "runs": []}))
        results.fold(runs, results.Kind.tuned, out)


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
