"""One annotation run: a JSON lines or Parquet file in, one out, plus an error file.

Outputs are written to temporary files next to them and renamed into place only when the
run has finished, so an output file is always a complete one; an existing output is only
replaced with ``overwrite``. Mistakes in the options and paths are reported before the
model is loaded and before anything is opened for writing.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .arrow import require_pyarrow
from .core import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHARS, Record, check_positive, surrogate_at
from .engines import Engine, LocalEngine, RayEngine, RayOptions
from .io import (
    Bad,
    Good,
    Row,
    Writer,
    check_paths,
    error_line,
    file_format,
    fsync,
    read_rows,
    temp_path,
)


@dataclass(frozen=True)
class AnnotateOptions:
    """How to read, annotate and write; checked when made.

    ``id_field=None`` numbers the rows from 1; ``spans_key=None`` reads the key the
    pipeline's span component writes; ``chunk_size`` is the number of valid rows held in
    memory at a time (default: the engine's); ``threads`` sets torch's thread count for a
    local run; ``ray`` runs on a Ray cluster instead.
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
    progress: bool = True

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
    writing anything. ``errors_path`` defaults to ``OUTPUT.errors.jsonl``. The output and
    the errors file appear only when the run has finished; if it fails or is interrupted,
    neither is created or changed.
    """
    options = options or AnnotateOptions()
    input_path, output_path = Path(input_path), Path(output_path)
    in_fmt = file_format(input_path)
    out_fmt = file_format(output_path)
    errors_path = Path(errors_path) if errors_path else Path(str(output_path) + ".errors.jsonl")
    check_paths(input_path, output_path, errors_path, overwrite=options.overwrite)
    if "parquet" in (in_fmt, out_fmt):
        require_pyarrow()

    # Through a symlink, the file it points to is replaced and the link kept.
    targets = [output_path.resolve(), errors_path.resolve()]
    with make_engine(model, options) as engine:
        chunk_size = options.chunk_size or engine.default_chunk_size
        # Whole nlp.pipe batches per chunk: see chunks().
        chunk_size = -(-chunk_size // options.batch_size) * options.batch_size
        rows = read_rows(input_path, options.text_field, options.id_field, options.max_chars)
        temps = [temp_path(t) for t in targets]
        writer: Optional[Writer] = None
        err_file: Any = None
        bar = progress_bar(options.progress)
        try:
            writer = Writer(temps[0], out_fmt, id_is_line=options.id_field is None)
            err_file = temps[1].open("x", encoding="utf-8")
            start = time.perf_counter()
            counts = _annotate_rows(engine, chunks(rows, chunk_size), writer, err_file, bar)
            writer.close()
            err_file.close()
            for temp in temps:
                fsync(temp)
            # The output last: once it exists, the errors file next to it is complete too.
            os.replace(temps[1], targets[1])
            os.replace(temps[0], targets[0])
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
            raise
        finally:
            bar.close()
    elapsed = time.perf_counter() - start
    counts["seconds"] = round(elapsed, 3)
    counts["texts_per_second"] = round(counts["read"] / elapsed, 1) if elapsed else 0.0
    return counts


def _annotate_rows(
    engine: Engine,
    row_chunks: Iterator[Tuple[List[Good], List[Bad]]],
    writer: Writer,
    err_file: Any,
    bar: Any,
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
        bar.update(len(good) + len(bad))
    return counts


def chunks(
    rows: Iterator[Row], size: int, max_bad: int = 10_000
) -> Iterator[Tuple[List[Good], List[Bad]]]:
    """Chunks of exactly ``size`` good rows (the last may be short), with the bad rows
    read along the way. Counting good rows only keeps the nlp.pipe batches the same
    whatever the engine; a long run of bad rows is flushed on its own."""
    good: List[Good] = []
    bad: List[Bad] = []
    for g, b in rows:
        if g is not None:
            good.append(g)
        else:
            bad.append(b)  # type: ignore[arg-type]
        if len(good) >= size or (not good and len(bad) >= max_bad):
            yield good, bad
            good, bad = [], []
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
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with spaCy, but be safe
        return _NoBar()
    return tqdm(unit=" texts", file=sys.stderr, mininterval=1.0)
