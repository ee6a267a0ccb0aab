"""Where a span head's time goes: its share of prediction and training against the encoder.

    python bench/profile_head.py                                   # demo-like corpus, CNN
    python bench/profile_head.py --encoder bilstm --systems global_pointer_efficient,crf,ner
    python bench/profile_head.py --encoder minilm --docs 300 --batch1-docs 50 --train-steps 20
    python bench/profile_head.py --data ../../shared/data/genia/dev.jsonl --docs 1500
    python bench/profile_head.py --data ../../shared/data/cluener/dev.jsonl --lang zh

Each system is a benchmark config (bench/configs.py: the same embedding and encoder,
only the head differs), initialized and trained for a few updates on the docs, so that
decoding sees the number of spans a trained model predicts. Then, with the systems
alternated in every repeat:

- prediction (nlp.pipe) at batch 1 and a large batch, the whole pipeline against its
  encoder alone (the tokenizer and the tok2vec, or the transformer for minilm, on the
  same docs): the head's share of the time, 1 - t_encoder / t_pipeline, and the
  pipeline's throughput as a fraction of the encoder's;
- training (nlp.update on fixed batches) against the same encoder with a trivial head
  (a linear layer per token, squared-output loss): words/s and their ratio.

Medians over repeats of ratios taken within a repeat (the machine is shared: absolute
words/s move, ratios less). Then cProfile listings (top functions by own time) and the
torch profiler's operator table for the first system, in prediction and in training.
Docs: a demo-like corpus built in memory (English sentences with nested entities, as the
project's make-demo writes), or --data: a DocBin (.spacy, spans under "sc") or span JSON
lines (.jsonl, the format of ../shared/data).
"""

from __future__ import annotations

import io
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence

import typer
from typing_extensions import Annotated

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
if not __package__:
    sys.path.insert(0, str(PROJECT))

from bench.configs import config_text, head_config_text, transformer_overrides  # noqa: E402
from bench.registry import ENCODERS, SYSTEMS  # noqa: E402
from bench.run import _set_threads, code_version, encoder_pipes, parse_overrides, relative_listing  # noqa: E402
from bench.training import update  # noqa: E402

SPANS_KEY = "sc"
TRIVIAL = "trivial_head"
_TRIVIAL_HEAD = """
[components.trivial_head]
factory = "bench_trivial_head"

[components.trivial_head.model]
@architectures = "spacy-globalpointer-bench.TrivialHead.v1"
"""  # head_config_text adds the encoder's listener


def _register_trivial_head() -> None:
    """A head that costs next to nothing: one linear output per token, loss 0.5 * sum y^2.
    Training with it times the encoder's forward, backward and optimizer step."""
    from spacy.language import Language
    from spacy.pipeline import TrainablePipe
    from spacy.util import registry
    from thinc.api import Linear, Model, chain, with_array

    if "bench_trivial_head" in Language.factories:
        return

    @registry.architectures("spacy-globalpointer-bench.TrivialHead.v1")
    def build_trivial_head(tok2vec: Model) -> Model:
        return chain(tok2vec, with_array(Linear(nO=1)))

    class TrivialHead(TrainablePipe):
        def __init__(self, vocab: Any, model: Model, name: str) -> None:
            self.vocab, self.model, self.name, self.cfg = vocab, model, name, {}

        def predict(self, docs: Iterable[Any]) -> Any:
            return self.model.predict(list(docs))

        def set_annotations(self, docs: Iterable[Any], scores: Any) -> None:
            pass

        def initialize(self, get_examples: Callable, *, nlp: Any = None) -> None:
            self.model.initialize(X=[eg.predicted for eg in itertools.islice(get_examples(), 10)])

        def update(self, examples: Iterable[Any], *, drop: float = 0.0, sgd: Any = None,
                   losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
            losses = {} if losses is None else losses
            scores, backprop = self.model.begin_update([eg.predicted for eg in examples])
            backprop(scores)  # d(0.5 * y^2)/dy = y
            if sgd is not None:
                self.finish_update(sgd)
            losses[self.name] = losses.get(self.name, 0.0) + sum(float((y**2).sum()) / 2 for y in scores)
            return losses

    @Language.factory("bench_trivial_head")
    def make_trivial_head(nlp: Language, name: str, model: Model) -> TrivialHead:
        return TrivialHead(nlp.vocab, model, name)


# --- docs ----------------------------------------------------------------------------------


def load_examples(data: Optional[Path], lang: str, n_docs: int, seed: int) -> List[Any]:
    """Examples with gold spans under "sc", and their outermost spans as doc.ents (for the
    flat systems: the CRF and ner)."""
    import spacy
    from spacy.tokens import DocBin
    from spacy.training import Example
    from spacy.util import filter_spans

    from scripts.span_utils import Alignment, convert_records

    nlp = spacy.blank(lang)
    if data is None or data.suffix == ".jsonl":
        if data is None:
            from scripts.make_demo import make_corpus

            records = make_corpus(n_docs, seed)
        else:
            with data.open(encoding="utf8") as lines:
                records = [json.loads(line) for line in itertools.islice(lines, n_docs)]
        docbin, _ = convert_records(records, lang=lang, spans_key=SPANS_KEY, alignment=Alignment.contract)
    else:
        docbin = DocBin().from_disk(data)
    examples = []
    for doc in itertools.islice(docbin.get_docs(nlp.vocab), n_docs):
        doc.ents = filter_spans(doc.spans.get(SPANS_KEY, []))
        examples.append(Example(nlp.make_doc(doc.text), doc))
    return examples


# --- pipelines -----------------------------------------------------------------------------


class Trained(NamedTuple):
    nlp: Any
    optimizer: Any


def build_pipeline(system: str, encoder: str, lang: str, examples: List[Any], train_steps: int,
                   train_batch: int, seed: int, extra: Optional[Dict[str, Any]] = None) -> Trained:
    """A benchmark system (or the trivial head) initialized on the examples and trained for
    train_steps updates, so that it predicts about as many spans as a trained model."""
    import spacy
    from spacy.util import fix_random_seed, load_config_from_str, load_model_from_config

    if system == TRIVIAL:
        text = head_config_text(encoder, TRIVIAL, TRIVIAL, _TRIVIAL_HEAD, "spans_sc_f")
    else:
        text = config_text(encoder, system)
    blank_config = spacy.blank(lang).config
    overrides = {"nlp.lang": lang, "nlp.tokenizer": dict(blank_config["nlp"]["tokenizer"]),
                 "initialize.tokenizer": dict(blank_config["initialize"]["tokenizer"]),
                 **transformer_overrides(encoder)}
    if system == "spancat":
        longest = max((len(s) for eg in examples for s in eg.reference.spans.get(SPANS_KEY, [])), default=1)
        overrides["components.spancat.suggester.sizes"] = list(range(1, min(longest, 10) + 1))
    overrides.update(extra or {})
    # Interpolated: nlp.initialize resolves [training.optimizer] on its own, and minilm's
    # schedule refers to ${training.max_steps}.
    config = load_config_from_str(text, overrides=overrides, interpolate=True)
    fix_random_seed(seed)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    optimizer = nlp.initialize(lambda: examples)
    batches = itertools.cycle(_batches(examples, train_batch))
    for _ in range(train_steps):
        update(nlp, next(batches), optimizer, 0.1)
    return Trained(nlp, optimizer)


def _batches(examples: Sequence[Any], size: int) -> List[List[Any]]:
    return [list(examples[i : i + size]) for i in range(0, len(examples), size)]


# --- timing --------------------------------------------------------------------------------


def time_pipe(nlp: Any, texts: Sequence[str], batch_size: int, encoder_only: bool) -> float:
    """Seconds to run nlp.pipe (or its encoder alone) over the texts."""
    if encoder_only:
        with nlp.select_pipes(enable=encoder_pipes(nlp)):
            return time_pipe(nlp, texts, batch_size, False)
    start = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=batch_size):
        pass
    return time.perf_counter() - start


def time_updates(trained: Trained, batches: Sequence[Sequence[Any]]) -> float:
    """Seconds for nlp.update over the batches (dropout 0.1, the pipeline's optimizer)."""
    start = time.perf_counter()
    for batch in batches:
        update(trained.nlp, batch, trained.optimizer, 0.1)
    return time.perf_counter() - start


def measure(pipelines: Dict[str, Trained], examples: List[Any], texts: List[str], batch1_docs: int,
            large_batch: int, train_batch: int, repeats: int) -> Dict[str, Any]:
    """Paired timings per repeat, systems in a rotated order; medians of the ratios."""
    n_words = sum(len(eg.predicted) for eg in examples)
    n_words_batch1 = sum(len(eg.predicted) for eg in examples[:batch1_docs])
    train_batches = _batches(examples, train_batch)
    names = list(pipelines)
    rows: Dict[str, Dict[str, List[float]]] = {name: {} for name in names}
    for repeat in range(repeats):
        order = names[repeat % len(names):] + names[: repeat % len(names)]
        for name in order:
            nlp, row = pipelines[name].nlp, rows[name]
            if name != TRIVIAL:
                # Pipeline and encoder back to back, which first alternating by repeat.
                for label, docs, batch_size in (("batch1", texts[:batch1_docs], 1), ("large", texts, large_batch)):
                    firsts = (False, True) if repeat % 2 else (True, False)
                    seconds = {only: time_pipe(nlp, docs, batch_size, only) for only in firsts}
                    row.setdefault(f"{label}_pipeline_s", []).append(seconds[False])
                    row.setdefault(f"{label}_encoder_s", []).append(seconds[True])
            row.setdefault("train_s", []).append(time_updates(pipelines[name], train_batches))
    out: Dict[str, Any] = {"docs": len(texts), "words": n_words, "batch1_docs": min(batch1_docs, len(texts)),
                           "batch1_words": n_words_batch1, "large_batch": large_batch,
                           "train_batch": train_batch, "repeats": repeats, "systems": {}}
    for name in names:
        row, figures = rows[name], {}
        for label, words in (("batch1", n_words_batch1), ("large", n_words)):
            if f"{label}_pipeline_s" not in row:
                continue
            pipe_s, enc_s = row[f"{label}_pipeline_s"], row[f"{label}_encoder_s"]
            figures[label] = {
                "pipeline_words_per_s": words / statistics.median(pipe_s),
                "encoder_words_per_s": words / statistics.median(enc_s),
                "head_share": statistics.median(1 - e / p for p, e in zip(pipe_s, enc_s)),
                "throughput_vs_encoder": statistics.median(e / p for p, e in zip(pipe_s, enc_s)),
            }
        figures["train_words_per_s"] = n_words / statistics.median(row["train_s"])
        if TRIVIAL in rows and name != TRIVIAL:
            figures["train_vs_trivial_head"] = statistics.median(
                t / s for s, t in zip(row["train_s"], rows[TRIVIAL]["train_s"]))
        figures["raw_seconds"] = row
        out["systems"][name] = figures
    return out


def print_figures(figures: Dict[str, Any]) -> None:
    print(f"\n{figures['docs']} docs, {figures['words']:,} words; batch 1 on the first "
          f"{figures['batch1_docs']} docs; training in batches of {figures['train_batch']} docs; "
          f"medians of {figures['repeats']} repeats")
    for name, row in figures["systems"].items():
        print(f"\n{name}")
        for label, title in (("batch1", "predict, batch 1"), ("large", f"predict, batch {figures['large_batch']}")):
            if label in row:
                r = row[label]
                print(f"  {title:20} {r['pipeline_words_per_s']:>9,.0f} words/s; encoder alone "
                      f"{r['encoder_words_per_s']:>9,.0f}; head share {r['head_share']:6.1%}; "
                      f"throughput {r['throughput_vs_encoder']:6.1%} of the encoder's")
        line = f"  {'train':20} {row['train_words_per_s']:>9,.0f} words/s"
        if "train_vs_trivial_head" in row:
            line += f"; {row['train_vs_trivial_head']:6.1%} of the trivial head's"
        print(line)


# --- profiles ------------------------------------------------------------------------------


def cprofile_listing(run: Callable[[], Any], top: int) -> str:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(top)
    return relative_listing(buf.getvalue())


def torch_table(run: Callable[[], Any], top: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def profiles(trained: Trained, examples: List[Any], texts: List[str], batch1_docs: int, large_batch: int,
             train_batch: int, top: int, use_torch: bool) -> Dict[str, str]:
    batches, nlp = _batches(examples, train_batch), trained.nlp
    runs = {
        f"predict, batch {large_batch}": lambda: time_pipe(nlp, texts, large_batch, False),
        "predict, batch 1": lambda: time_pipe(nlp, texts[:batch1_docs], 1, False),
        "train": lambda: time_updates(trained, batches),
    }
    out = {}
    for title, run in runs.items():
        out[f"cProfile: {title}"] = cprofile_listing(run, top)
        if use_torch:
            out[f"torch.profiler: {title}"] = torch_table(run, top)
    return out


# --- command -------------------------------------------------------------------------------


def main(
    data: Annotated[Optional[Path], typer.Option(help="DocBin (.spacy) or span JSONL; default: demo-like corpus built in memory")] = None,
    lang: Annotated[str, typer.Option(help="Language of the docs (zh: one token per character)")] = "en",
    encoder: Annotated[str, typer.Option(help="Benchmark encoder: cnn, bilstm or minilm (all-MiniLM-L6-v2)")] = "cnn",
    systems: Annotated[str, typer.Option(help="Comma-separated benchmark systems; the first is profiled")] = "global_pointer_efficient",
    docs: Annotated[int, typer.Option(help="Docs read (or generated)")] = 2000,
    batch1_docs: Annotated[int, typer.Option(help="Docs timed at batch size 1")] = 300,
    large_batch: Annotated[int, typer.Option(help="Docs per batch for the large batch")] = 256,
    train_batch: Annotated[int, typer.Option(help="Docs per training update")] = 16,
    train_steps: Annotated[int, typer.Option(help="Updates before timing (trained heads predict realistic numbers of spans)")] = 100,
    repeats: Annotated[int, typer.Option(help="Timing repeats (systems rotated, pipeline and encoder alternated)")] = 3,
    trivial: Annotated[bool, typer.Option(help="Time training against a trivial head on the same encoder")] = True,
    set_: Annotated[Optional[List[str]], typer.Option(
        "--set", help="Config override KEY=VALUE (JSON value) for every system, e.g. a learning rate "
        "that trains minilm's heads within --train-steps; repeatable")] = None,
    profile: Annotated[bool, typer.Option(help="Print cProfile listings of the first system")] = True,
    torch_profile: Annotated[bool, typer.Option(help="Print torch.profiler operator tables too")] = True,
    top: Annotated[int, typer.Option(help="Rows of each listing")] = 20,
    threads: Annotated[int, typer.Option(help="torch/BLAS threads")] = 1,
    seed: Annotated[int, typer.Option()] = 0,
    output: Annotated[Optional[Path], typer.Option(help="Also write the figures and listings as JSON")] = None,
) -> None:
    """Time a span head against its encoder (prediction) and a trivial head (training),
    then profile it."""
    code = code_version()
    _set_threads(threads)
    import bench.crf_component  # noqa: F401  (registers the CRF factory)
    import spacy_globalpointer

    # The package imported (PYTHONPATH decides: another checkout times the code before a change).
    code["package_path"] = str(Path(spacy_globalpointer.__file__).parent)

    _register_trivial_head()
    names = [name.strip() for name in systems.split(",") if name.strip()]
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown:
        raise typer.BadParameter(f"unknown system(s) {unknown}; known: {sorted(SYSTEMS)}")
    if encoder not in ENCODERS:
        raise typer.BadParameter(f"unknown encoder {encoder!r}; known: {sorted(ENCODERS)}")
    try:
        transformer_overrides(encoder)  # minilm without its weights package: stop before any work
    except RuntimeError as err:
        raise typer.BadParameter(str(err)) from err
    examples = load_examples(data, lang, docs, seed)
    texts = [eg.predicted.text for eg in examples]
    print(f"{len(examples)} docs, {sum(len(eg.predicted) for eg in examples):,} words, "
          f"{sum(len(eg.reference.spans.get(SPANS_KEY, [])) for eg in examples):,} gold spans; package {code}")
    pipelines = {}
    for name in names + ([TRIVIAL] if trivial else []):
        start = time.perf_counter()
        pipelines[name] = build_pipeline(name, encoder, lang, examples, train_steps, train_batch, seed,
                                         parse_overrides(set_ or []))
        print(f"built {name} ({train_steps} updates) in {time.perf_counter() - start:.1f} s")
    for name in names:
        nlp = pipelines[name].nlp
        predicted = list(nlp.pipe(texts, batch_size=large_batch))
        n_spans = sum(len(doc.spans.get(SPANS_KEY, [])) + len(doc.ents) for doc in predicted)
        print(f"{name}: {n_spans:,} spans predicted on the {len(texts)} docs")
    time_pipe(pipelines[names[0]].nlp, texts[:50], 16, False)  # warm-up
    figures = measure(pipelines, examples, texts, batch1_docs, large_batch, train_batch, repeats)
    print_figures(figures)
    listings = {}
    if profile:
        listings = profiles(pipelines[names[0]], examples, texts, batch1_docs, large_batch, train_batch,
                            top, torch_profile)
        for title, text in listings.items():
            print(f"\n=== {names[0]}: {title}\n{text}")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"code": code, "data": str(data) if data else "demo (in memory)",
                                      "lang": lang, "encoder": encoder, "threads": threads,
                                      "overrides": parse_overrides(set_ or []), "figures": figures, "listings": listings}, indent=1) + "\n",
                          encoding="utf8")


if __name__ == "__main__":
    typer.run(main)
