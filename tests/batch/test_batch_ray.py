"""The Ray Data predictor (batch/ray.py)."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from batch_testing import BATCH

from spacy_globalpointer.batch.arrow import row_to_record
from spacy_globalpointer.batch.core import AnnotateError, annotate_batch
from spacy_globalpointer.batch.ray import GlobalPointerPredictor


def test_predictor_batch_size_must_be_positive(model_path):
    pytest.importorskip("ray")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        GlobalPointerPredictor(model_path, batch_size=0)


def test_predictor_default_spans_key_is_the_pipelines(nested_model_path):
    pytest.importorskip("ray")
    import torch

    # The predictor sets torch's thread count for the process: put it back, since the
    # thread count can change the last float bits of the scores other tests compare.
    threads = torch.get_num_threads()
    try:
        assert GlobalPointerPredictor(nested_model_path, num_threads=1).spans_key == "nested"
        with pytest.raises(AnnotateError, match="keys written: 'nested'"):
            GlobalPointerPredictor(nested_model_path, spans_key="sc", num_threads=1)
    finally:
        torch.set_num_threads(threads)


def blocks_of(ray, items: List[Dict[str, Any]], size: int) -> Any:
    """A dataset whose blocks are consecutive runs of ``size`` rows, so that Ray batches of
    ``size`` are the same nlp.pipe batches as in the reference."""
    import pandas as pd

    return ray.data.from_pandas(
        [pd.DataFrame(items[i : i + size]) for i in range(0, len(items), size)]
    )


@pytest.mark.slow
def test_map_batches_equals_nlp_pipe(ray_cluster, model_path, texts, expected):
    items = [{"id": i, "text": t} for i, t in enumerate(texts)]
    # A last block of bad rows: they come back as errors, never dropped.
    bad = [{"id": 200, "text": None}, {"id": 201, "text": "x" * 101}, {"id": 202, "text": "ok"}]
    out = blocks_of(ray_cluster, items + bad, BATCH).map_batches(
        GlobalPointerPredictor,
        fn_constructor_kwargs={"model_path": str(model_path), "max_chars": 100},
        concurrency=2,
        num_cpus=1,
        batch_size=BATCH,
        batch_format="pandas",
    )
    rows = out.take_all()
    assert len(rows) == len(items) + len(bad)
    records = sorted((row_to_record(r) for r in rows), key=lambda r: r["id"])
    assert records[: len(texts)] == expected
    assert records[len(texts) :] == [
        {"id": 200, "error": "missing text"},
        {"id": 201, "error": "text too long (101 characters > 100)"},
        {"id": 202, "spans": records[202]["spans"]},
    ]


@pytest.mark.slow
def test_predictor_in_an_actor_numpy_batch(ray_cluster, nlp, model_path, texts):
    """One actor with 2 CPUs: torch gets 2 threads; a numpy batch gives the same records."""
    import numpy as np

    actor = ray_cluster.remote(num_cpus=2)(GlobalPointerPredictor).remote(str(model_path))

    def threads(self):
        import torch

        return self.num_threads, torch.get_num_threads()

    try:
        assert ray_cluster.get(actor.__ray_call__.remote(threads), timeout=120) == (2, 2)
        batch = {"id": np.arange(BATCH), "text": np.array(texts[:BATCH], dtype=object)}
        table = ray_cluster.get(actor.__call__.remote(batch), timeout=120)
    finally:
        ray_cluster.kill(actor)
    records = [row_to_record(r) for r in table.to_pylist()]
    assert records == annotate_batch(nlp, list(range(BATCH)), texts[:BATCH])
