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
