"""Kept for old imports: the batch annotation core now lives in :mod:`.batch.core` (and
the Arrow conversion in :mod:`.batch.arrow`)."""

from .batch.arrow import records_to_arrow, row_to_record, span_arrow_type
from .batch.core import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CHARS,
    DEFAULT_SPANS_KEY,
    AnnotateError,
    Record,
    SpanList,
    annotate_batch,
    annotate_texts,
    check_positive,
    check_text,
    doc_spans,
    load_pipeline,
    pipeline_spans_keys,
    resolve_spans_key,
    surrogate_at,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_CHARS",
    "DEFAULT_SPANS_KEY",
    "AnnotateError",
    "Record",
    "SpanList",
    "annotate_batch",
    "annotate_texts",
    "check_positive",
    "check_text",
    "doc_spans",
    "load_pipeline",
    "pipeline_spans_keys",
    "records_to_arrow",
    "resolve_spans_key",
    "row_to_record",
    "span_arrow_type",
    "surrogate_at",
]
