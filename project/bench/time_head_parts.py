"""A trained pipeline's prediction, part by part: the encoder, the head's forward, decoding.

    python bench/time_head_parts.py MODEL DATA.jsonl          # batches of 256
    PYTHONPATH=/tmp/other_checkout python bench/time_head_parts.py MODEL DATA.jsonl

Whole-pipeline timings (bench/run.py measure, bench/profile_head.py) take the head's share
as the difference of two runs, which this shared machine's noise swamps once the head is a
few percent. Here the three parts run one after another on each batch, repeats
interleaved, in one process: the head's share is (forward + decoding) / all three, each
part the median over repeats. The encoder is the tokenizer and the shared encoder
(tok2vec or transformer) that the listener reads; the model's trained spans are decoded.
Other span components (the CRF tagger, ner, spancat) are timed the same way (--component).
"""

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import typer
from typing_extensions import Annotated

PROJECT = Path(__file__).resolve().parent.parent
if not __package__:
    sys.path.insert(0, str(PROJECT))  # `python bench/time_head_parts.py`: bench is a package of project/

ENCODERS = ("tok2vec", "transformer")


def main(
    model: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Trained pipeline")],
    data: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL with a text field")],
    docs: Annotated[int, typer.Option(help="Docs read")] = 2000,
    batch_size: Annotated[int, typer.Option(help="Docs per batch")] = 256,
    component: Annotated[str, typer.Option(help="The span component's name (the benchmark's others: crf_tagger, ner, spancat)")] = "global_pointer",
    repeats: Annotated[int, typer.Option(help="Repeats (medians reported)")] = 7,
    output: Annotated[Path, typer.Option(help="Also write the figures to this JSON file")] = None,
) -> None:
    import spacy
    import torch

    import bench.crf_component  # noqa: F401  (registers the benchmark's CRF tagger)

    torch.set_num_threads(1)
    nlp = spacy.load(model)
    pipe = nlp.get_pipe(component)
    encoders = [name for name in nlp.pipe_names if name in ENCODERS]
    with data.open(encoding="utf8") as lines:
        texts = [json.loads(line)["text"] for line, _ in zip(lines, range(docs))]
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    n_words = sum(len(nlp.make_doc(text)) for text in texts)
    seconds: Dict[str, List[float]] = {"encoder": [], "forward": [], "decode": []}
    n_spans = 0
    for repeat in range(repeats + 1):  # the first is a warm-up
        totals = dict.fromkeys(seconds, 0.0)
        n_spans = 0
        for batch in batches:
            start = time.perf_counter()
            doc_batch = [nlp.make_doc(text) for text in batch]
            for name in encoders:
                doc_batch = list(nlp.get_pipe(name).pipe(doc_batch, batch_size=len(doc_batch)))
            encoded = time.perf_counter()
            scores = pipe.predict(doc_batch)
            forward = time.perf_counter()
            pipe.set_annotations(doc_batch, scores)
            decoded = time.perf_counter()
            totals["encoder"] += encoded - start
            totals["forward"] += forward - encoded
            totals["decode"] += decoded - forward
            n_spans += sum(_n_predicted(pipe, doc) for doc in doc_batch)
        if repeat:
            for part, value in totals.items():
                seconds[part].append(value)
    medians = {part: statistics.median(values) for part, values in seconds.items()}
    total = sum(medians.values())
    head_share = (medians["forward"] + medians["decode"]) / total
    print(f"{model}: {len(texts):,} docs, {n_words:,} words, {n_spans:,} spans predicted; "
          f"batches of {batch_size}, medians of {repeats}")
    for part, value in medians.items():
        print(f"  {part:8s} {value * 1000:8.1f} ms  {value / total:6.1%}")
    print(f"  head share {head_share:.1%}: throughput {1 - head_share:.1%} of the encoder's")
    if output is not None:
        output.write_text(json.dumps({
            "model": str(model), "data": str(data), "docs": len(texts), "words": n_words,
            "spans": n_spans, "batch_size": batch_size, "repeats": repeats,
            "seconds": seconds, "medians": medians, "head_share": head_share,
        }, indent=1))


def _n_predicted(pipe: object, doc: object) -> int:
    """Spans the component wrote: to doc.spans[its key], or to doc.ents."""
    key = getattr(pipe, "key", None)
    return len(doc.spans[key]) if key is not None else len(doc.ents)


if __name__ == "__main__":
    typer.run(main)
