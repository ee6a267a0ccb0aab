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
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .arrow import require_pyarrow
from .core import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CHARS,
    AnnotateError,
    Record,
    check_positive,
    surrogate_at,
)
from .engines import Engine, LocalEngine, RayEngine, RayOptions
from .io import (
    Bad,
    Good,
    ReadPosition,
    Row,
    Writer,
    check_columns,
    check_paths,
    error_line,
    file_format,
    fsync,
    open_temp,
    parquet_rows,
    place,
    read_rows,
)


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
    :class:`~spacy_globalpointer.batch.io.InputNotFoundError` is also a
    ``FileNotFoundError``) for a mistake in the arguments, before loading the model or
    writing anything. ``errors_path`` defaults to ``OUTPUT.errors.jsonl``; it is written
    only when there are errors (with ``overwrite``, an old one is removed when there are
    none, since it described another run). The output and the errors file appear only when
    the run has finished; if it fails or is interrupted, neither is created or changed.
    Without ``overwrite``, an output or errors file that appeared while the run was
    writing is kept and the run fails with
    :class:`~spacy_globalpointer.batch.io.TargetAppearedError`.
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
    bar: Any = _NoBar()
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
            counts = _annotate_rows(
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


def _annotate_rows(
    engine: Engine,
    row_chunks: Iterator[Tuple[List[Good], List[Bad]]],
    writer: Writer,
    err_file: Any,
    bar: Any,
    position: Optional[ReadPosition] = None,
) -> Dict[str, Any]:
    """Annotate and write chunk by chunk; return the counts."""
    counts = {"read": 0, "annotated": 0, "errors": 0, "spans": 0}
    for good, bad in row_chunks:
        counts["read"] += len(good) + len(bad)
        records = engine.annotate([text for _, _, text in good]) if good else []
        out: List[Record] = []
        if len(records) != len(good):  # never expected; refuse to lose rows quietly
            raise RuntimeError(f"{len(records)} results for {len(good)} texts")
        for (line, row_id, _), rec in zip(good, records):  # noqa: B905 - checked above
            problem = rec.get("error") or record_problem(rec)
            if problem is not None:  # the pipeline failed, or wrote what UTF-8 cannot
                bad.append((line, row_id, problem))
            else:
                out.append({"id": row_id, "spans": rec["spans"]})
                counts["spans"] += len(rec["spans"])
        writer.write(out)
        for line, row_id, reason in sorted(bad, key=lambda b: b[0]):
            err_file.write(error_line(line, row_id, reason))
        counts["annotated"] += len(out)
        counts["errors"] += len(bad)
        bar.advance(counts["read"], position)
    return counts


def chunks(
    rows: Iterator[Row], size: int, max_bad: int = 10_000
) -> Iterator[Tuple[List[Good], List[Bad]]]:
    """Chunks of exactly ``size`` good rows (the last may be short), with the bad rows
    read along the way. Counting good rows only keeps the nlp.pipe batches the same
    whatever the engine. Bad rows are let out ``max_bad`` at a time (with no good rows)
    even while a chunk is filling, so that memory stays flat however many there are; the
    errors file is then in input order except that a row the pipeline fails on can come
    after those later bad rows."""
    good: List[Good] = []
    bad: List[Bad] = []
    for g, b in rows:
        if g is not None:
            good.append(g)
        else:
            bad.append(b)  # type: ignore[arg-type]
        if len(good) >= size:
            yield good, bad
            good, bad = [], []
        elif len(bad) >= max_bad:
            yield [], bad
            bad = []
    if good or bad:
        yield good, bad


def record_problem(record: Record) -> Optional[str]:
    """Why a result record cannot be written as UTF-8 (a label with a lone surrogate)."""
    for span in record["spans"]:
        for value in span:
            if isinstance(value, str) and surrogate_at(value) is not None:
                return f"bad encoding: unpaired surrogate in span label {value!r}"
    return None


class _NoBar:
    def advance(self, texts: int, position: Optional[ReadPosition]) -> None:
        pass

    def close(self) -> None:
        pass


class _Bar:
    """tqdm against the input's size: bytes of a JSON lines file (counting its lines would
    mean reading it twice), rows of a Parquet file (in its footer); so it shows the total
    and the time left."""

    def __init__(self, input_path: Path, fmt: str) -> None:
        from tqdm import tqdm

        self.by_bytes = fmt == "jsonl"
        if self.by_bytes:
            total = input_path.stat().st_size
            self.bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                mininterval=1.0,
            )
        else:
            total = parquet_rows(input_path)
            self.bar = tqdm(total=total, unit=" texts", file=sys.stderr, mininterval=1.0)

    def advance(self, texts: int, position: Optional[ReadPosition]) -> None:
        if position is None:
            return
        done = position.bytes if self.by_bytes else position.rows
        if self.by_bytes:
            self.bar.set_postfix(texts=texts, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def progress_bar(enabled: Optional[bool], input_path: Path, fmt: str) -> Any:
    """A progress bar on stderr; ``enabled=None``: only if stderr is a terminal (a log
    file would fill with bar redraws)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return _Bar(input_path, fmt) if enabled else _NoBar()
