"""Broken pipeline directories fail loudly, naming the file; spacy train resumes from model-last."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy
import pytest
import spacy
import srsly
from gp_testing import NESTED_TRAIN, interruptible, make_examples
from spacy.tokens import DocBin

COMPONENT = "global_pointer"


@pytest.fixture(scope="module")
def saved(trained_nlp, tmp_path_factory) -> Path:
    nlp, _ = trained_nlp
    path = tmp_path_factory.mktemp("saved") / "pipeline"
    nlp.to_disk(path)
    return path


def edit_json(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(component: Path) -> None:
        data = json.loads((component / name).read_text())
        change(data)
        (component / name).write_text(json.dumps(data))

    return edit


def edit_config(old: str, new: str) -> Callable[[Path], None]:
    def edit(component: Path) -> None:
        config = component.parent / "config.cfg"
        text = config.read_text()
        assert old in text
        config.write_text(text.replace(old, new, 1))

    return edit


def truncate(component: Path) -> None:
    data = (component / "model").read_bytes()
    (component / "model").write_bytes(data[: len(data) // 2])


def flip_bytes(component: Path) -> None:
    data = bytearray((component / "model").read_bytes())
    data[:64] = bytes(64)  # the msgpack header: node structure unreadable
    (component / "model").write_bytes(bytes(data))


FAULTS = {
    "model missing": (lambda c: (c / "model").unlink(), FileNotFoundError, "model", "is missing"),
    "cfg missing": (lambda c: (c / "cfg").unlink(), FileNotFoundError, "cfg", "is missing"),
    "directory missing": (lambda c: shutil.rmtree(c), FileNotFoundError, "cfg", "is missing"),
    "model truncated": (truncate, ValueError, "model", "truncated or corrupted"),
    "model empty": (lambda c: (c / "model").write_bytes(b""), ValueError, "model", "truncated or corrupted"),
    "model overwritten": (flip_bytes, ValueError, "model", "truncated or corrupted"),
    "cfg truncated": (lambda c: (c / "cfg").write_text((c / "cfg").read_text()[:20]), ValueError, "cfg", "not valid JSON"),
    "cfg not an object": (lambda c: (c / "cfg").write_text("[1, 2]"), ValueError, "cfg", "'labels' list"),
    "one label more": (edit_json("cfg", lambda d: d["labels"].append("EXTRA")), ValueError, "model", "dimension 'nO'"),
    "labels swapped": (edit_json("cfg", lambda d: d["labels"].reverse()), ValueError, "model", r"trained for labels \['GPE', 'ORG'\].*lists \['ORG', 'GPE'\]"),
    "label renamed": (edit_json("cfg", lambda d: d["labels"].__setitem__(0, "LOC")), ValueError, "model", "do not belong together"),
    "input width": (edit_json("cfg", lambda d: d.__setitem__("input_width", 64)), ValueError, "model", "dimension 'nI'"),
    "head width": (edit_config("head_width = 64", "head_width = 32"), ValueError, "model", "size mismatch"),
    "efficient": (edit_config("efficient = true", "efficient = false"), ValueError, "model", "bias"),
    "rope": (edit_config("rope = true", "rope = false"), ValueError, "model", "saved with rope=True"),
    "tok2vec width": (edit_config("width = 96", "width = 64"), ValueError, "model", "change dimension"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_broken_component_directory_names_the_file(saved, tmp_path, fault):
    mutate, error, filename, match = FAULTS[fault]
    path = tmp_path / "pipeline"
    shutil.copytree(saved, path)
    mutate(path / COMPONENT)
    with pytest.raises(error, match=match) as caught:
        spacy.load(path)
    assert str(path / COMPONENT / filename) in str(caught.value)
    assert f"'{COMPONENT}'" in str(caught.value)


def test_intact_copy_loads_and_predicts_the_same(saved, trained_nlp):
    nlp, _ = trained_nlp
    loaded = spacy.load(saved)
    text = NESTED_TRAIN[0][0]
    doc_loaded, doc = loaded(text), nlp(text)
    assert [(s.start, s.end, s.label_) for s in doc_loaded.spans["sc"]] == [
        (s.start, s.end, s.label_) for s in doc.spans["sc"]
    ]
    assert len(doc.spans["sc"]) == 3


def test_corrupted_bytes_raise_value_error(trained_nlp):
    nlp, _ = trained_nlp
    data = nlp.get_pipe(COMPONENT).to_bytes()
    fresh = spacy.blank("en")
    gp = fresh.add_pipe(COMPONENT)
    with pytest.raises(ValueError, match=rf"Cannot load '{COMPONENT}' from bytes: .*truncated or corrupted"):
        gp.from_bytes(data[: len(data) // 2])
    parts = srsly.msgpack_loads(data)
    del parts["model"]
    with pytest.raises(ValueError, match=r"no \['model'\] in them"):
        gp.from_bytes(srsly.msgpack_dumps(parts))


def test_band_settings_from_the_load_config_apply(saved):
    """max_length is a runtime choice: the saved weights must not override the config's."""
    loaded = spacy.load(saved, config={"components": {COMPONENT: {"model": {"max_length": 2}}}})
    gp = loaded.get_pipe(COMPONENT)
    assert gp.max_length == 2
    doc = loaded(NESTED_TRAIN[0][0])
    assert gp.predict([doc])[0].shape[1] == 2
    assert all(len(span) <= 2 for span in doc.spans["sc"])
    unbounded = spacy.load(saved)(NESTED_TRAIN[0][0])
    assert any(len(span) == 3 for span in unbounded.spans["sc"])


# ---------------------------------------------------------------- spacy train: interrupt and resume

TINY_MODEL = {
    "max_length": 8,
    "head_width": 16,
    "tok2vec": {"embed": {"width": 32, "rows": [500, 100, 250, 100]}, "encode": {"width": 32, "depth": 1}},
}


def write_tiny_config(tmp_path: Path, **training: object) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe(COMPONENT, config={"model": TINY_MODEL})
    corpus = tmp_path / "train.spacy"
    DocBin(docs=[eg.reference for eg in make_examples(nlp)]).to_disk(corpus)
    config = nlp.config
    config["paths"]["train"] = config["paths"]["dev"] = str(corpus)
    config["training"].update({"eval_frequency": 2, **training})
    path = tmp_path / "base.cfg"
    config.to_disk(path)
    return path


def spacy_train(config: Path, output: Path, *overrides: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "spacy", "train", str(config), "--output", str(output), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=interruptible,
    )


def raw_scores(path: Path) -> list:
    nlp = spacy.load(path)
    gp = nlp.get_pipe(COMPONENT)
    return gp.predict([nlp.make_doc(text) for text, _ in NESTED_TRAIN])


@pytest.mark.slow
def test_interrupted_spacy_train_resumes_from_model_last(tmp_path):
    config = write_tiny_config(tmp_path, max_steps=100_000)
    first = tmp_path / "first"
    process = spacy_train(config, first)
    checkpoint = first / "model-last" / COMPONENT / "model"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[0]
    process.send_signal(signal.SIGINT)  # as Ctrl-C: spaCy saves model-last on the way out
    log = process.communicate(timeout=120)[0]
    assert process.returncode != 0
    model_last = first / "model-last"
    interrupted = raw_scores(model_last)
    labels = spacy.load(model_last).get_pipe(COMPONENT).labels
    assert labels == ("GPE", "ORG"), log

    # The spaCy way to resume: source the trained component from model-last.
    resume_config = spacy.util.load_config(config)
    resume_config["components"][COMPONENT] = {"source": str(model_last)}
    resume_path = tmp_path / "resume.cfg"
    resume_config.to_disk(resume_path)
    resumed = tmp_path / "resumed"
    process = spacy_train(
        resume_path, resumed, "--training.max_steps", "2", "--training.optimizer.learn_rate", "1e-9"
    )
    log = process.communicate(timeout=180)[0]
    assert process.returncode == 0, log
    # with a vanishing learning rate, resuming keeps the interrupted weights: no re-initialization
    for before, after in zip(interrupted, raw_scores(resumed / "model-last")):
        numpy.testing.assert_allclose(after, before, atol=1e-4)
    assert spacy.load(resumed / "model-last").get_pipe(COMPONENT).labels == labels
