"""Fixtures shared by the batch annotation tests: trained pipelines, texts, the reference
records, a local Ray cluster and one local CLI run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
import spacy
from batch_testing import BATCH, TRAIN, make_texts, pipe_records, train_tiny, write_input
from spacy.language import Language
from spacy.training import Example

from spacy_globalpointer.batch.cli import main
from spacy_globalpointer.batch.core import load_pipeline


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
