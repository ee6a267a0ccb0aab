"""Build the spacy-globalpointer wheel into the packaged pipeline's dist folder.

A pipeline made by `spacy package` requires spacy-globalpointer, which is not on any
package index. With both wheels side by side, `pip install DIST/*.whl` installs the
pipeline on a machine that has neither the repository nor an index holding
spacy-globalpointer (spaCy, torch and the rest come from PyPI as usual).

The wheel is built from an sdist of the repository (`python -m build`), so leftovers of
earlier builds in the repository cannot end up in it. The script fails if the wheel does
not satisfy the version range the pipeline's wheels require."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import List

import typer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from typing_extensions import Annotated

NAME = "spacy-globalpointer"
WHEEL_PREFIX = "spacy_globalpointer-"


def wheel_requirements(wheel: Path) -> List[Requirement]:
    """The Requires-Dist entries of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(name).decode("utf8"))
    return [Requirement(r) for r in meta.get_all("Requires-Dist") or []]


def build_wheel(repo_dir: Path, dist: Path) -> Path:
    """Build the spacy-globalpointer wheel from repo_dir into dist (replacing older ones)."""
    if not (repo_dir / "setup.cfg").is_file() or not (repo_dir / "spacy_globalpointer").is_dir():
        raise SystemExit(f"{repo_dir} is not a spacy-globalpointer checkout (set --vars.repo_dir)")
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "build", "--outdir", tmp, str(repo_dir)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
        (built,) = Path(tmp).glob("*.whl")
        for old in dist.glob(f"{WHEEL_PREFIX}*.whl"):
            old.unlink()
        return Path(shutil.copy(built, dist / built.name))


def main(
    repo_dir: Annotated[Path, typer.Argument(help="spacy-globalpointer source (repository root)")],
    dist: Annotated[Path, typer.Argument(help="The packaged pipeline's dist folder")],
) -> None:
    wheel = build_wheel(repo_dir, dist)
    version = Version(wheel.name[len(WHEEL_PREFIX):].split("-")[0])
    for pipeline in sorted(dist.glob("*.whl")):
        for req in wheel_requirements(pipeline):
            if canonicalize_name(req.name) == NAME and version not in req.specifier:
                raise SystemExit(
                    f"{pipeline.name} requires {req}, but {repo_dir} builds {NAME} {version}"
                )
    print(f"Built {dist / wheel.name}")
    print("Install the pipeline with it (torch first, to pick its build):")
    print(f"  pip install {dist}/*.whl")


if __name__ == "__main__":
    typer.run(main)
