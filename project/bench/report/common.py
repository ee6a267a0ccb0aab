"""What every section of the results page shares: display names and data-set facts (one
lookup each), number formats, markdown tables and statistics over seeds."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from bench import registry
from bench.records import TrainRecord

SYSTEM_ORDER = list(registry.SYSTEMS)
SYSTEM_ORDER.insert(0, SYSTEM_ORDER.pop(SYSTEM_ORDER.index("global_pointer_efficient")))  # the default head first
HEADS = ("global_pointer_efficient", "global_pointer")  # this package's systems
LANGUAGES = {"en": "English", "zh": "Chinese"}


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # display name
    language: str
    nested: bool
    heldout: str  # the held-out split, in words
    splits: str  # the split files


def dataset_info(dataset: str) -> DatasetInfo:
    """Display name, language, nestedness and splits of a corpus, from bench/registry.py; a
    name the registry does not list is shown as it is (flat, held-out split "test")."""
    spec = registry.DATASETS.get(dataset)
    if spec is None:
        return DatasetInfo(dataset, "?", False, "test", "?")
    heldout = spec.heldout_note.split("held-out split: ", 1)[-1] if spec.heldout_note else spec.heldout
    splits = ", ".join(f"{name}: `{file}`" for name, file in spec.splits.items())
    if spec.dev_from_train:
        splits += f"; dev: the last {spec.dev_from_train:,} train sentences"
    return DatasetInfo(spec.display, LANGUAGES.get(spec.lang, spec.lang), spec.nested, heldout, splits)


def system_name(system: str) -> str:
    spec = registry.SYSTEMS.get(system)
    return spec.display if spec else system


def encoder_name(encoder: str) -> str:
    spec = registry.ENCODERS.get(encoder)
    return spec.display if spec else encoder


def system_order(system: str) -> Tuple[int, str]:
    return (SYSTEM_ORDER.index(system) if system in SYSTEM_ORDER else len(SYSTEM_ORDER), system)


DATASET_ORDER = ["genia", "conll2003", "cluener", "weibo"]
ENCODER_ORDER = ["cnn", "bilstm", "minilm"]


def group_order(key: Tuple[str, str]) -> Tuple[int, str, int, str]:
    dataset, encoder = key
    d = DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER)
    e = ENCODER_ORDER.index(encoder) if encoder in ENCODER_ORDER else len(ENCODER_ORDER)
    return d, dataset, e, encoder


# --- formats ---------------------------------------------------------------------------------

def pct(value: Optional[float]) -> str:
    return "—" if value is None else f"{value * 100:.1f}"


def num(value: Optional[float], fmt: str = "{:,.0f}") -> str:
    return "—" if value is None else fmt.format(value)


def minutes(seconds: Optional[float]) -> str:
    return "—" if seconds is None else f"{seconds / 60:,.1f} min"


def table(header: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


# --- statistics over seeds -------------------------------------------------------------------

def present(values: Iterable[Optional[float]]) -> List[float]:
    return [v for v in values if v is not None]


def mean(values: Iterable[Optional[float]]) -> Optional[float]:
    got = present(values)
    return statistics.fmean(got) if got else None


def median(values: Iterable[Optional[float]]) -> Optional[float]:
    got = present(values)
    return statistics.median(got) if got else None


def std(values: Iterable[Optional[float]]) -> Optional[float]:
    """Sample standard deviation over seeds; None below two."""
    got = present(values)
    return statistics.stdev(got) if len(got) > 1 else None


def mean_std(values: Iterable[Optional[float]]) -> str:
    """Percent as "mean ± std" over seeds (the mean alone for one seed). Where some runs lack
    the figure (records older than it), the cell says over how many seeds it was taken."""
    given = list(values)
    got = present(given)
    if not got:
        return "—"
    spread = std(got)
    text = pct(mean(got)) + ("" if spread is None else f" ± {spread * 100:.1f}")
    return text if len(got) == len(given) else f"{text} ({len(got)} of {len(given)} seeds)"


def mean_std_pair(mine: Sequence[TrainRecord], base: Sequence[TrainRecord], value: Any) -> str:
    """ "mean ± std / mean ± std" of value over two groups of runs, e.g. a variant and its baseline."""
    return f"{mean_std(value(r) for r in mine)} / {mean_std(value(r) for r in base)}"


@dataclass
class Paired:
    """Per-seed differences a - b over the seeds both ran, and whether the mean difference
    is inside the seed spread (|mean difference| <= the larger std over seeds of a or b)."""

    seeds: List[int]
    diffs: List[float]
    mean_diff: Optional[float]
    spread: Optional[float]

    @property
    def inside_spread(self) -> Optional[bool]:
        if self.mean_diff is None or self.spread is None:
            return None
        return abs(self.mean_diff) <= self.spread

    def text(self) -> str:
        if not self.diffs:
            return "no common seed"
        per_seed = ", ".join(f"seed {s}: {d * 100:+.1f}" for s, d in zip(self.seeds, self.diffs))
        verdict = self.inside_spread
        where = ("spread unknown (one seed on a side)" if verdict is None
                 else "inside the seed spread" if verdict else "outside the seed spread")
        return f"{self.mean_diff * 100:+.1f} ({per_seed}); {where}"

    def short_text(self) -> str:
        """The mean difference, then the per-seed ones where there are several: "+0.5 (+0.4, +0.6)"."""
        if not self.diffs:
            return "—"
        text = f"{self.mean_diff * 100:+.1f}"  # type: ignore[operator]
        return text if len(self.diffs) == 1 else text + " (" + ", ".join(f"{d * 100:+.1f}" for d in self.diffs) + ")"


def paired(a: Sequence[TrainRecord], b: Sequence[TrainRecord], value: Any) -> Paired:
    """Paired per-seed differences value(a) - value(b)."""
    va = {r.seed: value(r) for r in a}
    vb = {r.seed: value(r) for r in b}
    seeds = sorted(s for s in va if s in vb and va[s] is not None and vb[s] is not None)
    diffs = [va[s] - vb[s] for s in seeds]
    spreads = [std(va.values()), std(vb.values())]
    # A verdict needs the spread of both sides: one seed on a side leaves it unknown.
    spread = None if None in spreads else max(present(spreads))
    return Paired(seeds, diffs, statistics.fmean(diffs) if diffs else None, spread)


def test_f(r: TrainRecord) -> float:
    return r.test.overall.f


def dev_f(r: TrainRecord) -> float:
    return r.best.dev_f


def seeds_text(runs: Sequence[TrainRecord]) -> str:
    return ", ".join(str(r.seed) for r in sorted(runs, key=lambda r: r.seed))


def group_runs(runs: Iterable[TrainRecord]) -> Dict[Tuple[str, str], Dict[str, List[TrainRecord]]]:
    """(dataset, encoder) -> system -> runs (sorted by seed), groups and systems in page order."""
    groups: Dict[Tuple[str, str], Dict[str, List[TrainRecord]]] = {}
    for r in runs:
        groups.setdefault((r.dataset, r.encoder), {}).setdefault(r.system, []).append(r)
    return {k: {s: sorted(groups[k][s], key=lambda r: r.seed) for s in sorted(groups[k], key=system_order)}
            for k in sorted(groups, key=group_order)}
