"""debug-data: the span report on hand-made examples with known counts, and the command."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example

from spacy_globalpointer.batch.cli import main, parse_overrides
from spacy_globalpointer.corpus_analysis import analyse_corpus, span_pairs

KEY = "sc"
MAX_LENGTH = 3


def make_docs(nlp: Language) -> List[Doc]:
    """Reference docs with one of each problem; ``nlp.make_doc`` gives the predicted tokens."""

    def spans(doc: Doc, *offsets) -> Doc:
        doc.spans[KEY] = [doc.char_span(s, e, label=label) for s, e, label in offsets]
        return doc

    make = nlp.make_doc
    # The reference cuts "NewYork" into "New" + "York"; the tokenizer keeps one token.
    new_york = Doc(
        nlp.vocab,
        words=["Visit", "New", "York", "now", "."],
        spaces=[True, False, True, False, False],
    )
    long_doc = spans(make("one two three four five six"), (0, 23, "X"))  # 5 tokens
    long_doc.spans[KEY] = [*long_doc.spans[KEY], Span(long_doc, 2, 2, label="X")]  # empty
    unannotated = make("No annotation here.")
    assert KEY not in unannotated.spans
    return [
        # nested: "England" inside "Bank of England"
        spans(make("The Bank of England met."), (4, 19, "ORG"), (12, 19, "GPE")),
        # crossing: "Alpha Beta Gamma" and "Beta Gamma Delta"
        spans(make("Alpha Beta Gamma Delta"), (0, 16, "X"), (6, 22, "X")),
        spans(new_york, (6, 9, "GPE")),  # misaligned: "New"
        spans(make("Hello  world here."), (6, 12, "X")),  # " world": starts on whitespace
        long_doc,
        spans(make("Nothing.")),  # an empty group: a doc with no entities
        unannotated,
    ]


@pytest.fixture(scope="module")
def docs() -> List[Doc]:
    return make_docs(spacy.blank("en"))


def examples_of(docs: List[Doc]) -> List[Example]:
    nlp = spacy.blank("en")
    return [Example(nlp.make_doc(doc.text), doc) for doc in docs]


def test_span_pairs():
    extents = [(0, 10, "A"), (0, 10, "B"), (2, 5, "C"), (8, 12, "D"), (2, 5, "C"), (3, 3, "E")]
    # A and B: same extent; both contain C (nested) and cross D; C and D do not meet.
    assert span_pairs(extents) == {"nested": 2, "crossing": 2, "same_extent": 1, "duplicates": 1}


def test_analyse_corpus_counts(docs):
    report = analyse_corpus(examples_of(docs), KEY, MAX_LENGTH)
    assert report["docs"] == 7
    assert report["unannotated_docs"] == 1
    assert report["docs_without_spans"] == 1
    assert report["spans"] == 8
    assert report["labels"] == {"X": 5, "GPE": 2, "ORG": 1}
    # Learnable: Bank of England (3), England (1), Alpha.. (3), Beta.. (3), one..five (5).
    assert report["learnable_spans"] == 5
    assert report["length_counts"] == {1: 1, 3: 3, 5: 1}
    assert report["longest"] == 5
    assert report["longer_than_max_length"] == 1
    assert report["suggested_max_length"] == 5  # 99.5% of [1, 3, 3, 3, 5]
    assert report["pairs"] == {"nested": 1, "crossing": 1, "same_extent": 0, "duplicates": 0}
    assert report["skipped"] == {"empty": 1, "misaligned": 1, "whitespace": 1, "too_long": 1}
    shown = report["examples"]
    assert [(e["doc"], e["text"], e["tokens"]) for e in shown["misaligned"]] == [
        (2, "New", ["NewYork"])
    ]
    assert [(e["doc"], e["text"]) for e in shown["whitespace"]] == [(3, " world")]
    assert [e["text"] for e in shown["longer_than_max_length"]] == ["one two three four five"]
    assert shown["crossing"] == [
        {"doc": 1, "spans": [[0, 16, "X", "Alpha Beta Gamma"], [6, 22, "X", "Beta Gamma Delta"]]}
    ]


def test_too_long_follows_the_band(docs):
    # No max_length: nothing is too long, until score_budget narrows the band.
    report = analyse_corpus(examples_of(docs), KEY, None)
    assert report["skipped"]["too_long"] == report["longer_than_max_length"] == 0
    # 3 labels: a budget of 36 scores spans of up to 36 // (6 x 3) = 2 tokens on the two
    # 6-token docs, so "Bank of England" (3) and "one two three four five" (5) are too long.
    narrow = analyse_corpus(examples_of(docs), KEY, None, score_budget=36)
    assert narrow["skipped"]["too_long"] == 2
    # Span context's values share the budget: 3 labels + 3 values a cell, a budget of 72
    # gives 72 // (6 x 6) = 2 tokens again (without them, 4: only the 5-token span too long).
    assert analyse_corpus(examples_of(docs), KEY, None, score_budget=72)["skipped"]["too_long"] == 1
    context = analyse_corpus(examples_of(docs), KEY, None, score_budget=72, extra_cell_values=3)
    assert context["skipped"]["too_long"] == 2


def test_parse_overrides():
    args = ["--paths.train", "a.spacy", "--training.max_steps=5", "--nlp.flag", "--x.y", "null"]
    assert parse_overrides(args) == {
        "paths.train": "a.spacy",
        "training.max_steps": 5,
        "nlp.flag": True,
        "x.y": None,
    }
    with pytest.raises(ValueError, match="unrecognized argument '--jsn'"):
        parse_overrides(["--jsn", "x"])


CONFIG = """
[paths]
train = null
dev = null

[nlp]
lang = "en"
pipeline = ["global_pointer"]

[components]

[components.global_pointer]
factory = "global_pointer"

[components.global_pointer.model]
@architectures = "spacy-globalpointer.GlobalPointer.v1"
head_width = 8
max_length = 3

[components.global_pointer.model.tok2vec]
@architectures = "spacy.Tok2Vec.v2"

[components.global_pointer.model.tok2vec.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 16
rows = [100, 100, 100, 100]
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
include_static_vectors = false

[components.global_pointer.model.tok2vec.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = 16
window_size = 1
maxout_pieces = 3
depth = 1

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.dev}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, docs) -> Path:
    folder = tmp_path_factory.mktemp("debug_data")
    (folder / "config.cfg").write_text(CONFIG)
    DocBin(docs=docs, store_user_data=False).to_disk(folder / "train.spacy")
    DocBin(docs=docs[:2]).to_disk(folder / "dev.spacy")
    return folder


@pytest.mark.slow
def test_debug_data_command(project):
    env = dict(os.environ)
    # The subprocess imports the package the tests import (a worktree, not an installed copy).
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "spacy_globalpointer", "debug-data", "config.cfg"]
    cmd += ["--paths.train", "train.spacy", "--paths.dev", "dev.spacy", "--json", "report.json"]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "global_pointer 'global_pointer': doc.spans['sc'], max_length 3" in out
    assert "train: 7 docs, 8 spans" in out
    assert "nested pairs: 1, crossing pairs: 1" in out
    assert "! 1 doc(s) without doc.spans['sc']" in out
    assert "do not align with the predicted tokens" in out
    assert "e.g. misaligned: doc 2: 6-9 GPE 'New', tokens ['NewYork']" in out
    report = json.loads((project / "report.json").read_text())
    assert (report["component"], report["spans_key"], report["max_length"]) == (
        "global_pointer",
        "sc",
        3,
    )
    train, dev = report["train"], report["dev"]
    assert train["skipped"] == {"empty": 1, "misaligned": 1, "whitespace": 1, "too_long": 1}
    assert train["length_counts"] == {"1": 1, "3": 3, "5": 1}
    assert (train["longer_than_max_length"], train["suggested_max_length"]) == (1, 5)
    assert (dev["docs"], dev["pairs"]["nested"], dev["pairs"]["crossing"]) == (2, 1, 1)
    assert report["dev_labels_not_in_train"] == []


def test_debug_data_refusals(project, capsys):
    config = str(project / "config.cfg")
    # paths left null: spaCy's reader refuses, and the command says so without a traceback
    assert main(["debug-data", config]) == 2
    assert "error: " in capsys.readouterr().err
    paths = [
        "--paths.train",
        str(project / "train.spacy"),
        "--paths.dev",
        str(project / "dev.spacy"),
    ]
    assert main(["debug-data", config, *paths, "--component", "ner"]) == 2
    assert "'ner' is not a global_pointer component" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["debug-data", config, "stray"])
    assert exit_info.value.code == 2


# What training is sure to fail on, reports on the corpus as written, and errors that
# name the path.

AUGMENTED = CONFIG + """
[corpora.train.augmenter]
@augmenters = "spacy-globalpointer.whitespace_augmenter.v1"
level = 1.0
per_space = 1.0
"""
LISTED = CONFIG + """
[initialize]

[initialize.components]

[initialize.components.global_pointer]

[initialize.components.global_pointer.labels]
@readers = "spacy.read_labels.v1"
path = "labels.json"
"""


@pytest.fixture(scope="module")
def more(project) -> Path:
    """The project's folder with more configs and corpora that training cannot use."""
    (project / "augmented.cfg").write_text(AUGMENTED)
    (project / "listed.cfg").write_text(LISTED)
    (project / "labels.json").write_text(json.dumps(["ORG", "X"]))
    DocBin().to_disk(project / "empty.spacy")
    (project / "train.jsonl").write_text(json.dumps({"text": "Bank of England"}) + "\n")
    (project / "no_spacy_files").mkdir()
    (project / "no_spacy_files" / "notes.txt").write_text("nothing here\n")
    (project / "not_a_docbin.spacy").write_text("this is not a DocBin\n")
    return project


def run_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The real command in a subprocess, in folder."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "spacy_globalpointer", "debug-data", *args]
    return subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=300, env=env)


def paths(folder: Path, train: str = "train.spacy", dev: str = "dev.spacy") -> List[str]:
    return ["--paths.train", str(folder / train), "--paths.dev", str(folder / dev)]


@pytest.mark.slow
def test_command_fails_on_labels_that_initialize_does_not_list(more):
    proc = run_in(more, "listed.cfg", "--paths.train", "train.spacy", "--paths.dev", "dev.spacy")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "labels from [initialize]: ORG, X" in proc.stdout
    assert "! training will fail: train labels ['GPE'] are not listed in " \
        "[initialize.components.global_pointer] labels" in proc.stdout


@pytest.mark.slow
def test_command_fails_on_an_empty_train_corpus(more):
    proc = run_in(more, "config.cfg", "--paths.train", "empty.spacy", "--paths.dev", "dev.spacy")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "train: 0 docs, 0 spans" in proc.stdout
    assert "! training will fail: the train corpus" in proc.stdout and "gave 0 docs" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,named",
    [(["--paths.train", "not_a_docbin.spacy", "--paths.dev", "dev.spacy"], "not_a_docbin.spacy"),
     (["--paths.train", "train.spacy", "--paths.dev", "dev.spacy", "--json", "missing/report.json"],
      "missing/report.json")],
)
def test_command_errors_name_the_path_without_a_traceback(more, args, named):
    proc = run_in(more, "config.cfg", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and named in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_command_reports_the_corpus_as_written_with_an_augmenter(more):
    proc = run_in(more, "augmented.cfg", *paths(more), "--json", "augmented.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "train: the config's augmenter is off here: the corpus as written" in proc.stdout
    # the examples it shows are the file's own text and offsets
    assert "e.g. misaligned: doc 2: 6-9 GPE 'New', tokens ['NewYork']" in proc.stdout
    assert main(["debug-data", str(more / "config.cfg"), *paths(more), "--json", str(more / "plain.json")]) == 0
    augmented = json.loads((more / "augmented.json").read_text())
    plain = json.loads((more / "plain.json").read_text())
    assert augmented.pop("augmenter_switched_off") == ["train"]
    assert plain.pop("augmenter_switched_off") == []
    assert augmented == plain


def test_an_augmenter_changes_nothing_in_the_report_run_after_run(more, capsys):
    outputs = []
    for _ in range(2):
        assert main(["debug-data", str(more / "augmented.cfg"), *paths(more)]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert main(["debug-data", str(more / "config.cfg"), *paths(more)]) == 0
    plain = capsys.readouterr().out
    off = "  train: the config's augmenter is off here: the corpus as written\n"
    assert off in outputs[0] and outputs[0].replace(off, "") == plain


@pytest.mark.parametrize("train", ["empty.spacy", "train.jsonl", "no_spacy_files"])
def test_a_train_corpus_of_no_docs_fails(more, capsys, train):
    assert main(["debug-data", str(more / "config.cfg"), *paths(more, train=train)]) == 1
    out = capsys.readouterr().out
    assert f"! training will fail: the train corpus ({more / train}) gave 0 docs" in out


def test_labels_listed_in_the_config(more, capsys, tmp_path):
    config = str(more / "listed.cfg")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(["GPE", "ORG", "X"]))
    override = ["--initialize.components.global_pointer.labels.path", str(labels)]
    assert main(["debug-data", config, *paths(more), *override]) == 0
    assert "training will fail" not in capsys.readouterr().out
    labels.write_text(json.dumps(["ORG"]))
    assert main(["debug-data", config, *paths(more), *override]) == 1
    assert "train labels ['GPE', 'X'] are not listed" in capsys.readouterr().out
    # a labels file that is not there: spaCy's reader gives None, initialize reads the corpus
    assert main(["debug-data", config, *paths(more), *override[:1], str(tmp_path / "none.json")]) == 0


def test_a_train_corpus_with_no_labels_fails(more, capsys):
    assert main(["debug-data", str(more / "config.cfg"), *paths(more), "--components.global_pointer.spans_key", "other"]) == 1
    assert "! training will fail: no labels" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["a folder", "a missing folder"])
def test_a_json_path_that_cannot_be_written(more, capsys, where):
    target = more / "no_spacy_files" if where == "a folder" else more / "missing" / "report.json"
    assert main(["debug-data", str(more / "config.cfg"), *paths(more), "--json", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(target) in err


def test_a_train_file_that_is_not_a_docbin(more, capsys):
    assert main(["debug-data", str(more / "config.cfg"), *paths(more, train="not_a_docbin.spacy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read the train corpus") and "not_a_docbin.spacy" in err


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_a_non_finite_setting_is_named(more, capsys, value):
    config = CONFIG.replace("[components.global_pointer]\n",
                            f"[components.global_pointer]\nthreshold = {value}\n", 1)
    assert config != CONFIG
    (more / "nan.cfg").write_text(config)
    assert main(["debug-data", str(more / "nan.cfg"), *paths(more)]) == 2
    err = capsys.readouterr().err
    assert f"components.global_pointer.threshold = {float(value)}" in err, err
    assert err.count("\n") == 1  # one error line, not spaCy's dump of the whole config
