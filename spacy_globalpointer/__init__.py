"""GlobalPointer named-entity recognition (nested and flat) as a spaCy v3 component."""

from .model import build_global_pointer
from .pipeline import GlobalPointer, gp_score, make_global_pointer, make_gp_scorer

__version__ = "0.1.0"

__all__ = [
    "GlobalPointer",
    "build_global_pointer",
    "gp_score",
    "make_global_pointer",
    "make_gp_scorer",
    "__version__",
]
