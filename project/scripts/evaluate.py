"""Evaluate a trained pipeline on a DocBin and write metrics JSON: overall and
per-type P/R/F, recall on nested gold spans, and speed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List

import spacy
import typer
from spacy.scorer import Scorer
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from span_metrics import char_spans, nested_gold, prf
from typing_extensions import Annotated


def evaluate(model: str, data_path: Path, spans_key: str = "sc", batch_size: int = 64) -> Dict[str, Any]:
    nlp = spacy.load(model)
    gold_docs: List[Doc] = list(DocBin().from_disk(data_path).get_docs(nlp.vocab))
    start = time.perf_counter()
    pred_docs = list(nlp.pipe((d.text for d in gold_docs), batch_size=batch_size))
    seconds = time.perf_counter() - start
    examples = [Example(pred, gold) for pred, gold in zip(pred_docs, gold_docs, strict=True)]
    scores = Scorer(nlp).score(examples)
    attr = f"spans_{spans_key}"
    per_type = {
        label: {k[0]: v for k, v in values.items()}
        for label, values in sorted((scores.get(f"{attr}_per_type") or {}).items())
    }
    n_nested = n_nested_found = 0
    tp = n_pred = n_gold = 0
    for pred, gold in zip(pred_docs, gold_docs, strict=True):
        gold_set = char_spans(gold.spans.get(spans_key, []))
        pred_set = char_spans(pred.spans.get(spans_key, []))
        nested = nested_gold(gold_set)
        n_nested += len(nested)
        n_nested_found += len(nested & pred_set)
        tp += len(gold_set & pred_set)
        n_pred += len(pred_set)
        n_gold += len(gold_set)
    n_words = sum(len(d) for d in pred_docs)
    return {
        "model": str(model),
        "data": str(data_path),
        "spans_key": spans_key,
        "docs": len(gold_docs),
        "words": n_words,
        "gold_spans": n_gold,
        "predicted_spans": n_pred,
        "overall": {
            "p": scores.get(f"{attr}_p") or 0.0,
            "r": scores.get(f"{attr}_r") or 0.0,
            "f": scores.get(f"{attr}_f") or 0.0,
        },
        # Same figures recomputed on character offsets: a cross-check of the scorer.
        "overall_char_offsets": prf(tp, n_pred, n_gold),
        "per_type": per_type,
        "nested_gold": {
            "spans": n_nested,
            "found": n_nested_found,
            "recall": n_nested_found / n_nested if n_nested else 0.0,
        },
        "seconds": seconds,
        "words_per_second": n_words / seconds if seconds else 0.0,
    }


def main(
    model: Annotated[str, typer.Argument(help="Pipeline name or path")],
    data_path: Annotated[Path, typer.Argument(help="Gold .spacy file", exists=True, dir_okay=False)],
    output_path: Annotated[Path, typer.Argument(help="Metrics JSON to write")],
    spans_key: Annotated[str, typer.Option(help="Key in doc.spans")] = "sc",
    gpu_id: Annotated[int, typer.Option(help="GPU id, -1 for CPU")] = -1,
) -> None:
    """Score a pipeline's spans against gold and write metrics JSON."""
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    metrics = evaluate(model, data_path, spans_key)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(json.dumps(metrics, indent=2), encoding="utf8")
    o = metrics["overall"]
    print(f"{data_path}: P {o['p']:.4f}  R {o['r']:.4f}  F {o['f']:.4f}  "
          f"({metrics['words_per_second']:.0f} words/s)")
    for label, v in metrics["per_type"].items():
        print(f"  {label:12} P {v['p']:.4f}  R {v['r']:.4f}  F {v['f']:.4f}")
    n = metrics["nested_gold"]
    print(f"  nested gold spans: {n['found']}/{n['spans']} found (recall {n['recall']:.4f})")
    print(f"Saved {output_path}")


if __name__ == "__main__":
    typer.run(main)
