"""The package's metadata agrees with itself: one Python version contract."""

import configparser
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11
    tomllib = None

import pytest

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
