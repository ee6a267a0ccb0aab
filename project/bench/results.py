"""The benchmark's compact results: one JSON file per benchmark in ``bench/results/``, the
only input of the results page (``bench/report.py``).

Runs write run dirs that stay local (``bench/run.py run``, ``bench/gpu/sweep.sh``);
``python bench/run.py collect RUNS_DIR`` folds them into the files:

    {dataset}.json  kind "runs":  the runs of ``bench/run.py run`` (bench/runs): training
                    runs and timing repeats
    tuned.json      kind "tuned": the tuned runs (bench/runs_tuned), training runs only
    sweep.json      kind "sweep": tuning sweeps (bench/sweeps/NAME), each run with "sweep"

A run record is the run's result.json plus "path" (the run dir, relative to the folded
dir), "threshold" (threshold.json, if any; its "test_default" is left out where it equals
"test", the same scoring) and "config_overrides" (config.cfg against the system's base
config of bench/configs.py, as dotted keys; "config_removed" lists base keys the run
lacked). A timing record is the timing JSON plus its path and what the path names. Paths
are relative to project/.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Tuple

from bench.configs import config_text

PROJECT = Path(__file__).resolve().parents[1]

Record = Dict[str, Any]


class Kind(str, Enum):
    runs = "runs"
    tuned = "tuned"
    sweep = "sweep"


def relative_path(value: str) -> str:
    """An absolute path relative to project/: this checkout's, or another's (the part after
    its last "project" folder); otherwise only the file name."""
    path = Path(value)
    try:
        return path.resolve().relative_to(PROJECT).as_posix()
    except ValueError:
        pass
    parts = PurePosixPath(value).parts
    if "project" in parts[:-1]:
        last = len(parts) - 1 - parts[::-1].index("project")
        return PurePosixPath(*parts[last + 1:]).as_posix()
    return path.name


def _relativize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _relativize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_relativize(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        return relative_path(value)
    return value


def _flatten(config: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_diff(run_config: str, base_config: str) -> Tuple[Dict[str, Any], List[str]]:
    """The run's config against the base, as dotted keys: the values that differ or are
    new, and the base keys the run lacks (an empty base section the run filled in is not
    one of those)."""
    from spacy.util import load_config_from_str

    run = _flatten(load_config_from_str(run_config, interpolate=False))
    base = _flatten(load_config_from_str(base_config, interpolate=False))
    overrides = {k: v for k, v in run.items() if k not in base or base[k] != v}
    removed = [k for k in base if k not in run and not any(r.startswith(k + ".") for r in run)]
    return overrides, removed


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf8"))


def run_record(run_dir: Path, root: Path) -> Record:
    """One training run (result.json, threshold.json, config.cfg) as a record."""
    result = _read(run_dir / "result.json")
    record: Record = {"path": run_dir.relative_to(root).as_posix(), **result}
    if (run_dir / "threshold.json").exists():
        threshold = _read(run_dir / "threshold.json")
        if threshold.get("test_default") == result.get("test"):
            del threshold["test_default"]
        record["threshold"] = threshold
    if (run_dir / "config.cfg").exists():
        base = config_text(result["encoder"], result["system"])
        overrides, removed = config_diff((run_dir / "config.cfg").read_text(encoding="utf8"), base)
        record["config_overrides"] = overrides
        if removed:
            record["config_removed"] = removed
    return _relativize(record)


def timing_record(path: Path, root: Path) -> Record:
    """One timing repeat, {dataset}/{encoder}/timing/{session}/{system}-seed{N}-r{N}.json."""
    rel = path.relative_to(root)
    system, seed, repeat = path.stem.rsplit("-", 2)
    return _relativize({
        "path": rel.as_posix(), "dataset": rel.parts[0], "encoder": rel.parts[1], "system": system,
        "session": rel.parts[3], "seed": int(seed[4:]), "repeat": int(repeat[1:]), **_read(path),
    })


def read_runs(root: Path, kind: Kind) -> Tuple[List[Record], List[Record]]:
    """The run and timing records of a runs dir (a sweep: its run dirs have no seed level)."""
    if kind is Kind.sweep:
        runs = [dict(run_record(p.parent, root), sweep=root.name)
                for p in sorted(root.glob("*/*/*/result.json"))]
        return runs, []
    runs = [run_record(p.parent, root) for p in sorted(root.glob("*/*/*/seed*/result.json"))]
    if kind is Kind.tuned:  # the tuned runs are compared on scores only
        return runs, []
    return runs, [timing_record(p, root) for p in sorted(root.glob("*/*/timing/*/*.json"))]


def _run_order(record: Record) -> Tuple[str, Tuple[str, ...]]:
    # The run dirs' order, folder by folder ("a/" before "a-b/"), as the report used to
    # glob them: rows of equal sort keys keep it.
    return record.get("sweep", ""), PurePosixPath(record["path"]).parts


def _timing_order(record: Record) -> Tuple[str, ...]:
    return PurePosixPath(record["path"]).parts


def _write(path: Path, data: Dict[str, Any]) -> None:
    """One record a line: compact, and a changed run is a changed line."""
    lines = ["{"]
    items = list(data.items())
    for i, (key, value) in enumerate(items):
        end = "," if i < len(items) - 1 else ""
        if isinstance(value, list):
            records = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in value]
            body = ",\n".join(f"  {r}" for r in records)
            lines.append(f" {json.dumps(key)}: [\n{body}\n ]{end}" if records else f" {json.dumps(key)}: []{end}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{end}")
    lines.append("}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf8")
    tmp.replace(path)


def _merge(old: List[Record], new: List[Record], key: Any) -> List[Record]:
    merged = {key(r): r for r in old}
    merged.update((key(r), r) for r in new)
    return list(merged.values())


def fold(root: Path, kind: Kind, results_dir: Path) -> Dict[Path, Tuple[int, int]]:
    """Fold a runs dir into the compact files; a run or timing repeat already there (same
    path, and sweep) is replaced. Returns each written file's run and timing counts."""
    runs, timings = read_runs(root, kind)
    if kind is Kind.runs:
        targets = sorted({r["dataset"] for r in runs} | {t["dataset"] for t in timings})
    else:
        targets = [kind.value]
    written = {}
    for name in targets:
        path = results_dir / f"{name}.json"
        data = _read(path) if path.exists() else {"kind": kind.value, "runs": []}
        if data.get("kind") != kind.value:
            raise ValueError(f"{path} holds kind {data.get('kind')!r} results, not {kind.value!r}")
        mine = [r for r in runs if kind is not Kind.runs or r["dataset"] == name]
        data["runs"] = sorted(_merge(data["runs"], mine, _run_order), key=_run_order)
        if kind is Kind.runs:
            mine_t = [t for t in timings if t["dataset"] == name]
            data["timings"] = sorted(_merge(data.get("timings", []), mine_t, lambda t: t["path"]),
                                     key=_timing_order)
        _write(path, data)
        written[path] = (len(data["runs"]), len(data.get("timings", [])))
    return written


def load(results_dir: Path) -> Dict[str, Any]:
    """Every compact file of a folder: "runs" and "timings" (the main tables), "tuned", and
    "sweeps" (name -> runs), each in the order of the run dirs."""
    out: Dict[str, Any] = {"runs": [], "timings": [], "tuned": [], "sweeps": {}}
    for path in sorted(results_dir.glob("*.json")):
        data = _read(path)
        kind = Kind(data["kind"])
        if kind is Kind.runs:
            out["runs"] += data["runs"]
            out["timings"] += data.get("timings", [])
        elif kind is Kind.tuned:
            out["tuned"] += data["runs"]
        else:
            for run in data["runs"]:
                out["sweeps"].setdefault(run["sweep"], []).append(run)
    out["runs"].sort(key=_run_order)
    out["timings"].sort(key=_timing_order)
    out["tuned"].sort(key=_run_order)
    out["sweeps"] = {name: sorted(runs, key=_run_order) for name, runs in sorted(out["sweeps"].items())}
    return out
