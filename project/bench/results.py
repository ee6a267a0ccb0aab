"""The benchmark's compact results: one JSON file per benchmark in ``bench/results/``, the
only input of the results page (``bench/report.py``).

Runs write run dirs that stay local (``bench/run.py run``, ``bench/gpu/sweep.sh``);
``python bench/run.py collect RUNS_DIR`` folds them into the files:

    {dataset}.json  kind "runs":  the runs of ``bench/run.py run`` (bench/runs): training
                    runs and timing repeats
    tuned.json      kind "tuned": the tuned runs (bench/runs_tuned), training runs only
    sweep.json      kind "sweep": tuning sweeps (bench/sweeps/NAME), each run with "sweep"
    converged.json  kind "converged": runs trained until dev F stopped improving
                    (bench/runs_converged: `run --patience P --steps CAP`), training runs only
    head_cost.json  kind "head_cost": bench/profile_head.py outputs, folded by
                    ``python bench/run.py collect-head-cost FILE.json... --label COMMIT --role before``

A run record is the run's result.json plus "path" (the run dir, relative to the folded
dir), "threshold" (threshold.json, if any; its "test_default" is left out where it equals
"test", the same scoring) and "config_overrides" (config.cfg against the system's base
config of bench/configs.py, as dotted keys; "config_removed" lists base keys the run
lacked). A timing record is the timing JSON plus its path and what the path names. Paths
are relative to project/.

A head-cost record is one profile_head output less its cProfile/torch listings: "figures"
(per system: head shares, throughput against the encoder, training against the trivial head,
words/s and the raw seconds per repeat), "code", "lang", "encoder", "threads", "data" (relative
to project/ under the shared data, else its file name), plus "label" (the commit of the
package timed: profile_head's "code" names the checkout it ran from, not the package
PYTHONPATH imported), "role" ("before", "after" or "current"), "session" (the measurement
session: runs of one session were alternated and are compared with each other) and "source"
(session/file name: collecting that file again replaces the record).
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench.configs import config_text

PROJECT = Path(__file__).resolve().parents[1]

Record = Dict[str, Any]


class Kind(str, Enum):
    runs = "runs"
    tuned = "tuned"
    sweep = "sweep"
    converged = "converged"
    head_cost = "head_cost"


class Role(str, Enum):
    """What a head-cost measurement's package is to the comparison of its session."""

    before = "before"
    after = "after"
    current = "current"


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
    """One training run (result.json, threshold.json, decoding.json, config.cfg) as a record."""
    result = _read(run_dir / "result.json")
    record: Record = {"path": run_dir.relative_to(root).as_posix(), **result}
    if (run_dir / "threshold.json").exists():
        threshold = _read(run_dir / "threshold.json")
        if threshold.get("test_default") == result.get("test"):
            del threshold["test_default"]
        record["threshold"] = threshold
    if (run_dir / "decoding.json").exists():
        record["decoding"] = _read(run_dir / "decoding.json")["variants"]
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
    if kind in (Kind.tuned, Kind.converged):  # compared on scores and training runs only
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
    if kind is Kind.head_cost:
        raise ValueError("head-cost results are profile_head outputs: fold them with fold_head_cost")
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


def _data_path(value: str) -> str:
    """profile_head's --data as kept: relative to project/ under the shared data (as the
    commands in NOTES name it), its file name elsewhere; "demo (in memory)" as it is."""
    if "/" not in value and "." not in value:
        return value
    parts = PurePosixPath(value).parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1:i + 1] == ("shared", "data"):
            return PurePosixPath("..", "..", "shared", "data", *parts[i + 1:]).as_posix()
    return PurePosixPath(value).name


def _package_path(value: str) -> str:
    """The package folder PYTHONPATH imported: relative to project/ in a checkout, else its
    last two folders (e.g. gp_before/spacy_globalpointer: the extracted commit the NOTES'
    commands name), never a machine's absolute path."""
    try:
        return PurePosixPath("..", Path(value).resolve().relative_to(PROJECT.parent).as_posix()).as_posix()
    except ValueError:
        return PurePosixPath(*PurePosixPath(value).parts[-2:]).as_posix()


def head_cost_record(path: Path, label: str, role: Role, session: Optional[str] = None) -> Record:
    """One profile_head output (--output JSON) as a compact record, listings dropped."""
    out = _read(path)
    code = dict(out.get("code", {}))
    if code.get("package_path"):
        code["package_path"] = _package_path(code["package_path"])
    session = session or path.resolve().parent.name
    return {"source": f"{session}/{path.name}", "session": session, "label": label, "role": role.value,
            "data": _data_path(str(out.get("data", "?"))), "lang": out.get("lang"),
            "encoder": out.get("encoder"), "threads": out.get("threads"), "code": code,
            "overrides": out.get("overrides", {}), "figures": out["figures"]}


def fold_head_cost(paths: Sequence[Path], label: str, role: Role, into: Path,
                   session: Optional[str] = None) -> int:
    """Add profile_head outputs to a head_cost.json (created if missing); a record of the
    same source (session and file name) is replaced in place, new ones are appended, so the
    file keeps the order they were collected in. Returns the file's record count."""
    data = _read(into) if into.exists() else {"kind": Kind.head_cost.value, "runs": []}
    if data.get("kind") != Kind.head_cost.value:
        raise ValueError(f"{into} holds kind {data.get('kind')!r} results, not 'head_cost'")
    new = [head_cost_record(p, label, role, session) for p in paths]
    data["runs"] = _merge(data["runs"], new, lambda r: r["source"])
    _write(into, data)
    return len(data["runs"])


def load(results_dir: Path) -> Dict[str, Any]:
    """Every compact file of a folder: "runs" and "timings" (the main tables), "tuned",
    "converged", "sweeps" (name -> runs), each in the order of the run dirs, and
    "head_cost" (in the order collected)."""
    out: Dict[str, Any] = {"runs": [], "timings": [], "tuned": [], "converged": [], "sweeps": {},
                           "head_cost": []}
    for path in sorted(results_dir.glob("*.json")):
        data = _read(path)
        kind = Kind(data["kind"])
        if kind is Kind.runs:
            out["runs"] += data["runs"]
            out["timings"] += data.get("timings", [])
        elif kind is Kind.tuned:
            out["tuned"] += data["runs"]
        elif kind is Kind.converged:
            out["converged"] += data["runs"]
        elif kind is Kind.head_cost:
            out["head_cost"] += data["runs"]
        else:
            for run in data["runs"]:
                out["sweeps"].setdefault(run["sweep"], []).append(run)
    out["runs"].sort(key=_run_order)
    out["timings"].sort(key=_timing_order)
    out["tuned"].sort(key=_run_order)
    out["converged"].sort(key=_run_order)
    out["sweeps"] = {name: sorted(runs, key=_run_order) for name, runs in sorted(out["sweeps"].items())}
    return out
