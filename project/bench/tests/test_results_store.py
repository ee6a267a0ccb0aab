"""The results store (bench/records.py, bench/results.py): typed records that round-trip,
identities that keep a variant beside its baseline, collection of run dirs written with and
without experiment/variant, clear errors for unknown kinds and schema versions, and the
one-off migration of the first format. Hand-made records; expected values by hand."""

import copy
import json

import pytest
import spacy

from bench import configs, migrate_v1, records, results


def result_json(system="global_pointer_efficient", f=0.72, *, dataset="genia", seed=0, **extra):
    """A result.json as the first runner's train-one wrote it (no experiment or variant)."""
    overall = {"p": f, "r": f, "f": f, "tp": 72, "predicted": 100, "gold": 100}
    out = {
        "dataset": dataset, "encoder": "cnn", "system": system, "seed": seed, "flat": system in ("crf", "ner"),
        "steps": 30000, "steps_run": 4000, "eval_every": 500, "patience": 2500, "stopped_by": "patience",
        "overrides": {"training.optimizer.learn_rate": 0.002}, "spancat_sizes": None,
        "train_seconds": 100.0, "train_words": 500000, "train_words_per_second": 5000.0,
        "curve": [{"step": 500, "epoch": 0, "words": 1000, "train_seconds": 5.0, "wall_seconds": 60.0,
                   "loss": 3.5, "dev": {"p": f / 2, "r": f / 2, "f": f / 2}},
                  {"step": 1000, "epoch": 0, "words": 2000, "train_seconds": 10.0, "wall_seconds": 120.0,
                   "loss": 1.5, "dev": {"p": f, "r": f, "f": f}}],
        "best": {"dev_f": f, "step": 1000, "train_seconds": 10.0, "wall_seconds": 120.0},
        "test": {"overall": overall, "outermost": overall,
                 "per_type": {"DNA": dict(overall), "protein": dict(overall)},
                 "nested_gold": {"found": 1, "spans": 2, "recall": 0.5},
                 "by_length": {"unit": "words", "buckets": {"1-2": dict(overall), "21+": dict(overall)}},
                 "something_new": {"kept": True}},
        "machine": {"cpu": "test cpu", "cores": 2}, "code": {"commit": "abc1234"},
    }
    out.update(extra)
    return out


def write_run(folder, result, *, config=None, threshold=None):
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(result))
    if config is not None:
        (folder / "config.cfg").write_text(config)
    if threshold is not None:
        (folder / "threshold.json").write_text(json.dumps(threshold))
    return folder


def stored(d):
    return {**d, "schema_version": records.SCHEMA_VERSION, "kind": "train", "experiment": "converged",
            "variant": "baseline"}


def test_a_train_record_round_trips_and_keeps_what_it_does_not_model():
    data = stored(result_json(unknown_top_level=[1, 2]))
    record = records.record_from_dict(copy.deepcopy(data))
    assert isinstance(record, records.TrainRecord)
    assert record.test.overall.f == 0.72 and record.test.per_type["DNA"].tp == 72
    assert record.test.nested_recall == 0.5
    assert record.test.by_length.buckets["21+"].gold == 100 and record.test.by_length.unit == "words"
    assert record.curve[1].dev.f == 0.72 and record.best.step == 1000
    assert record.extra == {"unknown_top_level": [1, 2]}
    assert record.test.extra == {"something_new": {"kept": True}}
    assert record.to_dict() == {k: v for k, v in data.items() if v is not None}  # nulls are not written
    assert record.key == ("converged", "baseline", "genia", "cnn", "global_pointer_efficient", 0)


def test_optional_fields_for_breakdowns_stay_absent_until_a_run_has_them():
    record = records.record_from_dict(stored(result_json()))
    assert record.test.inner_spans is None and record.predict_words_per_second is None
    data = stored(result_json(predict_words_per_second=30000.0, head_share=0.05))
    data["test"]["inner_spans"] = {"found": 3, "spans": 4, "recall": 0.75}
    record = records.record_from_dict(data)
    assert record.test.inner_spans.recall == 0.75 and record.head_share == 0.05


def test_unknown_kind_or_schema_version_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"schema_version": 2, "records": [dict(stored(result_json()), kind="mystery")]}))
    with pytest.raises(records.RecordError, match=r"x\.json.*record 0.*unknown record kind 'mystery'"):
        results.load_records(tmp_path)
    path.write_text(json.dumps({"kind": "converged", "runs": []}))  # the first format
    with pytest.raises(records.RecordError, match=r"x\.json: schema_version None"):
        results.load_records(tmp_path)
    path.write_text(json.dumps({"schema_version": 3, "records": []}))
    with pytest.raises(records.RecordError, match=r"x\.json: schema_version 3"):
        results.read_file(path)


def test_a_variant_sits_beside_its_baseline_and_a_duplicate_identity_is_an_error(tmp_path):
    base = records.TrainRecord.from_dict(stored(result_json()))
    variant = records.TrainRecord.from_dict(dict(stored(result_json(f=0.6)), variant="width_bias=true"))
    results.write_records(tmp_path / "a.json", [base, variant])
    loaded = results.load_records(tmp_path)
    assert sorted(r.variant for r in loaded) == ["baseline", "width_bias=true"]
    results.write_records(tmp_path / "b" / "c.json", [base])
    with pytest.raises(records.RecordError, match=r"c\.json.*also in .*a\.json"):
        results.load_records(tmp_path)


def test_variant_names_and_settings_are_inverse():
    assert records.variant_settings("baseline") == {}
    assert records.variant_settings("head_learn_rate_scale=10, max_steps=3200") == {
        "head_learn_rate_scale": "10", "max_steps": "3200"}
    assert records.variant_name({"max_steps": 3200, "head_learn_rate_scale": 10}) == \
        "head_learn_rate_scale=10, max_steps=3200"
    assert records.variant_name({}) == "baseline"


def _base_config(encoder, system, **overrides):
    return spacy.util.load_config_from_str(configs.config_text(encoder, system), overrides=overrides,
                                           interpolate=False).to_str()


def test_collect_runs_of_the_first_runner_takes_experiment_and_variant_from_the_caller(tmp_path):
    runs = tmp_path / "runs"
    result = result_json("global_pointer")
    run = write_run(runs / "genia" / "cnn" / "global_pointer" / "seed0", result,
                    config=_base_config("cnn", "global_pointer", **{
                        "paths.train": "/elsewhere/project/corpus/bench/genia/train.spacy", "training.max_steps": 100}),
                    threshold={"best_threshold": -0.25, "test_tuned": result["test"], "test_default": result["test"]})
    timing = runs / "genia" / "cnn" / "timing" / "s1" / "global_pointer-seed0-r2.json"
    timing.parent.mkdir(parents=True)
    timing.write_text(json.dumps({"full": {"large": {"words_per_second": 9.0}}, "encoder_only": {},
                                  "model": str(run / "model-best"), "data": "/data/test.spacy"}))
    out = tmp_path / "results" / "converged" / "new.json"
    assert results.collect_runs([runs], out, experiment="converged", variant="width_bias=true") == (1, 1, 2)
    text = out.read_text(encoding="utf8")
    assert '"/' not in text and len(text.splitlines()) == 7  # no machine paths; one record a line
    train, timed = sorted(results.read_file(out), key=lambda r: r.kind, reverse=True)
    assert train.key == ("converged", "width_bias=true", "genia", "cnn", "global_pointer", 0)
    assert train.path == "genia/cnn/global_pointer/seed0"
    assert train.config_overrides == {"paths.train": "corpus/bench/genia/train.spacy", "training.max_steps": 100}
    assert train.threshold == {"best_threshold": -0.25, "test_tuned": result["test"]}  # test_default == test
    assert (timed.system, timed.session, timed.seed, timed.repeat, timed.variant) == (
        "global_pointer", "s1", 0, 2, "width_bias=true")
    assert timed.extra["data"] == "test.spacy" and not timed.extra["model"].startswith("/")

    # Collecting again replaces the run; a single run dir can be given too.
    (run / "result.json").write_text(json.dumps(result_json("global_pointer", f=0.5)))
    assert results.collect_runs([run], out, experiment="converged", variant="width_bias=true") == (1, 0, 2)
    (train,) = [r for r in results.read_file(out) if r.kind == "train"]
    assert train.test.overall.f == 0.5 and train.path == "genia/cnn/global_pointer/seed0"  # below its runs dir, as before


def test_a_run_that_names_its_experiment_keeps_it_and_a_different_one_given_is_an_error(tmp_path):
    run = write_run(tmp_path / "r" / "seed1", result_json(seed=1, experiment="converged", variant="lr=0.001"))
    out = tmp_path / "out.json"
    results.collect_runs([run], out)
    (record,) = results.read_file(out)
    assert (record.experiment, record.variant, record.seed) == ("converged", "lr=0.001", 1)
    with pytest.raises(records.RecordError, match="variant 'lr=0.001', but 'baseline' was given"):
        results.collect_runs([run], out, experiment="converged", variant="baseline")
    old = write_run(tmp_path / "old" / "seed0", result_json())
    with pytest.raises(records.RecordError, match="names no experiment"):
        results.collect_runs([old], out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(records.RecordError, match="no result.json"):
        results.collect_runs([tmp_path / "empty"], out)


def test_collect_finds_timing_repeats_below_any_folder_and_refuses_a_record_stored_elsewhere(tmp_path):
    runs = tmp_path / "runs"
    run = write_run(runs / "genia" / "cnn" / "crf" / "seed0", result_json("crf"))
    timing = runs / "genia" / "cnn" / "timing" / "s1" / "crf-seed0-r0.json"
    timing.parent.mkdir(parents=True)
    timing.write_text(json.dumps({"predict_wps": 1000.0}))
    store = tmp_path / "results"
    out = store / "fixed_budget" / "genia.json"
    assert results.collect_runs([runs / "genia"], out, experiment="fixed_budget") == (1, 1, 2)
    records_ = results.read_file(out)
    assert sorted((r.kind, r.path) for r in records_) == [("timing", "genia/cnn/timing/s1/crf-seed0-r0.json"),
                                                         ("train", "genia/cnn/crf/seed0")]
    # A run dir given itself keeps its path below the runs dir too.
    assert results.collect_runs([run], out, experiment="fixed_budget", store=store) == (1, 0, 2)
    assert {r.path for r in results.read_file(out)} == {"genia/cnn/crf/seed0", "genia/cnn/timing/s1/crf-seed0-r0.json"}
    with pytest.raises(records.RecordError, match="already in .*genia.json"):
        results.collect_runs([run], store / "fixed_budget" / "baseline.json", experiment="fixed_budget", store=store)
    assert not (store / "fixed_budget" / "baseline.json").exists()


def _profile_output(path, share):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": "/x/shared/data/genia/dev.jsonl", "lang": "en", "encoder": "cnn",
                                "threads": 1, "code": {"commit": "c", "package_path": "/a/b/gp/spacy_globalpointer"},
                                "figures": {"systems": {"crf": {"batch1": {"head_share": share}}}},
                                "profiles": "dropped"}))
    return path


def test_head_cost_outputs_are_collected_by_source_and_replaced(tmp_path):
    into = tmp_path / "head_cost.json"
    a = _profile_output(tmp_path / "s1" / "a.json", 0.3)
    assert results.collect_head_cost([a], "aaaaaaa", results.Role.before, into) == 1
    _profile_output(a, 0.2)
    b = _profile_output(tmp_path / "s1" / "b.json", 0.1)
    assert results.collect_head_cost([a, b], "bbbbbbb", results.Role.after, into) == 2
    first = {r.source: r for r in results.read_file(into)}["s1/a.json"]
    assert first.label == "bbbbbbb" and first.figures["systems"]["crf"]["batch1"]["head_share"] == 0.2
    assert first.data == "../../shared/data/genia/dev.jsonl" and first.code["package_path"] == "gp/spacy_globalpointer"
    assert "profiles" not in first.to_dict()


def test_head_parts_records_name_their_model_and_give_words_per_second(tmp_path):
    out = tmp_path / "parts.json"
    output = tmp_path / "o.json"
    output.write_text(json.dumps({"model": "bench/runs_converged/weibo/bilstm/crf/seed0/model-best",
                                  "data": "/w/shared/data/weibo/train.jsonl", "docs": 10, "words": 300,
                                  "batch_size": 256, "medians": {"encoder": 0.5, "forward": 0.25, "decode": 0.25},
                                  "package": "abc"}))
    assert results.collect_head_parts([output], out, experiment="converged") == 1
    (record,) = results.read_file(out)
    assert (record.dataset, record.encoder, record.system, record.seed) == ("weibo", "bilstm", "crf", 0)
    assert record.words_per_second == 300.0  # 300 words / (0.5 + 0.25 + 0.25) s
    with pytest.raises(records.RecordError, match="DATASET/ENCODER/SYSTEM/seedN"):
        results.model_identity("model-best")


def test_migration_names_each_old_file_by_experiment_and_variant(tmp_path):
    old = tmp_path / "old"
    run = result_json()

    def write(name, data):
        (old / name).parent.mkdir(parents=True, exist_ok=True)
        (old / name).write_text(json.dumps(data))

    for dataset in ("genia", "cluener", "weibo"):
        write(f"{dataset}.json", {"kind": "runs", "runs": [dict(run, dataset=dataset)], "timings": []})
    write("tuned.json", {"kind": "tuned", "runs": [run]})
    write("sweep.json", {"kind": "sweep", "runs": [dict(run, sweep="d", max_train_seconds=270.0, overrides={})]})
    for name in migrate_v1.CONVERGED_VARIANTS:
        write(name, {"kind": "converged", "runs": [run]})
    scaled = dict(run, overrides={"components.global_pointer.head_learn_rate_scale": 10.0})
    write("long_schedule/converged.json", {"kind": "converged", "runs": [scaled]})
    write("head_cost.json", {"kind": "head_cost", "runs": [{"source": "s/a.json", "session": "s", "label": "l",
                                                             "role": "after", "data": "d", "encoder": "cnn",
                                                             "figures": {}}]})
    write("head_parts/parts.json", {"kind": "head_parts", "runs": [
        {"model": "bench/runs_converged/genia/cnn/crf/seed0/model-best", "data": "d", "batch_size": 1,
         "medians": {}, "package": "p"}] * 2})
    new = tmp_path / "new"
    written = migrate_v1.migrate(old, new)
    names = {p.relative_to(new).as_posix(): [(getattr(r, "experiment", r.kind), getattr(r, "variant", "")) for r in rs]
             for p, rs in written.items()}
    assert names["converged/baseline.json"] == [("converged", "baseline")]
    assert names["converged/head_learn_rate.json"] == [("converged", "head_learn_rate_scale=10")]
    assert names["converged/long_schedule.json"] == [("converged", "head_learn_rate_scale=10, max_steps=3200")]
    assert names["converged/lr0001.json"] == [("converged", "learn_rate=0.001")]
    assert names["fixed_budget/weibo.json"] == [("fixed_budget", "baseline")]
    assert names["sweep/sweep.json"] == [("sweep", "budget_seconds=270")]
    assert [r.run for r in written[new / "head_cost" / "head_parts.json"]] == [0, 1]  # repeats kept apart


def test_every_committed_results_file_is_read():
    files = sorted(results.RESULTS.rglob("*.json"))
    loaded = results.load_records(results.RESULTS)
    assert files and sum(len(results.read_file(p)) for p in files) == len(loaded)
    assert {r.kind for r in loaded} == {"train", "timing", "head_cost", "head_parts"}


def test_the_collect_command_names_old_runs_experiment_and_variant(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    write_run(tmp_path / "runs" / "genia" / "cnn" / "crf" / "seed0", result_json("crf"))
    out = CliRunner().invoke(app, ["collect", str(tmp_path / "runs"), "--experiment", "converged",
                                   "--variant", "max_steps=3200", "--results", str(tmp_path / "results")])
    assert out.exit_code == 0, out.output
    (record,) = results.read_file(tmp_path / "results" / "converged" / "max_steps-3200.json")
    assert record.key == ("converged", "max_steps=3200", "genia", "cnn", "crf", 0)


def test_the_collect_command_writes_experiment_and_variant_files_of_the_store(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    runs = tmp_path / "runs"
    write_run(runs / "genia" / "cnn" / "crf" / "seed0", result_json("crf"))
    store = tmp_path / "results"
    cli = CliRunner()
    refused = cli.invoke(app, ["collect", str(runs), "--results", str(store)])
    assert refused.exit_code == 2 and "give --experiment" in refused.output
    done = cli.invoke(app, ["collect", str(runs), "--experiment", "converged", "--variant", "learn_rate=0.001",
                            "--results", str(store)])
    assert done.exit_code == 0, done.output
    (record,) = results.read_file(store / "converged" / "learn_rate-0.001.json")
    assert (record.experiment, record.variant, record.path) == ("converged", "learn_rate=0.001", "genia/cnn/crf/seed0")
    # The same runs into another file of the store: refused, nothing written.
    again = cli.invoke(app, ["collect", str(runs), "--experiment", "converged", "--variant", "learn_rate=0.001",
                             "--into", str(store / "converged" / "other.json"), "--results", str(store)])
    assert again.exit_code == 2 and "already in" in again.output
    assert not (store / "converged" / "other.json").exists()


def test_runs_that_name_their_variant_are_collected_into_that_variants_file(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    runs, store = tmp_path / "runs", tmp_path / "results"
    v4 = {"experiment": "converged", "variant": "architecture=GlobalPointer.v4"}
    write_run(runs / "genia" / "cnn" / "global_pointer_efficient" / "seed1", result_json(seed=1, **v4))
    write_run(runs / "genia" / "cnn" / "global_pointer_efficient" / "seed2", result_json(seed=2, **v4))
    cli = CliRunner()
    done = cli.invoke(app, ["collect", str(runs), "--experiment", "converged", "--results", str(store)])
    assert done.exit_code == 0, done.output
    assert not (store / "converged" / "baseline.json").exists()
    stored = results.read_file(store / "converged" / "architecture-GlobalPointer.v4.json")
    assert [(r.variant, r.seed) for r in stored] == [("architecture=GlobalPointer.v4", 1), ("architecture=GlobalPointer.v4", 2)]
    # A run of the first runner (no variant: baseline) beside them: two variants, refused.
    write_run(runs / "genia" / "cnn" / "global_pointer_efficient" / "seed0", result_json(seed=0))
    mixed = cli.invoke(app, ["collect", str(runs), "--experiment", "converged", "--results", str(store)])
    message = " ".join(mixed.output.replace("│", " ").split())  # the error box wraps lines
    assert mixed.exit_code == 2 and "2 variants (architecture=GlobalPointer.v4, baseline)" in message
