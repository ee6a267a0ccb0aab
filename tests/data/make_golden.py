"""Write tests/data/golden_pipeline/ and golden_predictions.json (see test_golden.py).

A tiny trained pipeline with both head variants, saved with its weights, and what it gives
for a few texts: spans, span probabilities, doc.ents, raw banded scores, and the loss and
gradients of one training batch. Written once, at commit aa17177, so that later changes to
the prediction and training code are checked against the code before them:

    PYTHONPATH=. python tests/data/make_golden.py tests/data

test_golden.py compares spans exactly and numbers within float32 error bounds; it checks
that every decision of the golden file is further than those bounds from its threshold, so
a regenerated file must pass that check too (golden_spread.py measures the spread).
"""

import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy
import spacy
from spacy.language import Language
from spacy.training import Example

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gp_testing import make_examples  # noqa: E402

TOK2VEC = {
    "@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None, "width": 16, "depth": 1,
    "embed_size": 100, "window_size": 1, "maxout_pieces": 2, "subword_features": True,
}
# (component name, spans key, model settings): the plain head on the full triangle, the
# efficient one on a band of 4 tokens and writing doc.ents.
COMPONENTS = [
    ("gp", "sc", {"efficient": False, "max_length": None, "head_width": 8}, False),
    ("gp_efficient", "eff", {"efficient": True, "max_length": 4, "head_width": 8}, True),
]
TRAIN = [
    ("The University of Cambridge is in England.", [(4, 27, "ORG"), (18, 27, "GPE"), (34, 41, "GPE")]),
    ("Bank of England raised rates.", [(0, 15, "ORG"), (8, 15, "GPE")]),
    ("Apple opened an office in New York City.", [(0, 5, "ORG"), (26, 39, "GPE")]),
    ("Nothing to see here.", []),
]
TEXTS = [
    "The University of Cambridge is in England.",
    "Bank of  England raised rates in New\nYork.",
    "",
    "Apple and the Bank of Japan met in Osaka , near the University of Tokyo .",
    "x",
]


def build() -> Language:
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    for name, key, settings, ents in COMPONENTS:
        model = {"@architectures": "spacy-globalpointer.GlobalPointer.v1", "tok2vec": TOK2VEC,
                 "rope": True, "score_budget": 20000000, **settings}
        nlp.add_pipe("global_pointer", name=name,
                     config={"model": model, "spans_key": key, "annotate_ents": ents})
    examples = _examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(30):
        nlp.update(examples, sgd=optimizer)
    return nlp


def _examples(nlp: Language) -> List[Example]:
    """The training examples, their gold spans under every component's key."""
    examples = make_examples(nlp, TRAIN, key="sc")
    for eg in examples:
        eg.reference.spans["eff"] = list(eg.reference.spans["sc"])
    return examples


def golden(nlp: Language) -> Dict[str, Any]:
    annotated = list(nlp.pipe(TEXTS, batch_size=2))
    out: Dict[str, Any] = {
        "texts": TEXTS,
        "ents": [[[e.start, e.end, e.label_] for e in doc.ents] for doc in annotated],
        "components": {},
    }
    for name, key, _, _ in COMPONENTS:
        pipe = nlp.get_pipe(name)
        docs = [nlp.make_doc(text) for text in TEXTS]
        raw = pipe.predict(docs)
        groups = [doc.spans[key] for doc in annotated]
        examples = _examples(nlp)
        scores, _ = pipe.model.begin_update([eg.predicted for eg in examples])
        loss, d_scores = pipe.get_loss(examples, scores)
        tok2vec, head = pipe.model.get_ref("tok2vec"), pipe.model.get_ref("head")
        encoded = tok2vec.predict([eg.predicted for eg in examples])
        _, backprop = head.begin_update(encoded)
        d_encoded = backprop(d_scores)
        out["components"][name] = {
            "spans": [[[s.start, s.end, s.label_] for s in group] for group in groups],
            "probabilities": [_floats(group.attrs["scores"]) for group in groups],
            "raw_scores": [_floats(y) for y in raw],
            "train_loss": float(loss),
            "train_d_scores": [_floats(d) for d in d_scores],
            "train_d_encoded": [_floats(d) for d in d_encoded],
        }
    return out


def _floats(array: Any) -> List[Any]:
    return numpy.asarray(array, dtype="float64").tolist()


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    nlp = build()
    nlp.to_disk(folder / "golden_pipeline")
    (folder / "golden_predictions.json").write_text(json.dumps(golden(nlp)) + "\n", encoding="utf8")
