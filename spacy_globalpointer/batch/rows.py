"""The rows of a batch run through the engine: cut into chunks, annotated, written."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

from .core import Record, surrogate_at
from .engines import Engine
from .outputs import Writer, error_line
from .progress import ProgressBar
from .readers import Bad, Good, ReadPosition, Row


def annotate_rows(
    engine: Engine,
    row_chunks: Iterator[Tuple[List[Good], List[Bad]]],
    writer: Writer,
    err_file: Any,
    bar: ProgressBar,
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
