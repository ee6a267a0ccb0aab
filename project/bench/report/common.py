"""What every section of the results page shares: display names and data-set facts (one
lookup each), number formats, markdown tables and statistics over seeds."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from bench.records import TrainRecord

SYSTEM_ORDER = ["global_pointer_efficient", "global_pointer", "spancat", "spancat_1_3", "crf", "ner"]
SYSTEM_NAMES = {
    "global_pointer": "global_pointer (per-label head)",
    "global_pointer_efficient": "global_pointer (efficient head, the default)",
    "spancat": "spancat (sizes covering 99.5%)",
    "spancat_1_3": "spancat (sizes 1-3)",
    "crf": "CRF tagger",
    "ner": "spaCy ner",
}
ENCODER_NAMES = {"cnn": "CNN", "bilstm": "BiLSTM", "minilm": "MiniLM (all-MiniLM-L6-v2)"}
HEADS = ("global_pointer_efficient", "global_pointer")  # this package's systems


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    language: str
    nested: bool
    heldout: str  # the split scored, in words
    sentences: str  # train / dev / test


# The corpora (/work/shared/data/README.md). One lookup (dataset_info) until the harness's
# registry names them.
_DATASETS = {
    "genia": DatasetInfo("GENIA", "English (biomedical)", True, "test", "15,038 / 1,765 / 1,732"),
    "conll2003": DatasetInfo("CoNLL-2003", "English (news)", False, "test (eng.testb)",
                             "14,041 / 3,250 / 3,453"),
    "weibo": DatasetInfo("Weibo", "Chinese (social media)", False, "test", "1,350 / 270 / 270"),
    "cluener": DatasetInfo("CLUENER", "Chinese", False,
                           "the official dev set (it publishes no test labels; model selection "
                           "on the last 1,000 training sentences, not trained on)",
                           "10,748 / 1,343 / —"),
}


def dataset_info(dataset: str) -> DatasetInfo:
    return _DATASETS.get(dataset, DatasetInfo(dataset, "?", False, "test", "?"))


def system_name(system: str) -> str:
    return SYSTEM_NAMES.get(system, system)


def encoder_name(encoder: str) -> str:
    return ENCODER_NAMES.get(encoder, encoder)


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
    """Percent as "mean ± std" over seeds (the mean alone for one seed)."""
    got = present(values)
    if not got:
        return "—"
    spread = std(got)
    return pct(mean(got)) + ("" if spread is None else f" ± {spread * 100:.1f}")


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
