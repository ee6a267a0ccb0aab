"""Records as Arrow tables and back: the form in which Ray Data and Parquet move them.

pyarrow ships with the ``ray`` extra; nothing here imports it before it is needed.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

from .core import Record


def require_pyarrow() -> Any:
    """Import pyarrow, or fail with the install command."""
    try:
        import pyarrow
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "pyarrow is needed for Parquet and Ray Data: pip install 'pyarrow>=12' (or the ray extra of spacy-globalpointer)"
        ) from err
    return pyarrow


def span_arrow_type() -> Any:
    """Arrow type of the ``spans`` column: a list of (start, end, label, score) structs."""
    pa = require_pyarrow()
    return pa.list_(
        pa.struct(
            [
                ("start", pa.int64()),
                ("end", pa.int64()),
                ("label", pa.string()),
                ("score", pa.float64()),
            ]
        )
    )


def records_to_arrow(records: Sequence[Record], *, id_type: Any = None) -> Any:
    """Records as a ``pyarrow.Table`` with columns ``id``, ``spans`` and ``error``.

    The schema is fixed (rather than inferred per batch) so that batches whose texts all
    have no spans still concatenate with the others. Scores are float64: the float32 model
    scores convert exactly, so the values equal those of the in-process records.
    """
    pa = require_pyarrow()
    spans = [
        None
        if "spans" not in r
        else [{"start": s[0], "end": s[1], "label": s[2], "score": s[3]} for s in r["spans"]]
        for r in records
    ]
    return pa.table(
        {
            "id": pa.array([r["id"] for r in records], type=id_type),
            "spans": pa.array(spans, type=span_arrow_type()),
            "error": pa.array([r.get("error") for r in records], type=pa.string()),
        }
    )


def row_to_record(row: Dict[str, Any]) -> Record:
    """Turn a row of :func:`records_to_arrow` (as a dict) back into a record."""
    if row.get("error") is not None:
        return {"id": row["id"], "error": row["error"]}
    spans = row.get("spans") or []
    return {
        "id": row["id"],
        "spans": [[s["start"], s["end"], s["label"], s["score"]] for s in spans],
    }
