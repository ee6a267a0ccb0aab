"""The package's metadata agrees with itself: one Python version contract."""

import configparser
import importlib
import re
import sys
from pathlib import Path

import pytest
from spacy.util import registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11
    tomllib = None


REPO = Path(__file__).resolve().parent.parent


def test_python_requires_matches_the_version_lint_targets():
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    required = re.fullmatch(r">=\s*3\.(\d+)", setup["options"]["python_requires"].strip())
    assert required, setup["options"]["python_requires"]
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["target-version"]
    assert target == f"py3{required.group(1)}"


REGISTERED = {
    "spacy_factories": {"global_pointer"},
    "spacy_architectures": {
        "spacy-globalpointer.GlobalPointer.v1",
        "spacy-globalpointer.GlobalPointer.v2",
        "spacy-globalpointer.GlobalPointer.v3",
        "spacy-globalpointer.GlobalPointer.v4",
    },
    "spacy_scorers": {"spacy-globalpointer.spans_scorer.v1"},
    "spacy_augmenters": {"spacy-globalpointer.whitespace_augmenter.v1"},
    "spacy_tokenizers": {"spacy-globalpointer.language_tokenizer.v1"},
}


def test_setup_cfg_entry_points_are_the_registered_names():
    """setup.cfg names exactly the registered functions, checked without installing it."""
    import configparser
    from pathlib import Path

    import spacy_globalpointer  # noqa: F401  (registers the factory; this test may run alone)

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[1] / "setup.cfg")
    found = {}
    for group, lines in setup["options.entry_points"].items():
        for line in filter(None, (line.strip() for line in lines.splitlines())):
            name, target = (part.strip() for part in line.split("="))
            module, function = target.split(":")
            found.setdefault(group, set()).add(name)
            registered = getattr(registry, group[len("spacy_") :]).get(name)
            assert getattr(importlib.import_module(module), function) is registered, line
    assert found == REGISTERED


def test_every_entry_point_is_the_registered_function():
    """The installed entry points (setup.cfg) name exactly the registered functions, so a
    typo or a missing entry point fails here rather than in a user's spacy train. It reads the
    installed metadata: after a change to setup.cfg it passes once the package is installed
    again (pip install -e .)."""
    from importlib.metadata import distribution

    entry_points = [ep for ep in distribution("spacy-globalpointer").entry_points if ep.group.startswith("spacy_")]
    found = {}
    for ep in entry_points:
        found.setdefault(ep.group, set()).add(ep.name)
        registered = getattr(registry, ep.group[len("spacy_") :]).get(ep.name)
        assert ep.load() is registered, ep
    assert found == REGISTERED


def test_the_version_is_kept_once_in_about_py():
    """setup.cfg reads the version from about.py (the one the saved cfg records), and the
    project's package command declares the wheel under it."""
    import subprocess

    from spacy_globalpointer.about import __version__

    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: spacy_globalpointer.about.__version__"
    # As setuptools resolves it when building (its own process: setuptools' distutils shim
    # cannot be imported after another distutils in this one).
    resolved = subprocess.run(
        [sys.executable, "-c", "from setuptools.config.setupcfg import read_configuration; "
         "print(read_configuration('setup.cfg')['metadata']['version'])"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()
    assert resolved == __version__
    declared = re.findall(r"spacy_globalpointer-([0-9][^-]*)-py3", (REPO / "project" / "project.yml").read_text())
    assert declared == [__version__]
