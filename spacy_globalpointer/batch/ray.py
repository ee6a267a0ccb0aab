"""Ray Data predictor: one pipeline per actor, batches in, Arrow records out.

Usage::

    ds = ray.data.read_parquet("s3://bucket/texts/")
    out = ds.map_batches(
        GlobalPointerPredictor,
        fn_constructor_kwargs={"model_path": "/models/genia_gp"},
        concurrency=8,        # actors, each loads the pipeline once
        num_cpus=4,           # CPUs per actor; torch gets as many threads
        batch_size=256,
        batch_format="pandas",
    )
    out.write_parquet("s3://bucket/spans/")

Ray is an optional dependency (the ``ray`` extra: ``pip install -e '.[ray]'`` in a clone); importing
this module works without it, and building a predictor explains what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

from .arrow import records_to_arrow
from .core import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CHARS,
    AnnotateError,
    annotate_batch,
    check_positive,
    load_pipeline,
    resolve_spans_key,
)


def require_ray() -> Any:
    """Import Ray, or fail with the install command."""
    try:
        import ray
        import ray.data  # noqa: F401 - the "data" extra is what we need
    except ImportError as err:
        raise ImportError(
            "Ray Data is not installed. Install the optional extra: "
            "pip install 'ray[data]>=2.9' 'pyarrow>=12' (the ray extra of spacy-globalpointer)"
        ) from err
    return ray


def worker_cpus(default: int = 1) -> int:
    """CPUs Ray reserved for the current worker (``num_cpus``), at least 1."""
    ray = require_ray()
    if not ray.is_initialized():
        return default
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    # Actors get no CPU reservation unless num_cpus is given; fall back to one thread so
    # that several actors on a node do not each start one torch thread per core.
    return max(1, int(cpus)) if cpus else default


def _column(batch: Any, name: str) -> list:
    """A column of a pandas, numpy-dict or Arrow batch as a Python list."""
    try:
        col = batch[name]
    except KeyError:
        raise KeyError(
            f"batch has no column {name!r} (columns: {list(_columns(batch))}); "
            "set text_column / id_column"
        ) from None
    if hasattr(col, "to_pylist"):  # pyarrow
        return col.to_pylist()
    return col.tolist()  # pandas Series or numpy array


def _columns(batch: Any) -> Sequence[str]:
    if hasattr(batch, "column_names"):
        return batch.column_names
    return list(batch.keys())


class GlobalPointerPredictor:
    """Callable class for ``Dataset.map_batches``: loads the pipeline once per actor.

    Each output batch is a ``pyarrow.Table`` with columns ``id`` (copied from
    ``id_column``), ``spans`` (list of ``{start, end, label, score}``) and ``error`` (null,
    or why the text was not annotated). No row is dropped: bad texts keep their id and
    carry an error instead of spans.

    ``spans_key`` defaults to the key the pipeline's span component writes; a key that no
    component writes raises (see :func:`~spacy_globalpointer.batch.core.resolve_spans_key`).
    """

    def __init__(
        self,
        model_path: Union[str, Path],
        *,
        text_column: str = "text",
        id_column: str = "id",
        spans_key: Optional[str] = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_chars: Optional[int] = DEFAULT_MAX_CHARS,
        num_threads: Optional[int] = None,
        exclude: Sequence[str] = (),
    ) -> None:
        # Checked before the (slow) pipeline load, so a typo fails at once.
        self.batch_size = check_positive("batch_size", batch_size)
        threads = (
            check_positive("num_threads", num_threads) if num_threads is not None else worker_cpus()
        )
        try:
            import torch
        except ImportError:  # pragma: no cover - a pipeline without torch needs no threads
            torch = None
        if torch is not None:
            # torch defaults to one thread per core of the *node*; with several actors per
            # node that oversubscribes the CPUs many times over.
            torch.set_num_threads(threads)
        self.num_threads = threads
        self.nlp = load_pipeline(model_path, exclude=exclude)
        self.text_column = text_column
        self.id_column = id_column
        self.spans_key = resolve_spans_key(self.nlp, spans_key)
        self.max_chars = max_chars

    def __call__(self, batch: Any) -> Any:
        texts = _column(batch, self.text_column)
        ids = _column(batch, self.id_column)
        records = annotate_batch(
            self.nlp,
            ids,
            texts,
            spans_key=self.spans_key,
            batch_size=self.batch_size,
            max_chars=self.max_chars,
        )
        return records_to_arrow(records)


def probe_spans_key(
    model_path: Union[str, Path], spans_key: Optional[str], num_cpus: float = 1
) -> str:
    """Resolve the spans key in a Ray task, where the actors will load the pipeline.

    The driver may not see the model path (it can live on the cluster only), so the
    pipeline is loaded in a worker. A wrong key or model comes back as
    :class:`~spacy_globalpointer.batch.core.AnnotateError` before any actor starts.
    """
    ray = require_ray()

    def probe(path: str, key: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
        import spacy

        # Not load_pipeline: its cache would keep this copy alive in an idle worker.
        try:
            nlp = spacy.load(path)
        except OSError as err:
            return None, f"cannot load the pipeline {path!r}: {err}"
        try:
            return resolve_spans_key(nlp, key), None
        except AnnotateError as err:
            return None, str(err)

    key, error = ray.get(ray.remote(num_cpus=num_cpus)(probe).remote(str(model_path), spans_key))
    if error is not None:
        raise AnnotateError(error)
    return key  # type: ignore[return-value]
