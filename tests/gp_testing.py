"""Test helpers: tiny nested-NER training sets built from character offsets."""

import math
import signal
from typing import Dict, List, Tuple

import numpy
import spacy
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

# (text, [(start_char, end_char, label)]): nested ORG/GPE, a doc with no entity, an empty text.
NESTED_TRAIN: List[Tuple[str, List[Tuple[int, int, str]]]] = [
    ("The University of Cambridge is in England.", [(4, 27, "ORG"), (18, 27, "GPE"), (34, 41, "GPE")]),
    ("Bank of England raised rates.", [(0, 15, "ORG"), (8, 15, "GPE")]),
    ("Apple opened an office in New York City.", [(0, 5, "ORG"), (26, 39, "GPE")]),
    ("Nothing to see here.", []),
    ("", []),
]


def make_examples(nlp: Language, data=NESTED_TRAIN, key: str = "sc") -> List[Example]:
    examples = []
    for text, spans in data:
        reference = nlp.make_doc(text)
        reference.spans[key] = [reference.char_span(s, e, label=label) for s, e, label in spans]
        examples.append(Example(nlp.make_doc(text), reference))
    return examples


def train_pipeline(config: dict | None = None, n_updates: int = 50, seed: int = 0) -> Tuple[Language, List[Example]]:
    spacy.util.fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("global_pointer", config=config or {})
    examples = make_examples(nlp, key=(config or {}).get("spans_key", "sc"))
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(n_updates):
        nlp.update(examples, sgd=optimizer)
    return nlp, examples


def interruptible() -> None:
    """Popen preexec_fn: the child takes SIGINT as Ctrl-C. A shell starting a job in the
    background (CI under nohup or `&`) sets SIGINT to ignored, and a Python child that
    inherits the ignore never raises KeyboardInterrupt: the tests that interrupt a run
    would then see it finish."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def naive_soft_loss(scores: numpy.ndarray, valid: numpy.ndarray, targets: Dict[Tuple[int, int, int], float]) -> float:
    """Sum over labels of log(1 + sum t e^-s) + log(1 + sum (1 - t) e^s) over the valid
    spans (a loop over every cell), t from {(start, offset, label): t}, 0 elsewhere; with
    every t 0 or 1, the plain loss: positives where t = 1, negatives where t = 0."""
    n, width, n_labels = scores.shape
    total = 0.0
    for a in range(n_labels):
        pos = neg = 0.0
        for i in range(n):
            for d in range(width):
                if not valid[i, d]:
                    continue
                t = targets.get((i, d, a), 0.0)
                s = float(scores[i, d, a])
                pos += t * math.exp(-s)
                neg += (1 - t) * math.exp(s)
        total += math.log1p(pos) + math.log1p(neg)
    return total


def spans_and_scores(doc: Doc, key: str = "sc") -> Tuple[List[Tuple[int, int, str]], numpy.ndarray]:
    """A doc's predicted spans as (start, end, label) and their probabilities."""
    group = doc.spans[key]
    return [(s.start, s.end, s.label_) for s in group], numpy.asarray(group.attrs["scores"])


@st.composite
def scores_and_gold(draw: st.DrawFn) -> Tuple[numpy.ndarray, set]:
    """Random banded scores (n, width, labels) and a set of gold (start, end_inclusive, label)."""
    n = draw(st.integers(0, 8))
    width = draw(st.integers(1, max(n, 1))) if n else 0
    n_labels = draw(st.integers(1, 3))
    values = draw(
        st.lists(st.floats(-50, 50, allow_nan=False, width=32), min_size=n * width * n_labels, max_size=n * width * n_labels)
    )
    scores = numpy.asarray(values, dtype="f").reshape(n, width, n_labels)
    spans = set()
    if n:
        for _ in range(draw(st.integers(0, 4))):
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(i, min(n - 1, i + width - 1)))
            spans.add((i, j, draw(st.integers(0, n_labels - 1))))
    return scores, spans
