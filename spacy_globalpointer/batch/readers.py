"""Reading a batch run's input: JSON lines or Parquet rows, checked one by one.

Inputs are JSON lines (``.jsonl``/``.json``/``.ndjson``) or Parquet (``.parquet``/``.pq``).
A row that cannot be annotated is reported with its line (row) number, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

from .core import AnnotateError, check_text, surrogate_at

JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
PARQUET_SUFFIXES = {".parquet", ".pq"}

# An input row after parsing: (line number, id, text) for a good row, and
# (line number, id or None, reason) for one that goes straight to the error output.
Good = Tuple[int, Any, str]
Bad = Tuple[int, Any, str]
Row = Tuple[Optional[Good], Optional[Bad]]


def file_format(path: Path) -> str:
    """``"jsonl"`` or ``"parquet"``, from the file's suffix."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise AnnotateError(f"cannot tell the format of {path} (use .jsonl or .parquet)")


def check_row(
    line: int, row: Any, text_field: str, id_field: Optional[str], max_chars: Optional[int]
) -> Row:
    """A parsed input row as ``(good, None)`` or ``(None, bad)``."""
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


@dataclass
class ReadPosition:
    """How far a reader has got: bytes of a JSON lines file, rows of a Parquet file (what
    the progress bar counts against the input's size)."""

    bytes: int = 0
    rows: int = 0


def read_jsonl(
    path: Path,
    text_field: str,
    id_field: Optional[str],
    max_chars: Optional[int],
    position: Optional[ReadPosition] = None,
) -> Iterator[Row]:
    position = position if position is not None else ReadPosition()
    # Binary mode so that one badly encoded line is reported instead of aborting the read.
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            position.bytes += len(raw)
            position.rows = line_no
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
            yield check_row(line_no, row, text_field, id_field, max_chars)


def _parquet_file(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise AnnotateError(f"cannot read {path} as Parquet: {err}") from None


def parquet_columns(path: Path) -> List[str]:
    """The column names of a Parquet file (from its footer; no row is read)."""
    return list(_parquet_file(path).schema_arrow.names)


def parquet_rows(path: Path) -> int:
    return int(_parquet_file(path).metadata.num_rows)


def check_columns(path: Path, text_field: str, id_field: Optional[str]) -> None:
    """Refuse a Parquet input that lacks the text (or id) column: every row would be an
    error. JSON lines rows can differ from line to line, so there each row is checked."""
    if file_format(path) != "parquet":
        return
    names = parquet_columns(path)
    listed = ", ".join(repr(n) for n in names) or "none"
    for option, column in (("--text-field", text_field), ("--id-field", id_field)):
        if column is not None and column not in names:
            raise AnnotateError(
                f"the input {path} has no column {column!r} (columns: {listed}); "
                f"choose one with {option}"
            )


def read_parquet(
    path: Path,
    text_field: str,
    id_field: Optional[str],
    max_chars: Optional[int],
    position: Optional[ReadPosition] = None,
) -> Iterator[Row]:
    position = position if position is not None else ReadPosition()
    pf = _parquet_file(path)
    names = set(pf.schema_arrow.names)
    columns = [c for c in {text_field, id_field} if c is not None and c in names]
    row_no = 0
    for batch in pf.iter_batches(batch_size=4096, columns=columns):
        for row in batch.to_pylist():
            row_no += 1  # 1-based, like JSON lines
            position.rows = row_no
            yield check_row(row_no, row, text_field, id_field, max_chars)


def read_rows(
    path: Path,
    text_field: str,
    id_field: Optional[str],
    max_chars: Optional[int],
    position: Optional[ReadPosition] = None,
) -> Iterator[Row]:
    """The rows of a JSON lines or Parquet file, checked; ``position`` follows the read."""
    reader = read_jsonl if file_format(path) == "jsonl" else read_parquet
    return reader(path, text_field, id_field, max_chars, position)
