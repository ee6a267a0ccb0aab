"""The results page and the README's results block (bench/report/): statistics over seeds,
variants beside (never pooled into) their baseline, honest margins, and the committed page
and README block equal to what the committed results give. Hand-made records; expected
values worked out by hand."""

import pytest
import spacy

from bench import records, results
from bench.report import (
    CONFIGURATION_DOC,
    END,
    PAGE,
    README,
    START,
    build,
    common,
    converged,
    readme,
    replace_block,
)
from bench.report.docs_blocks import V4_END, V4_START, replace_marked


def run(system="global_pointer_efficient", f=0.70, *, seed=0, variant="baseline", dataset="genia",
        encoder="bilstm", dev=None, wall=600.0, stopped_by="patience", **extra):
    overall = {"p": f, "r": f, "f": f}
    return records.TrainRecord.from_dict({
        "schema_version": 2, "kind": "train", "experiment": "converged", "variant": variant, "dataset": dataset,
        "encoder": encoder, "system": system, "seed": seed, "steps": 30000, "patience": 2500, "eval_every": 500,
        "stopped_by": stopped_by, "train_words_per_second": 1000.0,
        "best": {"dev_f": f if dev is None else dev, "step": 4000, "train_seconds": wall / 2, "wall_seconds": wall},
        "curve": [{"step": 500, "train_seconds": 10.0, "wall_seconds": 30.0, "dev": {"f": f / 2}},
                  {"step": 4000, "train_seconds": wall / 2, "wall_seconds": wall, "dev": {"f": f}}],
        "test": {"overall": overall, "per_type": {"DNA": overall},
                 "nested_gold": {"found": 5, "spans": 10, "recall": 0.5}, **extra},
    })


def test_mean_and_sample_std_over_seeds():
    assert common.mean_std([0.70, 0.72, 0.74]) == "72.0 ± 2.0"  # sample std of 70, 72, 74
    assert common.mean_std([0.70]) == "70.0" and common.mean_std([None]) == "—"
    # A figure some runs lack is a mean over fewer runs than the row lists: the cell says so.
    assert common.mean_std([None, 0.70, 0.74]) == "72.0 ± 2.8 (2 of 3 seeds)"
    assert common.mean_std([0.70, None]) == "70.0 (1 of 2 seeds)"


def test_paired_differences_say_whether_a_margin_is_inside_the_seed_spread():
    a = [run(f=0.73, seed=0), run(f=0.71, seed=1), run(f=0.99, seed=5)]
    b = [run("spancat", 0.70, seed=0), run("spancat", 0.70, seed=1)]
    p = common.paired(a, b, common.test_f)
    assert p.seeds == [0, 1] and p.diffs == pytest.approx([0.03, 0.01])
    # mean difference 2.0 points; std of a over its three seeds is far larger: inside
    assert p.mean_diff == pytest.approx(0.02) and p.inside_spread is True
    p = common.paired(a[:2], b, common.test_f)  # std of a 1.41 points, of b 0: 2.0 is outside
    assert p.inside_spread is False
    assert p.text() == "+2.0 (seed 0: +3.0, seed 1: +1.0); outside the seed spread"
    p = common.paired(a[:1], b, common.test_f)
    assert p.inside_spread is None and "spread unknown (one seed on a side)" in p.text()


def test_a_variants_baseline_is_the_largest_variant_it_extends():
    names = ["baseline", "head_learn_rate_scale=10", "max_steps=3200", "head_learn_rate_scale=10, max_steps=3200"]
    assert converged.baseline_of("head_learn_rate_scale=10, max_steps=3200", names) == "head_learn_rate_scale=10"
    assert converged.baseline_of("max_steps=3200", names) == "baseline"
    assert converged.baseline_of("width_bias=true", ["baseline"]) == "baseline"


def test_variant_runs_are_shown_beside_their_baseline_and_never_pooled_into_it():
    runs = [run(f=0.72, seed=0), run(f=0.74, seed=1),
            run(f=0.40, seed=0, variant="boundary_smoothing=0.1"), run(f=0.44, seed=1, variant="boundary_smoothing=0.1"),
            run("spancat", 0.70, seed=0)]
    page = "\n".join(converged.results_section(runs, []))
    assert "| global_pointer (efficient) | `baseline` | 0, 1 | 73.0 ± 1.4 | 73.0 ± 1.4 |" in page
    assert "40.0" not in page and "42.0" not in page  # the variant is not in the results table
    assert "minus spancat (99.5% sizes), test F: +2.0 (seed 0: +2.0); spread unknown" in page
    variants = "\n".join(converged.variants_section(runs))
    assert "### `boundary_smoothing=0.1`" in variants
    assert "| 42.0 ± 2.8 / 73.0 ± 1.4 |" in variants  # test F, variant / baseline
    assert "variant minus `baseline`: -31.0 (seed 0: -32.0, seed 1: -30.0); outside the seed spread" in variants


def test_a_variant_on_nested_data_is_compared_on_inner_outer_and_long_spans_and_on_dev():
    def lengths(tp_short, tp_6_10, tp_11):
        # 10 gold spans of 1-2 tokens, 4 of 6-10, 1 of 11-20: long recall pools the last two
        return {"unit": "words", "buckets": {
            "1-2": {"tp": tp_short, "gold": 10, "predicted": 10}, "6-10": {"tp": tp_6_10, "gold": 4, "predicted": 4},
            "11-20": {"tp": tp_11, "gold": 1, "predicted": 1}}}

    variant = "architecture=GlobalPointer.v4"
    runs = [run(f=0.70, seed=0, dev=0.72, inner_spans={"recall": 0.6}, outer_spans={"recall": 0.4},
                by_length=lengths(9, 1, 0)),
            run(f=0.71, seed=0, dev=0.74, variant=variant, inner_spans={"recall": 0.6},
                outer_spans={"recall": 0.5}, by_length=lengths(5, 2, 1))]
    text = "\n".join(converged.variants_section(runs))
    assert "| inner-span recall | outer-span recall | recall, spans of 6+ tokens |" in text
    # long spans: variant (2 + 1) / 5, baseline 1 / 5
    assert "| GENIA, BiLSTM | global_pointer (efficient) | `baseline` | 60.0 / 60.0 | 50.0 / 40.0 | 60.0 / 20.0 |" in text
    assert "dev F, variant minus `baseline`: +2.0 (seed 0: +2.0)" in text
    assert "test F, variant minus `baseline`: +1.0 (seed 0: +1.0)" in text
    flat = "\n".join(converged.variants_section([run(dataset="weibo", f=0.5), run(dataset="weibo", f=0.6, variant=variant)]))
    assert "inner-span recall" not in flat


def test_a_variant_that_extends_another_is_shown_beside_it_and_beside_the_baseline():
    full, part = "architecture=GlobalPointer.v4", "architecture=GlobalPointer.v4, context_channels=0"
    runs = [run(f=0.70, seed=0), run(f=0.72, seed=0, variant=full), run(f=0.71, seed=0, variant=part)]
    text = "\n".join(converged.variants_section(runs))
    section = text[text.index(f"### `{part}`"):]
    assert f"| GENIA, BiLSTM | global_pointer (efficient) | `{full}` | 0 / 0 | 71.0 / 72.0 |" in section
    assert "| GENIA, BiLSTM | global_pointer (efficient) | `baseline` | 0 / 0 | 71.0 / 70.0 |" in section
    assert f"test F, variant minus `{full}`: -1.0 (seed 0: -1.0)" in section
    assert "test F, variant minus `baseline`: +1.0 (seed 0: +1.0)" in section


def test_records_with_other_length_buckets_get_their_own_table():
    errors = {"gold": 10, "fp": {"total": 0, "type": 0, "boundary": 0, "boundary_and_type": 0, "spurious": 0},
              "fn": {"total": 0, "type": 0, "boundary": 0, "boundary_and_type": 0, "missed": 0}}
    cell = {"p": 1.0, "r": 1.0, "f": 1.0, "gold": 5, "predicted": 5}
    new = run(errors=errors, by_length={"unit": "words", "buckets": {"1-2": cell, "3-5": cell}})
    old = run("crf", errors=errors, by_length={"unit": "words", "buckets": {"1": cell, "2": cell}})
    text = "\n".join(converged.errors_tables({"global_pointer_efficient": [new], "crf": [old]}, nested=True))
    assert "| system | seeds | 1-2 | 3-5 |" in text and "| system | seeds | 1 | 2 |" in text
    assert "| system | seeds | 1-2 | 3-5 | 1 | 2 |" not in text and "—" not in text
    # Each table names the seeds its means are taken over.
    assert "| global_pointer (efficient) | 0 | 100.0" in text and "| CRF tagger | 0 | 100.0" in text


def test_each_system_is_headlined_at_its_shipped_setting_as_trf_cfg_ships_it():
    config = spacy.util.load_config(common_path("configs/trf.cfg"), interpolate=False)
    scale = config["components"]["global_pointer"]["head_learn_rate_scale"]
    assert converged.shipped_variant("minilm", "global_pointer_efficient") == f"head_learn_rate_scale={scale:g}"
    runs = [run(encoder="minilm", f=0.69), run(encoder="minilm", f=0.70, variant="head_learn_rate_scale=10")]
    assert [r.test.overall.f for r in converged.headline_runs(runs)] == [0.70]


def common_path(rel):
    return str(results.PROJECT / rel)


def test_breakdown_sections_appear_only_where_records_carry_them():
    plain = "\n".join(converged.results_section([run()], []))
    assert "inner-span recall" not in plain and "By span length" not in plain and "Errors on" not in plain
    assert "head's share" not in plain
    errors = {"gold": 10, "fp": {"total": 2, "type": 1, "boundary": 1, "boundary_and_type": 0, "spurious": 0},
              "fn": {"total": 3, "type": 0, "boundary": 1, "boundary_and_type": 0, "missed": 2}}
    by_length = {"unit": "words", "buckets": {"1-2": {"p": 0.5, "r": 1.0, "f": 0.6667, "gold": 4, "predicted": 8},
                                              "21+": {"p": 0, "r": 0, "f": 0, "gold": 0, "predicted": 0}}}
    rich = run(errors=errors, by_length=by_length, inner_spans={"recall": 0.4}, outer_spans={"recall": 0.8})
    rich.head_share, rich.predict_words_per_second = 0.05, 30000.0
    text = "\n".join(converged.results_section([rich], []))
    assert text.count("| head's share of prediction time |") == 1 and "| 30,000 | 5.0 |" in text
    assert "| inner-span recall | outer-span recall |" in text
    assert "| 40.0 | 80.0 |" in text
    assert "| global_pointer (efficient) | 0 | 10 | 2 | 1 | 1 | 0 | 0 | 3 | 0 | 1 | 0 | 2 |" in text
    assert "| global_pointer (efficient) | 0 | 66.7 (P 50.0, R 100.0; 4) | — |" in text


def test_the_readme_block_says_where_another_system_wins():
    runs = [run(f=0.70, wall=600.0), run("crf", 0.72, wall=300.0), run("spancat", 0.695, wall=3000.0),
            run(dataset="conll2003", encoder="cnn", f=0.80, dev=0.85), run("crf", 0.79, dataset="conll2003",
                                                                        encoder="cnn", dev=0.86)]
    block = readme.readme_block(runs, [], "![chart](x.png)")
    assert "| GENIA | BiLSTM | global_pointer (efficient) | 1 | 70.0 | — | 50.0 | 10.0 min | — |" in block
    assert "|  |  | CRF tagger | 1 | 72.0 | **+2.0** |" in block
    assert "Another system level or ahead on test F1: CRF tagger on GENIA, BiLSTM (72.0 against 70.0)." in block
    assert "Within 1 point of the efficient head on test F1: spancat (99.5% sizes) on GENIA, BiLSTM (-0.5)" in block
    assert "Ahead on dev F1 (the model-selection split): CRF tagger on CoNLL-2003, CNN (86.0 against 85.0)." in block
    assert "Reaches its best dev F1 sooner: CRF tagger on GENIA, BiLSTM (5.0 min against 10.0 min)" in block
    assert block.rstrip().endswith("![chart](x.png)")


def test_the_readme_block_gives_the_flat_output_where_every_seed_has_it():
    def scored(record, f):
        record.decoding = {records.FLAT_DECODING: {"setting": 0.5, "dev": {"f": f}, "test": {"overall": {"f": f}}}}
        return record

    conll = {"dataset": "conll2003", "encoder": "cnn"}
    runs = [scored(run(f=0.70, **conll), 0.72), scored(run(f=0.70, seed=1, **conll), 0.74),
            run("crf", 0.71, **conll), run("ner", 0.69, **conll),
            scored(run(f=0.60, dataset="weibo", encoder="cnn"), 0.61),  # seed 1 unscored: no figure
            run(f=0.60, seed=1, dataset="weibo", encoder="cnn"),
            scored(run(f=0.70), 0.75)]  # GENIA is nested: its flat output is no headline
    block = readme.readme_block(runs, [], "chart")
    (line,) = [ln for ln in block.splitlines() if "flat output" in ln]
    # mean 73.0 ± 1.4 over the two seeds; the best other system (the CRF tagger, 71.0): +2.0
    assert line.endswith("scored: CoNLL-2003, CNN 73.0 ± 1.4 (2 seeds, +2.0 against CRF tagger).")


def test_the_readme_block_compares_capped_rows_again_at_the_larger_cap_paired_by_seed():
    capped = {"encoder": "minilm", "stopped_by": "steps"}
    at = "head_learn_rate_scale=10"  # the head's shipped MiniLM setting

    def nested(found: int) -> dict:
        return {"found": found, "spans": 100, "recall": found / 100}

    runs = [run(f=0.70, variant=at, **capped), run(f=0.69, seed=1, variant=at, **capped),
            run("spancat", 0.67, **capped), run("spancat", 0.68, seed=1, **capped),
            run(f=0.72, variant=at + ", max_steps=3200", encoder="minilm", nested_gold=nested(52)),
            run(f=0.71, seed=1, variant=at + ", max_steps=3200", encoder="minilm", nested_gold=nested(54)),
            run("spancat", 0.73, variant="max_steps=3200", nested_gold=nested(55), **capped),
            run("spancat", 0.70, seed=1, variant="max_steps=3200", encoder="minilm", nested_gold=nested(53))]
    block = readme.readme_block(runs, [], "chart")
    # the capped runs' nested recall is 0.5 (run()); the larger cap's beside it: 53.0, 54.0
    assert "| global_pointer (efficient) † | 2 | 69.5 ± 0.7 (71.5 ± 0.7 ‡) | — | 50.0 ± 0.0 (53.0 ± 1.4 ‡) |" in block
    # "vs global_pointer" stays the capped comparison: 67.5 - 69.5 = -2.0, not bold
    assert "| spancat (99.5% sizes) † | 2 | 67.5 ± 0.7 (71.5 ± 2.1 ‡) | -2.0 | 50.0 ± 0.0 (54.0 ± 1.4 ‡) |" in block
    (line,) = [ln for ln in block.splitlines() if "‡ The same system" in ln]
    # at the larger cap, spancat against the head per seed: 73 - 72 = +1.0, 70 - 71 = -1.0; mean 0.0
    assert line.endswith("GENIA, MiniLM, cap 3,200 steps (global_pointer (efficient) seeds 0, 1; spancat (99.5% "
                         "sizes) seeds 0, 1), test F1 against the efficient head's, same seeds: spancat (99.5% "
                         "sizes) +0.0 (+1.0, -1.0).")


def test_readme_block_is_replaced_between_the_markers_only():
    text = f"intro\n{START}\nold table\n{END}\nrest\n"
    assert replace_block(text, "new\n") == f"intro\n{START}\nnew\n{END}\nrest\n"
    with pytest.raises(ValueError, match="results:start"):
        replace_block("no markers", "new\n")


def test_committed_page_and_readme_block_are_what_the_results_give():
    out = build(results.load_records(results.RESULTS))
    assert PAGE.read_text(encoding="utf8") == out.page, "run python -m bench.report (in project/)"
    readme_text = README.read_text(encoding="utf8")
    assert replace_block(readme_text, out.readme_block) == readme_text, "run python -m bench.report (in project/)"
    doc = CONFIGURATION_DOC.read_text(encoding="utf8")
    assert replace_marked(doc, out.v4_block, V4_START, V4_END, "doc") == doc, "run python -m bench.report (in project/)"
    for dataset, encoder in out.charts:
        assert (results.PROJECT / "bench" / "figures" / readme.chart_name(dataset, encoder)).exists()


def test_the_page_has_no_words_about_how_it_was_made():
    page = PAGE.read_text(encoding="utf8").lower()
    for words in ("session", "target", "**met**", "**missed**"):
        assert words not in page, words


def test_charts_draw_dev_f_over_wall_clock_time(tmp_path):
    pytest.importorskip("matplotlib")
    written = readme.draw_charts([run(), run("crf", 0.6)], tmp_path)
    assert list(written) == [("genia", "bilstm")]
    assert written[("genia", "bilstm")].stat().st_size > 1000


def test_runs_of_an_experiment_the_page_has_no_section_for_still_appear():
    runs = [run(f=0.7), run(f=0.6, variant="dropout=0.3")]
    for r in runs:
        r.experiment = "ablation-genia"
    page = build(runs).page
    assert "## Experiment `ablation-genia`" in page
    assert "| global_pointer (efficient) | `baseline` | 0 | 70.0 | 70.0 |" in page
    assert "| global_pointer (efficient) | `dropout=0.3` | 0 | 60.0 | 60.0 |" in page


def _timing(system, large, *, experiment="fixed_budget", variant="baseline", session="s1", train=None, seed=0):
    return records.TimingRecord.from_dict({
        "schema_version": 2, "kind": "timing", "experiment": experiment, "variant": variant, "dataset": "genia",
        "encoder": "bilstm", "system": system, "session": session, "seed": seed,
        "full": {"batch1": {"words_per_second": 1.0}, "large": {"words_per_second": large}},
        "encoder_only": {"batch1": {"words_per_second": 2.0}, "large": {"words_per_second": 2.0 * large}},
        "train": None if train is None else {"words_per_second": train}})


def test_timings_of_variants_are_rows_of_their_own_with_ratios_to_the_baseline():
    from bench.report import speed

    v4 = "architecture=GlobalPointer.v4"
    timings = [_timing("global_pointer_efficient", 10000.0, experiment="converged", session="s26", train=4000.0),
               _timing("global_pointer_efficient", 7500.0, experiment="converged", session="s26", train=2400.0,
                       variant=v4)]
    text = "\n".join(speed.timing_section(timings, speed.CONVERGED_TIMING))
    assert "| GENIA, BiLSTM | global_pointer (efficient) | `baseline` | 1.00x / 1.00x | 4,000 |" in text
    assert f"| GENIA, BiLSTM | global_pointer (efficient) | `{v4}` | 0.60x / 0.75x | 2,400 |" in text
    # The newest timing set of a row: s26 comes after s3 (numbers compared as numbers).
    rows = speed.timing_rows([_timing("crf", 1000.0, session="s3"), _timing("crf", 2000.0, session="s26")])
    assert rows[("genia", "bilstm", "crf", "baseline")]["large"] == 2000.0
    # No ratio between timing sets: they ran at other times and loads.
    apart = [timings[0], _timing("global_pointer_efficient", 7500.0, experiment="converged", session="s27",
                                 train=2400.0, variant=v4)]
    text = "\n".join(speed.timing_section(apart, speed.CONVERGED_TIMING))
    assert f"| GENIA, BiLSTM | global_pointer (efficient) | `{v4}` | — / — | 2,400 |" in text
    # Each row names the seed of the model it timed (a variant's model may be another seed's).
    other_seed = [timings[0], _timing("global_pointer_efficient", 7500.0, experiment="converged", session="s26",
                                      train=2400.0, variant=v4, seed=2)]
    lines = "\n".join(speed.timing_section(other_seed, speed.CONVERGED_TIMING)).splitlines()
    assert [line.split(" | ")[-3:] for line in lines if "global_pointer" in line] == [["0", "`s26`", "1 |"],
                                                                                       ["2", "`s26`", "1 |"]]


def test_docs_v4_block_pairs_seeds_and_times_only_within_one_set():
    from bench.report import docs_blocks

    interior = "architecture=GlobalPointer.v4, context_channels=0"
    spans = {"inner_spans": {"recall": 0.4}, "outer_spans": {"recall": 0.8}}
    runs = [run(f=0.70, seed=0, dev=0.74, **spans), run(f=0.72, seed=1, dev=0.74, **spans),
            run(f=0.71, seed=0, dev=0.75, variant=interior, **spans),
            run(f=0.75, seed=1, dev=0.75, variant=interior, **spans),
            run("spancat", 0.9)]  # another system: not in the block
    timings = [_timing("global_pointer_efficient", 10000.0, experiment="converged", session="s28", train=4000.0),
               _timing("global_pointer_efficient", 9000.0, experiment="converged", session="s28", train=3600.0,
                       variant=interior)]
    block = docs_blocks.v4_block(runs, timings)
    # Means 73.0 ± 2.8 (71, 75) and 71.0 ± 1.4 (70, 72); paired: +1, +3 -> +2.0.
    assert ("| GENIA, BiLSTM | interior only (`context_channels = 0`) | 0, 1 / 0, 1 | 75.0 ± 0.0 / 74.0 ± 0.0 "
            "| 73.0 ± 2.8 / 71.0 ± 1.4 | +2.0 (+1.0, +3.0) | 0.90 / 0.90 |") in block
    assert "| GENIA, BiLSTM | interior only (`context_channels = 0`) | 40.0 ± 0.0 / 40.0 ± 0.0 |" in block
    assert "90.0" not in block and "interior and context" not in block
    timings[1] = _timing("global_pointer_efficient", 9000.0, experiment="converged", session="s29", train=3600.0,
                         variant=interior)
    assert "| +2.0 (+1.0, +3.0) | — |" in docs_blocks.v4_block(runs, timings)


def test_readme_speeds_of_a_group_come_from_one_source_never_mixed():
    runs = [run(f=0.70), run("spancat", 0.69)]
    parts = [records.HeadPartsRecord.from_dict({
        "schema_version": 2, "kind": "head_parts", "experiment": "converged", "dataset": "genia", "encoder": "bilstm",
        "system": "global_pointer_efficient", "model": "m", "data": "d", "batch_size": 256, "words": 1000,
        "medians": {"encoder": 0.01, "forward": 0.0, "decode": 0.0}})]  # 100,000 words/s
    alone = readme.readme_block(runs, parts, "chart")
    assert "| 100,000 |" in alone and "|  |  | spancat (99.5% sizes) | 1 | 69.0 | -1.0 | 50.0 | 10.0 min | — |" in alone
    both = readme.readme_block(runs, parts, "chart", [_timing("global_pointer_efficient", 40000.0),
                                                      _timing("spancat", 6000.0)])
    assert "| 40,000 § |" in both and "| 6,000 § |" in both and "100,000" not in both
