"""Training through spaCy's own entry points (the CLI, entry points, transformers) and the
training-only settings end to end."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy
import pytest
import spacy
from gp_testing import NESTED_TRAIN, make_examples, train_pipeline
from spacy.tokens import DocBin

from spacy_globalpointer.model import wrapped_module

TRAIN_CONFIG = """
[paths]
train = null
dev = null

[nlp]
lang = "en"
pipeline = ["tok2vec", "global_pointer"]
batch_size = 16

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.Tok2Vec.v2"

[components.tok2vec.model.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 32
rows = [500, 500, 500, 500]
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
include_static_vectors = false

[components.tok2vec.model.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = 32
window_size = 1
maxout_pieces = 3
depth = 2

[components.global_pointer]
factory = "global_pointer"

[components.global_pointer.model]
@architectures = "spacy-globalpointer.GlobalPointer.v1"
head_width = 16
max_length = 8

[components.global_pointer.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = 32

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.dev}

[training]
max_steps = 40
eval_frequency = 20
patience = 0

[training.optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.005
"""


@pytest.mark.slow
def test_spacy_train_cli_writes_model_best_that_predicts(tmp_path: Path):
    nlp = spacy.blank("en")
    corpus = tmp_path / "train.spacy"
    DocBin(docs=[eg.reference for eg in make_examples(nlp)]).to_disk(corpus)
    (tmp_path / "base.cfg").write_text(TRAIN_CONFIG)
    run = [sys.executable, "-m", "spacy"]
    subprocess.run(run + ["init", "fill-config", "base.cfg", "config.cfg"], cwd=tmp_path, check=True)
    result = subprocess.run(
        run + ["train", "config.cfg", "--output", "out", "--paths.train", str(corpus), "--paths.dev", str(corpus)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trained = spacy.load(tmp_path / "out" / "model-best")
    assert trained.pipe_names == ["tok2vec", "global_pointer"]
    doc = trained(NESTED_TRAIN[0][0])
    assert "sc" in doc.spans
    assert len(doc.spans["sc"].attrs["scores"]) == len(doc.spans["sc"])


@pytest.mark.slow
def test_fresh_interpreter_finds_factory_without_import(tmp_path: Path):
    # Entry points register the factory: the script never imports spacy_globalpointer.
    script = textwrap.dedent(
        """
        import sys, spacy
        nlp = spacy.blank("en")
        nlp.add_pipe("global_pointer")
        nlp.get_pipe("global_pointer").add_label("ORG")
        nlp.initialize()
        nlp.to_disk(sys.argv[1])
        print(sorted(m for m in sys.modules if m.startswith("spacy_glob")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "p")], capture_output=True, text=True, check=True
    )
    assert "spacy_globalpointer" in out.stdout  # loaded by spaCy through the entry point
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, spacy; print(spacy.load(sys.argv[1]).pipe_names)", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "global_pointer" in loaded.stdout


def _tiny_bert(path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    words = sorted({w.strip(".,").lower() for text, _ in NESTED_TRAIN for w in text.split()} - {""})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + words
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(path)
    transformers.BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True).save_pretrained(path)


def test_transformer_listener_trains_and_predicts(tmp_path: Path):
    pytest.importorskip("spacy_transformers")
    _tiny_bert(tmp_path)
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": str(tmp_path),
                "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 16, "stride": 12},
                "tokenizer_config": {"use_fast": True},
            }
        },
    )
    nlp.add_pipe(
        "global_pointer",
        config={
            "model": {
                "head_width": 8,
                "tok2vec": {
                    "@architectures": "spacy-transformers.TransformerListener.v1",
                    "grad_factor": 1.0,
                    "pooling": {"@layers": "reduce_mean.v1"},
                },
            }
        },
    )
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    gp = nlp.get_pipe("global_pointer")
    assert gp.cfg["input_width"] == 16
    before = wrapped_module(gp.model.get_ref("head").layers[0]).qk.weight.detach().clone()
    losses = {}
    nlp.update(examples, sgd=optimizer, losses=losses)
    after = wrapped_module(gp.model.get_ref("head").layers[0]).qk.weight.detach()
    assert numpy.isfinite(losses["global_pointer"]) and losses["global_pointer"] > 0
    assert not bool((before == after).all())  # the head was trained through the listener
    doc = nlp(NESTED_TRAIN[0][0] + " " + NESTED_TRAIN[2][0])  # longer than one window
    assert "sc" in doc.spans
    assert len(doc.spans["sc"].attrs["scores"]) == len(doc.spans["sc"])


@pytest.mark.slow
def test_spacy_find_threshold_searches_probabilities(tmp_path: Path):
    """spacy find-threshold tries thresholds in [0, 1] and finds one that beats 0.5 on an
    under-trained pipeline; each trial's F equals nlp.evaluate at that threshold."""
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    gp = nlp.add_pipe("global_pointer")
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)

    def f_at(threshold: float) -> float:
        gp.cfg["threshold"] = threshold
        return nlp.evaluate(examples)["spans_sc_f"]

    # Train until a threshold other than 0.5 scores better (how soon depends on the head
    # and the BLAS build), so that there is something for find-threshold to find.
    for _ in range(20):
        nlp.update(examples, sgd=optimizer)
        if max(f_at(i / 10) for i in range(1, 10)) > f_at(0.5):
            break
    else:
        pytest.fail("no update count in 20 where a threshold beat 0.5")
    gp.cfg["threshold"] = 0.5
    nlp.to_disk(tmp_path / "model")
    dev = tmp_path / "dev.spacy"
    DocBin(docs=[eg.reference for eg in examples]).to_disk(dev)
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "find-threshold", str(tmp_path / "model"), str(dev),
         "global_pointer", "threshold", "spans_sc_f", "--n_trials", "11"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                rows[float(parts[0])] = float(parts[1])
            except ValueError:
                continue
    assert sorted(rows) == pytest.approx([i / 10 for i in range(11)])
    for threshold in (0.3, 0.5, 0.8):
        loaded = spacy.load(tmp_path / "model", config={"components": {"global_pointer": {"threshold": threshold}}})
        expected = loaded.evaluate(examples)["spans_sc_f"]
        assert min(rows.items(), key=lambda item: abs(item[0] - threshold))[1] == pytest.approx(expected, abs=1e-3)
    best = max(rows.values())
    assert best > rows[min(rows, key=lambda t: abs(t - 0.5))], rows
    assert "Best threshold" in result.stdout


def test_component_trains_with_smoothing_and_refuses_bad_settings(tmp_path):
    nlp, examples = train_pipeline({"boundary_smoothing": 0.1, "boundary_smoothing_distance": 1}, n_updates=60)
    assert nlp.get_pipe("global_pointer").cfg["boundary_smoothing"] == 0.1
    doc = nlp(NESTED_TRAIN[0][0])
    assert [(s.text, s.label_) for s in doc.spans["sc"]] == [
        ("University of Cambridge", "ORG"), ("Cambridge", "GPE"), ("England", "GPE")]
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    assert reloaded.config["components"]["global_pointer"]["boundary_smoothing"] == 0.1
    # The smoothed loss at the same scores is above the hard one (mass off the gold).
    pipe = nlp.get_pipe("global_pointer")
    scores = pipe.model.predict([eg.predicted for eg in make_examples(nlp)])
    smoothed = pipe.get_loss(make_examples(nlp), scores)[0]
    pipe.cfg["boundary_smoothing"] = 0.0
    hard = pipe.get_loss(make_examples(nlp), scores)[0]
    assert smoothed > hard
    pipe.cfg["boundary_smoothing"] = -0.5  # edited on the live component: checked when used
    with pytest.raises(ValueError, match=r"'global_pointer': boundary_smoothing in cfg must be a share"):
        pipe.get_loss(make_examples(nlp), scores)
    for key, value, match in [("boundary_smoothing", 1.0, r"boundary_smoothing .* must be a share in \[0, 1\).*1\.0"),
                              ("boundary_smoothing", "0.1", "boundary_smoothing .* got '0.1'"),
                              ("boundary_smoothing_distance", 0, "boundary_smoothing_distance .* at least 1, got 0")]:
        blank = spacy.blank("en")
        with pytest.raises(ValueError, match=match):
            blank.add_pipe("global_pointer", config={key: value})
