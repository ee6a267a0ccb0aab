"""Experiments as files: what to train and how, in one small TOML file under
bench/experiments/, run by `python -m bench run-experiment bench/experiments/NAME.toml`.

    name = "converged-genia-bilstm"      # default: the file name without .toml
    description = "..."
    experiment = "converged"             # the results store's experiment (default: name); the
                                         # page has sections for converged, fixed_budget, tuned, sweep
    variant = "baseline"                 # what differs from the baseline runs, as "key=value"
                                         # pairs ("a=1, b=2"; default "baseline")
    results = "bench/results/converged/baseline.json"   # where --collect folds the runs
                                         # (default bench/results/EXPERIMENT/VARIANT.json)
    dataset = "genia"                    # bench/registry.py
    output = "bench/runs_converged"      # run dirs, relative to project/ (default bench/runs/NAME)
    encoders = ["bilstm"]                # one grid; or several [[grid]] tables, each with
    systems = ["global_pointer_efficient", "spancat"]   # encoders, systems, seeds and
    seeds = [0]                          # optional overrides and variant of its own
    tune_thresholds = true               # after training: threshold.json (systems with span scores)
    decode_variants = false              # decoding.json (global_pointer systems)
    threads = 1

    [schedule]                           # training.Schedule
    steps = 30000
    eval_every = 500
    patience = 2500

    [overrides]                          # config overrides for every run
    "training.optimizer.learn_rate" = 0.002

    [timing]                             # optional: time the trained models, systems alternated
    repeats = 3


Unknown keys are errors (a typo would otherwise run something else than the file says).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import tomllib

from bench import registry
from bench.common import BENCH, PROJECT
from bench.records import DEFAULT_VARIANT, variant_settings
from bench.training import Schedule

EXPERIMENTS = BENCH / "experiments"
RESULTS = BENCH / "results"


class ExperimentError(ValueError):
    """An experiment file that cannot be run as written."""


@dataclass(frozen=True)
class Grid:
    """Every (encoder, seed, system) combination of these lists."""

    encoders: Tuple[str, ...]
    systems: Tuple[str, ...]
    seeds: Tuple[int, ...]
    overrides: Mapping[str, Any] = field(default_factory=dict)  # over the experiment's
    variant: Optional[str] = None  # default: the experiment's


@dataclass(frozen=True)
class Timing:
    repeats: int = 3  # timing repeats, systems alternated (medians reported)
    batch1_docs: int = 300  # docs timed at batch size 1
    session: str = "s1"  # a new name re-times every system
    seed: Optional[int] = None  # the runs timed (default: the first seed planned)
    systems: Optional[Tuple[str, ...]] = None  # default: every system planned with that seed


@dataclass(frozen=True)
class Run:
    """One training run of an experiment."""

    encoder: str
    system: str
    seed: int
    overrides: Mapping[str, Any]
    variant: str = DEFAULT_VARIANT


@dataclass(frozen=True)
class Experiment:
    name: str
    dataset: str
    grids: Tuple[Grid, ...]
    schedule: Schedule = Schedule()
    overrides: Mapping[str, Any] = field(default_factory=dict)
    experiment: str = ""  # the results store's experiment name (parse_experiment: default name)
    variant: str = DEFAULT_VARIANT
    results: Optional[str] = None  # results file relative to project/
    description: str = ""
    output: Optional[str] = None
    tune_thresholds: bool = False
    decode_variants: bool = False
    threads: int = 1
    timing: Optional[Timing] = None

    def runs_dir(self) -> Path:
        return PROJECT / (self.output or f"bench/runs/{self.name}")

    def results_file(self) -> Path:
        """Where `run-experiment --collect` folds the runs."""
        if self.results:
            return PROJECT / self.results
        return default_results_file(self.experiment or self.name, self.variant)

    def plan(self) -> List[Run]:
        """The runs, grid by grid (encoder, then seed, then system), each once."""
        seen: Dict[Tuple[str, str, int], Run] = {}
        for grid in self.grids:
            for encoder in grid.encoders:
                for seed in grid.seeds:
                    for system in grid.systems:
                        key = (encoder, system, seed)
                        if key in seen:
                            raise ExperimentError(f"{self.name}: {encoder}/{system}/seed{seed} is in two grids")
                        seen[key] = Run(encoder, system, seed, {**self.overrides, **grid.overrides},
                                        grid.variant or self.variant)
        return list(seen.values())


def _take(table: Dict[str, Any], cls: type, where: str) -> Dict[str, Any]:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ExperimentError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    return dict(table)


def _names(values: Any, lookup: Any, where: str) -> Tuple[str, ...]:
    if not isinstance(values, list) or not values:
        raise ExperimentError(f"{where}: expected a non-empty list, got {values!r}")
    try:
        return tuple(lookup(v).name for v in values)
    except registry.UnknownName as err:
        raise ExperimentError(f"{where}: {err}") from None


def _grid(table: Dict[str, Any], where: str) -> Grid:
    table = _take(table, Grid, where)
    missing = [k for k in ("encoders", "systems", "seeds") if k not in table]
    if missing:
        raise ExperimentError(f"{where}: missing {missing}")
    seeds = table["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ExperimentError(f"{where}: seeds must be a non-empty list of integers, got {seeds!r}")
    return Grid(_names(table["encoders"], registry.encoder, f"{where}: encoders"),
                _names(table["systems"], registry.system, f"{where}: systems"),
                tuple(seeds), dict(table.get("overrides", {})),
                _variant(table["variant"], where) if "variant" in table else None)


def _variant(value: Any, where: str) -> str:
    """A variant as the results page reads it: "baseline", or "key=value" pairs."""
    if not isinstance(value, str) or not value:
        raise ExperimentError(f"{where}: variant must be a string, got {value!r}")
    settings = variant_settings(value)
    if any(not k or not v for k, v in settings.items()):
        raise ExperimentError(f'{where}: variant {value!r} is not "baseline" or "key=value" pairs '
                              f'such as "learn_rate=0.001, width_bias=true"')
    return value


def default_results_file(experiment: str, variant: str, root: Path = RESULTS) -> Path:
    """bench/results/EXPERIMENT/VARIANT.json, the variant's pairs joined with "_" and "-"."""
    return root / experiment / f"{variant.replace(', ', '_').replace('=', '-')}.json"


def parse_experiment(data: Dict[str, Any], default_name: str, where: str = "experiment") -> Experiment:
    """An Experiment from a parsed TOML table, every name checked against the registry."""
    data = dict(data)
    grid_keys = {k: data.pop(k) for k in ("encoders", "systems", "seeds") if k in data}
    tables = data.pop("grid", [])
    if grid_keys and tables:
        raise ExperimentError(f"{where}: give encoders/systems/seeds or [[grid]] tables, not both")
    if not grid_keys and not tables:
        raise ExperimentError(f"{where}: nothing to run: give encoders, systems and seeds (or [[grid]] tables)")
    grids = [_grid(grid_keys, where)] if grid_keys else [
        _grid(t, f"{where}: grid {i + 1}") for i, t in enumerate(tables)]
    data = _take(data, Experiment, where)
    if "dataset" not in data:
        raise ExperimentError(f"{where}: missing 'dataset'; known: {', '.join(registry.DATASETS)}")
    try:
        registry.dataset(data["dataset"])
    except registry.UnknownName as err:
        raise ExperimentError(f"{where}: {err}") from None
    for table in [data.get("overrides", {}), *(g.overrides for g in grids)]:
        for key in table:
            if "." not in key:
                # TOML reads an unquoted a.b.c = 1 as nested tables: the override would replace a section.
                raise ExperimentError(f'{where}: override {key!r} is no config path: quote dotted keys, '
                                      f'"training.optimizer.learn_rate" = 0.002')
    data["grids"] = tuple(grids)
    data.setdefault("name", default_name)
    data.setdefault("experiment", data["name"])
    if "variant" in data:
        data["variant"] = _variant(data["variant"], where)
    if "schedule" in data:
        data["schedule"] = Schedule(**_take(data["schedule"], Schedule, f"{where}: [schedule]"))
    if "timing" in data:
        timing = _take(data["timing"], Timing, f"{where}: [timing]")
        if "systems" in timing:
            timing["systems"] = _names(timing["systems"], registry.system, f"{where}: [timing] systems")
        data["timing"] = Timing(**timing)
    experiment = Experiment(**data)
    experiment.plan()  # a run listed twice: an error now, before any training
    return experiment


def load_experiment(path: Path) -> Experiment:
    path = Path(path)
    if not path.exists() and not path.is_absolute():
        # `run-experiment NAME` or `experiments/NAME.toml`: look in bench/experiments too.
        for candidate in (EXPERIMENTS / path, EXPERIMENTS / f"{path}.toml", BENCH / path):
            if candidate.exists():
                path = candidate
                break
    if not path.exists():
        raise ExperimentError(f"no experiment file {path} (the files are in {EXPERIMENTS})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf8"))
    except tomllib.TOMLDecodeError as err:
        raise ExperimentError(f"{path}: not valid TOML: {err}") from None
    return parse_experiment(data, path.stem, str(path))
