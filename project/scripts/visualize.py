"""Render predictions (and gold) on a DocBin as displaCy span-style HTML, so that
nested and overlapping spans are visible as stacked underlines.

`spacy evaluate --displacy-path` writes no span pages for this component: spaCy draws
spans only for a component whose factory is named `spancat`."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import List

import spacy
import typer
from spacy import displacy
from spacy.tokens import Doc, DocBin
from typing_extensions import Annotated

from spacy_globalpointer.batch.core import pipeline_spans_keys


def render(model: str, data_path: Path, spans_key: str = "sc", limit: int = 50, gold: bool = True) -> str:
    if limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit}")
    nlp = spacy.load(model)
    # A key that no component writes would draw every doc without spans.
    written = pipeline_spans_keys(nlp)
    if spans_key not in written:
        raise ValueError(
            f"no component of {model} writes doc.spans[{spans_key!r}] "
            f"(keys written: {', '.join(map(repr, written)) or 'none'}): set --spans-key"
        )
    gold_docs = list(DocBin().from_disk(data_path).get_docs(nlp.vocab))[:limit]
    docs: List[Doc] = []
    for i, (gold_doc, pred) in enumerate(
        zip(gold_docs, nlp.pipe(d.text for d in gold_docs), strict=True)
    ):
        pred.user_data["title"] = f"#{i} predicted"
        docs.append(pred)
        if gold:
            gold_doc.user_data["title"] = f"#{i} gold"
            docs.append(gold_doc)
    with warnings.catch_warnings():
        # W117 (a doc without spans) is expected for sentences with no entities.
        warnings.filterwarnings("ignore", message=r"\[W117\]")
        return displacy.render(docs, style="span", page=True, options={"spans_key": spans_key})


def main(
    model: Annotated[str, typer.Argument(help="Pipeline name or path")],
    data_path: Annotated[Path, typer.Argument(help=".spacy file (texts and gold spans)", exists=True)],
    output_path: Annotated[Path, typer.Argument(help="HTML file to write")],
    spans_key: Annotated[str, typer.Option(help="Key in doc.spans")] = "sc",
    limit: Annotated[int, typer.Option(help="Number of docs to render")] = 50,
    gold: Annotated[bool, typer.Option(help="Show each doc's gold spans under its predictions")] = True,
) -> None:
    """Write displaCy span-style HTML of predictions on the first docs of a DocBin."""
    try:
        html = render(model, data_path, spans_key, limit, gold)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(html, encoding="utf8")
    print(f"Saved {output_path}")


if __name__ == "__main__":
    typer.run(main)
