"""The page's earlier comparisons at fixed budgets: the same number of steps for every
system (experiment "fixed_budget"), each system at its tuned learning rate (experiment
"tuned"), and the learning-rate sweep at equal training time (experiment "sweep")."""

from __future__ import annotations

from typing import Dict, List, Sequence

from bench.records import TrainRecord
from bench.report.common import (
    HEADS,
    dataset_info,
    encoder_name,
    group_runs,
    mean,
    mean_std,
    num,
    paired,
    pct,
    seeds_text,
    system_name,
    system_order,
    table,
    test_f,
)


def _settings(r: TrainRecord) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in r.overrides.items()) or "the config's"


def budget_section(runs: Sequence[TrainRecord], *, tuned: bool) -> List[str]:
    """Per corpus and encoder, every system at the same step budget, scored at its best dev
    checkpoint within it."""
    out: List[str] = []
    for (dataset, encoder), systems in group_runs(runs).items():
        info = dataset_info(dataset)
        steps = sorted({r.steps for rs in systems.values() for r in rs if r.steps})
        out += [f"#### {info.name}, {encoder_name(encoder)}, {', '.join(f'{s:,}' for s in steps)} steps", ""]
        sizes = next((r.spancat_sizes for rs in systems.values() for r in rs if r.spancat_sizes), None)
        if sizes:
            out += [f"spancat n-gram sizes covering 99.5% of the training spans: {sizes[0]}-{sizes[-1]}.", ""]
        header = ["system", "settings", "seeds", "test F", "test F, threshold tuned on dev"]
        header += ["test F against outermost gold", "nested recall"] if info.nested else []
        header += ["steps to best dev", "train words/s"]
        lines = []
        for system, rs in systems.items():
            line = [system_name(system), _settings(rs[0]), seeds_text(rs), mean_std(test_f(r) for r in rs),
                    mean_std(r.tuned_f for r in rs)]
            if info.nested:
                line += [mean_std(r.test.outermost.f if r.test.outermost else None for r in rs),
                         mean_std(r.test.nested_recall for r in rs)]
            line += [num(mean(r.best.step for r in rs)), num(mean(r.train_words_per_second for r in rs))]
            lines.append(line)
        out += [table(header, lines), ""]
        margins = []
        for head in HEADS:
            for other, rs in systems.items():
                if head in systems and other not in HEADS:
                    value = (lambda r: r.tuned_f if r.tuned_f is not None else test_f(r)) if tuned else test_f
                    p = paired(systems[head], rs, value)
                    if p.diffs:
                        margins.append(f"- {system_name(head)} minus {system_name(other)}, test F"
                                       f"{' (threshold tuned on dev where a system has one)' if tuned else ''}: "
                                       f"{p.text()}.")
        out += margins + ([""] if margins else [])
    return out


def sweep_section(runs: Sequence[TrainRecord]) -> List[str]:
    """Every sweep run: its settings, time budget and scores."""
    if not runs:
        return []
    out = []
    by_dataset: Dict[str, List[TrainRecord]] = {}
    for r in runs:
        by_dataset.setdefault(r.dataset, []).append(r)
    for dataset in sorted(by_dataset):
        info = dataset_info(dataset)
        lines = []
        for r in sorted(by_dataset[dataset], key=lambda r: (r.encoder, system_order(r.system), r.variant, r.seed)):
            o = r.test.overall
            lines.append([encoder_name(r.encoder), system_name(r.system), f"`{r.variant}`", str(r.seed),
                          num(r.steps_run), pct(r.best.dev_f), pct(o.p), pct(o.r), pct(o.f), pct(r.tuned_f),
                          pct(r.test.nested_recall) if info.nested else "—"])
        out += [f"#### {info.name}", "",
                table(["encoder", "system", "variant", "seed", "steps in the budget", "best dev F", "test P",
                       "test R", "test F", "test F, threshold tuned on dev", "nested recall"], lines), ""]
    return out
