"""annotate_file and its engines (batch/run.py, batch/engines.py), called from Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from batch_testing import BATCH, read_jsonl, temp_files, write_texts

from spacy_globalpointer.batch import engines
from spacy_globalpointer.batch.core import AnnotateError, annotate_batch
from spacy_globalpointer.batch.engines import LocalEngine, RayOptions
from spacy_globalpointer.batch.run import AnnotateOptions, annotate_file

QUIET = AnnotateOptions(progress=False)


def test_unwritable_span_label_goes_to_error_file(tmp_path, model_path, texts, monkeypatch):
    def bad_label_for_second(*args: Any, **kwargs: Any) -> Any:
        records = annotate_batch(*args, **kwargs)
        records[1] = {"id": records[1]["id"], "spans": [[0, 1, "X\udc80", 0.5]]}
        return records

    monkeypatch.setattr(engines, "annotate_batch", bad_label_for_second)
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:4])
    out = tmp_path / "out.jsonl"
    counts = annotate_file(str(model_path), corpus, out, QUIET)
    assert (counts["annotated"], counts["errors"]) == (3, 1)
    assert [r["id"] for r in read_jsonl(out)] == [1, 3, 4]
    (error,) = read_jsonl(Path(str(out) + ".errors.jsonl"))
    assert error["line"] == 2
    assert error["error"].startswith("bad encoding: unpaired surrogate in span label")


def test_annotate_file_refuses_non_positive_sizes(tmp_path, model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    # The options refuse them when made, before any run can start.
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        annotate_file(
            str(model_path), corpus, tmp_path / "out.jsonl", AnnotateOptions(batch_size=0)
        )
    with pytest.raises(ValueError, match="cpus_per_worker must be a positive number"):
        annotate_file(
            str(model_path),
            corpus,
            tmp_path / "out.jsonl",
            AnnotateOptions(ray=RayOptions(cpus_per_worker=0)),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


@pytest.mark.parametrize("previous", [True, False])
@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_failed_run_leaves_no_output(previous, failure, tmp_path, model_path, texts, monkeypatch):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:100])
    out = tmp_path / "out.jsonl"
    errors = tmp_path / "out.jsonl.errors.jsonl"
    if previous:
        out.write_text("old output\n")
        errors.write_text("old errors\n")
    calls = []

    def fail_on_third_chunk(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:  # two chunks are written by now
            raise failure("stop")
        return annotate_batch(*args, **kwargs)

    monkeypatch.setattr(engines, "annotate_batch", fail_on_third_chunk)
    options = AnnotateOptions(batch_size=BATCH, chunk_size=BATCH, overwrite=True, progress=False)
    with pytest.raises(failure):
        annotate_file(str(model_path), corpus, out, options)
    assert len(calls) == 3
    assert temp_files(tmp_path) == []
    if previous:
        assert out.read_text() == "old output\n"
        assert errors.read_text() == "old errors\n"
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_local_engine_sets_threads_for_its_block_only(model_path, nlp, texts):
    before = torch.get_num_threads()
    threads = 2 if before == 1 else 1
    with LocalEngine(str(model_path), threads=threads, batch_size=BATCH) as engine:
        assert torch.get_num_threads() == threads
        assert engine.spans_key == "sc"
        records = engine.annotate(texts[:BATCH])
    assert torch.get_num_threads() == before
    # Ids are positions in the chunk; the records are annotate_batch's.
    assert records == annotate_batch(nlp, list(range(BATCH)), texts[:BATCH], batch_size=BATCH)
    # A pipeline that cannot load: the thread count is put back all the same.
    with pytest.raises(AnnotateError, match="cannot load the pipeline"):
        with LocalEngine(str(model_path) + "-missing", threads=threads):
            pass
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="in a with block"):
        LocalEngine(str(model_path)).annotate(["text"])


def test_old_import_paths_still_work():
    import spacy_globalpointer.annotate as old_core
    import spacy_globalpointer.ray_annotate as old_ray
    from spacy_globalpointer.batch import arrow, core, ray

    assert old_core.annotate_batch is core.annotate_batch
    assert old_core.records_to_arrow is arrow.records_to_arrow
    assert old_ray.GlobalPointerPredictor is ray.GlobalPointerPredictor
    for name in old_core.__all__:
        assert hasattr(old_core, name), name
