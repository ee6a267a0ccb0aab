"""The package version, recorded in every saved component's cfg (serialize.py)."""

__version__ = "0.2.0"
