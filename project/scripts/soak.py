"""Soak check: stream many docs through nlp.pipe and print the resident memory (RSS).

Not a unit test. The texts cycle through a fixed pool (messy ones included: empty,
whitespace, emoji, CJK, right-to-left, long), so the vocab's string store stops
growing after the first pass; any RSS growth after the warm-up is then memory kept
by the pipeline. Without --model, a tiny pipeline is trained in-process first.

    python project/scripts/soak.py --n-docs 50000
    python project/scripts/soak.py --model project/training/model-best --n-docs 50000
"""

from __future__ import annotations

import gc
import random
import time
from pathlib import Path
from typing import Iterator, List, Optional

import spacy
import typer
from spacy.language import Language
from spacy.tokens import Span
from spacy.training import Example
from typing_extensions import Annotated

BASE_TEXTS = [
    "",
    "   ",
    "x",
    "?!...",
    "😀🎉 👍🏽",
    "剑桥大学位于英国。",
    "جامعة كامبريدج في إنجلترا",
    "The University of Cambridge is in England.",
    "Bank of England raised rates.",
    "Apple opened an office in New York City.",
    "IL-2 gene expression and NF-kappa B activation through CD28 requires reactive oxygen production by 5-lipoxygenase.",
]


def text_pool(size: int, seed: int) -> List[str]:
    rng = random.Random(seed)
    pool = list(BASE_TEXTS)
    while len(pool) < size:
        n_sentences = rng.choice([1, 1, 1, 2, 3, 8])
        pool.append(" ".join(rng.choice(BASE_TEXTS[7:]) for _ in range(n_sentences)))
    return pool


def stream(pool: List[str], n_docs: int) -> Iterator[str]:
    for i in range(n_docs):
        yield pool[i % len(pool)]


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status (Linux only)")


def tiny_pipeline(seed: int) -> Language:
    spacy.util.fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("global_pointer")
    data = [
        ("The University of Cambridge is in England.", [(1, 4, "ORG"), (3, 4, "GPE"), (6, 7, "GPE")]),
        ("Bank of England raised rates.", [(0, 3, "ORG"), (2, 3, "GPE")]),
        ("Apple opened an office in New York City.", [(0, 1, "ORG"), (5, 8, "GPE")]),
    ]
    examples = []
    for text, spans in data:
        reference = nlp.make_doc(text)
        reference.spans["sc"] = [Span(reference, s, e, label=label) for s, e, label in spans]
        examples.append(Example(nlp.make_doc(text), reference))
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(50):
        nlp.update(examples, sgd=optimizer)
    return nlp


def main(
    model: Annotated[Optional[Path], typer.Option(help="Trained pipeline (default: train a tiny one)")] = None,
    n_docs: Annotated[int, typer.Option(help="Docs to stream through nlp.pipe")] = 50_000,
    batch_size: Annotated[int, typer.Option(help="nlp.pipe batch size")] = 256,
    pool_size: Annotated[int, typer.Option(help="Distinct texts, cycled")] = 1000,
    report_every: Annotated[int, typer.Option(help="Print RSS every this many docs")] = 5000,
    warmup: Annotated[int, typer.Option(help="Docs before the baseline RSS is taken")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed for texts and the tiny pipeline")] = 0,
) -> None:
    nlp = spacy.load(model) if model is not None else tiny_pipeline(seed)
    key = nlp.get_pipe("global_pointer").key
    pool = text_pool(pool_size, seed)
    print(f"pipeline: {model or 'tiny, trained in-process'}; {n_docs} docs, batch_size {batch_size}, {len(pool)} distinct texts")
    print(f"{'docs':>8} {'RSS MiB':>9} {'docs/s':>8} {'spans':>9}")
    start = time.perf_counter()
    baseline: Optional[float] = None
    peak = 0.0
    n_spans = 0
    for i, doc in enumerate(nlp.pipe(stream(pool, n_docs), batch_size=batch_size), start=1):
        n_spans += len(doc.spans[key])
        if i == warmup or i % report_every == 0 or i == n_docs:
            gc.collect()
            rss = rss_mib()
            peak = max(peak, rss)
            if i == warmup:
                baseline = rss
            rate = i / (time.perf_counter() - start)
            print(f"{i:>8} {rss:>9.1f} {rate:>8.0f} {n_spans:>9}")
    final = rss_mib()
    if baseline is None:
        baseline = final
    print(
        f"RSS after warm-up ({warmup} docs): {baseline:.1f} MiB; final: {final:.1f} MiB; "
        f"peak sampled: {peak:.1f} MiB; growth after warm-up: {final - baseline:+.1f} MiB"
    )


if __name__ == "__main__":
    typer.run(main)
