"""Running an experiment: every training run not yet on disk, each in its own process
(`python -m bench train-one`), then the dev-chosen thresholds and decodings, then timing
repeats with the systems alternated. Every step writes one JSON file when it finishes and
is skipped when that file exists, so an interrupted experiment resumes where it stopped.

Layout under the experiment's runs dir:
    {dataset}/{encoder}/{system}/seed{seed}/result.json   (+ threshold.json, decoding.json,
                                                           config.cfg, model-best/, train.log)
    {dataset}/{encoder}/timing/{session}/{system}-seed{seed}-r{repeat}.json
A timing session times its systems alternately, back to back; speed ratios are only paired
within a session (a new session name re-times every system).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench import registry
from bench.common import override_args, read_json, stream
from bench.corpus import SPAN_COVERAGE, corpus_paths, prepare_corpus
from bench.experiment import Experiment, Run
from bench.timing import rotation
from bench.training import run_dir

MODULE = [sys.executable, "-m", "bench"]
# What a finished run must agree on with the experiment that would run it again.
_CHECKED = ("experiment", "variant", "steps", "eval_every", "patience", "train_limit", "overrides")


def stale_keys(result: Dict[str, Any], experiment: Experiment, run: Run) -> List[str]:
    """The settings in which a finished run (result.json) differs from what the experiment
    asks of it; runs from before experiments (no schema_version) are not checked."""
    if "schema_version" not in result:
        return []
    s = experiment.schedule
    wanted = {"experiment": experiment.experiment, "variant": run.variant, "steps": s.steps,
              "eval_every": s.eval_every, "patience": s.patience, "train_limit": s.train_limit,
              "overrides": dict(run.overrides)}
    return [key for key in _CHECKED if result.get(key) != wanted[key]]


def run_experiment(experiment: Experiment, data_dir: Path, corpus_root: Path, output: Optional[Path] = None,
                   threads: Optional[int] = None, dry_run: bool = False) -> List[str]:
    """Run what is missing; return the failures (one line each)."""
    output = (output or experiment.runs_dir()).resolve()
    threads = threads or experiment.threads
    ds = experiment.dataset
    plan = experiment.plan()
    corpus_dir = (corpus_root / ds).resolve()
    print(f"== {experiment.name} ({experiment.experiment}, {experiment.variant}): {ds}, {len(plan)} runs into {output}", flush=True)
    for item in plan:
        rdir = run_dir(output, ds, item.encoder, item.system, item.seed)
        if (rdir / "result.json").exists():
            stale = stale_keys(read_json(rdir / "result.json"), experiment, item)
            if stale:
                raise SystemExit(f"{rdir}: finished with other settings than {experiment.name} asks "
                                 f"({', '.join(stale)}): move it away or give the experiment another output")
    if dry_run:
        for i, item in enumerate(plan, start=1):
            done = (run_dir(output, ds, item.encoder, item.system, item.seed) / "result.json").exists()
            print(f"[{i}/{len(plan)}] {item.encoder}/{item.system}/seed{item.seed}"
                  f"{': done' if done else ''} overrides {dict(item.overrides)}")
        return []
    for item in plan:  # an encoder without its weights package: stop before any training
        from bench.configs import transformer_overrides

        transformer_overrides(item.encoder)
    print(f"== {ds}: preparing corpus in {corpus_dir}", flush=True)
    stats = prepare_corpus(ds, data_dir, corpus_dir)
    print(f"   splits {stats['splits']}\n   spancat sizes (cover {SPAN_COVERAGE:.1%}): "
          f"{stats['spancat_sizes']}", flush=True)
    s = experiment.schedule
    failed = []
    t0 = time.time()
    for i, item in enumerate(plan, start=1):
        rdir = run_dir(output, ds, item.encoder, item.system, item.seed)
        name = f"{item.encoder}/{item.system}/seed{item.seed}"
        if (rdir / "result.json").exists():
            print(f"[{i}/{len(plan)}] {name}: done, skipped", flush=True)
            continue
        print(f"[{i}/{len(plan)}] {name}: training {s.steps} steps "
              f"({(time.time() - t0) / 60:.1f} min elapsed)", flush=True)
        rc = stream([*MODULE, "train-one", ds, item.encoder, item.system, str(rdir),
                     "--corpus-dir", str(corpus_dir), "--seed", str(item.seed), "--steps", str(s.steps),
                     "--eval-every", str(s.eval_every), "--threads", str(threads),
                     "--patience", str(s.patience), "--train-limit", str(s.train_limit),
                     "--max-train-seconds", str(s.max_train_seconds),
                     "--experiment", experiment.experiment, "--variant", item.variant,
                     *override_args(dict(item.overrides))], rdir / "train.log")
        if rc:
            failed.append(f"train {name} (exit {rc}, see {rdir / 'train.log'})")
    for item in plan:
        rdir = run_dir(output, ds, item.encoder, item.system, item.seed)
        family = registry.threshold_family(item.system)
        if not (rdir / "result.json").exists() or family is None:
            continue
        steps = [("tune-threshold", "threshold.json", experiment.tune_thresholds),
                 ("decode-variants", "decoding.json", experiment.decode_variants and family == "global_pointer")]
        for command, written, wanted in steps:
            if wanted and not (rdir / written).exists():
                print(f"   {command} {item.encoder}/{item.system}/seed{item.seed} on dev", flush=True)
                rc = stream([*MODULE, command, str(rdir), "--corpus-dir", str(corpus_dir),
                             "--threads", str(threads)], rdir / "train.log")
                if rc:
                    failed.append(f"{command} {item.encoder}/{item.system}/seed{item.seed} (exit {rc})")
    if experiment.timing is not None:
        failed += _time_runs(experiment, plan, output, corpus_dir, threads)
    print(f"== {experiment.name}: finished in {(time.time() - t0) / 60:.1f} min", flush=True)
    for line in failed:
        print(f"   FAILED: {line}", flush=True)
    return failed


def _time_runs(experiment: Experiment, plan: List[Run], output: Path, corpus_dir: Path, threads: int) -> List[str]:
    """Timing repeats of the trained models (`python -m bench time pipeline`), one process
    each, the systems of an encoder alternated in a rotated order."""
    timing = experiment.timing
    assert timing is not None
    ds = experiment.dataset
    seed = timing.seed if timing.seed is not None else plan[0].seed
    paths = corpus_paths(corpus_dir)
    test_path = paths[registry.dataset(ds).heldout]
    failed = []
    for encoder in dict.fromkeys(item.encoder for item in plan):
        planned = [item.system for item in plan if item.encoder == encoder and item.seed == seed]
        systems = [sy for sy in (timing.systems or planned)
                   if (run_dir(output, ds, encoder, sy, seed) / "model-best").exists()]
        for repeat in range(timing.repeats):
            for system in rotation(systems, repeat):
                out = output / ds / encoder / "timing" / timing.session / f"{system}-seed{seed}-r{repeat}.json"
                if out.exists():
                    continue
                print(f"[timing {repeat + 1}/{timing.repeats}] {encoder}/{system}", flush=True)
                rc = stream([*MODULE, "time", "pipeline", str(run_dir(output, ds, encoder, system, seed) / "model-best"),
                             str(test_path), str(out), "--batch1-docs", str(timing.batch1_docs),
                             "--train-data", str(paths["train"]), "--threads", str(threads)],
                            out.with_suffix(".log"))
                if rc:
                    failed.append(f"timing {encoder}/{system} r{repeat} (exit {rc})")
    return failed


def status_lines(output: Path) -> List[str]:
    """Finished training runs and timing repeats below a runs dir (any depth)."""
    lines = []
    for result in sorted(output.rglob("result.json")):
        r = read_json(result)
        o = r["test"]["overall"]
        lines.append(f"{r.get('experiment', '-'):24} {r.get('variant', '-'):12} {r['dataset']:9} {r['encoder']:6} "
                     f"{r['system']:25} seed{r['seed']} F {o['f'] * 100:5.1f}  "
                     f"train {r['train_words_per_second']:7.0f} w/s")
    lines.append(f"{len(list(output.rglob('timing/*/*.json')))} timing repeats on disk")
    return lines
