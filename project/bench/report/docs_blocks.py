"""Generated blocks of the user docs: docs/configuration.md's comparison of GlobalPointer.v4
against the plain head, written by `python -m bench report` from the same records as the page."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from bench.records import DEFAULT_VARIANT, TimingRecord, TrainRecord
from bench.report.common import (
    dataset_info,
    dev_f,
    encoder_name,
    group_order,
    mean_std_pair,
    paired,
    seeds_text,
    table,
    test_f,
)
from bench.report.converged import EXPERIMENT, inner_recall, long_recall, outer_recall
from bench.report.speed import ratios_to_baseline, timing_rows

HEAD = "global_pointer_efficient"
# The v4 variants of the converged experiment, as the docs name their settings.
V4_VARIANTS: Tuple[Tuple[str, str], ...] = (
    ("architecture=GlobalPointer.v4, context_channels=0", "interior only (`context_channels = 0`)"),
    ("architecture=GlobalPointer.v4", "interior and context (`context_channels = 16`)"),
)
V4_START, V4_END = "<!-- v4-results:start -->", "<!-- v4-results:end -->"


def _speed(rows: Dict[Tuple[str, str, str, str], Dict[str, Any]], dataset: str, encoder: str, variant: str) -> str:
    """Training / prediction (batch 256) words/s against the plain head's, only where both
    models were timed in the same timing set (sets ran at other times and loads)."""
    ratios = ratios_to_baseline(rows, (dataset, encoder, HEAD, variant))
    if ratios is None:
        return "—"
    return " / ".join("—" if r is None else f"{r:.2f}" for r in ratios)


def v4_block(runs: Sequence[TrainRecord], timings: Sequence[TimingRecord]) -> str:
    """GlobalPointer.v4's variants against the plain efficient head, per corpus and encoder:
    F1 on dev and test over the seeds run, the paired test difference per seed, recall of
    inner, outer and long spans on nested data, and the speed ratio where timed."""
    by_group: Dict[Tuple[str, str], Dict[str, List[TrainRecord]]] = {}
    for r in runs:
        if r.experiment == EXPERIMENT and r.system == HEAD:
            by_group.setdefault((r.dataset, r.encoder), {}).setdefault(r.variant, []).append(r)
    rows = timing_rows([t for t in timings if t.experiment == EXPERIMENT])
    lines, nesting = [], []
    for group in sorted(by_group, key=group_order):
        base = sorted(by_group[group].get(DEFAULT_VARIANT, []), key=lambda r: r.seed)
        if not base:
            continue
        where = f"{dataset_info(group[0]).name}, {encoder_name(group[1])}"
        for variant, setting in V4_VARIANTS:
            mine = sorted(by_group[group].get(variant, []), key=lambda r: r.seed)
            if not mine:
                continue
            lines.append([where, setting, f"{seeds_text(mine)} / {seeds_text(base)}",
                          mean_std_pair(mine, base, dev_f), mean_std_pair(mine, base, test_f),
                          paired(mine, base, test_f).short_text(), _speed(rows, *group, variant)])
            if dataset_info(group[0]).nested and any(r.test.inner_spans for r in mine + base):
                nesting.append([where, setting, *(mean_std_pair(mine, base, get)
                                                  for get in (inner_recall, outer_recall, long_recall))])
    if not lines:
        return "No GlobalPointer.v4 runs collected.\n"
    out = [table(["data, encoder", "v4 setting", "seeds (v4 / plain)", "dev F1 (v4 / plain)", "test F1 (v4 / plain)",
                  "test F1, v4 minus plain (per seed)", "training / prediction words/s against the plain head"], lines),
           "",
           "Mean ± standard deviation over the seeds run, each run trained until dev F1 stopped improving "
           "(the MiniLM runs: to the step cap of their schedule). Speed: the seed-0 models timed alternately "
           "in one timing set, one thread (`python -m bench time pipeline`); — where they were not."]
    if nesting:
        out += ["", "On nested data, test recall of inner spans (inside another gold span), outer spans "
                "(containing one) and spans of 6 or more tokens:", "",
                table(["data, encoder", "v4 setting", "inner spans (v4 / plain)", "outer spans (v4 / plain)",
                       "6+ tokens (v4 / plain)"], nesting)]
    return "\n".join(out) + "\n"


def replace_marked(text: str, block: str, start: str, end: str, where: str) -> str:
    """text with what lies between its one start and one end marker replaced by block."""
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{where} needs one {start} before one {end}")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{block}{end}{tail}"
