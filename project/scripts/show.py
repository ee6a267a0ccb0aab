"""Print example texts with their predicted spans, nested spans indented under
the spans that contain them."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import List, Optional

import spacy
import typer
from spacy.tokens import Doc, DocBin
from typing_extensions import Annotated


def format_doc(doc: Doc, spans_key: str = "sc") -> str:
    group = doc.spans.get(spans_key, [])
    scores = group.attrs.get("scores") if len(group) else None
    items = []
    for i, span in enumerate(group):
        score = float(scores[i]) if scores is not None and i < len(scores) else None
        items.append((span.start_char, -span.end_char, span, score))
    items.sort(key=lambda x: (x[0], x[1]))
    lines = [doc.text]
    open_spans: List[tuple[int, int]] = []
    for start, neg_end, span, score in items:
        end = -neg_end
        # Depth = number of earlier spans still open around this one.
        open_spans = [(s, e) for s, e in open_spans if s <= start and end <= e]
        depth = len(open_spans)
        open_spans.append((start, end))
        extra = f" {score:.2f}" if score is not None else ""
        lines.append(f"  {'   ' * depth}[{span.label_}] {span.text!r} ({start}-{end}){extra}")
    if len(lines) == 1:
        lines.append("  (no spans)")
    return "\n".join(lines)


def main(
    model: Annotated[str, typer.Argument(help="Pipeline name or path")],
    data_path: Annotated[Optional[Path], typer.Argument(help=".spacy file to take texts from")] = None,
    text: Annotated[Optional[List[str]], typer.Option(help="Text to analyse (repeatable)")] = None,
    limit: Annotated[int, typer.Option(help="Number of texts from data_path")] = 5,
    spans_key: Annotated[str, typer.Option(help="Key in doc.spans")] = "sc",
) -> None:
    """Show predicted (nested) spans for a few texts."""
    nlp = spacy.load(model)
    texts = list(text or [])
    if data_path is not None:
        docs = DocBin().from_disk(data_path).get_docs(nlp.vocab)
        # Prefer texts whose gold spans nest, so the output shows what the model is for.
        ranked = sorted(
            islice(docs, 500),
            key=lambda d: -sum(
                1 for a in d.spans.get(spans_key, []) for b in d.spans.get(spans_key, [])
                if a != b and b.start <= a.start and a.end <= b.end
            ),
        )
        texts.extend(d.text for d in ranked[:limit])
    for doc in nlp.pipe(texts):
        print(format_doc(doc, spans_key))
        print()


if __name__ == "__main__":
    typer.run(main)
