"""Files of a batch run: reading rows, writing records, and the checks on the paths.

Inputs are JSON lines (``.jsonl``/``.json``/``.ndjson``) or Parquet (``.parquet``/``.pq``).
A row that cannot be annotated is reported with its line (row) number, never dropped.
Outputs are written to temporary files next to their targets (see :func:`temp_path`) and
renamed into place by the caller once the run has finished.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from .arrow import span_arrow_type
from .core import AnnotateError, Record, check_text, surrogate_at

JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
PARQUET_SUFFIXES = {".parquet", ".pq"}

# An input row after parsing: (line number, id, text) for a good row, and
# (line number, id or None, reason) for one that goes straight to the error output.
Good = Tuple[int, Any, str]
Bad = Tuple[int, Any, str]
Row = Tuple[Optional[Good], Optional[Bad]]


class InputNotFoundError(AnnotateError, FileNotFoundError):
    """The input file does not exist."""


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


def fsync(path: Path) -> None:
    # Data on disk before the rename, so that a crash cannot leave a complete-looking
    # output file with missing contents.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    """Writes records as JSON lines or Parquet (id, spans) to a new file."""

    def __init__(self, path: Path, fmt: str, id_is_line: bool, file: Any = None) -> None:
        """``file``: ``path`` already opened (text mode for JSON lines), else it is
        created here; either way it must be a new file."""
        self.path = path
        self.fmt = fmt
        self.id_is_line = id_is_line
        self._parquet: Any = None
        self._file: Any = None
        self._closed = False
        # "x": the path is a fresh temporary name; never write over someone else's file.
        if file is None:
            file = path.open("x", encoding="utf-8") if fmt == "jsonl" else path.open("xb")
        if fmt == "jsonl":
            self._file = file
        else:
            file.close()  # the name is reserved; ParquetWriter reopens it

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
        ids = [r["id"] if self.id_is_line else str(r["id"]) for r in records]
        spans = [
            [{"start": s[0], "end": s[1], "label": s[2], "score": s[3]} for s in r["spans"]]
            for r in records
        ]
        table = pa.table(
            {
                "id": pa.array(ids, type=self._id_type()),
                "spans": pa.array(spans, type=span_arrow_type()),
            }
        )
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        self._parquet.write_table(table)

    def _id_type(self) -> Any:
        import pyarrow as pa

        return pa.int64() if self.id_is_line else pa.string()

    def abort(self) -> None:
        """Close without finishing the file (it is about to be deleted)."""
        self._release()

    def close(self) -> None:
        if not self._closed and self.fmt == "parquet" and self._parquet is None:
            # No records: still leave a valid, empty file.
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema([("id", self._id_type()), ("spans", span_arrow_type())])
            pq.write_table(schema.empty_table(), self.path)
        self._release()

    def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
        if self._parquet is not None:
            self._parquet.close()


def error_line(line: int, row_id: Any, reason: str) -> str:
    """One error record as a JSON line that UTF-8 can hold."""
    text = json.dumps({"line": line, "id": row_id, "error": reason}, ensure_ascii=False)
    if surrogate_at(text) is not None:
        # A lone surrogate (say in the id) has no UTF-8 form; JSON's \u escape keeps it
        # exact, so json.loads gives back the very id that was read.
        text = json.dumps({"line": line, "id": row_id, "error": reason}, ensure_ascii=True)
    return text + "\n"


def same_file(a: Path, b: Path) -> bool:
    # resolve() sees through relative paths, "..", and symlinks; samefile also through
    # hard links (only possible when both exist).
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# link() is not supported here: FAT and exFAT, some network and FUSE file systems.
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


class TargetAppearedError(AnnotateError, FileExistsError):
    """An output file appeared while the run was writing it (another run, say)."""


def place(temp: Path, target: Path, *, overwrite: bool, name: str, shown: Path) -> None:
    """Move the finished ``temp`` to ``target``; without ``overwrite`` never replace a
    file that appeared there since the run began (the paths were checked at its start,
    but another run may have finished in between): the file is hard-linked under its
    new name, which fails if the name exists, and the temporary name then removed.
    ``name`` and ``shown`` (the path as the user gave it) word the error."""
    if overwrite:
        os.replace(temp, target)
        return
    try:
        os.link(temp, target)
    except FileExistsError:
        raise TargetAppearedError(
            f"the {name} {shown} appeared while this run was writing it (another run?); "
            "it was left as it is and nothing was written: pass --overwrite to replace it"
        ) from None
    except OSError as err:
        if err.errno not in _NO_LINKS:
            raise
        # No hard links on this file system: check, then rename. Another run could still
        # slip in between the two; nothing better is portable.
        if os.path.lexists(target):
            raise TargetAppearedError(
                f"the {name} {shown} appeared while this run was writing it (another run?); "
                "it was left as it is and nothing was written: pass --overwrite to replace it"
            ) from None
        os.replace(temp, target)
        return
    os.unlink(temp)


def open_temp(target: Path, *, name: str, shown: Path, binary: bool = False) -> Tuple[Path, Any]:
    """A new temporary file beside ``target``, open for writing; a folder that cannot be
    written is reported with the user's path (not the hidden temporary name)."""
    temp = temp_path(target)
    try:
        return temp, temp.open("xb" if binary else "x", **({} if binary else {"encoding": "utf-8"}))
    except OSError as err:
        reason = err.strerror or str(err)
        raise AnnotateError(
            f"cannot write the {name} {shown}: {reason} (folder {target.parent})"
        ) from None


def temp_path(target: Path) -> Path:
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
