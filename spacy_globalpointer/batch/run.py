"""One annotation run: a JSON lines or Parquet file in, one out, plus an errors file.

Outputs are written to temporary files next to them and moved into place only when the
run has finished, so an output file is always a complete one; an existing output is only
replaced with ``overwrite``, and without it a file that appears at the output's path
while the run is writing (another run's) is never replaced. The errors file is written
only when some rows could not be annotated. Mistakes in the options and paths (an
unwritable folder, a Parquet input without the text column, Ray not installed) are
reported before the model is loaded.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .arrow import require_pyarrow
from .core import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHARS, AnnotateError, check_positive
from .engines import Engine, LocalEngine, RayEngine, RayOptions
from .outputs import Writer, fsync, open_temp, place
from .paths import check_paths
from .progress import NoBar, ProgressBar, progress_bar
from .readers import ReadPosition, check_columns, file_format, read_rows
from .rows import annotate_rows, chunks


@dataclass(frozen=True)
class AnnotateOptions:
    """How to read, annotate and write; checked when made.

    ``id_field=None`` numbers the rows from 1; ``spans_key=None`` reads the key the
    pipeline's span component writes; ``chunk_size`` is the number of valid rows held in
    memory at a time (default: the engine's); ``threads`` sets torch's thread count for a
    local run; ``ray`` runs on a Ray cluster instead. ``progress=None`` shows a progress
    bar only when stderr is a terminal.
    """

    text_field: str = "text"
    id_field: Optional[str] = None
    spans_key: Optional[str] = None
    batch_size: int = DEFAULT_BATCH_SIZE
    max_chars: Optional[int] = DEFAULT_MAX_CHARS
    chunk_size: Optional[int] = None
    threads: Optional[int] = None
    ray: Optional[RayOptions] = None
    overwrite: bool = False
    progress: Optional[bool] = None

    def __post_init__(self) -> None:
        # The same limits as the CLI's argument types, for callers from Python.
        check_positive("batch_size", self.batch_size)
        for name in ("max_chars", "chunk_size", "threads"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))


def make_engine(model: str, options: AnnotateOptions) -> Engine:
    if options.ray is not None:
        return RayEngine(
            model, options.ray, spans_key=options.spans_key, batch_size=options.batch_size
        )
    return LocalEngine(
        model,
        spans_key=options.spans_key,
        batch_size=options.batch_size,
        threads=options.threads,
    )


def _require(require: Callable[[], Any]) -> None:
    # An optional dependency that is missing is a mistake in the run's set-up: one line.
    try:
        require()
    except ImportError as err:
        raise AnnotateError(str(err)) from None


def annotate_file(
    model: str,
    input_path: Path,
    output_path: Path,
    options: Optional[AnnotateOptions] = None,
    *,
    errors_path: Optional[Path] = None,
) -> Dict[str, Any]:
    """Annotate a file; return the summary counts (also used by the tests).

    Raises :class:`~spacy_globalpointer.batch.core.AnnotateError` (a ``ValueError``;
    :class:`~spacy_globalpointer.batch.paths.InputNotFoundError` is also a
    ``FileNotFoundError``) for a mistake in the arguments, before loading the model or
    writing anything. ``errors_path`` defaults to ``OUTPUT.errors.jsonl``; it is written
    only when there are errors (with ``overwrite``, an old one is removed when there are
    none, since it described another run). The output and the errors file appear only when
    the run has finished; if it fails or is interrupted, neither is created or changed.
    Without ``overwrite``, an output or errors file that appeared while the run was
    writing is kept and the run fails with
    :class:`~spacy_globalpointer.batch.outputs.TargetAppearedError`.
    """
    options = options or AnnotateOptions()
    input_path, output_path = Path(input_path), Path(output_path)
    in_fmt = file_format(input_path)
    out_fmt = file_format(output_path)
    errors_path = Path(errors_path) if errors_path else Path(str(output_path) + ".errors.jsonl")
    check_paths(input_path, output_path, errors_path, overwrite=options.overwrite)
    if "parquet" in (in_fmt, out_fmt):
        _require(require_pyarrow)
    if options.ray is not None:
        from .ray import require_ray

        _require(require_ray)
    check_columns(input_path, options.text_field, options.id_field)

    # Through a symlink, the file it points to is replaced and the link kept.
    out_target, err_target = output_path.resolve(), errors_path.resolve()
    writer: Optional[Writer] = None
    err_file: Any = None
    temps: List[Path] = []
    placed: List[Path] = []
    bar: ProgressBar = NoBar()
    try:
        # The temporary files are made first: a folder that cannot be written fails now,
        # not after the model has loaded.
        out_temp, out_file = open_temp(
            out_target, name="output", shown=output_path, binary=out_fmt == "parquet"
        )
        temps.append(out_temp)
        writer = Writer(out_temp, out_fmt, id_is_line=options.id_field is None, file=out_file)
        err_temp, err_file = open_temp(err_target, name="errors file", shown=errors_path)
        temps.append(err_temp)
        with make_engine(model, options) as engine:
            chunk_size = options.chunk_size or engine.default_chunk_size
            # Whole nlp.pipe batches per chunk: see chunks().
            chunk_size = -(-chunk_size // options.batch_size) * options.batch_size
            position = ReadPosition()
            rows = read_rows(
                input_path, options.text_field, options.id_field, options.max_chars, position
            )
            bar = progress_bar(options.progress, input_path, in_fmt)
            start = time.perf_counter()
            counts = annotate_rows(
                engine, chunks(rows, chunk_size), writer, err_file, bar, position
            )
        writer.close()
        err_file.close()
        fsync(out_temp)
        if counts["errors"]:
            fsync(err_temp)
            # Before the output: once the output exists, its errors file is complete too.
            place(
                err_temp,
                err_target,
                overwrite=options.overwrite,
                name="errors file",
                shown=errors_path,
            )
            if not options.overwrite:
                placed.append(err_target)
        else:
            err_temp.unlink()
        place(out_temp, out_target, overwrite=options.overwrite, name="output", shown=output_path)
        if not counts["errors"] and options.overwrite and os.path.lexists(errors_path):
            # An old errors file beside the new output would describe another run.
            errors_path.unlink()
    except BaseException:
        # Failure or interrupt (Ctrl-C, SIGTERM): no partial file may look like a result.
        if writer is not None:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        if err_file is not None:
            err_file.close()
        for temp in temps:
            temp.unlink(missing_ok=True)
        for target in placed:  # this run's errors file, whose output could not be placed
            target.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    counts["seconds"] = round(elapsed, 3)
    counts["texts_per_second"] = round(counts["read"] / elapsed, 1) if elapsed else 0.0
    counts["errors_path"] = str(errors_path) if counts["errors"] else None
    return counts
