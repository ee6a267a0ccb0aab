"""The benchmark's corpora: span JSONL from the shared data converted to DocBins (all
spans under doc.spans["sc"], the outermost as doc.ents for the flat systems), the gold
spans read back, and held-out predictions scored and broken down by error kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from bench import registry
from bench.common import SPANS_KEY, write_json
from scripts.span_metrics import (
    FN_KINDS,
    FP_KINDS,
    char_spans,
    error_breakdown,
    outermost,
    role_recall,
)

SPAN_COVERAGE = 0.995


def corpus_paths(corpus_dir: Path) -> Dict[str, Path]:
    return {split: corpus_dir / f"{split}.spacy" for split in ("train", "dev", "test")}


def prepare_corpus(dataset: str, data_dir: Path, corpus_dir: Path) -> Dict[str, Any]:
    """Convert the span JSONL to DocBins with doc.spans["sc"] (all spans) and doc.ents
    (the outermost spans, for the flat systems); write span-length statistics."""
    stats_path = corpus_dir / "stats.json"
    if stats_path.exists() and all(p.exists() for p in corpus_paths(corpus_dir).values()):
        return json.loads(stats_path.read_text())
    import numpy
    import spacy
    from spacy.tokens import DocBin
    from spacy.util import filter_spans

    from scripts.span_utils import Alignment, convert_records, read_jsonl

    spec = registry.dataset(dataset)
    missing = [str(spec.path(split, data_dir)) for split in spec.splits if not spec.path(split, data_dir).exists()]
    if missing:
        raise FileNotFoundError(f"dataset {dataset!r}: no {', '.join(missing)} (give the shared data folder: "
                                f"--data-dir, or the environment variable BENCH_DATA_DIR)")
    records = {split: list(read_jsonl(spec.path(split, data_dir))) for split in spec.splits}
    if spec.dev_from_train:
        n = spec.dev_from_train
        records["train"], records["dev"] = records["train"][:-n], records["train"][-n:]
    nlp = spacy.blank(spec.lang)
    stats: Dict[str, Any] = {"dataset": dataset, "lang": spec.lang, "splits": {}}
    corpus_dir.mkdir(parents=True, exist_ok=True)
    lengths: List[int] = []
    for split, recs in records.items():
        docbin, report = convert_records(
            recs, lang=spec.lang, spans_key=SPANS_KEY, alignment=Alignment(spec.alignment)
        )
        out = DocBin(attrs=["ORTH", "SPACY", "ENT_IOB", "ENT_TYPE"], store_user_data=False)
        n_outer = 0
        for doc in docbin.get_docs(nlp.vocab):
            doc.ents = filter_spans(list(doc.spans[SPANS_KEY]))
            n_outer += len(doc.ents)
            out.add(doc)
            if split == "train":
                # Lengths in the tokens the model will see (the pipeline's tokenizer).
                pred = nlp.make_doc(doc.text)
                for span in doc.spans[SPANS_KEY]:
                    aligned = pred.char_span(span.start_char, span.end_char)
                    if aligned is not None:
                        lengths.append(len(aligned))
        out.to_disk(corpus_dir / f"{split}.spacy")
        stats["splits"][split] = {"docs": report["docs"], "spans": report["spans_kept"],
                                  "outermost_spans": n_outer, "misaligned": report["misaligned"]}
    arr = numpy.asarray(lengths)
    cover = int(next(n for n in range(1, arr.max() + 1) if (arr <= n).mean() >= SPAN_COVERAGE))
    stats["train_span_lengths"] = {
        "aligned_spans": len(lengths), "max": int(arr.max()),
        "coverage": SPAN_COVERAGE, "covering_length": cover,
        "coverage_of_1_3": float((arr <= 3).mean()), "coverage_of_32": float((arr <= 32).mean()),
    }
    stats["spancat_sizes"] = list(range(1, cover + 1))
    write_json(stats_path, stats)
    return stats


def predict_sets(nlp: Any, texts: Sequence[str], flat: bool, batch_size: int = 256) -> List[set]:
    return [
        char_spans(doc.ents if flat else doc.spans.get(SPANS_KEY, []))
        for doc in nlp.pipe(texts, batch_size=batch_size)
    ]


def load_gold(path: Path, lang: str) -> Tuple[List[str], List[set]]:
    import spacy
    from spacy.tokens import DocBin

    docs = list(DocBin().from_disk(path).get_docs(spacy.blank(lang).vocab))
    return [d.text for d in docs], [char_spans(d.spans[SPANS_KEY]) for d in docs]


def heldout_breakdown(pred: Sequence[set], gold: Sequence[set], texts: Sequence[str], lang: str,
                      flat: bool) -> Dict[str, Any]:
    """Errors by kind and P/R/F by span length (span_metrics.error_breakdown) of held-out
    predictions: "errors" and "by_length" for result.json's "test". A flat system against
    the outermost gold spans, what it is trained on (its nested misses are no error of
    its kind); "errors" says which. On nested data also the recall of inner, outer and
    flat gold spans (role_recall), against all gold spans whatever the system."""
    roles = role_recall(pred, gold)
    if flat:
        gold = [outermost(g) for g in gold]
    out = error_breakdown(pred, gold, texts, lang)
    if roles["inner_spans"]["spans"]:
        out.update(roles)
    out["errors"]["gold_spans"] = "outermost" if flat else "all"
    return out


def breakdown_lines(test: Dict[str, Any]) -> List[str]:
    """A result's breakdown in a few lines for the console."""
    lines = []
    for side, kinds in (("fp", FP_KINDS), ("fn", FN_KINDS)):
        counts = test["errors"][side]
        total = counts["total"]
        shares = ", ".join(f"{k} {counts[k]} ({counts[k] / total:.1%})" if total else f"{k} 0" for k in kinds)
        lines.append(f"{side.upper()} {total}: {shares}")
    if "inner_spans" in test:
        lines.append("recall of inner / outer / flat gold spans: " + " / ".join(
            f"{test[role]['recall'] * 100:.1f} ({test[role]['spans']})" if test[role]["spans"] else "-"
            for role in ("inner_spans", "outer_spans", "flat_spans")))
    by_length = test["by_length"]
    lines.append(f"F by span length ({by_length['unit']}; gold spans): " + " | ".join(
        f"{name} {b['f'] * 100:.1f} ({b['gold']})" for name, b in by_length["buckets"].items()))
    return lines


def check_alignment(nlp: Any, train_path: Path, n_docs: int = 500, minimum: float = 0.9) -> None:
    """Stop early if the pipeline's tokenizer cannot carry the gold spans (a wrong
    tokenizer would otherwise train for nothing)."""
    from spacy.tokens import DocBin

    n = aligned = 0
    for i, doc in enumerate(DocBin().from_disk(train_path).get_docs(nlp.vocab)):
        if i >= n_docs:
            break
        pred = nlp.make_doc(doc.text)
        for span in doc.spans[SPANS_KEY]:
            n += 1
            aligned += pred.char_span(span.start_char, span.end_char) is not None
    if n and aligned / n < minimum:
        raise SystemExit(f"Only {aligned}/{n} gold spans align with the tokens of "
                         f"{nlp.config['nlp']['tokenizer']}: check the tokenizer for this language.")
