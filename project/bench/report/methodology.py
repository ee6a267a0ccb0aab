"""The page's first section: the machine, threads, seeds, the convergence rule, corpora and
splits, all read from the records."""

from __future__ import annotations

from typing import Dict, List, Sequence

from bench.records import TrainRecord
from bench.report.common import dataset_info, table


def methodology_section(runs: Sequence[TrainRecord]) -> List[str]:
    machines: Dict[str, Dict[str, str]] = {}
    for r in runs:
        if r.machine:
            machines.setdefault(str(r.machine.get("cpu", "?")), {k: str(v) for k, v in r.machine.items()})
    threads = sorted({r.threads for r in runs if r.threads})
    converged = [r for r in runs if r.experiment == "converged"]
    seeds = sorted({r.seed for r in runs})
    out = ["## Method", ""]
    if machines:
        keys = list(dict.fromkeys(k for m in machines.values() for k in m))
        out += ["Machines and versions the runs recorded:", "",
                table(["", *[f"machine {i + 1}" for i in range(len(machines))]],
                      [[k, *[m.get(k, "—") for m in machines.values()]] for k in keys]), ""]
    out += [f"- Threads: {', '.join(map(str, threads))} torch/BLAS thread per process. Training and "
            "timing processes shared the machine with other work, up to two at a time on two cores: "
            "times and words/s are indicative; speed comparisons are ratios taken within one process "
            "or one back-to-back timing set.",
            f"- Seeds: {', '.join(map(str, seeds))}; each table says which seeds a row has. With several "
            "seeds a figure is the mean ± the sample standard deviation over seeds; differences "
            "between two systems or settings are paired by seed, and a mean difference no larger "
            "than the larger standard deviation is called inside the seed spread.",
            "- Every system of a comparison shares the encoder, corpus, batcher, optimizer and dropout; "
            "only the component that predicts spans differs. The CRF tagger and spaCy ner cannot "
            "nest: they train on the outermost gold spans, and their dev F (model selection) is "
            "against those; test F is against all gold spans for every system.",
            "- Scores: exact-match span precision, recall and F over all gold spans of the held-out "
            "split, from the checkpoint with the best dev F. Nested recall: the share of gold spans "
            "lying inside another gold span that were found.",
            ]
    if converged:
        patience = sorted({r.patience for r in converged if r.patience})
        caps = sorted({r.steps for r in converged if r.steps})
        out.append(f"- Convergence (experiment `converged`): a run stops when its dev F has not improved "
                   f"for `patience` steps ({', '.join(f'{p:,}' for p in patience)}, per corpus and encoder) "
                   f"or at its cap ({', '.join(f'{c:,}' for c in caps)} steps); a run the cap stopped is "
                   "flagged (**the step cap**): it may still have been learning. Time to best dev is "
                   "wall-clock from the start of training (initialisation, updates and dev evaluations) "
                   "to the best dev evaluation; \"updates to best dev\" counts the updates alone.")
    out.append("- Variants: a changed setting is a variant of its experiment (named `key=value`), "
               "shown beside the runs it changes and never pooled with them.")
    datasets = sorted({r.dataset for r in runs})
    lines = []
    for d in datasets:
        info = dataset_info(d)
        limits = sorted({r.train_limit for r in runs if r.dataset == d and r.train_limit})
        lines.append([info.name, info.language, "nested" if info.nested else "flat", info.splits, info.heldout,
                      ", ".join(f"first {n:,} docs" for n in limits) or "—"])
    out += ["", "Corpora (`../shared/data/`, never copied into the repository):", "",
            table(["corpus", "language", "spans", "splits (files)", "held-out split",
                   "training subsets used (MiniLM)"], lines), ""]
    return out
