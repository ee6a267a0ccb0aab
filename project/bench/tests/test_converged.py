"""Converged runs (trained until dev F stopped improving): folded into converged.json
(bench/results.py) and rendered as the page's "At convergence" section, before the
fixed-budget tables (bench/report.py). Hand-made records, expected values by hand."""

import json
from pathlib import Path
from typing import Any, Dict, Optional

from bench import report, results


def _result(dataset: str, system: str, seed: int, test_f: float, dev_f: float, *, stopped_by: str = "patience",
            best_step: int = 3000, steps_run: int = 5000, wall: float = 600.0, wps: float = 1000.0,
            nested: bool = True, lr: Optional[float] = None, train_limit: int = 0) -> Dict[str, Any]:
    overall = {"p": test_f, "r": test_f, "f": test_f}
    return {
        "dataset": dataset, "encoder": "bilstm", "system": system, "seed": seed,
        "flat": system in ("crf", "ner"), "steps": 20000, "eval_every": 500, "steps_run": steps_run,
        "patience": 2000, "stopped_by": stopped_by, "train_limit": train_limit,
        "overrides": {"training.optimizer.learn_rate": lr} if lr is not None else {},
        "train_words_per_second": wps, "train_seconds": 500.0,
        "best": {"dev_f": dev_f, "step": best_step, "train_seconds": 400.0, "wall_seconds": wall},
        "curve": [], "machine": {"cpu": "test cpu"},
        "test": {"overall": overall, "outermost": overall,
                 "per_type": {"DNA": {"f": test_f}, "protein": {"f": test_f - 0.1}},
                 "nested_gold": {"found": 1, "spans": 10 if nested else 0, "recall": 0.5 if nested else None}},
    }


def _write(root: Path, result: Dict[str, Any], tuned_f: Optional[float] = None) -> None:
    run = root / result["dataset"] / result["encoder"] / result["system"] / f"seed{result['seed']}"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps(result), encoding="utf8")
    if tuned_f is not None:
        (run / "threshold.json").write_text(json.dumps(
            {"best_threshold": 0.4, "test_tuned": {"overall": {"f": tuned_f}}}), encoding="utf8")


def test_converged_section_comes_first_with_stops_flagged_and_targets_from_the_data(tmp_path):
    runs = tmp_path / "runs_converged"
    # GENIA (nested): global_pointer two seeds, one stopped by the step cap; spancat one seed.
    _write(runs, _result("genia", "global_pointer", 0, 0.76, 0.78, lr=0.002, best_step=4000, wall=720.0), 0.77)
    _write(runs, _result("genia", "global_pointer", 1, 0.74, 0.76, lr=0.002, stopped_by="steps",
                         best_step=19500, steps_run=20000, wall=1800.0), 0.75)
    _write(runs, _result("genia", "spancat", 0, 0.71, 0.72, best_step=6000, wall=900.0, wps=500.0), 0.72)
    # CLUENER (flat): global_pointer and the CRF only (no ner run), the CRF ahead.
    _write(runs, _result("cluener", "global_pointer", 0, 0.66, 0.70, nested=False, train_limit=5000))
    _write(runs, _result("cluener", "crf", 0, 0.68, 0.71, nested=False, train_limit=5000))
    assert results.fold(runs, results.Kind.converged, tmp_path / "results") == {
        tmp_path / "results" / "converged.json": (5, 0)}
    converged = results.load(tmp_path / "results")["converged"]
    assert len(converged) == 5

    page = report.build_page([], [], converged=converged)
    assert page.index("## At convergence") < page.index("## Fixed budget")
    section = page[page.index("## At convergence"):page.index("## Speed: the head's cost")]
    # Data sets in sorted order: cluener, then genia.
    cluener = section[section.index("### cluener, bilstm encoder"):section.index("### genia, bilstm encoder")]
    genia = section[section.index("### genia, bilstm encoder"):]
    assert "Patience 2,000 steps; cap 20,000 steps; dev F every 500 steps." in genia
    # Medians over two seeds: dev (78+76)/2, test (76+74)/2, tuned (77+75)/2; steps (4000+19500)/2;
    # wall (720+1800)/2 s = 21.0 min; learning rate from the overrides; spancat's the base config's.
    assert ("| global_pointer | 0, 1 | 77.0 (76.0-78.0) | 75.0 (74.0-76.0) | 76.0 (75.0-77.0) | 50.0 | 11,750 "
            "| patience (1), **steps** (1) | 21.0 min | 1,000 | 0.002 |") in genia
    assert "| spancat (99.5% sizes) | 0 | 72.0 | 71.0 | 72.0 | 50.0 | 6,000 | patience (1) | 15.0 min | 500 | 0.001 (default) |" in genia
    assert ("- global_pointer, seed 1: stopped by `steps` at step 20,000 (best dev at step 19,500): "
            "the cap, not convergence, stopped this run.") in genia
    assert "| F per type | DNA | protein |" in genia and "| global_pointer | 75.0 | 65.0 |" in genia
    # 75.0 - 71.0 = +4.0 points >= +3: met; tuned 76.0 - 72.0 = +4.0: met.
    assert ("- Target (global_pointer >= best spancat + 3 points): default threshold: 75.0 vs spancat (99.5% sizes) "
            "71.0: +4.0 points, **met**; thresholds tuned on dev: 76.0 vs spancat (99.5% sizes) 72.0: +4.0 points, "
            "**met**.") in genia
    assert "train limit" not in genia
    assert "Errors on the held-out split" not in page and "F by span length" not in page  # no run carries them

    assert "nested recall" not in cluener  # flat data: no nested column
    assert "| train limit (docs) |" in cluener and "| 5,000 | 0.001 (default) |" in cluener
    # 66.0 < 68.0: missed; ner not run, so only the CRF is compared.
    assert ("- Target (global_pointer >= the CRF's and ner's F): default threshold: 66.0 vs CRF tagger 68.0 (-2.0) "
            "(spaCy ner not run), **missed**.") in cluener


def test_converged_section_handles_data_sets_without_the_systems_compared(tmp_path):
    runs = [_result("weibo", "crf", 0, 0.6, 0.6, nested=False),
            _result("genia", "global_pointer_efficient", 0, 0.7, 0.7)]
    text = "\n".join(report.converged_section(runs))
    assert "- Target (global_pointer >= the CRF's and ner's F): not measured (no global_pointer run)." in text
    assert "- Target (global_pointer (efficient) >= best spancat + 3 points): not measured (no spancat run)." in text
    assert report.converged_section([])[0].startswith("No converged runs yet")


def _errors(gold: int, fp: Dict[str, int], fn: Dict[str, int], gold_spans: str = "all") -> Dict[str, Any]:
    tp = 50  # not shown
    return {"tp": tp, "predicted": tp + sum(fp.values()), "gold": gold, "gold_spans": gold_spans,
            "fp": {"total": sum(fp.values()), **fp}, "fn": {"total": sum(fn.values()), **fn}}


def _by_length(cells: Dict[str, tuple]) -> Dict[str, Any]:
    """bucket -> (f, gold, predicted); the rest of prf_counts is not shown."""
    return {"unit": "words", "buckets": {name: {"f": f, "gold": gold, "predicted": predicted}
                                         for name, (f, gold, predicted) in cells.items()}}


def test_converged_section_explains_errors_by_kind_and_span_length():
    gp0 = _result("genia", "global_pointer", 0, 0.76, 0.78)
    gp0["test"]["errors"] = _errors(100, {"type": 2, "boundary": 5, "boundary_and_type": 1, "spurious": 2},
                                    {"type": 2, "boundary": 4, "boundary_and_type": 4, "missed": 10})
    gp0["test"]["by_length"] = _by_length({"1": (0.8, 50, 50), "2": (0.6, 30, 30), "3": (0.5, 10, 10),
                                           "4-5": (0.4, 6, 6), "6-10": (0.2, 4, 4), "11+": (0.0, 0, 0)})
    gp1 = _result("genia", "global_pointer", 1, 0.74, 0.76)
    gp1["test"]["errors"] = _errors(100, {"type": 4, "boundary": 6, "boundary_and_type": 2, "spurious": 2},
                                    {"type": 3, "boundary": 6, "boundary_and_type": 3, "missed": 18})
    gp1["test"]["by_length"] = _by_length({"1": (0.7, 50, 50), "2": (0.5, 30, 30), "3": (0.4, 10, 10),
                                           "4-5": (0.3, 6, 6), "6-10": (0.0, 4, 1), "11+": (0.0, 0, 2)})
    crf = _result("genia", "crf", 0, 0.6, 0.6)
    crf["test"]["errors"] = _errors(80, {"type": 0, "boundary": 0, "boundary_and_type": 0, "spurious": 0},
                                    {"type": 0, "boundary": 2, "boundary_and_type": 2, "missed": 4}, "outermost")
    crf["test"]["by_length"] = _by_length({"1": (0.9, 40, 40), "2": (0.5, 30, 30), "3": (0.2, 8, 8),
                                           "4-5": (0.0, 2, 0), "6-10": (0.0, 0, 0), "11+": (0.0, 0, 0)})
    spancat = _result("genia", "spancat", 0, 0.7, 0.7)  # trained before the breakdown: left out
    weibo = _result("weibo", "crf", 0, 0.6, 0.6, nested=False)
    text = "\n".join(report.converged_section([gp0, gp1, spancat, crf, weibo]))
    genia = text[text.index("### genia"):text.index("### weibo")]
    assert "Errors on the held-out split" not in text[text.index("### weibo"):]  # no run carries it

    errors = genia[genia.index("#### Errors on the held-out split"):genia.index("#### F by span length")]
    assert ("| system | seeds | gold spans | FP | FP type | FP boundary | FP boundary + type | FP spurious "
            "| FN | FN type | FN boundary | FN boundary + type | FN missed |") in errors
    # global_pointer, medians of seeds 0 and 1: FP total (10 + 14) / 2 = 12; type (2 + 4) / 2 = 3,
    # share (2/10 + 4/14) / 2 = 24.3%; boundary 5.5, (5/10 + 6/14) / 2 = 46.4%; boundary + type 1.5,
    # (1/10 + 2/14) / 2 = 12.1%; spurious 2, (2/10 + 2/14) / 2 = 17.1%. FN total (20 + 30) / 2 = 25;
    # type 2.5 (10% both); boundary 5 (20% both); boundary + type 3.5, (20% + 10%) / 2 = 15%;
    # missed 14, (50% + 60%) / 2 = 55%.
    assert ("| global_pointer | 0, 1 | 100 | 12 | 3 (24.3%) | 5.5 (46.4%) | 1.5 (12.1%) | 2 (17.1%) "
            "| 25 | 2.5 (10.0%) | 5 (20.0%) | 3.5 (15.0%) | 14 (55.0%) |") in errors
    # No false positive: no share to give. FN 8: 0, 2/8, 2/8, 4/8.
    assert "| CRF tagger | 0 | 80 | 0 | 0 | 0 | 0 | 0 | 8 | 0 (0.0%) | 2 (25.0%) | 2 (25.0%) | 4 (50.0%) |" in errors
    assert "spancat" not in errors
    assert "scored against the outermost gold spans" in errors

    by_length = genia[genia.index("#### F by span length"):]
    assert "in words" in by_length
    assert "| system | 1 | 2 | 3 | 4-5 | 6-10 | 11+ |" in by_length
    # Median F: (80 + 70) / 2 = 75, 55, 45, 35, (20 + 0) / 2 = 10; 11+ has no gold span but seed 1
    # predicted two: F 0, not "—".
    assert "| global_pointer | 75.0 (50) | 55.0 (30) | 45.0 (10) | 35.0 (6) | 10.0 (4) | 0.0 (0) |" in by_length
    # 6-10 and 11+: no span of that length on either side.
    assert "| CRF tagger | 90.0 (40) | 50.0 (30) | 20.0 (8) | 0.0 (2) | — | — |" in by_length
    assert genia.index("- Target (") < genia.index("#### Errors on the held-out split")


def test_learning_rate_cell_renders_a_schedule_with_its_overrides_applied():
    # minilm's base config: warmup_linear.v1, 5e-5, 250 warmup steps, to 0 at training.max_steps
    # (the run's cap). Overriding two of its settings changes just those; none keeps the default.
    run = _result("genia", "global_pointer_efficient", 0, 0.7, 0.7)
    run.update(encoder="minilm", steps=1600, overrides={
        "training.optimizer.learn_rate.initial_rate": 0.0001, "training.optimizer.learn_rate.warmup_steps": 150})
    assert report._learn_rate(run) == "0.0001, warmed up over 150 steps, linear to 0 at step 1,600"
    run["overrides"] = {}
    assert report._learn_rate(run) == "5e-05, warmed up over 250 steps, linear to 0 at step 1,600 (default)"
    run["overrides"] = {"training.optimizer.learn_rate": 0.003}  # a number replaces the schedule
    assert report._learn_rate(run) == "0.003"
    run.update(encoder="no-such-encoder", overrides={})
    assert report._learn_rate(run) == "? (default)"
