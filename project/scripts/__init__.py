"""The project's scripts, run as `python scripts/NAME.py` from project/. As a package, so
that the benchmark (project/bench) imports the helpers without sibling imports
(span_metrics, span_utils) as `scripts.*`."""
