"""Write tests/data/pipeline_0_1_0/ and pipeline_0_1_0_spans.json (see test_serialize.py).

A tiny pipeline trained and saved by spacy-globalpointer 0.1.0 (the last 0.1.0 code is the
parent of commit 3525cff, which made the threshold a probability), and the spans that code
predicted with it. 0.1.0 kept threshold = 0.0 in config.cfg as a logit; a later version
must load the pipeline with the same spans. Run with the 0.1.0 code first on the path:

    git worktree add /tmp/gp010 3525cff^
    PYTHONPATH=/tmp/gp010 python tests/data/make_pipeline_0_1_0.py tests/data

The script refuses to run with any other version of the package.
"""

import inspect
import json
import sys
from pathlib import Path
from typing import List, Tuple

import spacy
from spacy.training import Example

import spacy_globalpointer

TOK2VEC = {
    "@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None, "width": 16, "depth": 1,
    "embed_size": 100, "window_size": 1, "maxout_pieces": 2, "subword_features": True,
}
TRAIN: List[Tuple[str, List[Tuple[int, int, str]]]] = [
    ("The University of Cambridge is in England.", [(4, 27, "ORG"), (18, 27, "GPE"), (34, 41, "GPE")]),
    ("Bank of England raised rates.", [(0, 15, "ORG"), (8, 15, "GPE")]),
    ("Apple opened an office in New York City.", [(0, 5, "ORG"), (26, 39, "GPE")]),
    ("Nothing to see here.", []),
]
TEXTS = [
    "The University of Cambridge is in England.",
    "Bank of England raised rates in New York.",
    "Apple and the Bank of Japan met in Osaka.",
    "Nothing to see here.",
    "The University of Tokyo is in Japan.",
    "",
]


def check_version() -> None:
    factory = spacy.registry.factories.get("global_pointer")
    source = Path(inspect.getfile(factory)).resolve()
    package = Path(spacy_globalpointer.__file__).resolve().parent
    if spacy_globalpointer.__version__ != "0.1.0" or package not in source.parents:
        sys.exit(
            f"needs spacy-globalpointer 0.1.0 first on the path; got {spacy_globalpointer.__version__} "
            f"from {package}, factory from {source}"
        )


def main(out_dir: Path) -> None:
    check_version()
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    model = {"@architectures": "spacy-globalpointer.GlobalPointer.v1", "tok2vec": TOK2VEC,
             "head_width": 8, "rope": True, "efficient": False, "max_length": 8,
             "score_budget": 20000000}
    gp = nlp.add_pipe("global_pointer", config={"model": model})
    assert gp.cfg["threshold"] == 0.0  # 0.1.0's default, a logit
    examples = []
    for text, spans in TRAIN:
        doc = nlp.make_doc(text)
        reference = nlp.make_doc(text)
        reference.spans["sc"] = [reference.char_span(s, e, label=label) for s, e, label in spans]
        examples.append(Example(doc, reference))
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(out_dir / "pipeline_0_1_0")
    predicted = [
        [[span.start_char, span.end_char, span.label_] for span in doc.spans["sc"]]
        for doc in nlp.pipe(TEXTS)
    ]
    lines = [f"  {json.dumps(spans)}" for spans in predicted]
    (out_dir / "pipeline_0_1_0_spans.json").write_text(
        f'{{"version": "{spacy_globalpointer.__version__}",\n "texts": {json.dumps(TEXTS)},\n'
        ' "spans": [\n' + ",\n".join(lines) + "\n ]}\n"
    )
    print("spans per text:", [len(spans) for spans in predicted])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
