"""Predict on clean texts and on messy-whitespace variants of them; compare the spans.

spaCy makes a token of extra whitespace (double spaces, newlines). The component never
lets a span start or end on one; this script measures that on a trained pipeline, and how
far the spans of each variant agree with those of the clean text. Spans are compared by
their non-whitespace characters, which the variants leave unchanged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Set, Tuple

import spacy
import typer
from spacy.tokens import Doc, DocBin
from typing_extensions import Annotated

VARIANTS: Dict[str, Callable[[str], str]] = {
    "one double space": lambda text: text.replace(" ", "  ", 1),
    "one newline": lambda text: text.replace(" ", "\n", 1),
    "all spaces doubled": lambda text: text.replace(" ", "  "),
}

SpanKey = Tuple[int, int, str]


def content_spans(doc: Doc, spans_key: str) -> Set[SpanKey]:
    """Each span as (first, last) index among the text's non-whitespace characters."""
    position: List[int] = []  # character offset -> index among non-whitespace characters
    count = 0
    for char in doc.text:
        position.append(count)
        count += not char.isspace()
    position.append(count)
    return {
        (position[s.start_char], position[s.end_char], s.label_)
        for s in doc.spans.get(spans_key, [])
    }


def on_whitespace(doc: Doc, spans_key: str) -> Tuple[int, int]:
    """Spans that start or end on a whitespace token, and those that are all whitespace."""
    group = doc.spans.get(spans_key, [])
    bounded = sum(1 for s in group if s[0].is_space or s[-1].is_space)
    blank = sum(1 for s in group if not re.sub(r"\s", "", s.text))
    return bounded, blank


def compare(nlp: spacy.language.Language, texts: List[str], spans_key: str) -> Dict[str, dict]:
    clean = [content_spans(doc, spans_key) for doc in nlp.pipe(texts)]
    results = {"clean": {"spans": sum(len(s) for s in clean)}}
    for name, make in VARIANTS.items():
        docs = list(nlp.pipe(make(text) for text in texts))
        messy = [content_spans(doc, spans_key) for doc in docs]
        bounded, blank = zip(*(on_whitespace(doc, spans_key) for doc in docs)) if docs else ((), ())
        results[name] = {
            "spans": sum(len(s) for s in messy),
            "on_whitespace": sum(bounded),
            "all_whitespace": sum(blank),
            "same_as_clean": sum(len(a & b) for a, b in zip(clean, messy)),
            "docs_identical": sum(a == b for a, b in zip(clean, messy)),
            "docs": len(texts),
        }
    return results


def main(
    model: Annotated[str, typer.Argument(help="Pipeline name or path")],
    data_path: Annotated[Path, typer.Argument(help=".spacy file to take texts from")],
    output: Annotated[Path, typer.Argument(help="JSON file for the counts")],
    spans_key: Annotated[str, typer.Option(help="Key in doc.spans")] = "sc",
    limit: Annotated[int, typer.Option(help="At most this many texts")] = 1000,
) -> None:
    """Count spans on whitespace, and spans shared with the clean text, per variant."""
    nlp = spacy.load(model)
    docs = DocBin().from_disk(data_path).get_docs(nlp.vocab)
    texts = [doc.text for _, doc in zip(range(limit), docs)]
    results = compare(nlp, texts, spans_key)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2), encoding="utf8")
    print(f"clean text: {results['clean']['spans']} spans in {len(texts)} texts")
    for name in VARIANTS:
        r = results[name]
        print(
            f"{name}: {r['spans']} spans, {r['on_whitespace']} start or end on whitespace "
            f"({r['all_whitespace']} all whitespace), {r['same_as_clean']} as on the clean "
            f"text, {r['docs_identical']} of {r['docs']} texts with identical spans"
        )


if __name__ == "__main__":
    typer.run(main)
