"""Helpers of the batch annotation tests: a tiny trained pipeline, texts, the reference
records, and running the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import spacy
from spacy.language import Language
from spacy.training import Example
from thinc.api import fix_random_seed

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
    """A few updates of global_pointer on three sentences, saved to ``path``.

    Seeded: unseeded, how many spans the model predicts depended on the tests run before it,
    and the fixtures' "it predicts something" checks could fail by chance.
    """
    fix_random_seed(0)
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


# The subprocesses import the package the tests import (a worktree, not an installed copy).
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


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


def writing_output(folder: Path, output: str = "out.jsonl") -> bool:
    """A run is writing lines: its temporary output (made before the model loads) is not empty."""
    return any((folder / t).stat().st_size for t in temp_files(folder) if t.startswith(f".{output}."))
