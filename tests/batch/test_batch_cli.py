"""The command line (batch/cli.py): local and Ray runs, user mistakes and data safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_testing import (
    BATCH,
    PACKAGE_ROOT,
    assert_refused,
    pipe_records,
    read_jsonl,
    run_cli,
    temp_files,
    write_texts,
    writing_output,
)
from gp_testing import interruptible

from spacy_globalpointer.batch.arrow import row_to_record
from spacy_globalpointer.batch.cli import build_parser, main
from spacy_globalpointer.batch.core import AnnotateError
from spacy_globalpointer.batch.engines import RayOptions
from spacy_globalpointer.batch.run import AnnotateOptions, annotate_file


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


@pytest.mark.slow
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


# --- user mistakes and data safety -------------------------------------------------------


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_missing_input_touches_nothing(tmp_path, model_path):
    spans = tmp_path / "spans.jsonl"
    errors = tmp_path / "spans.jsonl.errors.jsonl"
    spans.write_text('{"id": 1, "spans": []}\n')
    errors.write_text('{"line": 2, "id": 2, "error": "empty line"}\n')
    proc = run_cli(model_path, tmp_path / "corpsu.jsonl", spans)
    assert_refused(proc, "input file not found", "corpsu.jsonl")
    assert spans.read_text() == '{"id": 1, "spans": []}\n'
    assert errors.read_text() == '{"line": 2, "id": 2, "error": "empty line"}\n'


@pytest.mark.slow
def test_cli_refuses_errors_file_equal_to_output(tmp_path, model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    out = tmp_path / "out.jsonl"
    proc = run_cli(model_path, corpus, out, "--errors", out)
    assert_refused(proc, "the errors file", str(out))
    assert not out.exists()


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_default_spans_key_is_the_pipelines(
    tmp_path, nested_model_path, texts, nested_expected
):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:50])
    out = tmp_path / "out.jsonl"
    proc = run_cli(nested_model_path, corpus, out, "--batch-size", BATCH)
    assert proc.returncode == 0, proc.stderr
    assert [r["spans"] for r in read_jsonl(out)] == [r["spans"] for r in nested_expected]


@pytest.mark.slow
def test_cli_refuses_spans_key_nobody_writes(tmp_path, nested_model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    proc = run_cli(nested_model_path, corpus, tmp_path / "out.jsonl", "--spans-key", "sc")
    assert_refused(proc, "doc.spans['sc']", "keys written: 'nested'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


@pytest.mark.slow
def test_cli_several_spans_keys_need_spans_key(tmp_path, two_keys_model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    proc = run_cli(two_keys_model_path, corpus, tmp_path / "out.jsonl")
    assert_refused(proc, "several doc.spans keys ('a', 'b')", "--spans-key")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


@pytest.mark.slow
def test_cli_ray_default_spans_key(
    ray_cluster, tmp_path, nested_model_path, texts, nested_expected
):
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
            AnnotateOptions(spans_key="sc", ray=RayOptions(address="local"), progress=False),
        )
    assert not (tmp_path / "sc.jsonl").exists()


@pytest.mark.slow
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


@pytest.mark.slow
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
    # No errors in this run: the old errors file, which described the old output, is gone.
    assert not errors.exists()
    assert temp_files(tmp_path) == []


@pytest.mark.slow
def test_cli_refuses_existing_errors_file(tmp_path, model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:5])
    errors = tmp_path / "errors.jsonl"
    errors.write_text("old errors\n")
    proc = run_cli(model_path, corpus, tmp_path / "out.jsonl", "--errors", errors)
    assert_refused(proc, str(errors), "exists", "--overwrite")
    assert errors.read_text() == "old errors\n"
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_cli_interrupted_run_leaves_no_output(tmp_path, model_path, texts):
    # 200,000 texts: about a minute of work here, far more than any machine does in the half
    # second between the first lines written and the interrupt
    corpus = write_texts(tmp_path / "corpus.jsonl", texts * 1000)
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
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=interruptible)
    try:
        # Wait until it is writing lines: the temporary output is made before the model loads,
        # and a Ctrl-C that lands in the imports can be lost (Python drops an exception raised
        # in a destructor), so the run would finish; or (before the fix) the output itself.
        deadline = time.monotonic() + 120
        while not writing_output(tmp_path) and out.read_text() == "old output\n":
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


@pytest.mark.slow
def test_cli_accepts_utf8_bom(tmp_path, model_path, texts):
    corpus = tmp_path / "corpus.jsonl"
    write_texts(corpus, texts[:3])
    corpus.write_bytes(b"\xef\xbb\xbf" + corpus.read_bytes())
    out = tmp_path / "out.jsonl"
    proc = run_cli(model_path, corpus, out)
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in read_jsonl(out)] == [1, 2, 3]
    assert not Path(str(out) + ".errors.jsonl").exists()  # written only when there are errors


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_model_that_cannot_load(tmp_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:3])
    proc = run_cli(tmp_path / "no-such-model", corpus, tmp_path / "out.jsonl")
    assert_refused(proc, "cannot load the pipeline", "no-such-model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_cli_refuses_unknown_arguments(capsys):
    # main() lets debug-data through with config overrides; annotate still takes none.
    with pytest.raises(SystemExit) as exit_info:
        main(["annotate", "m", "in.jsonl", "out.jsonl", "--paths.train", "x"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --paths.train x" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--workers", "2"], "--workers needs --ray-address"),
        (["--cpus-per-worker", "2"], "--cpus-per-worker needs --ray-address"),
        (["--ray-batch-size", "64"], "--ray-batch-size needs --ray-address"),
        (["--ray-address", "local", "--threads", "2"], "--threads sets the torch threads"),
    ],
)
def test_options_of_the_other_engine_are_refused_not_ignored(extra, message):
    from spacy_globalpointer.batch.cli import annotate_options

    args = build_parser().parse_args(["annotate", "m", "in.jsonl", "out.jsonl", *extra])
    with pytest.raises(AnnotateError, match=message):
        annotate_options(args)


def test_ray_options_default_when_not_given():
    from spacy_globalpointer.batch.cli import annotate_options

    args = build_parser().parse_args(["annotate", "m", "in.jsonl", "out.jsonl", "--ray-address", "local"])
    ray = annotate_options(args).ray
    assert (ray.workers, ray.cpus_per_worker, ray.batch_size) == (1, 1.0, 256)
    assert annotate_options(build_parser().parse_args(["annotate", "m", "i", "o"])).ray is None
