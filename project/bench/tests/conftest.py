"""The bench is a package of project/ (as `python -m bench` from project/ imports it): put project/
first on sys.path so that `bench` and `scripts` resolve to this checkout."""

import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))
