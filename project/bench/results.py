"""The benchmark's results store: typed records (bench/records.py) in JSON files under
``bench/results/``, the only input of the results page and the README's results block
(``python -m bench.report``).

A results file is ``{"schema_version": 2, "records": [...]}``, one record a line; every
``*.json`` below ``bench/results/`` is read, in any folder. A record's identity is its
``key`` (training runs: experiment, variant, dataset, encoder, system, seed); collecting a
record already stored replaces it, and the same identity in two files is an error.

What fills it:

    collect_runs(run_dirs, results_file, experiment=..., variant=...)
        training runs (result.json; threshold.json, decoding.json and config.cfg where
        present) and timing repeats ({dataset}/{encoder}/timing/{session}/{system}-seedN-rN.json)
        found in or below the given folders. A result.json that names its experiment and
        variant keeps them (they must agree with those given); one that does not (written
        before runs named them) takes those given.
    collect_head_cost(files, label, role, into)     python -m bench time head-cost --output files
    collect_head_parts(files, into, experiment=...)  `python -m bench time parts` --output files

A run record is the run's result.json plus "path" (the run dir, relative to the folder
collected), "threshold" (threshold.json; its "test_default" is left out where it equals
"test"), "decoding" (decoding.json's variants) and "config_overrides" (config.cfg against
the system's base config of bench/configs.py, as dotted keys; "config_removed" lists base
keys the run lacked). Absolute paths are made relative to project/.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from bench.configs import config_text
from bench.records import (
    DEFAULT_VARIANT,
    SCHEMA_VERSION,
    HeadCostRecord,
    HeadPartsRecord,
    Record,
    RecordError,
    TimingRecord,
    TrainRecord,
    record_from_dict,
)

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


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




def _data_path(value: str) -> str:
    """`time head-cost`'s --data as kept: relative to project/ under the shared data (as the
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




def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf8"))


# --- reading and writing results files ------------------------------------------------------

def read_file(path: Path) -> List[Record]:
    """The records of one results file; a file of another schema version, or a record of an
    unknown kind, is a RecordError naming the file."""
    try:
        data = _read(path)
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        version = data.get("schema_version") if isinstance(data, dict) else None
        raise RecordError(f"{path}: schema_version {version!r}, this code reads {SCHEMA_VERSION} "
                          "(files of the first format: python -m bench.migrate_v1)")
    out = []
    for i, item in enumerate(data.get("records", [])):
        try:
            out.append(record_from_dict(item))
        except RecordError as err:
            raise RecordError(f"{path}: record {i}: {err}") from None
    return out


def load_records(results_dir: Path = RESULTS) -> List[Record]:
    """Every record of every results file below a folder, files in path order. The same
    identity in two files is a RecordError naming both."""
    seen: Dict[Tuple[Any, ...], Path] = {}
    out: List[Record] = []
    for path in sorted(results_dir.rglob("*.json")):
        for record in read_file(path):
            key = (record.kind, *record.key)
            if key in seen:
                raise RecordError(f"{path}: record {key} is also in {seen[key]}")
            seen[key] = path
            out.append(record)
    return out


def _sort_key(record: Record) -> Tuple[str, ...]:
    return (record.kind, *(str(k) for k in record.key))


def write_records(path: Path, records: Iterable[Record]) -> None:
    """One record a line: compact, and a changed run is a changed line."""
    rows = [json.dumps(r.to_dict(), ensure_ascii=False, separators=(",", ":"))
            for r in sorted(records, key=_sort_key)]
    body = ",\n".join(f"  {row}" for row in rows)
    text = (f'{{\n "schema_version": {SCHEMA_VERSION},\n "records": [\n{body}\n ]\n}}\n' if rows
            else f'{{\n "schema_version": {SCHEMA_VERSION},\n "records": []\n}}\n')
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf8")
    tmp.replace(path)


def merge_into(path: Path, new: Sequence[Record]) -> int:
    """Add records to a results file (created if missing), replacing those of the same
    identity. Returns the file's record count."""
    old = read_file(path) if path.exists() else []
    merged = {(r.kind, *r.key): r for r in old}
    merged.update(((r.kind, *r.key), r) for r in new)
    write_records(path, merged.values())
    return len(merged)


# --- training runs and timing repeats -------------------------------------------------------

def run_record(run_dir: Path, root: Path, *, experiment: Optional[str] = None,
               variant: Optional[str] = None) -> TrainRecord:
    """One training run dir (result.json, threshold.json, decoding.json, config.cfg) as a
    record. Its experiment and variant: result.json's where it names them (a different one
    given is an error), else those given (an experiment is required)."""
    result = _read(run_dir / "result.json")
    for name, given in (("experiment", experiment), ("variant", variant)):
        stored = result.get(name)
        if stored is not None and given is not None and stored != given:
            raise RecordError(f"{run_dir / 'result.json'}: {name} {stored!r}, but {given!r} was given")
    result.setdefault("experiment", experiment)
    result.setdefault("variant", variant or DEFAULT_VARIANT)
    if not result["experiment"]:
        raise RecordError(f"{run_dir / 'result.json'} names no experiment: give one")
    record: Dict[str, Any] = {"path": run_dir.relative_to(root).as_posix(), **result}
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
    if "schema_version" in record:  # result.json's layout version, not the store's
        record["result_schema_version"] = record.pop("schema_version")
    record["schema_version"], record["kind"] = SCHEMA_VERSION, "train"
    return TrainRecord.from_dict(_relativize(record))


def timing_record(path: Path, root: Path, *, experiment: str,
                  variant: str = DEFAULT_VARIANT) -> TimingRecord:
    """One timing repeat, {dataset}/{encoder}/timing/{session}/{system}-seed{N}-r{N}.json."""
    rel = path.relative_to(root)
    system, seed, repeat = path.stem.rsplit("-", 2)
    data = _read(path)
    return TimingRecord.from_dict(_relativize({
        "experiment": data.pop("experiment", experiment), "variant": data.pop("variant", variant),
        "path": rel.as_posix(), "dataset": rel.parts[0], "encoder": rel.parts[1], "system": system,
        "session": rel.parts[3], "seed": int(seed[4:]), "repeat": int(repeat[1:]), **data,
        "schema_version": SCHEMA_VERSION, "kind": "timing",
    }))


def find_runs(folder: Path) -> Tuple[List[Path], List[Tuple[Path, Path]]]:
    """Run dirs (holding result.json) in or below a folder, and timing repeats with the
    folder their path is relative to (the one above {dataset}/{encoder}/timing/)."""
    if (folder / "result.json").exists():
        return [folder], []
    runs = sorted(p.parent for p in folder.rglob("result.json"))
    # A dataset's or an encoder's folder, or a timing folder itself, finds its repeats too.
    timings = [(p, p.parents[4]) for p in sorted(folder.resolve().rglob("*.json"))
               if len(p.parts) > 5 and p.parents[1].name == "timing"]
    return runs, timings


def _run_root(run_dir: Path) -> Path:
    """The folder a single run dir's path is kept relative to: the runs dir above
    {dataset}/{encoder}/{system}/seed{N}, else its parent."""
    if run_dir.name.startswith("seed") and len(run_dir.resolve().parts) > 4:
        return run_dir.parents[3]
    return run_dir.parent


def _stored_elsewhere(store: Path, results_file: Path, records: Sequence[Record]) -> None:
    """A RecordError when a record's identity is already in another file of the store (the
    page would refuse to load both)."""
    keys = {(r.kind, *r.key) for r in records}
    for path in sorted(store.rglob("*.json")):
        if path.resolve() == results_file.resolve():
            continue
        clash = [(r.kind, *r.key) for r in read_file(path) if (r.kind, *r.key) in keys]
        if clash:
            raise RecordError(f"{len(clash)} record(s) collected, e.g. {clash[0]}, are already in {path}: "
                              f"collect them into that file (--into), or move it")


def run_variants(run_dirs: Sequence[Path]) -> List[str]:
    """The variants that the training runs in or below `run_dirs` name in their result.json
    (the baseline for a run that names none), each once, in order of first appearance."""
    found: Dict[str, None] = {}
    for folder in run_dirs:
        for d in find_runs(folder)[0]:
            found[_read(d / "result.json").get("variant") or DEFAULT_VARIANT] = None
    return list(found)


def collect_runs(run_dirs: Sequence[Path], results_file: Path, *, experiment: Optional[str] = None,
                 variant: Optional[str] = None, store: Optional[Path] = None) -> Tuple[int, int, int]:
    """Fold training runs and timing repeats in or below `run_dirs` into `results_file`.
    `experiment` and `variant` name runs whose result.json does not (runs of the first
    runner); a run that names its own keeps them, and must agree with those given. A run
    dir's path is kept relative to its runs dir ({dataset}/{encoder}/{system}/seed{N}), or
    else to the folder given.
    With `store` (a results folder) holding `results_file`, a record whose identity another
    file of it holds is a RecordError before anything is written. Returns (runs, timing repeats) collected and the
    file's record count."""
    runs: List[Record] = []
    timings: List[Record] = []
    for folder in run_dirs:
        dirs, repeats = find_runs(folder)
        runs += [run_record(d, _run_root(d) if d.name.startswith("seed") or d == folder else folder,
                            experiment=experiment, variant=variant) for d in dirs]
        if repeats and not experiment:
            raise RecordError(f"{folder}: timing repeats need an experiment")
        timings += [timing_record(p, r, experiment=experiment or "", variant=variant or DEFAULT_VARIANT)
                    for p, r in repeats]
    if not runs and not timings:
        raise RecordError(f"no result.json or timing repeat in {', '.join(map(str, run_dirs))}")
    if store is not None and store.exists() and results_file.resolve().is_relative_to(store.resolve()):
        _stored_elsewhere(store, results_file, runs + timings)
    return len(runs), len(timings), merge_into(results_file, runs + timings)


# --- head cost (python -m bench time head-cost) and head parts (`python -m bench time parts`) ---------

def head_cost_record(path: Path, label: str, role: Role, session: Optional[str] = None) -> HeadCostRecord:
    """One `time head-cost` output (--output JSON) as a compact record, listings dropped."""
    out = _read(path)
    code = dict(out.get("code", {}))
    if code.get("package_path"):
        code["package_path"] = _package_path(code["package_path"])
    session = session or path.resolve().parent.name
    return HeadCostRecord.from_dict({
        "source": f"{session}/{path.name}", "session": session, "label": label, "role": role.value,
        "data": _data_path(str(out.get("data", "?"))), "lang": out.get("lang"),
        "encoder": out.get("encoder"), "threads": out.get("threads"), "code": code,
        "overrides": out.get("overrides", {}), "figures": out["figures"],
        "schema_version": SCHEMA_VERSION, "kind": "head_cost"})


def collect_head_cost(files: Sequence[Path], label: str, role: Role, into: Path,
                      session: Optional[str] = None) -> int:
    """Add `time head-cost` outputs to a results file (created if missing); a record of the same
    source (session and file name) is replaced. Returns the file's record count."""
    return merge_into(into, [head_cost_record(p, label, role, session) for p in files])


def model_identity(model: str) -> Dict[str, Any]:
    """dataset, encoder, system and seed from a run's model path
    (.../{dataset}/{encoder}/{system}/seed{N}/model-best)."""
    parts = PurePosixPath(model).parts
    i = next((i for i, p in enumerate(parts) if p.startswith("seed") and p[4:].isdigit()), None)
    if i is None or i < 3:
        raise RecordError(f"model path {model!r} is not .../DATASET/ENCODER/SYSTEM/seedN/...")
    return {"dataset": parts[i - 3], "encoder": parts[i - 2], "system": parts[i - 1], "seed": int(parts[i][4:])}


def head_parts_record(data: Dict[str, Any], *, experiment: str, run: int = 0) -> HeadPartsRecord:
    """One `time parts` output (a dict) as a record of the model it timed."""
    model = relative_path(data["model"]) if str(data["model"]).startswith("/") else data["model"]
    return HeadPartsRecord.from_dict({
        **model_identity(model), "experiment": experiment, "run": run,
        **{k: v for k, v in data.items() if k != "model"}, "model": model,
        "data": _data_path(str(data.get("data", "?"))),
        "schema_version": SCHEMA_VERSION, "kind": "head_parts"})


def collect_head_parts(files: Sequence[Path], into: Path, *, experiment: str, run: int = 0) -> int:
    """Add `time parts` outputs (one JSON object, or a list of them, a file) to a results
    file; `run` tells repeated measurements of one model apart. Returns the record count."""
    records = []
    for path in files:
        data = _read(path)
        for item in data if isinstance(data, list) else [data]:
            records.append(head_parts_record(item, experiment=experiment, run=run))
    return merge_into(into, records)
