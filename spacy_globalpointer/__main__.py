"""Command line: ``python -m spacy_globalpointer annotate MODEL INPUT OUTPUT``.

Reads JSON lines (``.jsonl``/``.json``/``.ndjson``) or Parquet (``.parquet``), annotates
locally with ``nlp.pipe`` or on a Ray cluster (``--ray-address``), and writes JSON lines or
Parquet in input order. Input that cannot be annotated goes to the error file (JSON
lines: line number, id, reason); the run carries on and the summary counts everything.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .annotate import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CHARS,
    DEFAULT_SPANS_KEY,
    Record,
    annotate_batch,
    check_text,
    load_pipeline,
    row_to_record,
    span_arrow_type,
)

JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


# An input row after parsing: (line number, id, text) for a good row, and
# (line number, id or None, reason) for one that goes straight to the error output.
Good = Tuple[int, Any, str]
Bad = Tuple[int, Any, str]


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise SystemExit(f"error: cannot tell the format of {path} (use .jsonl or .parquet)")


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
                line = raw.decode("utf-8")
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


class Writer:
    """Writes records as JSON lines or Parquet (id, spans)."""

    def __init__(self, path: Path, fmt: str, id_is_line: bool) -> None:
        self.path = path
        self.fmt = fmt
        self.id_is_line = id_is_line
        self._parquet: Any = None
        self._file: Any = None
        if fmt == "jsonl":
            self._file = path.open("w", encoding="utf-8")

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

    def close(self) -> None:
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
    from .ray_annotate import GlobalPointerPredictor, require_ray

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


def annotate_file(
    model: str,
    input_path: Path,
    output_path: Path,
    *,
    text_field: str = "text",
    id_field: Optional[str] = None,
    spans_key: str = DEFAULT_SPANS_KEY,
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
) -> Dict[str, Any]:
    """Annotate a file; return the summary counts (also used by the tests)."""
    in_fmt = _format(input_path)
    out_fmt = _format(output_path)
    errors_path = errors_path or Path(str(output_path) + ".errors.jsonl")
    if in_fmt == "parquet" or out_fmt == "parquet":
        from .annotate import _pyarrow

        _pyarrow()

    started_ray = False
    if ray_address is not None:
        from .ray_annotate import require_ray

        ray = require_ray()
        if not ray.is_initialized():
            if ray_address == "local":
                ray.init(include_dashboard=False)
            else:
                ray.init(address=ray_address)
            started_ray = True
        annotate = ray_annotator(
            model, spans_key, batch_size, ray_batch_size, workers, cpus_per_worker
        )
        # Each chunk is one Ray dataset; big chunks amortise the actor start-up, and the
        # driver never holds more than one chunk of texts.
        chunk_size = chunk_size or 100_000
    else:
        if workers != 1:
            raise SystemExit("error: --workers needs --ray-address (locally torch uses the cores)")
        if threads is not None:
            import torch

            # On a busy machine torch's one-thread-per-core default can be several times
            # slower than fewer threads (its worker threads wait on each other).
            torch.set_num_threads(threads)
        annotate = local_annotator(load_pipeline(model), spans_key, batch_size)
        chunk_size = chunk_size or 1000

    # Whole nlp.pipe batches per chunk: see _chunks.
    chunk_size = max(1, -(-chunk_size // batch_size)) * batch_size
    reader = read_jsonl if in_fmt == "jsonl" else read_parquet
    rows = reader(input_path, text_field, id_field, max_chars)
    writer = Writer(output_path, out_fmt, id_is_line=id_field is None)
    counts = {"read": 0, "annotated": 0, "errors": 0, "spans": 0}
    bar = _progress(progress)
    start = time.perf_counter()
    try:
        with errors_path.open("w", encoding="utf-8") as err_file:
            for good, bad in _chunks(rows, chunk_size):
                counts["read"] += len(good) + len(bad)
                records = annotate([text for _, _, text in good]) if good else []
                out: List[Record] = []
                if len(records) != len(good):  # never expected; refuse to lose rows quietly
                    raise RuntimeError(f"{len(records)} results for {len(good)} texts")
                for (line, row_id, _), rec in zip(good, records):  # noqa: B905 - checked above
                    if "error" in rec:  # the pipeline itself failed on this text
                        bad.append((line, row_id, rec["error"]))
                    else:
                        out.append({"id": row_id, "spans": rec["spans"]})
                        counts["spans"] += len(rec["spans"])
                writer.write(out)
                for line, row_id, reason in sorted(bad, key=lambda b: b[0]):
                    err_file.write(
                        json.dumps(
                            {"line": line, "id": row_id, "error": reason}, ensure_ascii=False
                        )
                    )
                    err_file.write("\n")
                counts["annotated"] += len(out)
                counts["errors"] += len(bad)
                bar.update(len(good) + len(bad))
    finally:
        writer.close()
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spacy_globalpointer")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("annotate", help="annotate a JSON lines or Parquet file")
    p.add_argument("model", help="pipeline directory or installed package name")
    p.add_argument("input", type=Path, help="input .jsonl or .parquet")
    p.add_argument("output", type=Path, help="output .jsonl or .parquet")
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default=None, help="default: the line (row) number, from 1")
    p.add_argument("--spans-key", default=DEFAULT_SPANS_KEY)
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="nlp.pipe batch size")
    p.add_argument(
        "--max-chars", type=int, default=DEFAULT_MAX_CHARS, help="longer texts are errors"
    )
    p.add_argument(
        "--ray-address", default=None, help='Ray cluster address, or "local" to start one'
    )
    p.add_argument("--workers", type=int, default=1, help="Ray actors (each loads the pipeline)")
    p.add_argument(
        "--cpus-per-worker", type=float, default=1, help="Ray CPUs (torch threads) per actor"
    )
    p.add_argument(
        "--ray-batch-size",
        type=int,
        default=256,
        help="rows per Ray batch (rounded down to whole --batch-size batches)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="valid rows held in memory at a time (default 1000 locally, 100000 on Ray)",
    )
    p.add_argument("--errors", type=Path, default=None, help="default: OUTPUT.errors.jsonl")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads for a local run (default: torch's)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
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
    )
    print(
        f"read {counts['read']}, annotated {counts['annotated']}, errors {counts['errors']}, "
        f"spans {counts['spans']} in {counts['seconds']} s ({counts['texts_per_second']} texts/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
