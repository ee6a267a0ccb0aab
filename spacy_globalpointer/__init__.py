"""GlobalPointer named-entity recognition (nested and flat) as a spaCy v3 component."""

from .about import __version__
from .architectures import (
    build_global_pointer,
    build_global_pointer_v2,
    build_global_pointer_v3,
    build_global_pointer_v4,
)
from .augment import create_whitespace_augmenter
from .pipeline import GlobalPointer, make_global_pointer
from .scorer import gp_score, make_gp_scorer
from .tokenizer import create_language_tokenizer

__all__ = [
    "GlobalPointer",
    "build_global_pointer",
    "build_global_pointer_v2",
    "build_global_pointer_v3",
    "build_global_pointer_v4",
    "create_language_tokenizer",
    "create_whitespace_augmenter",
    "gp_score",
    "make_global_pointer",
    "make_gp_scorer",
    "__version__",
]
