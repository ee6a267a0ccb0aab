"""One-off: rewrite the first format's results files (a "kind" and "runs" per file, no
experiment or variant) as schema-2 records, with experiment and variant names that say what
each set of runs was. Run once (`python -m bench.migrate_v1`); the store reads only schema 2.

    OLD FILE                              EXPERIMENT      VARIANT
    {genia,cluener,weibo}.json (runs)     fixed_budget    default
    tuned.json                            tuned           default
    sweep.json                            sweep           its settings and time budget
    converged.json                        converged       default
    head_learn_rate/converged.json        converged       head_learn_rate_scale=10
    boundary_smoothing/converged.json     converged       boundary_smoothing=0.1
    width_bias/converged.json             converged       width_bias=true
    lr0001/converged.json                 converged       learn_rate=0.001
    long_schedule/converged.json          converged       max_steps=3200 (+ head_learn_rate_scale=10
                                                          for global_pointer, as those runs had)
    head_cost.json                        (head_cost records)
    head_parts/parts.json                 (head_parts records: converged, or timing_only
                                          for the 3,000-step models)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

from bench.records import (
    SCHEMA_VERSION,
    HeadCostRecord,
    Record,
    TimingRecord,
    TrainRecord,
    variant_name,
)
from bench.results import RESULTS, head_parts_record, write_records


def sweep_variant(result: Dict[str, Any]) -> str:
    """A sweep run's variant: its --set overrides (last key part) and its time budget."""
    settings = {k.rsplit(".", 1)[-1]: v for k, v in (result.get("overrides") or {}).items()}
    settings["budget_seconds"] = f"{result.get('max_train_seconds') or 0:g}"
    return variant_name(settings)

CONVERGED_VARIANTS = {
    "converged.json": {},
    "head_learn_rate/converged.json": {"head_learn_rate_scale": 10},
    "boundary_smoothing/converged.json": {"boundary_smoothing": 0.1},
    "width_bias/converged.json": {"width_bias": "true"},
    "lr0001/converged.json": {"learn_rate": 0.001},
    "long_schedule/converged.json": {"max_steps": 3200},
}


def _train(run: Dict[str, Any], experiment: str, variant: str) -> TrainRecord:
    return TrainRecord.from_dict({**run, "experiment": experiment, "variant": variant,
                                  "schema_version": SCHEMA_VERSION, "kind": "train"})


def migrate(old: Path, new: Path) -> Dict[Path, List[Record]]:
    out: Dict[Path, List[Record]] = {}
    for dataset in ("genia", "cluener", "weibo"):
        data = json.loads((old / f"{dataset}.json").read_text(encoding="utf8"))
        assert data["kind"] == "runs"
        recs: List[Record] = [_train(r, "fixed_budget", "baseline") for r in data["runs"]]
        recs += [TimingRecord.from_dict({**t, "experiment": "fixed_budget", "variant": "baseline",
                                         "schema_version": SCHEMA_VERSION, "kind": "timing"})
                 for t in data["timings"]]
        out[new / "fixed_budget" / f"{dataset}.json"] = recs
    tuned = json.loads((old / "tuned.json").read_text(encoding="utf8"))
    out[new / "tuned" / "tuned.json"] = [_train(r, "tuned", "baseline") for r in tuned["runs"]]
    sweep = json.loads((old / "sweep.json").read_text(encoding="utf8"))
    out[new / "sweep" / "sweep.json"] = [_train(r, "sweep", sweep_variant(r)) for r in sweep["runs"]]
    for name, settings in CONVERGED_VARIANTS.items():
        data = json.loads((old / name).read_text(encoding="utf8"))
        assert data["kind"] == "converged"
        recs = []
        for r in data["runs"]:
            mine = dict(settings)
            scale = (r.get("overrides") or {}).get("components.global_pointer.head_learn_rate_scale")
            if scale is not None:
                mine["head_learn_rate_scale"] = f"{scale:g}"
            recs.append(_train(r, "converged", variant_name(mine)))
        target = "baseline.json" if name == "converged.json" else name.split("/")[0] + ".json"
        out[new / "converged" / target] = recs
    head_cost = json.loads((old / "head_cost.json").read_text(encoding="utf8"))
    out[new / "head_cost" / "head_cost.json"] = [
        HeadCostRecord.from_dict({**r, "schema_version": SCHEMA_VERSION, "kind": "head_cost"})
        for r in head_cost["runs"]]
    parts = json.loads((old / "head_parts" / "parts.json").read_text(encoding="utf8"))
    recs = []
    seen: Dict[Any, int] = {}
    for r in parts["runs"]:
        experiment = "converged" if "runs_converged" in r["model"] else "timing_only"
        key = (r["model"], r["batch_size"], r["package"])
        seen[key] = seen.get(key, -1) + 1
        recs.append(head_parts_record(r, experiment=experiment, run=seen[key]))
    out[new / "head_cost" / "head_parts.json"] = recs
    return out


def main() -> None:
    written = migrate(RESULTS, RESULTS)
    for path, records in written.items():
        keys = [(r.kind, *r.key) for r in records]
        assert len(keys) == len(set(keys)), f"{path}: duplicate identities"
        write_records(path, records)
        print(f"{path.relative_to(RESULTS)}: {len(records)} records")


if __name__ == "__main__":
    main()
