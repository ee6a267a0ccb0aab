"""Batch annotation: the engine-agnostic core, the Ray Data predictor and the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from spacy_globalpointer.__main__ import build_parser, main
from spacy_globalpointer.annotate import (
    AnnotateError,
    annotate_batch,
    annotate_texts,
    check_text,
    doc_spans,
    load_pipeline,
    pipeline_spans_keys,
    records_to_arrow,
    resolve_spans_key,
    row_to_record,
)

TRAIN = [
    (
        "IL-2 gene expression requires NF-kappa B in T cells.",
        [
            ("IL-2 gene", "DNA"),
            ("IL-2", "protein"),
            ("NF-kappa B", "protein"),
            ("T cells", "cell_type"),
        ],
    ),
    (
        "The CD28 receptor activates human T lymphocytes.",
        [("CD28 receptor", "protein"), ("human T lymphocytes", "cell_type")],
    ),
    (
        "Jurkat cells express the c-fos gene.",
        [("Jurkat cells", "cell_line"), ("c-fos gene", "DNA")],
    ),
]

SUBJECTS = ["IL-2", "The CD28 receptor", "NF-kappa B", "c-fos", "Jurkat cells", "It"]
VERBS = ["activates", "requires", "binds", "is expressed in", "inhibits"]
OBJECTS = ["human T lymphocytes.", "the c-fos gene.", "T cells.", "IL-2 gene expression.", "it."]


def make_texts(n: int) -> List[str]:
    """n varied sentences, deterministic, with an empty text among them."""
    texts = []
    for i in range(n):
        s = SUBJECTS[i % len(SUBJECTS)]
        v = VERBS[(i // len(SUBJECTS)) % len(VERBS)]
        o = OBJECTS[(i // 7) % len(OBJECTS)]
        texts.append(f"{s} {v} {o}" + (" Again." * (i % 3)))
    texts[17] = ""
    return texts


def train_tiny(path: Path, spans_key: str = "sc") -> Path:
    """A few updates of global_pointer on three sentences, saved to ``path``."""
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "global_pointer",
        config={
            "spans_key": spans_key,
            "model": {
                "head_width": 16,
                "tok2vec": {"embed": {"width": 32}, "encode": {"width": 32, "depth": 1}},
            },
        },
    )
    examples = []
    for text, ents in TRAIN:
        ref = nlp.make_doc(text)
        ref.spans[spans_key] = [
            ref.char_span(text.find(w), text.find(w) + len(w), label=label) for w, label in ents
        ]
        examples.append(Example(nlp.make_doc(text), ref))
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(15):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(path)
    return path


# Scores can differ in the last float32 bits with a batch's padded length, so every path
# below is compared on the same nlp.pipe batches: BATCH texts, cut from the first.
BATCH = 25


def pipe_records(nlp: Language, texts: List[str], key: str = "sc") -> List[Dict[str, Any]]:
    """The reference: plain in-process nlp.pipe, read straight off doc.spans."""
    out = []
    for i, doc in enumerate(nlp.pipe(texts, batch_size=BATCH)):
        group = doc.spans[key] if key in doc.spans else []
        scores = group.attrs["scores"] if len(group) else []
        spans = [
            [s.start_char, s.end_char, s.label_, float(scores[k])] for k, s in enumerate(group)
        ]
        out.append({"id": i, "spans": spans})
    return out


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("models") / "tiny_gp")


@pytest.fixture(scope="session")
def nlp(model_path) -> Language:
    return load_pipeline(model_path)


@pytest.fixture(scope="session")
def texts() -> List[str]:
    return make_texts(200)


@pytest.fixture(scope="session")
def expected(nlp, texts) -> List[Dict[str, Any]]:
    records = pipe_records(nlp, texts)
    # A vacuous comparison would prove nothing: the tiny model must predict something.
    assert sum(len(r["spans"]) for r in records) > 50
    return records


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster shared by every Ray test (start-up takes seconds)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    pytest.importorskip("pyarrow")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()


# --- the core ---------------------------------------------------------------------------


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


@pytest.fixture(scope="session")
def nested_model_path(tmp_path_factory) -> Path:
    """The tiny pipeline, trained to write doc.spans["nested"] instead of "sc"."""
    return train_tiny(tmp_path_factory.mktemp("models") / "tiny_nested", spans_key="nested")


@pytest.fixture(scope="session")
def nested_nlp(nested_model_path) -> Language:
    return load_pipeline(nested_model_path)


@pytest.fixture(scope="session")
def nested_expected(nested_nlp, texts) -> List[Dict[str, Any]]:
    records = pipe_records(nested_nlp, texts[:50], key="nested")
    assert sum(len(r["spans"]) for r in records) > 10  # else "no spans" would pass
    return records


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


def test_predictor_default_spans_key_is_the_pipelines(nested_model_path):
    pytest.importorskip("ray")
    import torch

    from spacy_globalpointer.ray_annotate import GlobalPointerPredictor

    # The predictor sets torch's thread count for the process: put it back, since the
    # thread count can change the last float bits of the scores other tests compare.
    threads = torch.get_num_threads()
    try:
        assert GlobalPointerPredictor(nested_model_path, num_threads=1).spans_key == "nested"
        with pytest.raises(AnnotateError, match="keys written: 'nested'"):
            GlobalPointerPredictor(nested_model_path, spans_key="sc", num_threads=1)
    finally:
        torch.set_num_threads(threads)


def test_batch_size_must_be_positive(nlp, model_path, texts):
    # Before: batch_size=0 returned [] and dropped every record without a word.
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        annotate_batch(nlp, [0, 1], texts[:2], batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        annotate_texts(nlp, texts[:2], batch_size=0)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        annotate_texts(nlp, texts[:2], chunk_size=0)
    if importlib.util.find_spec("ray") is not None:
        from spacy_globalpointer.ray_annotate import GlobalPointerPredictor

        with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
            GlobalPointerPredictor(model_path, batch_size=0)


def test_arrow_round_trip_is_exact(expected):
    pytest.importorskip("pyarrow")
    records = expected[:20] + [{"id": 99, "error": "text too long"}]
    table = records_to_arrow(records)
    assert [row_to_record(row) for row in table.to_pylist()] == records


# --- Ray Data ---------------------------------------------------------------------------


def blocks_of(ray, items: List[Dict[str, Any]], size: int) -> Any:
    """A dataset whose blocks are consecutive runs of ``size`` rows, so that Ray batches of
    ``size`` are the same nlp.pipe batches as in the reference."""
    import pandas as pd

    return ray.data.from_pandas(
        [pd.DataFrame(items[i : i + size]) for i in range(0, len(items), size)]
    )


def test_map_batches_equals_nlp_pipe(ray_cluster, model_path, texts, expected):
    from spacy_globalpointer.ray_annotate import GlobalPointerPredictor

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


def test_predictor_in_an_actor_numpy_batch(ray_cluster, nlp, model_path, texts):
    """One actor with 2 CPUs: torch gets 2 threads; a numpy batch gives the same records."""
    import numpy as np

    from spacy_globalpointer.ray_annotate import GlobalPointerPredictor

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


# --- the CLI ----------------------------------------------------------------------------


def write_input(path: Path, texts: List[str]) -> Dict[int, str]:
    """JSON lines with the good texts plus malformed lines; returns {line: reason prefix}."""
    bad_lines = {
        3: (b'{"text": "unterminated\n', "bad JSON"),
        10: (b'{"body": "no text field"}\n', "missing text field 'text'"),
        11: (b'{"text": 7}\n', "text is not a string (got int)"),
        20: (b'{"text": "' + b"y" * 600 + b'"}\n', "text too long (600 characters > 500)"),
        25: (b'{"text": "caf\xe9"}\n', "bad encoding"),
        30: (b'{"text": "lone \\udc80 surrogate"}\n', "bad encoding: unpaired surrogate"),
        31: (b"\n", "empty line"),
        40: (b'["not", "an", "object"]\n', "not a JSON object"),
    }
    good = iter(texts)
    with path.open("wb") as f:
        line = 1
        for text in good:
            while line in bad_lines:
                f.write(bad_lines[line][0])
                line += 1
            f.write(json.dumps({"text": text}).encode() + b"\n")
            line += 1
    return {line: reason for line, (_, reason) in bad_lines.items()}


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def cli_input(tmp_path_factory, texts):
    path = tmp_path_factory.mktemp("cli") / "input.jsonl"
    bad = write_input(path, texts)
    return path, bad


@pytest.fixture(scope="session")
def local_output(cli_input, model_path):
    path, _ = cli_input
    out = path.with_name("local.jsonl")
    argv = ["annotate", str(model_path), str(path), str(out), "--max-chars", "500", "--quiet"]
    assert main([*argv, "--batch-size", str(BATCH)]) == 0
    return out


def test_cli_local_matches_nlp_pipe(local_output, cli_input, texts, expected):
    _, bad = cli_input
    records = read_jsonl(local_output)
    assert len(records) == len(texts)
    assert [r["spans"] for r in records] == [r["spans"] for r in expected]
    # Default ids are line numbers: good lines are those not listed as bad, in order.
    good_lines = [n for n in range(1, len(texts) + len(bad) + 1) if n not in bad]
    assert [r["id"] for r in records] == good_lines


def test_cli_errors_have_line_numbers(local_output, cli_input, capsys):
    _, bad = cli_input
    errors = read_jsonl(Path(str(local_output) + ".errors.jsonl"))
    assert [e["line"] for e in errors] == sorted(bad)
    for err in errors:
        assert err["error"].startswith(bad[err["line"]]), err


def test_cli_ray_output_identical(ray_cluster, local_output, cli_input, model_path):
    path, _ = cli_input
    out = path.with_name("ray.jsonl")
    argv = ["annotate", str(model_path), str(path), str(out), "--max-chars", "500", "--quiet"]
    argv += ["--batch-size", str(BATCH), "--ray-address", "local", "--workers", "2"]
    argv += ["--ray-batch-size", "50"]
    assert main(argv) == 0
    assert out.read_bytes() == local_output.read_bytes()
    errors = Path(str(out) + ".errors.jsonl").read_bytes()
    assert errors == Path(str(local_output) + ".errors.jsonl").read_bytes()


def test_cli_parquet_round_trip(tmp_path, model_path, nlp, texts):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    ids = [f"doc-{i}" for i in range(40)]
    pq.write_table(pa.table({"doc": ids, "text": texts[:40]}), tmp_path / "in.parquet")
    argv = [
        "annotate",
        str(model_path),
        str(tmp_path / "in.parquet"),
        str(tmp_path / "out.parquet"),
    ]
    assert main([*argv, "--id-field", "doc", "--batch-size", str(BATCH), "--quiet"]) == 0
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    # the reference on the same 40 texts, so that nlp.pipe cuts the same batches
    reference = pipe_records(nlp, texts[:40])
    assert [row_to_record(r) for r in rows] == [
        {"id": ids[k], "spans": e["spans"]} for k, e in enumerate(reference)
    ]


# --- nlp.pipe(n_process=2) under spawn and forkserver ------------------------------------

N_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, sys

    def main():
        method, model, texts_path = sys.argv[1:4]
        # spaCy's multiprocessing pipe uses the default context, so this picks the method.
        multiprocessing.set_start_method(method)
        from spacy_globalpointer.annotate import doc_spans, load_pipeline
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


# --- the CLI: user mistakes and data safety ---------------------------------------------

# The subprocesses import the package the tests import (a worktree, not an installed copy).
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def run_cli(*args: Any, cwd: Path | None = None, timeout: float = 120) -> Any:
    """``python -m spacy_globalpointer annotate ARGS`` in a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "spacy_globalpointer", "annotate", *map(str, args), "--quiet"]
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the CLI hung for {timeout} s: {cmd}")


def assert_refused(proc: Any, *needles: str) -> None:
    """A clean refusal: non-zero exit, ``error: ...`` on stderr, no traceback."""
    assert proc.returncode != 0, proc.stderr
    assert "error: " in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


def write_texts(path: Path, texts: List[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def temp_files(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("how", ["same", "relative", "symlink", "errors"])
def test_cli_refuses_to_write_over_the_input(how, tmp_path, model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    before = corpus.read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(corpus)
    output = {
        "same": str(corpus),
        "relative": "sub/../corpus.jsonl",  # relative to cwd below
        "symlink": str(tmp_path / "link.jsonl"),
        "errors": str(tmp_path / "out.jsonl"),
    }[how]
    extra = ["--errors", "corpus.jsonl"] if how == "errors" else []
    # --overwrite does not make it allowed: it is the input, not an old output.
    proc = run_cli(model_path, corpus, output, *extra, "--overwrite", cwd=tmp_path)
    assert_refused(proc, "is the input file", str(corpus))
    assert corpus.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "link.jsonl", "sub"]


def test_cli_missing_input_touches_nothing(tmp_path, model_path):
    spans = tmp_path / "spans.jsonl"
    errors = tmp_path / "spans.jsonl.errors.jsonl"
    spans.write_text('{"id": 1, "spans": []}\n')
    errors.write_text('{"line": 2, "id": 2, "error": "empty line"}\n')
    proc = run_cli(model_path, tmp_path / "corpsu.jsonl", spans)
    assert_refused(proc, "input file not found", "corpsu.jsonl")
    assert spans.read_text() == '{"id": 1, "spans": []}\n'
    assert errors.read_text() == '{"line": 2, "id": 2, "error": "empty line"}\n'


def test_cli_refuses_errors_file_equal_to_output(tmp_path, model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    out = tmp_path / "out.jsonl"
    proc = run_cli(model_path, corpus, out, "--errors", out)
    assert_refused(proc, "the errors file", str(out))
    assert not out.exists()


def test_cli_surrogate_in_id_goes_to_error_file(tmp_path, model_path, texts):
    corpus = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"id": f"doc{i}", "text": texts[i]}) for i in range(6)]
    lines[2] = '{"id": "doc\\udc80", "text": "IL-2 activates T cells."}'  # a JSON escape
    corpus.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    proc = run_cli(model_path, corpus, out, "--id-field", "id")
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in read_jsonl(out)] == ["doc0", "doc1", "doc3", "doc4", "doc5"]
    # The error file is valid UTF-8 and gives back the exact id that was read.
    (error,) = read_jsonl(Path(str(out) + ".errors.jsonl"))
    assert error["line"] == 3
    assert error["id"] == "doc\udc80"
    assert error["error"].startswith("bad encoding: unpaired surrogate in id")


def test_unwritable_span_label_goes_to_error_file(tmp_path, model_path, texts, monkeypatch):
    import spacy_globalpointer.__main__ as cli

    def bad_label_for_second(*args: Any, **kwargs: Any) -> Any:
        records = annotate_batch(*args, **kwargs)
        records[1] = {"id": records[1]["id"], "spans": [[0, 1, "X\udc80", 0.5]]}
        return records

    monkeypatch.setattr(cli, "annotate_batch", bad_label_for_second)
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:4])
    out = tmp_path / "out.jsonl"
    counts = cli.annotate_file(str(model_path), corpus, out, progress=False)
    assert (counts["annotated"], counts["errors"]) == (3, 1)
    assert [r["id"] for r in read_jsonl(out)] == [1, 3, 4]
    (error,) = read_jsonl(Path(str(out) + ".errors.jsonl"))
    assert error["line"] == 2
    assert error["error"].startswith("bad encoding: unpaired surrogate in span label")


def test_cli_default_spans_key_is_the_pipelines(
    tmp_path, nested_model_path, texts, nested_expected
):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:50])
    out = tmp_path / "out.jsonl"
    proc = run_cli(nested_model_path, corpus, out, "--batch-size", BATCH)
    assert proc.returncode == 0, proc.stderr
    assert [r["spans"] for r in read_jsonl(out)] == [r["spans"] for r in nested_expected]


def test_cli_refuses_spans_key_nobody_writes(tmp_path, nested_model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    proc = run_cli(nested_model_path, corpus, tmp_path / "out.jsonl", "--spans-key", "sc")
    assert_refused(proc, "doc.spans['sc']", "keys written: 'nested'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


@pytest.fixture(scope="session")
def two_keys_model_path(tmp_path_factory) -> Path:
    """Two global_pointer components writing doc.spans["a"] and ["b"] (initialised only)."""
    nlp = spacy.blank("en")
    small = {"head_width": 8, "tok2vec": {"embed": {"width": 16}, "encode": {"width": 16}}}
    for key in ("a", "b"):
        nlp.add_pipe("global_pointer", name=f"gp_{key}", config={"spans_key": key, "model": small})
    text = TRAIN[0][0]
    ref = nlp.make_doc(text)
    ref.spans["a"] = [ref.char_span(0, 4, label="protein")]
    ref.spans["b"] = [ref.char_span(0, 4, label="protein")]
    nlp.initialize(lambda: [Example(nlp.make_doc(text), ref)])
    path = tmp_path_factory.mktemp("models") / "two_keys"
    nlp.to_disk(path)
    return path


def test_cli_several_spans_keys_need_spans_key(tmp_path, two_keys_model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    proc = run_cli(two_keys_model_path, corpus, tmp_path / "out.jsonl")
    assert_refused(proc, "several doc.spans keys ('a', 'b')", "--spans-key")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_cli_ray_default_spans_key(
    ray_cluster, tmp_path, nested_model_path, texts, nested_expected
):
    from spacy_globalpointer.__main__ import annotate_file

    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:50])
    out = tmp_path / "out.jsonl"
    # A real CLI process, as a driver of the tests' cluster.
    address = ray_cluster.get_runtime_context().gcs_address
    proc = run_cli(
        nested_model_path,
        corpus,
        out,
        "--batch-size",
        BATCH,
        "--ray-address",
        address,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["spans"] for r in read_jsonl(out)] == [r["spans"] for r in nested_expected]
    # A key nobody writes is refused before any actor starts (checked in a Ray task).
    with pytest.raises(AnnotateError, match="keys written: 'nested'"):
        annotate_file(
            str(nested_model_path),
            corpus,
            tmp_path / "sc.jsonl",
            spans_key="sc",
            ray_address="local",
            progress=False,
        )
    assert not (tmp_path / "sc.jsonl").exists()


@pytest.mark.parametrize(
    "option,value",
    [("--batch-size", "0"), ("--batch-size", "-4"), ("--threads", "0")],
)
def test_cli_refuses_non_positive_sizes(option, value, tmp_path, model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    # Before: ZeroDivisionError, an endless retry loop, a torch RuntimeError.
    proc = run_cli(model_path, corpus, tmp_path / "out.jsonl", option, value, timeout=60)
    assert_refused(proc, option, f"must be a positive integer, got {value}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


@pytest.mark.parametrize(
    "option", ["--workers", "--chunk-size", "--ray-batch-size", "--max-chars", "--cpus-per-worker"]
)
def test_parser_refuses_non_positive_sizes(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["annotate", "m", "in.jsonl", "out.jsonl", option, "0"])
    assert exit_info.value.code == 2
    assert "must be a positive" in capsys.readouterr().err


def test_annotate_file_refuses_non_positive_sizes(tmp_path, model_path, texts):
    from spacy_globalpointer.__main__ import annotate_file

    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        annotate_file(str(model_path), corpus, tmp_path / "out.jsonl", batch_size=0)
    with pytest.raises(ValueError, match="cpus_per_worker must be a positive number"):
        annotate_file(str(model_path), corpus, tmp_path / "out.jsonl", cpus_per_worker=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_cli_refuses_to_overwrite_unless_asked(tmp_path, model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    out = tmp_path / "out.jsonl"
    errors = tmp_path / "out.jsonl.errors.jsonl"
    out.write_text("old output\n")
    errors.write_text("old errors\n")
    # A model that cannot load: the refusal has to come before loading it.
    proc = run_cli(tmp_path / "no-such-model", corpus, out)
    assert_refused(proc, str(out), "exists", "--overwrite")
    assert out.read_text() == "old output\n"
    assert errors.read_text() == "old errors\n"
    proc = run_cli(model_path, corpus, out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in read_jsonl(out)] == [1, 2, 3, 4, 5]
    assert errors.read_text() == ""
    assert temp_files(tmp_path) == []


def test_cli_refuses_existing_errors_file(tmp_path, model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    errors = tmp_path / "errors.jsonl"
    errors.write_text("old errors\n")
    proc = run_cli(model_path, corpus, tmp_path / "out.jsonl", "--errors", errors)
    assert_refused(proc, str(errors), "exists", "--overwrite")
    assert errors.read_text() == "old errors\n"
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("previous", [True, False])
@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_failed_run_leaves_no_output(previous, failure, tmp_path, model_path, texts, monkeypatch):
    import spacy_globalpointer.__main__ as cli

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

    monkeypatch.setattr(cli, "annotate_batch", fail_on_third_chunk)
    with pytest.raises(failure):
        cli.annotate_file(
            str(model_path),
            corpus,
            out,
            batch_size=BATCH,
            chunk_size=BATCH,
            overwrite=True,
            progress=False,
        )
    assert len(calls) == 3
    assert temp_files(tmp_path) == []
    if previous:
        assert out.read_text() == "old output\n"
        assert errors.read_text() == "old errors\n"
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_cli_interrupted_run_leaves_no_output(tmp_path, model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts * 100)  # 20,000 texts: minutes
    out = tmp_path / "out.jsonl"
    out.write_text("old output\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "spacy_globalpointer", "annotate", str(model_path), str(corpus)]
    cmd += [
        str(out),
        "--overwrite",
        "--quiet",
        "--batch-size",
        str(BATCH),
        "--chunk-size",
        str(BATCH),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # Wait until it is writing: a temporary file, or (before the fix) the output itself.
        deadline = time.monotonic() + 120
        while not temp_files(tmp_path) and out.read_text() == "old output\n":
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.02)
        time.sleep(0.5)  # a few chunks
        assert proc.poll() is None, "the run finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        stderr = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert out.read_text() == "old output\n"
    assert temp_files(tmp_path) == []
    assert not Path(str(out) + ".errors.jsonl").exists()


def test_cli_accepts_utf8_bom(tmp_path, model_path, texts):
    corpus = tmp_path / "corpus.jsonl"
    write_texts(corpus, texts[:3])
    corpus.write_bytes(b"\xef\xbb\xbf" + corpus.read_bytes())
    out = tmp_path / "out.jsonl"
    proc = run_cli(model_path, corpus, out)
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in read_jsonl(out)] == [1, 2, 3]
    assert Path(str(out) + ".errors.jsonl").read_text() == ""


@pytest.mark.parametrize("which", ["output", "errors"])
def test_cli_missing_output_folder(which, tmp_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:3])
    missing = tmp_path / "missing"
    out = missing / "out.jsonl" if which == "output" else tmp_path / "out.jsonl"
    extra = ["--errors", missing / "errors.jsonl"] if which == "errors" else []
    # A model that cannot load: the folder has to be checked before loading it.
    proc = run_cli(tmp_path / "no-such-model", corpus, out, *extra)
    assert_refused(proc, "does not exist", str(missing))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_cli_model_that_cannot_load(tmp_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:3])
    proc = run_cli(tmp_path / "no-such-model", corpus, tmp_path / "out.jsonl")
    assert_refused(proc, "cannot load the pipeline", "no-such-model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]
