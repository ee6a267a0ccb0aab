"""The checks on a batch run's paths, made before the model is loaded or anything is
opened for writing."""

from __future__ import annotations

import os
from pathlib import Path

from .core import AnnotateError


class InputNotFoundError(AnnotateError, FileNotFoundError):
    """The input file does not exist."""


def same_file(a: Path, b: Path) -> bool:
    # resolve() sees through relative paths, "..", and symlinks; samefile also through
    # hard links (only possible when both exist).
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_paths(
    input_path: Path, output_path: Path, errors_path: Path, *, overwrite: bool = False
) -> None:
    """Refuse, before anything is loaded or opened for writing, a run that would destroy
    data or fail late: a missing input, an output that is the input (or the other output),
    a missing output folder, or an existing output without ``overwrite``."""
    if not input_path.exists():
        raise InputNotFoundError(f"input file not found: {input_path}")
    if input_path.is_dir():
        raise AnnotateError(f"input is a folder, not a file: {input_path}")
    for name, path in (("output", output_path), ("errors file", errors_path)):
        if same_file(path, input_path):
            raise AnnotateError(
                f"the {name} {path} is the input file {input_path}: writing it would destroy "
                "the input; choose another path"
            )
    if same_file(output_path, errors_path):
        raise AnnotateError(
            f"the errors file {errors_path} is the output {output_path}: choose another path"
        )
    for name, path in (("output", output_path), ("errors file", errors_path)):
        folder = path.resolve().parent
        if not folder.is_dir():
            raise AnnotateError(f"the folder of the {name} {path} does not exist: {folder}")
        if path.is_dir():
            raise AnnotateError(f"the {name} {path} is a folder")
        if path.exists() and not overwrite:
            raise AnnotateError(f"the {name} {path} exists; pass --overwrite to replace it")
