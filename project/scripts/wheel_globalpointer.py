"""Build the spacy-globalpointer wheel beside the packaged pipeline's wheel.

A pipeline made by `spacy package` requires spacy-globalpointer, which is not on any
package index. With both wheels side by side, `pip install PIPELINE.whl GP.whl` installs
the pipeline on a machine that has neither the repository nor an index holding
spacy-globalpointer (spaCy, torch and the rest come from PyPI as usual).

`spacy package` names its folder after the pipeline's language, name and version
(`packages/zh_NAME-VERSION/dist`); the language is read from the trained pipeline
(meta.json, else config.cfg), as spaCy does, so a Chinese or German pipeline needs no
`--vars.lang`.

The wheel is built from an sdist of the repository (`python -m build`), so leftovers of
earlier builds in the repository cannot end up in it. The script fails if the wheel does
not satisfy the version range the pipeline's wheels require."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import List, Optional, Tuple

import srsly
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


def pipeline_dist(
    model: Path, packages: Path, name: Optional[str] = None, version: Optional[str] = None
) -> Tuple[str, Path, Path]:
    """The pipeline's language, and the dist folder and wheel that `spacy package MODEL PACKAGES --name NAME --version
    VERSION --build wheel` writes: spaCy names them after the pipeline's meta (language,
    name, version), the last two overridden by the options."""
    meta_path = model / "meta.json"
    meta = srsly.read_json(meta_path) if meta_path.is_file() else {}
    lang = meta.get("lang")
    if not lang:
        config_path = model / "config.cfg"
        if not config_path.is_file():
            raise SystemExit(f"{model} is not a saved pipeline (no meta.json or config.cfg)")
        from spacy.util import load_config

        lang = load_config(config_path)["nlp"]["lang"]
    name = name or meta.get("name") or "pipeline"
    version = version or meta.get("version") or "0.0.0"
    # spaCy's rules (spacy/cli/package.py): the language prefixes the name unless it is
    # already there, and the wheel's file name squashes repeated underscores.
    full = name if name.startswith(f"{lang}_") else f"{lang}_{name}"
    dist = packages / f"{full}-{version}" / "dist"
    wheel = dist / f"{re.sub('_+', '_', f'{full}-{version}')}-py3-none-any.whl"
    return lang, dist, wheel


def main(
    repo_dir: Annotated[Path, typer.Argument(help="spacy-globalpointer source (repository root)")],
    model: Annotated[Path, typer.Argument(help="The pipeline `spacy package` packaged")],
    packages: Annotated[Path, typer.Argument(help="The output folder given to `spacy package`")],
    name: Annotated[Optional[str], typer.Option(help="--name given to `spacy package`")] = None,
    version: Annotated[Optional[str], typer.Option(help="--version given to `spacy package`")] = None,
    expect_lang: Annotated[
        Optional[str], typer.Option(help="The project's lang var: warn if the pipeline's differs")
    ] = None,
) -> None:
    lang, dist, pipeline_wheel = pipeline_dist(model, packages, name, version)
    if not pipeline_wheel.is_file():
        raise SystemExit(
            f"{pipeline_wheel} not found: run `spacy package {model} {packages} --build wheel` first"
        )
    wheel = build_wheel(repo_dir, dist)
    gp_version = Version(wheel.name[len(WHEEL_PREFIX):].split("-")[0])
    for req in wheel_requirements(pipeline_wheel):
        if canonicalize_name(req.name) == NAME and gp_version not in req.specifier:
            raise SystemExit(
                f"{pipeline_wheel.name} requires {req}, but {repo_dir} builds {NAME} {gp_version}"
            )
    print(f"Built {wheel} beside {pipeline_wheel.name}")
    if expect_lang is not None and expect_lang != lang:
        print(
            f"Note: the pipeline's language is {lang!r}, the project's lang var {expect_lang!r}: "
            f"the wheels are in {dist}; pass --vars.lang {lang} so that the project's declared "
            "outputs name them"
        )
    print("Install the pipeline with it (torch first, to pick its build):")
    print(f"  pip install {pipeline_wheel} {wheel}")


if __name__ == "__main__":
    typer.run(main)
