"""Command line: ``python -m spacy_globalpointer annotate MODEL INPUT OUTPUT``.

Reads JSON lines (``.jsonl``/``.json``/``.ndjson``) or Parquet (``.parquet``), annotates
locally with ``nlp.pipe`` or on a Ray cluster (``--ray-address``), and writes JSON lines or
Parquet in input order. Input that cannot be annotated goes to the error file (JSON
lines: line number, id, reason); the run carries on and the summary counts everything.

Outputs are written to temporary files next to them and renamed into place only when the
run has finished, so an output file is always a complete one; an existing output is only
replaced with ``--overwrite``. Mistakes in the arguments are reported before the model is
loaded and before anything is opened for writing.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .batch.arrow import require_pyarrow, row_to_record, span_arrow_type
from .batch.core import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CHARS,
    AnnotateError,
    Record,
    annotate_batch,
    check_positive,
    check_text,
    load_pipeline,
    resolve_spans_key,
    surrogate_at,
)

JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


# An input row after parsing: (line number, id, text) for a good row, and
# (line number, id or None, reason) for one that goes straight to the error output.
Good = Tuple[int, Any, str]
Bad = Tuple[int, Any, str]


class InputNotFoundError(AnnotateError, FileNotFoundError):
    """The input file does not exist."""


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise AnnotateError(f"cannot tell the format of {path} (use .jsonl or .parquet)")


def _check_row(
    line: int, row: Any, text_field: str, id_field: Optional[str], max_chars: Optional[int]
) -> Tuple[Optional[Good], Optional[Bad]]:
    if not isinstance(row, dict):
        return None, (line, None, f"not a JSON object (got {type(row).__name__})")
    row_id: Any = line
    if id_field is not None:
        if id_field not in row or row[id_field] is None:
            return None, (line, None, f"missing id field {id_field!r}")
        row_id = row[id_field]
        if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
            return None, (
                line,
                None,
                f"id is not a string or integer (got {type(row_id).__name__})",
            )
        # The id is written back: one that UTF-8 cannot encode (a lone surrogate from a
        # JSON escape) would kill the run at write time, so it is a bad row, like such a text.
        bad = surrogate_at(row_id) if isinstance(row_id, str) else None
        if bad is not None:
            return None, (
                line,
                row_id,
                f"bad encoding: unpaired surrogate in id at character {bad}",
            )
    if text_field not in row:
        return None, (line, row_id, f"missing text field {text_field!r}")
    text, reason = check_text(row[text_field], max_chars)
    if reason is not None:
        return None, (line, row_id, reason)
    return (line, row_id, text), None  # type: ignore[return-value]


def read_jsonl(
    path: Path, text_field: str, id_field: Optional[str], max_chars: Optional[int]
) -> Iterator[Tuple[Optional[Good], Optional[Bad]]]:
    # Binary mode so that one badly encoded line is reported instead of aborting the read.
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                # Editors on Windows start UTF-8 files with a byte order mark: not JSON.
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as err:
                yield None, (line_no, None, f"bad encoding: not valid UTF-8 at byte {err.start}")
                continue
            if not line.strip():
                yield None, (line_no, None, "empty line")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield None, (line_no, None, f"bad JSON: {err.msg} at column {err.colno}")
                continue
            yield _check_row(line_no, row, text_field, id_field, max_chars)


def read_parquet(
    path: Path, text_field: str, id_field: Optional[str], max_chars: Optional[int]
) -> Iterator[Tuple[Optional[Good], Optional[Bad]]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    columns = [c for c in {text_field, id_field} if c is not None and c in names]
    row_no = 0
    for batch in pf.iter_batches(batch_size=4096, columns=columns):
        for row in batch.to_pylist():
            row_no += 1  # 1-based, like JSON lines
            yield _check_row(row_no, row, text_field, id_field, max_chars)


def _chunks(
    rows: Iterator[Tuple[Optional[Good], Optional[Bad]]], size: int, max_bad: int = 10_000
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


def _fsync(path: Path) -> None:
    # Data on disk before the rename, so that a crash cannot leave a complete-looking
    # output file with missing contents.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    """Writes records as JSON lines or Parquet (id, spans) to a new file."""

    def __init__(self, path: Path, fmt: str, id_is_line: bool) -> None:
        self.path = path
        self.fmt = fmt
        self.id_is_line = id_is_line
        self._parquet: Any = None
        self._file: Any = None
        self._closed = False
        # "x": the path is a fresh temporary name; never write over someone else's file.
        if fmt == "jsonl":
            self._file = path.open("x", encoding="utf-8")
        else:
            path.open("xb").close()  # reserve the name; ParquetWriter reopens it

    def write(self, records: Sequence[Record]) -> None:
        if not records:
            return
        if self.fmt == "jsonl":
            for r in records:
                self._file.write(
                    json.dumps({"id": r["id"], "spans": r["spans"]}, ensure_ascii=False)
                )
                self._file.write("\n")
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Line numbers are integers; ids from a field may be strings or integers, so a
        # string column keeps every file's schema the same.
        id_type = pa.int64() if self.id_is_line else pa.string()
        ids = [r["id"] if self.id_is_line else str(r["id"]) for r in records]
        spans = [
            [{"start": s[0], "end": s[1], "label": s[2], "score": s[3]} for s in r["spans"]]
            for r in records
        ]
        table = pa.table(
            {"id": pa.array(ids, type=id_type), "spans": pa.array(spans, type=span_arrow_type())}
        )
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        self._parquet.write_table(table)

    def abort(self) -> None:
        """Close without finishing the file (it is about to be deleted)."""
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
        if self._parquet is not None:
            self._parquet.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
        if self.fmt == "parquet":
            if self._parquet is None:  # no records: still leave a valid, empty file
                import pyarrow as pa
                import pyarrow.parquet as pq

                id_type = pa.int64() if self.id_is_line else pa.string()
                schema = pa.schema([("id", id_type), ("spans", span_arrow_type())])
                pq.write_table(schema.empty_table(), self.path)
            else:
                self._parquet.close()


def _error_line(line: int, row_id: Any, reason: str) -> str:
    """One error record as a JSON line that UTF-8 can hold."""
    text = json.dumps({"line": line, "id": row_id, "error": reason}, ensure_ascii=False)
    if surrogate_at(text) is not None:
        # A lone surrogate (say in the id) has no UTF-8 form; JSON's \u escape keeps it
        # exact, so json.loads gives back the very id that was read.
        text = json.dumps({"line": line, "id": row_id, "error": reason}, ensure_ascii=True)
    return text + "\n"


def _record_problem(record: Record) -> Optional[str]:
    """Why a result record cannot be written as UTF-8 (a label with a lone surrogate)."""
    for span in record["spans"]:
        for value in span:
            if isinstance(value, str) and surrogate_at(value) is not None:
                return f"bad encoding: unpaired surrogate in span label {value!r}"
    return None


# An annotator takes a chunk of good rows (position in chunk used as id) and returns one
# record per row, in order.
Annotator = Callable[[List[str]], List[Record]]


def local_annotator(nlp: Any, spans_key: str, batch_size: int) -> Annotator:
    def run(texts: List[str]) -> List[Record]:
        # Texts were validated when read, so no length limit here.
        return annotate_batch(
            nlp,
            list(range(len(texts))),
            texts,
            spans_key=spans_key,
            batch_size=batch_size,
            max_chars=None,
        )

    return run


def ray_annotator(
    model: str, spans_key: str, batch_size: int, ray_batch_size: int, workers: int, cpus: float
) -> Annotator:
    from .batch.ray import GlobalPointerPredictor, require_ray

    ray = require_ray()
    import pyarrow as pa

    ctx = ray.data.DataContext.get_current()
    # The progress bar is ours; Ray's own would interleave with it.
    ctx.enable_progress_bars = False
    # Blocks of whole nlp.pipe batches, each handed over as one Ray batch: the model sees
    # the same batches as in a local run, so the scores are identical to the last bit.
    block = max(1, ray_batch_size // batch_size) * batch_size

    def run(texts: List[str]) -> List[Record]:
        table = pa.table({"id": pa.array(range(len(texts)), type=pa.int64()), "text": texts})
        blocks = [table.slice(i, block) for i in range(0, len(texts), block)]
        out = ray.data.from_arrow(blocks).map_batches(
            GlobalPointerPredictor,
            fn_constructor_kwargs={
                "model_path": model,
                "spans_key": spans_key,
                "batch_size": batch_size,
                "max_chars": None,  # checked when read
            },
            concurrency=workers,
            num_cpus=cpus,
            batch_size=None,  # one block = one batch
            batch_format="pyarrow",
        )
        # Results are put back in place by id, so Ray may finish blocks in any order.
        records: List[Optional[Record]] = [None] * len(texts)
        for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                records[row["id"]] = row_to_record(row)
        missing = sum(r is None for r in records)
        if missing:  # never expected; refuse to lose rows quietly
            raise RuntimeError(f"Ray returned no result for {missing} rows")
        return records  # type: ignore[return-value]

    return run


def _same_file(a: Path, b: Path) -> bool:
    # resolve() sees through relative paths, "..", and symlinks; samefile also through
    # hard links (only possible when both exist).
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _temp_path(target: Path) -> Path:
    # Same folder as the target, so that os.replace is an atomic rename on one file
    # system; hidden and unique, so that concurrent runs never share one.
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


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
        if _same_file(path, input_path):
            raise AnnotateError(
                f"the {name} {path} is the input file {input_path}: writing it would destroy "
                "the input; choose another path"
            )
    if _same_file(output_path, errors_path):
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


def _check_options(
    batch_size: int,
    max_chars: Optional[int],
    workers: int,
    cpus_per_worker: float,
    ray_batch_size: int,
    chunk_size: Optional[int],
    threads: Optional[int],
) -> None:
    # The same limits as the CLI's argument types, for callers from Python.
    check_positive("batch_size", batch_size)
    check_positive("workers", workers)
    check_positive("ray_batch_size", ray_batch_size)
    for name, value in (("max_chars", max_chars), ("chunk_size", chunk_size), ("threads", threads)):
        if value is not None:
            check_positive(name, value)
    if not cpus_per_worker > 0:
        raise AnnotateError(f"cpus_per_worker must be a positive number, got {cpus_per_worker!r}")


def annotate_file(
    model: str,
    input_path: Path,
    output_path: Path,
    *,
    text_field: str = "text",
    id_field: Optional[str] = None,
    spans_key: Optional[str] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_chars: Optional[int] = DEFAULT_MAX_CHARS,
    ray_address: Optional[str] = None,
    workers: int = 1,
    cpus_per_worker: float = 1,
    ray_batch_size: int = 256,
    chunk_size: Optional[int] = None,
    errors_path: Optional[Path] = None,
    progress: bool = True,
    threads: Optional[int] = None,
    overwrite: bool = False,
) -> Dict[str, Any]:
    """Annotate a file; return the summary counts (also used by the tests).

    Raises :class:`AnnotateError` (a ``ValueError``; :class:`InputNotFoundError` is also a
    ``FileNotFoundError``) for a mistake in the arguments, before loading the model or
    writing anything. ``spans_key=None`` reads the key the pipeline's span component
    writes. The output and the errors file appear only when the run has finished; if it
    fails or is interrupted, neither is created or changed.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    _check_options(
        batch_size, max_chars, workers, cpus_per_worker, ray_batch_size, chunk_size, threads
    )
    in_fmt = _format(input_path)
    out_fmt = _format(output_path)
    errors_path = Path(errors_path) if errors_path else Path(str(output_path) + ".errors.jsonl")
    if ray_address is None and workers != 1:
        raise AnnotateError("--workers needs --ray-address (locally torch uses the cores)")
    check_paths(input_path, output_path, errors_path, overwrite=overwrite)
    if in_fmt == "parquet" or out_fmt == "parquet":
        require_pyarrow()

    started_ray = False
    bar: Any = _NoBar()
    # Through a symlink, the file it points to is replaced and the link kept.
    targets = [output_path.resolve(), errors_path.resolve()]
    temps: List[Path] = []
    writer: Optional[Writer] = None
    err_file: Any = None
    try:
        if ray_address is not None:
            from .batch.ray import probe_spans_key, require_ray

            ray = require_ray()
            if not ray.is_initialized():
                if ray_address == "local":
                    ray.init(include_dashboard=False)
                else:
                    ray.init(address=ray_address)
                started_ray = True
            spans_key = probe_spans_key(model, spans_key, cpus_per_worker)
            annotate = ray_annotator(
                model, spans_key, batch_size, ray_batch_size, workers, cpus_per_worker
            )
            # Each chunk is one Ray dataset; big chunks amortise the actor start-up, and the
            # driver never holds more than one chunk of texts.
            chunk_size = chunk_size or 100_000
        else:
            if threads is not None:
                import torch

                # On a busy machine torch's one-thread-per-core default can be several
                # times slower than fewer threads (its worker threads wait on each other).
                torch.set_num_threads(threads)
            try:
                nlp = load_pipeline(model)
            except OSError as err:  # spaCy's "can't find model" (E050), a missing file
                raise AnnotateError(f"cannot load the pipeline {model!r}: {err}") from err
            spans_key = resolve_spans_key(nlp, spans_key)
            annotate = local_annotator(nlp, spans_key, batch_size)
            chunk_size = chunk_size or 1000

        # Whole nlp.pipe batches per chunk: see _chunks.
        chunk_size = -(-chunk_size // batch_size) * batch_size
        reader = read_jsonl if in_fmt == "jsonl" else read_parquet
        rows = reader(input_path, text_field, id_field, max_chars)
        temps = [_temp_path(t) for t in targets]
        writer = Writer(temps[0], out_fmt, id_is_line=id_field is None)
        err_file = temps[1].open("x", encoding="utf-8")
        counts = {"read": 0, "annotated": 0, "errors": 0, "spans": 0}
        bar = _progress(progress)
        start = time.perf_counter()
        for good, bad in _chunks(rows, chunk_size):
            counts["read"] += len(good) + len(bad)
            records = annotate([text for _, _, text in good]) if good else []
            out: List[Record] = []
            if len(records) != len(good):  # never expected; refuse to lose rows quietly
                raise RuntimeError(f"{len(records)} results for {len(good)} texts")
            for (line, row_id, _), rec in zip(good, records):  # noqa: B905 - checked above
                problem = rec.get("error") or _record_problem(rec)
                if problem is not None:  # the pipeline failed, or wrote what UTF-8 cannot
                    bad.append((line, row_id, problem))
                else:
                    out.append({"id": row_id, "spans": rec["spans"]})
                    counts["spans"] += len(rec["spans"])
            writer.write(out)
            for line, row_id, reason in sorted(bad, key=lambda b: b[0]):
                err_file.write(_error_line(line, row_id, reason))
            counts["annotated"] += len(out)
            counts["errors"] += len(bad)
            bar.update(len(good) + len(bad))
        writer.close()
        err_file.close()
        for temp in temps:
            _fsync(temp)
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
        if started_ray:
            import ray

            ray.shutdown()
    elapsed = time.perf_counter() - start
    counts["seconds"] = round(elapsed, 3)
    counts["texts_per_second"] = round(counts["read"] / elapsed, 1) if elapsed else 0.0
    return counts


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with spaCy, but be safe
        return _NoBar()
    return tqdm(unit=" texts", file=sys.stderr, mininterval=1.0)


def _positive_int(value: str) -> int:
    # A non-positive size either drops every record, loops forever or crashes torch.
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {number}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value!r}") from None
    if not number > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spacy_globalpointer")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("annotate", help="annotate a JSON lines or Parquet file")
    p.add_argument("model", help="pipeline directory or installed package name")
    p.add_argument("input", type=Path, help="input .jsonl or .parquet")
    p.add_argument("output", type=Path, help="output .jsonl or .parquet")
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default=None, help="default: the line (row) number, from 1")
    p.add_argument(
        "--spans-key",
        default=None,
        help="doc.spans key to read (default: the one the pipeline's span component writes)",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, help="nlp.pipe batch size"
    )
    p.add_argument(
        "--max-chars", type=_positive_int, default=DEFAULT_MAX_CHARS, help="longer texts are errors"
    )
    p.add_argument(
        "--ray-address", default=None, help='Ray cluster address, or "local" to start one'
    )
    p.add_argument(
        "--workers", type=_positive_int, default=1, help="Ray actors (each loads the pipeline)"
    )
    p.add_argument(
        "--cpus-per-worker",
        type=_positive_float,
        default=1,
        help="Ray CPUs (torch threads) per actor",
    )
    p.add_argument(
        "--ray-batch-size",
        type=_positive_int,
        default=256,
        help="rows per Ray batch (rounded down to whole --batch-size batches)",
    )
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=None,
        help="valid rows held in memory at a time (default 1000 locally, 100000 on Ray)",
    )
    p.add_argument("--errors", type=Path, default=None, help="default: OUTPUT.errors.jsonl")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch threads for a local run (default: torch's)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing output and errors file"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _terminate(signum: int, frame: Optional[FrameType]) -> None:
    # SIGTERM (kill, a job scheduler) as an exception, so the temporary files are removed.
    raise SystemExit(128 + signum)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        counts = annotate_file(
            args.model,
            args.input,
            args.output,
            text_field=args.text_field,
            id_field=args.id_field,
            spans_key=args.spans_key,
            batch_size=args.batch_size,
            max_chars=args.max_chars,
            ray_address=args.ray_address,
            workers=args.workers,
            cpus_per_worker=args.cpus_per_worker,
            ray_batch_size=args.ray_batch_size,
            chunk_size=args.chunk_size,
            errors_path=args.errors,
            progress=not args.quiet,
            threads=args.threads,
            overwrite=args.overwrite,
        )
    except AnnotateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no output written", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(
        f"read {counts['read']}, annotated {counts['annotated']}, errors {counts['errors']}, "
        f"spans {counts['spans']} in {counts['seconds']} s ({counts['texts_per_second']} texts/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
