"""`python -m bench ...` from project/: the benchmark's one entry point (bench/cli.py)."""

from bench.cli import app

app(prog_name="python -m bench")
