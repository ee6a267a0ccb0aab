"""`python -m bench time ...`: the measurements of bench/timing.py as commands.

    python -m bench time pipeline MODEL DATA.spacy OUT.json     # a timing repeat of the runner
    python -m bench time profile MODEL DATA.spacy OUT.txt       # cProfile (--train: updates)
    python -m bench time head-cost --data ../../shared/data/genia/dev.jsonl --docs 1500
    python -m bench time parts MODEL DATA.jsonl --output OUT.json
    python -m bench time forward                                  # the torch head alone
    PYTHONPATH=/tmp/other_checkout python -m bench time parts ...   # another package version
"""

from __future__ import annotations

import json
import time
from itertools import islice
from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated

from bench import registry, timing
from bench.common import (
    SPANS_KEY,
    BadOverride,
    code_version,
    parse_overrides,
    set_threads,
    write_json,
)

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)


@app.command("pipeline")
def pipeline(
    model_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    data: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="DocBin of the docs to predict")],
    output: Annotated[Path, typer.Argument(help="JSON file of the figures")],
    batch1_docs: Annotated[int, typer.Option(help="Docs timed at batch size 1")] = 300,
    large_batch: Annotated[int, typer.Option(help="Docs per batch for the large batch")] = 256,
    train_data: Annotated[Optional[Path], typer.Option(help="Also time training updates on these docs (DocBin)")] = None,
    train_docs: Annotated[int, typer.Option(help="Docs of train_data timed in updates (batches of 16)")] = 480,
    threads: Annotated[int, typer.Option()] = 1,
) -> None:
    """Words/s of a trained pipeline at batch 1 and a large batch, whole and its encoder
    alone, and of training updates; peak RSS. One repeat (the runner alternates systems)."""
    code = code_version()
    set_threads(threads)
    out = timing.pipeline_speed(model_dir, data, batch1_docs, large_batch, train_data, train_docs)
    out["code"] = code
    write_json(output, out)


@app.command("profile")
def profile(
    model_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    data: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="DocBin")],
    output: Annotated[Path, typer.Argument(help="Text file for the cProfile listing")],
    docs: Annotated[int, typer.Option()] = 500,
    batch_size: Annotated[int, typer.Option()] = 256,
    threads: Annotated[int, typer.Option()] = 1,
    train: Annotated[bool, typer.Option(help="Profile updates on `data` (batches of 16) instead of prediction")] = False,
) -> None:
    """cProfile of a trained pipeline's prediction or training: which operations dominate."""
    set_threads(threads)
    listing = timing.profile_model(model_dir, data, docs, batch_size, train)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(listing, encoding="utf8")
    print(listing[:4000])


@app.command("head-cost")
def head_cost(
    data: Annotated[Optional[Path], typer.Option(help="DocBin (.spacy) or span JSONL; default: demo-like corpus built in memory")] = None,
    lang: Annotated[str, typer.Option(help="Language of the docs (zh: one token per character)")] = "en",
    encoder: Annotated[str, typer.Option(help=f"Encoder: {', '.join(registry.ENCODERS)}")] = "cnn",
    systems: Annotated[str, typer.Option(help="Comma-separated systems; the first is profiled")] = "global_pointer_efficient",
    docs: Annotated[int, typer.Option(help="Docs read (or generated)")] = 2000,
    batch1_docs: Annotated[int, typer.Option(help="Docs timed at batch size 1")] = 300,
    large_batch: Annotated[int, typer.Option(help="Docs per batch for the large batch")] = 256,
    train_batch: Annotated[int, typer.Option(help="Docs per training update")] = 16,
    train_steps: Annotated[int, typer.Option(help="Updates before timing (realistic numbers of predicted spans)")] = 100,
    repeats: Annotated[int, typer.Option(help="Timing repeats (systems rotated, pipeline and encoder alternated)")] = 3,
    trivial: Annotated[bool, typer.Option(help="Time training against a trivial head on the same encoder")] = True,
    set_: Annotated[Optional[List[str]], typer.Option("--set", help="Config override KEY=VALUE for every system; repeatable")] = None,
    profile: Annotated[bool, typer.Option(help="Print cProfile listings of the first system")] = True,
    torch_profile: Annotated[bool, typer.Option(help="Print torch.profiler operator tables too")] = True,
    top: Annotated[int, typer.Option(help="Rows of each listing")] = 20,
    threads: Annotated[int, typer.Option(help="torch/BLAS threads")] = 1,
    seed: Annotated[int, typer.Option()] = 0,
    output: Annotated[Optional[Path], typer.Option(help="Also write the figures and listings as JSON")] = None,
) -> None:
    """A span head's share of prediction against its encoder alone, and its training speed
    against a trivial head on the same encoder; pipelines built in memory and updated a
    few times; then profiles of the first system."""
    from bench.configs import transformer_overrides
    from bench.pipelines import TRIVIAL, build_pipeline, load_examples

    code = code_version()
    set_threads(threads)
    import bench.crf_component  # noqa: F401  (registers the CRF factory)
    import spacy_globalpointer

    # The package imported (PYTHONPATH decides: another checkout times the code before a change).
    code["package_path"] = str(Path(spacy_globalpointer.__file__).parent)
    try:
        names = [registry.system(name).name for name in systems.split(",") if name.strip()]
        registry.encoder(encoder)
        transformer_overrides(encoder)  # minilm without its weights package: stop before any work
        overrides = parse_overrides(set_ or [])
    except (registry.UnknownName, RuntimeError, BadOverride) as err:
        raise typer.BadParameter(str(err)) from err
    examples = load_examples(data, lang, docs, seed)
    texts = [eg.predicted.text for eg in examples]
    print(f"{len(examples)} docs, {sum(len(eg.predicted) for eg in examples):,} words, "
          f"{sum(len(eg.reference.spans.get(SPANS_KEY, [])) for eg in examples):,} gold spans; package {code}")
    pipelines = {}
    for name in names + ([TRIVIAL] if trivial else []):
        start = time.perf_counter()
        pipelines[name] = build_pipeline(name, encoder, lang, examples, train_steps, train_batch, seed, overrides)
        print(f"built {name} ({train_steps} updates) in {time.perf_counter() - start:.1f} s")
    for name in names:
        predicted = list(pipelines[name].nlp.pipe(texts, batch_size=large_batch))
        n_spans = sum(len(doc.spans.get(SPANS_KEY, [])) + len(doc.ents) for doc in predicted)
        print(f"{name}: {n_spans:,} spans predicted on the {len(texts)} docs")
    timing.time_pipe(pipelines[names[0]].nlp, texts[:50], 16)  # warm-up
    figures = timing.head_cost(pipelines, examples, texts, batch1_docs, large_batch, train_batch, repeats, TRIVIAL)
    print("\n" + "\n".join(timing.head_cost_lines(figures)))
    listings = {}
    if profile:
        listings = timing.head_cost_profiles(pipelines[names[0]], examples, texts, batch1_docs, large_batch,
                                             train_batch, top, torch_profile)
        for title, text in listings.items():
            print(f"\n=== {names[0]}: {title}\n{text}")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"code": code, "data": str(data) if data else "demo (in memory)",
                                      "lang": lang, "encoder": encoder, "threads": threads, "overrides": overrides,
                                      "figures": figures, "listings": listings}, indent=1) + "\n", encoding="utf8")


@app.command("parts")
def parts(
    model: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Trained pipeline")],
    data: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL with a text field")],
    docs: Annotated[int, typer.Option(help="Docs read")] = 2000,
    batch_size: Annotated[int, typer.Option(help="Docs per batch")] = 256,
    component: Annotated[str, typer.Option(help="The span component (the benchmark's others: crf_tagger, ner, spancat)")] = "global_pointer",
    repeats: Annotated[int, typer.Option(help="Passes after a warm-up (medians reported)")] = 7,
    threads: Annotated[int, typer.Option(help="torch/BLAS threads")] = 1,
    output: Annotated[Optional[Path], typer.Option(help="Also write the figures to this JSON file")] = None,
) -> None:
    """A trained pipeline's prediction part by part on each batch: the encoder, the head's
    forward, decoding; the head's share = (forward + decoding) / all three."""
    set_threads(threads)
    with data.open(encoding="utf8") as lines:
        texts = [json.loads(line)["text"] for line in islice(lines, docs)]
    figures = timing.head_parts(model, texts, batch_size, component, repeats)
    figures["data"] = str(data)
    medians, total = figures["medians"], sum(figures["medians"].values())
    print(f"{model}: {figures['docs']:,} docs, {figures['words']:,} words, {figures['spans']:,} spans predicted; "
          f"batches of {batch_size}, medians of {repeats}")
    for part, value in medians.items():
        print(f"  {part:8s} {value * 1000:8.1f} ms  {value / total:6.1%}")
    print(f"  head share {figures['head_share']:.1%}: throughput {1 - figures['head_share']:.1%} of the encoder's")
    if output is not None:
        output.write_text(json.dumps(figures, indent=1))


@app.command("forward")
def forward(
    tokens: Annotated[int, typer.Option(help="Sentence length")] = 16,
    labels: Annotated[int, typer.Option(help="Entity labels")] = 5,
    efficient: Annotated[bool, typer.Option(help="Efficient GlobalPointer head")] = True,
    calls: Annotated[int, typer.Option(help="Calls per repeat")] = 2000,
    repeats: Annotated[int, typer.Option(help="Repeats (median reported)")] = 7,
    output: Annotated[Optional[Path], typer.Option(help="Also write the figures to this JSON file")] = None,
) -> None:
    """The torch head's forward alone on one short sentence (batch size 1): microseconds a call."""
    set_threads(1)
    figures = timing.head_forward(tokens, labels, efficient, calls, repeats)
    print(f"head forward, {tokens} tokens, {labels} labels, efficient={efficient}: "
          f"{figures['median_seconds_per_call'] * 1e6:.1f} us a call (median of {repeats} x {calls})")
    if output is not None:
        write_json(output, figures)
