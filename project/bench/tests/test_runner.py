"""The runner end to end on a tiny corpus: prepare it, train (train-one), and what a
finished run records; experiment files parsed, checked against the registry, planned and
resumed."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torchcrf")  # train-one registers the CRF factory

from bench import corpus, experiment, runner, training  # noqa: E402
from bench.experiment import ExperimentError, load_experiment, parse_experiment  # noqa: E402

# Small batches (about one doc each) so that an epoch is several steps.
ONE_EPOCH = {"training.max_epochs": 1, "training.batcher.size.start": 10, "training.batcher.size.stop": 10}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """GENIA's layout (train/dev/test JSONL) with demo sentences, prepared as the runner does."""
    from scripts.make_demo import make_corpus

    tmp = tmp_path_factory.mktemp("tiny")
    records = make_corpus(14, 0)
    folder = tmp / "data" / "genia"
    folder.mkdir(parents=True)
    for split, part in (("train", records[:8]), ("dev", records[8:11]), ("test", records[11:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf8")
    stats = corpus.prepare_corpus("genia", tmp / "data", tmp / "corpus")
    assert stats["splits"]["train"]["docs"] == 8
    return tmp


def _train(tmp, name, eval_every, monkeypatch):
    monkeypatch.setattr(training, "set_threads", lambda threads: None)  # keep the test process's
    out = tmp / name
    result = training.train_one("genia", "cnn", "global_pointer_efficient", out, tmp / "corpus", seed=0,
                                schedule=training.Schedule(steps=1000, eval_every=eval_every),
                                overrides=ONE_EPOCH, experiment="tiny", variant="one_epoch")
    assert json.loads((out / "result.json").read_text()) == json.loads(json.dumps(result))
    return out, result


def test_a_run_the_epochs_stop_before_any_evaluation_is_scored_at_its_last_step(tiny_corpus, monkeypatch):
    out, result = _train(tiny_corpus, "no_eval", 1000, monkeypatch)
    assert result["stopped_by"] == "max_epochs" and 1 < result["steps_run"] < 1000
    # The only evaluation is the one after the last step: it is the best, saved and scored.
    assert [point["step"] for point in result["curve"]] == [result["steps_run"]]
    assert result["best"]["step"] == result["steps_run"] and result["model_used"] == "best"
    assert (out / "model-best").is_dir() and not (out / "model-last").exists()
    assert (result["schema_version"], result["experiment"], result["variant"]) == (2, "tiny", "one_epoch")
    assert result["overrides"] == ONE_EPOCH and result["test"]["overall"]["gold"] > 0


def test_steps_after_the_last_evaluation_are_scored(tiny_corpus, monkeypatch):
    out, result = _train(tiny_corpus, "eval_every_3", 3, monkeypatch)
    steps = [point["step"] for point in result["curve"]]
    last = result["steps_run"]
    assert last % 3 != 0, "the tiny epoch should end between two evaluations"
    assert steps == [*range(3, last, 3), last]
    assert result["best"]["step"] in steps


def _table(**changes):
    table = {"dataset": "genia", "encoders": ["cnn"], "systems": ["global_pointer_efficient", "spancat"],
             "seeds": [0, 1], "schedule": {"steps": 30000, "eval_every": 500, "patience": 2500},
             "overrides": {"training.optimizer.learn_rate": 0.002}}
    table.update(changes)
    return table


def test_an_experiment_plans_its_grid_with_overrides_per_grid():
    e = parse_experiment(_table(), "converged-genia", "test")
    assert (e.name, e.variant, e.schedule.patience) == ("converged-genia", "baseline", 2500)
    assert [(r.encoder, r.system, r.seed) for r in e.plan()] == [
        ("cnn", "global_pointer_efficient", 0), ("cnn", "spancat", 0),
        ("cnn", "global_pointer_efficient", 1), ("cnn", "spancat", 1)]
    grids = _table(grid=[{"encoders": ["bilstm"], "systems": ["crf"], "seeds": [0]},
                         {"encoders": ["bilstm"], "systems": ["spancat"], "seeds": [0],
                          "overrides": {"training.optimizer.learn_rate": 0.001}}])
    for key in ("encoders", "systems", "seeds"):
        del grids[key]
    plan = parse_experiment(grids, "g", "test").plan()
    assert [(r.system, r.overrides["training.optimizer.learn_rate"]) for r in plan] == [("crf", 0.002), ("spancat", 0.001)]


def test_an_experiment_names_its_results_experiment_variant_and_file():
    from bench.common import PROJECT

    e = parse_experiment(_table(), "converged-genia", "test")
    assert (e.experiment, e.variant) == ("converged-genia", "baseline")  # the name, unless given
    assert e.results_file() == PROJECT / "bench" / "results" / "converged-genia" / "baseline.json"
    grids = _table(experiment="converged", variant="max_steps=3200", results="bench/results/converged/long.json",
                   grid=[{"encoders": ["cnn"], "systems": ["crf"], "seeds": [0]},
                         {"encoders": ["cnn"], "systems": ["spancat"], "seeds": [0],
                          "variant": "learn_rate=0.001, max_steps=3200"}])
    for key in ("encoders", "systems", "seeds"):
        del grids[key]
    e = parse_experiment(grids, "long", "test")
    assert [(r.system, r.variant) for r in e.plan()] == [
        ("crf", "max_steps=3200"), ("spancat", "learn_rate=0.001, max_steps=3200")]
    assert e.results_file() == PROJECT / "bench" / "results" / "converged" / "long.json"
    assert experiment.default_results_file("sweep", "budget_seconds=200, dropout=0.2").name == \
        "budget_seconds-200_dropout-0.2.json"


@pytest.mark.parametrize("change, message", [
    ({"dataset": "germeval"}, "unknown dataset 'germeval'"),
    ({"systems": ["spancat", "bert"]}, "systems: unknown system 'bert'"),
    ({"seeds": ["0"]}, "seeds must be a non-empty list of integers"),
    ({"steps": 100}, "unknown key(s) ['steps']"),
    ({"schedule": {"stepz": 100}}, "[schedule]: unknown key(s) ['stepz']"),
    ({"overrides": {"training": {"dropout": 0.2}}}, "quote dotted keys"),
    ({"grid": [{"encoders": ["cnn"], "systems": ["crf"], "seeds": [0]}]}, "not both"),
    ({"variant": "long_schedule"}, "variant 'long_schedule' is not \"baseline\" or \"key=value\" pairs"),
    ({"collect": {"kind": "converged"}}, "unknown key(s) ['collect']"),
])
def test_experiment_errors_name_the_bad_value(change, message):
    with pytest.raises(ExperimentError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        parse_experiment(_table(**change), "x", "test")


def test_every_experiment_file_loads_and_no_two_write_the_same_run():
    files = sorted(experiment.EXPERIMENTS.glob("*.toml"))
    assert len(files) >= 10
    seen = {}
    for path in files:
        e = load_experiment(path)
        assert e.name == path.stem
        for run in e.plan():
            key = (e.runs_dir(), e.dataset, run.encoder, run.system, run.seed)
            assert key not in seen, f"{path.name} and {seen[key]} both write {key}"
            seen[key] = path.name
    assert load_experiment(Path("converged-genia-bilstm")).dataset == "genia"  # by name, from bench/experiments


def test_a_finished_run_with_other_settings_stops_the_runner(tmp_path, capsys):
    e = parse_experiment(_table(systems=["crf"], seeds=[0]), "exp", "test")
    (run,) = e.plan()
    rdir = training.run_dir(tmp_path, "genia", "cnn", "crf", 0)
    rdir.mkdir(parents=True)
    result = {"schema_version": 2, "experiment": "exp", "variant": "baseline", "steps": 30000, "eval_every": 500,
              "patience": 2500, "train_limit": 0, "overrides": {"training.optimizer.learn_rate": 0.002}}
    (rdir / "result.json").write_text(json.dumps(result))
    assert runner.stale_keys(result, e, run) == []
    assert runner.run_experiment(e, tmp_path, tmp_path, output=tmp_path, dry_run=True) == []
    assert "cnn/crf/seed0: done" in capsys.readouterr().out  # resumed: nothing to train
    assert runner.stale_keys({k: v for k, v in result.items() if k != "schema_version"}, e, run) == []  # old runs
    result["overrides"] = {"training.optimizer.learn_rate": 0.001}
    (rdir / "result.json").write_text(json.dumps(result))
    with pytest.raises(SystemExit, match="other settings than exp asks \\(overrides\\)"):
        runner.run_experiment(e, tmp_path, tmp_path, output=tmp_path, dry_run=True)


@pytest.mark.slow
def test_run_experiment_trains_tunes_times_and_resumes(tiny_corpus, tmp_path):
    """`python -m bench run-experiment` as a user runs it: every step in its own process."""
    import subprocess
    import sys

    from bench.common import PROJECT

    path = tmp_path / "tiny-genia.toml"
    results = tmp_path / "results" / "converged" / "baseline.json"
    path.write_text(f'''dataset = "genia"
experiment = "converged"
results = "{results}"
encoders = ["cnn"]
systems = ["global_pointer_efficient", "crf"]
seeds = [0]
tune_thresholds = true

[schedule]
steps = 6
eval_every = 4

[timing]
repeats = 1
batch1_docs = 2
''', encoding="utf8")
    command = [sys.executable, "-m", "bench", "run-experiment", str(path), "--output", str(tmp_path / "runs"),
               "--data-dir", str(tiny_corpus / "data"), "--corpus-root", str(tmp_path / "corpus")]
    out = subprocess.run([*command, "--collect"], cwd=PROJECT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    runs = tmp_path / "runs" / "genia" / "cnn"
    for system in ("global_pointer_efficient", "crf"):
        result = json.loads((runs / system / "seed0" / "result.json").read_text())
        assert (result["experiment"], result["variant"], result["steps_run"]) == ("converged", "baseline", 6)
        assert [p["step"] for p in result["curve"]] == [4, 6]
        assert (runs / "timing" / "s1" / f"{system}-seed0-r0.json").exists()
    assert (runs / "global_pointer_efficient" / "seed0" / "threshold.json").exists()
    assert not (runs / "crf" / "seed0" / "threshold.json").exists()  # no span scores
    again = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("done, skipped") == 2

    # --collect folded both runs and their timing repeats; the page is built from them.
    from bench import report
    from bench.results import load_records

    stored = load_records(tmp_path / "results")
    assert sorted((r.kind, r.system) for r in stored) == [
        ("timing", "crf"), ("timing", "global_pointer_efficient"), ("train", "crf"), ("train", "global_pointer_efficient")]
    assert {(r.experiment, r.variant, r.path) for r in stored if r.kind == "train"} == {
        ("converged", "baseline", f"genia/cnn/{s}/seed0") for s in ("crf", "global_pointer_efficient")}
    page = report.build(stored).page
    section = page[page.index("## Results at convergence"):page.index("## Variants tried")]
    assert "### GENIA, CNN" in section and "CRF" in section


def test_missing_data_names_the_files_and_how_to_point_at_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset 'cluener': no .*cluener/train.jsonl, .*cluener/dev.jsonl \(give"):
        corpus.prepare_corpus("cluener", tmp_path, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()
