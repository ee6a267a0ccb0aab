"""The benchmark's commands: `python -m bench COMMAND` from project/ (`--help` on each).

Experiments (bench/experiments/*.toml) name what to train; `run-experiment` runs what is
missing of one; `collect` folds finished runs into bench/results/, `report` writes the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer
from typing_extensions import Annotated

from bench import registry
from bench.common import BENCH, PROJECT, BadOverride, parse_overrides, split_list
from bench.timing_cli import app as time_app

if TYPE_CHECKING:
    from bench.experiment import Experiment

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)
app.add_typer(time_app, name="time", help="Timing: words/s of a trained pipeline, profiles, the head's cost against its encoder, its parts, the torch head's forward.")

DATA_DIR = registry.DATA_ROOT
CORPUS_ROOT = PROJECT / "corpus" / "bench"


def _overrides(items: Optional[List[str]]) -> dict:
    try:
        return parse_overrides(items or [])
    except BadOverride as err:
        raise typer.BadParameter(str(err)) from err


def _known(lookup: object, names: List[str]) -> List[str]:
    try:
        return [lookup(name).name for name in names]  # type: ignore[operator]
    except registry.UnknownName as err:
        raise typer.BadParameter(str(err)) from err


def _finish(failed: List[str], output: Path) -> None:
    from bench.runner import status_lines

    print("\n".join(status_lines(output)))
    if failed:
        raise typer.Exit(1)


@app.command("run-experiment")
def run_experiment(
    path: Annotated[Path, typer.Argument(help="Experiment file (bench/experiments/NAME.toml, or NAME)")],
    dry_run: Annotated[bool, typer.Option(help="List the runs and which are done; train nothing")] = False,
    collect: Annotated[bool, typer.Option(
        help="Afterwards fold the runs into the file's results file (default bench/results/EXPERIMENT/VARIANT.json)")] = False,
    output: Annotated[Optional[Path], typer.Option(help="Runs dir (default: the file's output, else bench/runs/NAME)")] = None,
    data_dir: Annotated[Path, typer.Option(help="Shared corpora (span JSONL)")] = DATA_DIR,
    corpus_root: Annotated[Path, typer.Option(help="Where prepared DocBins go")] = CORPUS_ROOT,
    threads: Annotated[Optional[int], typer.Option(help="torch/BLAS threads per process (default: the file's)")] = None,
) -> None:
    """Run an experiment file: train every run not on disk yet, tune thresholds and decodings
    on dev, time the models; resumable (finished steps are skipped)."""
    from bench.experiment import ExperimentError, load_experiment
    from bench.runner import run_experiment as run_it

    try:
        experiment = load_experiment(path)
    except ExperimentError as err:
        raise typer.BadParameter(str(err)) from err
    try:
        failed = run_it(experiment, data_dir, corpus_root, output, threads, dry_run)
    except (RuntimeError, FileNotFoundError) as err:  # no weights package, no data: before any training
        raise typer.BadParameter(str(err)) from err
    if collect and not dry_run:
        _collect_experiment(experiment, output or experiment.runs_dir())
    _finish(failed, output or experiment.runs_dir())


def _collect_experiment(experiment: Experiment, runs_dir: Path, store: Path = BENCH / "results") -> None:
    """Fold an experiment's finished runs (and its timing repeats) into its results file,
    each variant of its grids under its own name."""
    from bench.training import run_dir

    by_variant: dict = {}
    for item in experiment.plan():
        rdir = run_dir(runs_dir, experiment.dataset, item.encoder, item.system, item.seed)
        if (rdir / "result.json").exists():
            by_variant.setdefault(item.variant, []).append(rdir)
    timing = [runs_dir / experiment.dataset / e / "timing" for e in sorted({i.encoder for i in experiment.plan()})]
    by_variant.setdefault(experiment.variant, []).extend(t for t in timing if t.exists())
    path = experiment.results_file()
    for variant, dirs in by_variant.items():
        if dirs:
            _collect_into(dirs, path, experiment.experiment, variant, store)


def _collect_into(runs: List[Path], path: Path, experiment: Optional[str], variant: Optional[str],
                  store: Optional[Path]) -> None:
    from bench.records import RecordError
    from bench.results import collect_runs

    try:
        n_runs, n_timings, total = collect_runs(runs, path, experiment=experiment, variant=variant, store=store)
    except RecordError as err:
        raise typer.BadParameter(str(err)) from err
    print(f"{path}: {n_runs} runs, {n_timings} timing repeats collected ({total} records in the file)")


@app.command("experiments")
def experiments() -> None:
    """List the experiment files: name, results experiment and variant, dataset, runs planned,
    runs dir, results file (--collect)."""
    from bench.experiment import EXPERIMENTS, load_experiment

    for path in sorted(EXPERIMENTS.glob("*.toml")):
        e = load_experiment(path)
        print(f"{e.name:34} {e.experiment:11} {e.variant:24} {e.dataset:9} {len(e.plan()):3} runs  "
              f"{e.runs_dir().relative_to(PROJECT)} -> {e.results_file().relative_to(PROJECT)}")


@app.command("run")
def run(
    dataset: Annotated[str, typer.Argument(help=f"Dataset: {', '.join(registry.DATASETS)}")],
    systems: Annotated[Optional[str], typer.Option(help="Comma-separated systems (default: the dataset's)")] = None,
    encoders: Annotated[str, typer.Option(help=f"Comma-separated encoders: {', '.join(registry.ENCODERS)}")] = "cnn,bilstm",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds, one training run each")] = "0,1,2",
    steps: Annotated[int, typer.Option(help="Training steps (the cap, with --patience)")] = 1500,
    eval_every: Annotated[int, typer.Option(help="Steps between dev evaluations")] = 300,
    patience: Annotated[int, typer.Option(help="Stop a run when dev F has not improved for this many steps (0: off)")] = 0,
    train_limit: Annotated[int, typer.Option(help="Train on the first N training docs (0: all)")] = 0,
    set_: Annotated[Optional[List[str]], typer.Option("--set", help="Config override KEY=VALUE (JSON value); repeatable")] = None,
    tune_thresholds: Annotated[bool, typer.Option(help="After training, pick the threshold on dev")] = False,
    repeats: Annotated[int, typer.Option(help="Timing repeats (systems alternated)")] = 3,
    batch1_docs: Annotated[int, typer.Option(help="Docs timed at batch size 1")] = 300,
    skip_timing: Annotated[bool, typer.Option(help="Train only")] = False,
    timing_session: Annotated[str, typer.Option(help="Timing session name (a new name re-times every system)")] = "s1",
    experiment: Annotated[str, typer.Option(help="Experiment name written into each result.json")] = "adhoc",
    variant: Annotated[str, typer.Option(help="Variant name written into each result.json")] = "baseline",
    output: Annotated[Path, typer.Option(help="Runs dir")] = BENCH / "runs",
    data_dir: Annotated[Path, typer.Option(help="Shared corpora (span JSONL)")] = DATA_DIR,
    corpus_root: Annotated[Path, typer.Option(help="Where prepared DocBins go")] = CORPUS_ROOT,
    threads: Annotated[int, typer.Option(help="torch/BLAS threads per process")] = 1,
) -> None:
    """An experiment given on the command line instead of in a file (same runner)."""
    from bench.experiment import ExperimentError, parse_experiment
    from bench.runner import run_experiment as run_it

    table = {
        "name": experiment, "variant": variant, "dataset": dataset,
        "encoders": split_list(encoders), "seeds": [int(s) for s in split_list(seeds)],
        "systems": split_list(systems) if systems else list(_known_dataset(dataset).systems),
        "schedule": {"steps": steps, "eval_every": eval_every, "patience": patience, "train_limit": train_limit},
        "overrides": _overrides(set_), "tune_thresholds": tune_thresholds, "threads": threads,
    }
    if not skip_timing:
        table["timing"] = {"repeats": repeats, "batch1_docs": batch1_docs, "session": timing_session}
    try:
        parsed = parse_experiment(table, experiment, "run")
    except ExperimentError as err:
        raise typer.BadParameter(str(err)) from err
    try:
        failed = run_it(parsed, data_dir, corpus_root, output)
    except (RuntimeError, FileNotFoundError) as err:
        raise typer.BadParameter(str(err)) from err
    _finish(failed, output)


def _known_dataset(name: str) -> registry.Dataset:
    try:
        return registry.dataset(name)
    except registry.UnknownName as err:
        raise typer.BadParameter(str(err)) from err


@app.command("train-one")
def train_one(
    dataset: Annotated[str, typer.Argument()],
    encoder: Annotated[str, typer.Argument()],
    system: Annotated[str, typer.Argument()],
    out_dir: Annotated[Path, typer.Argument(help="Run dir: result.json and model-best/")],
    corpus_dir: Annotated[Path, typer.Option(help="Prepared DocBins")],
    seed: Annotated[int, typer.Option()] = 0,
    steps: Annotated[int, typer.Option(help="Training steps (the cap, with --patience)")] = 1500,
    eval_every: Annotated[int, typer.Option(help="Steps between dev evaluations (and one after the last step)")] = 300,
    patience: Annotated[int, typer.Option(help="Stop when dev F has not improved for this many steps (0: off)")] = 0,
    train_limit: Annotated[int, typer.Option(help="Train on the first N training docs only (0: all)")] = 0,
    max_train_seconds: Annotated[float, typer.Option(help="Also stop after this long in updates (0: no limit)")] = 0.0,
    threads: Annotated[int, typer.Option(help="torch/BLAS threads")] = 1,
    set_: Annotated[Optional[List[str]], typer.Option("--set", help="Config override KEY=VALUE (JSON value); repeatable")] = None,
    experiment: Annotated[str, typer.Option(help="Experiment name for result.json")] = "adhoc",
    variant: Annotated[str, typer.Option(help="Variant name for result.json")] = "baseline",
) -> None:
    """Train one run (the runner calls this once per run, each in its own process)."""
    from bench.configs import transformer_overrides
    from bench.training import Schedule
    from bench.training import train_one as train

    _known_dataset(dataset)
    _known(registry.encoder, [encoder])
    _known(registry.system, [system])
    try:
        transformer_overrides(encoder)
    except RuntimeError as err:
        raise typer.BadParameter(str(err)) from err
    train(dataset, encoder, system, out_dir, corpus_dir, seed=seed, threads=threads, overrides=_overrides(set_),
          schedule=Schedule(steps, eval_every, patience, train_limit, max_train_seconds),
          experiment=experiment, variant=variant)


@app.command("tune-threshold")
def tune_threshold(
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="A run dir (result.json, model-best/)")],
    corpus_dir: Annotated[Path, typer.Option(help="Prepared DocBins")],
    threads: Annotated[int, typer.Option()] = 1,
) -> None:
    """Pick the threshold with the best dev F1 and score the held-out split with it (threshold.json)."""
    from bench.thresholds import tune_threshold as tune

    try:
        tune(run_dir, corpus_dir, threads)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err


@app.command("decode-variants")
def decode_variants(
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="A global_pointer run dir")],
    corpus_dir: Annotated[Path, typer.Option(help="Prepared DocBins")],
    threads: Annotated[int, typer.Option()] = 1,
) -> None:
    """Score a global_pointer model with other decodings chosen on dev (decoding.json)."""
    from bench.thresholds import decode_variants as decode

    try:
        decode(run_dir, corpus_dir, threads)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err


@app.command("analyse")
def analyse(
    run_dirs: Annotated[Optional[List[Path]], typer.Argument(help="Run dirs (result.json, model-best/)")] = None,
    all_: Annotated[Optional[Path], typer.Option("--all", exists=True, file_okay=False,
                                                 help="Also every run dir below this folder")] = None,
    corpus_dir: Annotated[Optional[Path], typer.Option(help="Prepared DocBins (default: corpus/bench/DATASET)")] = None,
    force: Annotated[bool, typer.Option(help="Recompute runs that already carry the breakdown")] = False,
    threads: Annotated[int, typer.Option(help="torch/BLAS threads")] = 1,
) -> None:
    """Add errors by kind and F by span length to finished runs' result.json (runs trained
    before train-one stored them); nothing else changes."""
    from bench.analysis import analyse as run_analysis
    from bench.analysis import analysed_run_dirs

    dirs = analysed_run_dirs(run_dirs or [], all_)
    if not dirs:
        raise typer.BadParameter("give run dirs, or --all RUNS_DIR")
    run_analysis(dirs, corpus_dir, force, threads)


@app.command("status")
def status(output: Annotated[Path, typer.Option(help="Runs dir")] = BENCH / "runs") -> None:
    """List finished training runs (any depth below the folder) and timing repeats."""
    from bench.runner import status_lines

    print("\n".join(status_lines(output)))


@app.command("collect")
def collect(
    runs: Annotated[List[Path], typer.Argument(exists=True, file_okay=False, help="Run dirs, or folders above them")],
    experiment: Annotated[Optional[str], typer.Option(
        help="Experiment (converged, fixed_budget, tuned, sweep, ...) of runs whose result.json names none; "
             "a run that names one keeps it")] = None,
    variant: Annotated[Optional[str], typer.Option(
        help="Their variant, e.g. head_learn_rate_scale=10 (default: the run's, else baseline)")] = None,
    into: Annotated[Optional[Path], typer.Option(
        help="Results file (default: RESULTS/EXPERIMENT/VARIANT.json)")] = None,
    results: Annotated[Path, typer.Option(help="The results folder (a record another file of it holds is refused)")] = BENCH / "results",
) -> None:
    """Fold finished runs and timing repeats into a results file the page is built from."""
    from bench.experiment import default_results_file
    from bench.records import DEFAULT_VARIANT
    from bench.results import run_variants

    if into is None:
        if experiment is None:
            raise typer.BadParameter("give --experiment (the results file is RESULTS/EXPERIMENT/VARIANT.json) or --into")
        if variant is None:
            # Runs that name their own variant go to that variant's file, never to the
            # baseline's; timing repeats name none and take it from the runs beside them.
            variants = run_variants(runs)
            if len(variants) > 1:
                raise typer.BadParameter(f"these runs are of {len(variants)} variants ({', '.join(sorted(variants))}): "
                                         "collect one variant at a time, give --variant, or --into")
            variant = variants[0] if variants else None
        into = default_results_file(experiment, variant or DEFAULT_VARIANT, results)
    _collect_into(runs, into, experiment, variant, results)


@app.command("collect-head-cost")
def collect_head_cost(
    files: Annotated[List[Path], typer.Argument(exists=True, dir_okay=False, help="`time head-cost --output` files")],
    label: Annotated[str, typer.Option(help="Commit of the package these runs timed, e.g. 6d0a443")],
    role: Annotated[str, typer.Option(help="before, after or current")] = "current",
    session: Annotated[Optional[str], typer.Option(help="Measurement session (default: each file's folder)")] = None,
    into: Annotated[Path, typer.Option(help="Results file of head-cost records")] = BENCH / "results" / "head_cost" / "head_cost.json",
) -> None:
    """Fold head-cost measurements into head_cost.json."""
    from bench.results import Role
    from bench.results import collect_head_cost as fold

    n = fold(files, label, Role(role), into, session)
    print(f"{into}: {n} head-cost records ({len(files)} collected as {label}, {role})")


@app.command("collect-head-parts")
def collect_head_parts(
    files: Annotated[List[Path], typer.Argument(exists=True, dir_okay=False, help="`time parts --output` files")],
    experiment: Annotated[str, typer.Option(help="The experiment of the models timed, e.g. converged or timing_only")],
    run: Annotated[int, typer.Option(help="Tells repeated measurements of one model apart")] = 0,
    into: Annotated[Path, typer.Option(help="Results file of head-parts records")] = BENCH / "results" / "head_cost" / "head_parts.json",
) -> None:
    """Fold part-by-part timings of trained models into head_parts.json."""
    from bench.records import RecordError
    from bench.results import collect_head_parts as fold

    try:
        n = fold(files, into, experiment=experiment, run=run)
    except RecordError as err:
        raise typer.BadParameter(str(err)) from err
    print(f"{into}: {n} head-parts records ({len(files)} files collected)")


@app.command("report", add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def report(ctx: typer.Context) -> None:
    """Write BENCHMARKS.md, the README's results block and the charts from bench/results/
    (bench/report/; its options, --check among them: `python -m bench report --help`)."""
    from bench import report as page

    raise typer.Exit(page.main(ctx.args))


@app.command("write-configs")
def write_configs(
    folder: Annotated[Path, typer.Argument(help="Where the .cfg files go")] = BENCH / "configs",
) -> None:
    """Write every (encoder, system) config of bench/configs.py as a .cfg file (a test checks
    the committed ones are current)."""
    from bench.configs import write_all

    for path in write_all(folder):
        print(path)
