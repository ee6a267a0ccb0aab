"""Engines: where a run's texts are annotated, in this process or on a Ray cluster.

An engine is a context manager that owns its setup and teardown (torch threads, the
pipeline, Ray). Inside the ``with`` block, ``annotate(texts)`` returns one record per text,
in order, with the text's position in ``texts`` as its id. Both engines cut the texts into
the same ``nlp.pipe`` batches, so they give identical scores.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import TracebackType
from typing import Iterator, List, Optional, Protocol, Type, TypeVar

from spacy.language import Language

from .arrow import row_to_record
from .core import (
    DEFAULT_BATCH_SIZE,
    AnnotateError,
    Record,
    annotate_batch,
    check_positive,
    load_pipeline,
    resolve_spans_key,
)


class Engine(Protocol):
    spans_key: str
    # Valid texts handed to annotate() at a time when the caller has no preference.
    default_chunk_size: int

    def __enter__(self) -> Engine: ...

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

    def annotate(self, texts: List[str]) -> List[Record]: ...


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside, put back on leaving."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


M = TypeVar("M", bound="_Managed")


class _Managed:
    """Teardown through an ExitStack filled by a subclass's ``_setup``: on an error in
    ``_setup`` what was set up so far is undone at once."""

    _cleanup: Optional[contextlib.ExitStack] = None

    def _setup(self, stack: contextlib.ExitStack) -> None:
        raise NotImplementedError

    def __enter__(self: M) -> M:
        with contextlib.ExitStack() as stack:
            self._setup(stack)
            self._cleanup = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup.close()

    def _check_entered(self) -> None:
        if self._cleanup is None:
            raise RuntimeError(f"use {type(self).__name__} in a with block")


class LocalEngine(_Managed):
    """``nlp.pipe`` in this process; ``threads`` sets torch's thread count for the run."""

    default_chunk_size = 1000

    def __init__(
        self,
        model: str,
        *,
        spans_key: Optional[str] = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: Optional[int] = None,
    ) -> None:
        self.model = model
        self.requested_spans_key = spans_key
        self.batch_size = check_positive("batch_size", batch_size)
        self.threads = None if threads is None else check_positive("threads", threads)
        self.nlp: Optional[Language] = None
        self.spans_key = ""

    def _setup(self, stack: contextlib.ExitStack) -> None:
        if self.threads is not None:
            # On a busy machine torch's one-thread-per-core default can be several times
            # slower than fewer threads (its worker threads wait on each other).
            stack.enter_context(torch_threads(self.threads))
        try:
            self.nlp = load_pipeline(self.model)
        except OSError as err:  # spaCy's "can't find model" (E050), a missing file
            raise AnnotateError(f"cannot load the pipeline {self.model!r}: {err}") from err
        self.spans_key = resolve_spans_key(self.nlp, self.requested_spans_key)

    def annotate(self, texts: List[str]) -> List[Record]:
        self._check_entered()
        # Texts were validated when read, so no length limit here.
        return annotate_batch(
            self.nlp,  # type: ignore[arg-type]
            list(range(len(texts))),
            texts,
            spans_key=self.spans_key,
            batch_size=self.batch_size,
            max_chars=None,
        )


@dataclass(frozen=True)
class RayOptions:
    """A run on Ray: ``address`` of the cluster, or ``"local"`` to start one for the run;
    ``workers`` actors (each loads the pipeline) with ``cpus_per_worker`` CPUs (torch
    threads) each; ``batch_size`` rows per Ray batch, rounded down to whole ``nlp.pipe``
    batches."""

    address: str = "local"
    workers: int = 1
    cpus_per_worker: float = 1
    batch_size: int = 256

    def __post_init__(self) -> None:
        check_positive("workers", self.workers)
        check_positive("ray_batch_size", self.batch_size)
        if not self.cpus_per_worker > 0:  # also refuses nan
            raise AnnotateError(
                f"cpus_per_worker must be a positive number, got {self.cpus_per_worker!r}"
            )


class RayEngine(_Managed):
    """Ray Data actors running :class:`~spacy_globalpointer.batch.ray.GlobalPointerPredictor`.

    Joins the Ray instance of this process if there is one; otherwise connects to (or, for
    ``"local"``, starts) a cluster and shuts Ray down again on leaving.
    """

    # Each annotate() call is one Ray dataset; big chunks amortise the actor start-up, and
    # the driver never holds more than one chunk of texts.
    default_chunk_size = 100_000

    def __init__(
        self,
        model: str,
        ray: RayOptions,
        *,
        spans_key: Optional[str] = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.model = model
        self.options = ray
        self.requested_spans_key = spans_key
        self.batch_size = check_positive("batch_size", batch_size)
        self.spans_key = ""

    def _setup(self, stack: contextlib.ExitStack) -> None:
        from .ray import probe_spans_key, require_ray

        ray = require_ray()
        if not ray.is_initialized():
            if self.options.address == "local":
                ray.init(include_dashboard=False)
            else:
                ray.init(address=self.options.address)
            stack.callback(ray.shutdown)
        ctx = ray.data.DataContext.get_current()
        # The progress bar is the caller's; Ray's own would interleave with it.
        stack.callback(setattr, ctx, "enable_progress_bars", ctx.enable_progress_bars)
        ctx.enable_progress_bars = False
        self.spans_key = probe_spans_key(
            self.model, self.requested_spans_key, self.options.cpus_per_worker
        )

    def annotate(self, texts: List[str]) -> List[Record]:
        self._check_entered()
        import pyarrow as pa

        from .ray import GlobalPointerPredictor, require_ray

        ray = require_ray()
        # Blocks of whole nlp.pipe batches, each handed over as one Ray batch: the model
        # sees the same batches as in a local run, so the scores are identical to the last bit.
        block = max(1, self.options.batch_size // self.batch_size) * self.batch_size
        table = pa.table({"id": pa.array(range(len(texts)), type=pa.int64()), "text": texts})
        blocks = [table.slice(i, block) for i in range(0, len(texts), block)]
        out = ray.data.from_arrow(blocks).map_batches(
            GlobalPointerPredictor,
            fn_constructor_kwargs={
                "model_path": self.model,
                "spans_key": self.spans_key,
                "batch_size": self.batch_size,
                "max_chars": None,  # checked when read
            },
            concurrency=self.options.workers,
            num_cpus=self.options.cpus_per_worker,
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
