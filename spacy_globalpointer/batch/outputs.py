"""Writing a batch run's outputs: records and errors to hidden temporary files, moved
into place once the run has finished.

Outputs are written to temporary files next to their targets (see :func:`temp_path`) and
placed by the caller with :func:`place`, which never replaces a file that appeared at the
target meanwhile unless asked to.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path
from typing import Any, Sequence, Tuple

from .arrow import span_arrow_type
from .core import AnnotateError, Record, surrogate_at


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
