"""The engine-agnostic core (batch/core.py) and the Arrow conversion (batch/arrow.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import spacy
from batch_testing import BATCH, TRAIN, pipe_records
from spacy.language import Language
from spacy.tokens import Doc

from spacy_globalpointer.batch.arrow import records_to_arrow, row_to_record
from spacy_globalpointer.batch.core import (
    AnnotateError,
    annotate_batch,
    annotate_texts,
    check_text,
    doc_spans,
    load_pipeline,
    pipeline_spans_keys,
    resolve_spans_key,
)


def test_load_pipeline_once_per_process(model_path):
    assert load_pipeline(model_path) is load_pipeline(model_path)


@pytest.mark.parametrize(
    "value,reason",
    [
        (None, "missing text"),
        (float("nan"), "missing text"),
        (3, "text is not a string (got int)"),
        (["a"], "text is not a string (got list)"),
        (b"caf\xe9", "bad encoding: not valid UTF-8"),
        ("a\udc80b", "bad encoding: unpaired surrogate at character 1"),
        ("x" * 11, "text too long (11 characters > 10)"),
    ],
)
def test_check_text_rejects(value, reason):
    text, got = check_text(value, max_chars=10)
    assert text is None
    assert got.startswith(reason)


def test_check_text_accepts():
    assert check_text("", 10) == ("", None)
    assert check_text("café".encode(), 10) == ("café", None)
    assert check_text("x" * 10, 10) == ("x" * 10, None)


def test_annotate_batch_equals_nlp_pipe(nlp, texts, expected):
    assert annotate_batch(nlp, list(range(len(texts))), texts, batch_size=BATCH) == expected
    # Chunked streaming (one memory zone per chunk) gives the same records.
    assert list(annotate_texts(nlp, texts, chunk_size=37, batch_size=BATCH)) == expected


def test_annotate_batch_keeps_bad_records_in_place(nlp):
    ids = ["a", "b", "c", "d"]
    records = annotate_batch(nlp, ids, [TRAIN[0][0], 42, "x" * 60, TRAIN[1][0]], max_chars=55)
    assert [r["id"] for r in records] == ids
    assert records[1] == {"id": "b", "error": "text is not a string (got int)"}
    assert records[2]["error"].startswith("text too long")
    # The two valid texts went through nlp.pipe together, as one batch.
    reference = [doc_spans(doc) for doc in nlp.pipe([TRAIN[0][0], TRAIN[1][0]])]
    assert [records[0]["spans"], records[3]["spans"]] == reference


@Language.component("test_annotate_explode_on_boom")
def explode_on_boom(doc: Doc) -> Doc:
    if "boom" in doc.text:
        raise RuntimeError("boom")
    return doc


class EmptySpans:
    """A span component that finds nothing: it gives a pipeline a doc.spans key to read."""

    key = "sc"

    def __call__(self, doc: Doc) -> Doc:
        doc.spans[self.key] = []
        return doc


@Language.factory("test_annotate_empty_spans", assigns=["doc.spans"])
def make_empty_spans(nlp: Language, name: str) -> EmptySpans:
    return EmptySpans()


def test_annotate_batch_survives_pipeline_errors():
    nlp = spacy.blank("en")
    nlp.add_pipe("test_annotate_explode_on_boom")
    nlp.add_pipe("test_annotate_empty_spans")
    records = annotate_batch(nlp, [0, 1, 2], ["fine", "boom here", "also fine"])
    assert records == [
        {"id": 0, "spans": []},
        {"id": 1, "error": "pipeline error: RuntimeError: boom"},
        {"id": 2, "spans": []},
    ]


# --- the spans key and the batch size --------------------------------------------------


def test_resolve_spans_key():
    nlp = spacy.blank("en")
    with pytest.raises(AnnotateError, match="no span component"):
        resolve_spans_key(nlp)
    nlp.add_pipe("global_pointer", config={"spans_key": "nested"})
    assert resolve_spans_key(nlp) == "nested"
    assert resolve_spans_key(nlp, "nested") == "nested"
    with pytest.raises(AnnotateError, match=r"doc.spans\['sc'\] \(keys written: 'nested'\)"):
        resolve_spans_key(nlp, "sc")
    nlp.add_pipe("spancat")  # writes "sc"
    assert pipeline_spans_keys(nlp) == ["nested", "sc"]
    with pytest.raises(AnnotateError, match=r"several doc.spans keys \('nested', 'sc'\)"):
        resolve_spans_key(nlp)
    assert resolve_spans_key(nlp, "sc") == "sc"
    # A disabled component writes nothing.
    nlp.disable_pipe("spancat")
    assert resolve_spans_key(nlp) == "nested"


def test_api_default_spans_key_is_the_pipelines(nested_nlp, texts, nested_expected):
    ids = list(range(50))
    assert annotate_batch(nested_nlp, ids, texts[:50], batch_size=BATCH) == nested_expected
    assert list(annotate_texts(nested_nlp, texts[:50], batch_size=BATCH)) == nested_expected
    # "sc" is what the pipeline does not write: an error, not 50 empty span lists.
    with pytest.raises(AnnotateError, match="keys written: 'nested'"):
        annotate_batch(nested_nlp, ids, texts[:50], spans_key="sc")
    with pytest.raises(AnnotateError, match="keys written: 'nested'"):
        annotate_texts(nested_nlp, texts[:50], spans_key="sc")


def test_batch_size_must_be_positive(nlp, texts):
    # Before: batch_size=0 returned [] and dropped every record without a word.
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        annotate_batch(nlp, [0, 1], texts[:2], batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        annotate_texts(nlp, texts[:2], batch_size=0)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        annotate_texts(nlp, texts[:2], chunk_size=0)


def test_arrow_round_trip_is_exact(expected):
    pytest.importorskip("pyarrow")
    records = expected[:20] + [{"id": 99, "error": "text too long"}]
    table = records_to_arrow(records)
    assert [row_to_record(row) for row in table.to_pylist()] == records


# --- nlp.pipe(n_process=2) under spawn and forkserver ------------------------------------

N_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, sys

    def main():
        method, model, texts_path = sys.argv[1:4]
        # spaCy's multiprocessing pipe uses the default context, so this picks the method.
        multiprocessing.set_start_method(method)
        from spacy_globalpointer.batch.core import doc_spans, load_pipeline
        nlp = load_pipeline(model)
        texts = json.load(open(texts_path))
        batch = int(sys.argv[4])
        one = [doc_spans(d) for d in nlp.pipe(texts, batch_size=batch)]
        two = [doc_spans(d) for d in nlp.pipe(texts, batch_size=batch, n_process=2)]
        print(json.dumps({"one": one, "two": two}))

    if __name__ == "__main__":  # spawned children re-import this file
        main()
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_n_process_start_methods(method, tmp_path, model_path, nlp, texts):
    script = tmp_path / "n_process.py"
    script.write_text(N_PROCESS_SCRIPT)
    texts_path = tmp_path / "texts.json"
    texts_path.write_text(json.dumps(texts[:60]))
    try:
        proc = subprocess.run(
            [sys.executable, str(script), method, str(model_path), str(texts_path), str(BATCH)],
            capture_output=True,
            text=True,
            timeout=180,  # a hang (e.g. a child that never starts) fails instead of blocking CI
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"nlp.pipe(n_process=2) under {method!r} hung for 180 s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["two"] == result["one"]
    # the reference on the same 60 texts, so that nlp.pipe cuts the same batches
    assert result["one"] == [r["spans"] for r in pipe_records(nlp, texts[:60])]
