"""Timing: the primitives every speed figure of the benchmark is made of, and the five
measurements built from them (`python -m bench time ...`).

    pipeline   a trained pipeline's words/s at batch 1 and a large batch, whole and encoder
               alone, and of training updates (the runner's timing repeats)
    profile    cProfile of a trained pipeline's prediction or training updates
    head-cost  pipelines built in memory: the head's share of prediction against the
               encoder alone, training against a trivial head, systems alternated
    parts      a trained pipeline part by part on each batch: encoder, head forward, decoding
    forward    the torch head's forward alone on one short sentence (microseconds a call)

The machine is shared: absolute words/s move with its load, ratios taken within a repeat
move less. So the measurements interleave what they compare (systems in a rotated order,
each repeat; parts one after another on each batch) and report medians over repeats.
"""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence, TypeVar

from bench.common import PROJECT
from bench.registry import ENCODER_PIPES
from bench.training import update

T = TypeVar("T")

# --- primitives ------------------------------------------------------------------------------


def rotation(names: Sequence[T], repeat: int) -> List[T]:
    """The order of one repeat: rotated by the repeat, so no name always runs first or last."""
    if not names:
        return []
    k = repeat % len(names)
    return list(names[k:]) + list(names[:k])


def interleaved(tasks: Mapping[str, Callable[[], float]], repeats: int) -> Dict[str, List[float]]:
    """Run every task once per repeat, in rotated order; each returns the seconds it measured."""
    seconds: Dict[str, List[float]] = {name: [] for name in tasks}
    for repeat in range(repeats):
        for name in rotation(list(tasks), repeat):
            seconds[name].append(tasks[name]())
    return seconds


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def paired_median(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of ratios taken repeat by repeat (numerator and denominator of one
    repeat ran back to back, under the same load)."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def encoder_pipes(nlp: Any) -> List[str]:
    """The pipeline's shared encoder (tok2vec or transformer): "the encoder alone"."""
    return [name for name in nlp.pipe_names if name in ENCODER_PIPES]


def time_pipe(nlp: Any, texts: Sequence[str], batch_size: int, encoder_only: bool = False) -> Dict[str, float]:
    """Seconds and words/s of nlp.pipe over the texts (or of its encoder alone)."""
    if encoder_only:
        with nlp.select_pipes(enable=encoder_pipes(nlp)):
            return time_pipe(nlp, texts, batch_size)
    start = time.perf_counter()
    n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "words": n_words, "words_per_second": n_words / seconds if seconds else 0.0}


def time_updates(nlp: Any, batches: Sequence[Sequence[Any]], optimizer: Any, drop: float = 0.1) -> Dict[str, float]:
    """Seconds and words/s of training updates over the batches."""
    n_words = sum(len(eg.predicted) for batch in batches for eg in batch)
    start = time.perf_counter()
    for batch in batches:
        update(nlp, batch, optimizer, drop)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "words": n_words, "words_per_second": n_words / seconds if seconds else 0.0}


def time_parts(nlp: Any, component: str, batches: Sequence[Sequence[str]]) -> Dict[str, Any]:
    """One pass over the batches, each batch through its parts one after another: the
    tokenizer and shared encoder, the component's forward (predict), its decoding
    (set_annotations). Seconds per part, and the spans the component wrote."""
    pipe = nlp.get_pipe(component)
    encoders = encoder_pipes(nlp)
    totals = {"encoder": 0.0, "forward": 0.0, "decode": 0.0}
    n_spans = 0
    for batch in batches:
        start = time.perf_counter()
        docs = [nlp.make_doc(text) for text in batch]
        for name in encoders:
            docs = list(nlp.get_pipe(name).pipe(docs, batch_size=len(docs)))
        encoded = time.perf_counter()
        scores = pipe.predict(docs)
        forward = time.perf_counter()
        pipe.set_annotations(docs, scores)
        decoded = time.perf_counter()
        totals["encoder"] += encoded - start
        totals["forward"] += forward - encoded
        totals["decode"] += decoded - forward
        key = getattr(pipe, "key", None)  # span components write doc.spans[key], the others doc.ents
        n_spans += sum(len(doc.spans[key]) if key is not None else len(doc.ents) for doc in docs)
    return {"seconds": totals, "spans": n_spans}


def resume_training(nlp: Any) -> Any:
    """nlp.resume_training() with the optimizer of the pipeline's config. spaCy resolves
    [training.optimizer] on its own, without the rest of the config, so a schedule that
    refers elsewhere (minilm's total_steps = ${training.max_steps}) would not resolve:
    resolve it from the interpolated config instead."""
    from spacy.util import registry

    section = nlp.config.interpolate()["training"]["optimizer"]
    return nlp.resume_training(sgd=registry.resolve({"optimizer": section})["optimizer"])


# --- profiles --------------------------------------------------------------------------------


def relative_listing(text: str) -> str:
    """cProfile names files by absolute path: drop the install and checkout folders
    (site-packages, the standard library, the repository), so a kept listing names
    packages and project files, not this machine's folders."""
    import site
    import sysconfig

    folders = [*site.getsitepackages(), site.getusersitepackages(), sysconfig.get_paths()["stdlib"],
               str(PROJECT.parent)]
    for folder in sorted(folders, key=len, reverse=True):  # site-packages before the stdlib above it
        text = text.replace(folder.rstrip("/") + "/", "")
    return text


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


def _docbin_texts(nlp: Any, data: Path) -> List[str]:
    from spacy.tokens import DocBin

    return [d.text for d in DocBin().from_disk(data).get_docs(nlp.vocab)]


def _examples(nlp: Any, data: Path, n_docs: int) -> List[Any]:
    from itertools import islice

    from spacy.training import Corpus

    return list(islice(Corpus(data)(nlp), n_docs))


# --- pipeline: the runner's timing repeats ----------------------------------------------------


def pipeline_speed(model_dir: Path, data: Path, batch1_docs: int = 300, large_batch: int = 256,
                   train_data: Path | None = None, train_docs: int = 480, train_batch: int = 16) -> Dict[str, Any]:
    """Prediction words/s of one trained pipeline at batch size 1 and a large batch, for the
    full pipeline and for the encoder alone (tokenizer + tok2vec, or transformer); training
    words/s of updates on fixed batches (timed back to back with the other systems of a
    timing session); peak RSS (internal). One repeat: the runner alternates systems."""
    import resource

    import spacy
    from spacy.util import minibatch

    import bench.crf_component  # noqa: F401  (registers the CRF factory)

    nlp = spacy.load(model_dir)
    texts = _docbin_texts(nlp, data)
    time_pipe(nlp, texts[:50], 16)  # warm-up
    out: Dict[str, Any] = {"model": str(model_dir), "data": str(data), "docs": len(texts),
                           "batch1_docs": min(batch1_docs, len(texts)), "large_batch": large_batch}
    start = time.perf_counter()
    n_words = sum(len(nlp.make_doc(t)) for t in texts)
    out["tokenizer"] = {"seconds": time.perf_counter() - start, "words": n_words}
    for name, only in (("full", False), ("encoder_only", True)):
        out[name] = {"batch1": time_pipe(nlp, texts[:batch1_docs], 1, only),
                     "large": time_pipe(nlp, texts, large_batch, only)}
    if train_data is not None:
        batches = list(minibatch(_examples(nlp, train_data, train_docs), train_batch))
        optimizer = resume_training(nlp)
        update(nlp, batches[0], optimizer, 0.1)  # warm-up
        out["train"] = time_updates(nlp, batches[1:], optimizer)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def profile_model(model_dir: Path, data: Path, docs: int = 500, batch_size: int = 256, train: bool = False,
                  top: int = 25) -> str:
    """cProfile listing of prediction (nlp.pipe) on a large batch, or of training updates
    on `data` (batches of 16 docs): which operations dominate."""
    import spacy
    from spacy.util import minibatch

    import bench.crf_component  # noqa: F401

    nlp = spacy.load(model_dir)
    if train:
        batches = list(minibatch(_examples(nlp, data, docs), 16))
        optimizer = resume_training(nlp)
        update(nlp, batches[0], optimizer, 0.1)
        return cprofile_listing(lambda: time_updates(nlp, batches[1:], optimizer), top)
    texts = _docbin_texts(nlp, data)[:docs]
    time_pipe(nlp, texts[:50], 16)
    return cprofile_listing(lambda: time_pipe(nlp, texts, batch_size), top)


# --- head-cost: systems built in memory, against the encoder and a trivial head ------------------


def head_cost(pipelines: Mapping[str, Any], examples: List[Any], texts: List[str], batch1_docs: int,
              large_batch: int, train_batch: int, repeats: int, trivial: str = "trivial_head") -> Dict[str, Any]:
    """Paired timings per repeat, systems in a rotated order (the pipeline and its encoder
    alone back to back, which first alternating by repeat); medians of the ratios.
    `pipelines`: name -> pipelines.Trained; the trivial head is timed in training only."""
    from bench.pipelines import batches_of

    n_words = sum(len(eg.predicted) for eg in examples)
    n_words_batch1 = sum(len(eg.predicted) for eg in examples[:batch1_docs])
    train_batches = batches_of(examples, train_batch)
    names = list(pipelines)
    rows: Dict[str, Dict[str, List[float]]] = {name: {} for name in names}
    for repeat in range(repeats):
        for name in rotation(names, repeat):
            nlp, row = pipelines[name].nlp, rows[name]
            if name != trivial:
                for label, docs, batch_size in (("batch1", texts[:batch1_docs], 1), ("large", texts, large_batch)):
                    firsts = (False, True) if repeat % 2 else (True, False)
                    seconds = {only: time_pipe(nlp, docs, batch_size, only)["seconds"] for only in firsts}
                    row.setdefault(f"{label}_pipeline_s", []).append(seconds[False])
                    row.setdefault(f"{label}_encoder_s", []).append(seconds[True])
            trained = pipelines[name]
            row.setdefault("train_s", []).append(time_updates(nlp, train_batches, trained.optimizer)["seconds"])
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
                "pipeline_words_per_s": words / median(pipe_s),
                "encoder_words_per_s": words / median(enc_s),
                "head_share": statistics.median(1 - e / p for p, e in zip(pipe_s, enc_s)),
                "throughput_vs_encoder": paired_median(enc_s, pipe_s),
            }
        figures["train_words_per_s"] = n_words / median(row["train_s"])
        if trivial in rows and name != trivial:
            figures["train_vs_trivial_head"] = paired_median(rows[trivial]["train_s"], row["train_s"])
        figures["raw_seconds"] = row
        out["systems"][name] = figures
    return out


def head_cost_lines(figures: Dict[str, Any]) -> List[str]:
    lines = [f"{figures['docs']} docs, {figures['words']:,} words; batch 1 on the first "
             f"{figures['batch1_docs']} docs; training in batches of {figures['train_batch']} docs; "
             f"medians of {figures['repeats']} repeats"]
    for name, row in figures["systems"].items():
        lines.append(name)
        for label, title in (("batch1", "predict, batch 1"), ("large", f"predict, batch {figures['large_batch']}")):
            if label in row:
                r = row[label]
                lines.append(f"  {title:20} {r['pipeline_words_per_s']:>9,.0f} words/s; encoder alone "
                             f"{r['encoder_words_per_s']:>9,.0f}; head share {r['head_share']:6.1%}; "
                             f"throughput {r['throughput_vs_encoder']:6.1%} of the encoder's")
        line = f"  {'train':20} {row['train_words_per_s']:>9,.0f} words/s"
        if "train_vs_trivial_head" in row:
            line += f"; {row['train_vs_trivial_head']:6.1%} of the trivial head's"
        lines.append(line)
    return lines


def head_cost_profiles(trained: Any, examples: List[Any], texts: List[str], batch1_docs: int, large_batch: int,
                       train_batch: int, top: int, use_torch: bool) -> Dict[str, str]:
    """cProfile listings (and torch.profiler tables) of one pipeline's prediction at both
    batch sizes and of its training updates."""
    from bench.pipelines import batches_of

    batches, nlp = batches_of(examples, train_batch), trained.nlp
    runs = {
        f"predict, batch {large_batch}": lambda: time_pipe(nlp, texts, large_batch),
        "predict, batch 1": lambda: time_pipe(nlp, texts[:batch1_docs], 1),
        "train": lambda: time_updates(nlp, batches, trained.optimizer),
    }
    out = {}
    for title, run in runs.items():
        out[f"cProfile: {title}"] = cprofile_listing(run, top)
        if use_torch:
            out[f"torch.profiler: {title}"] = torch_table(run, top)
    return out


# --- parts: encoder, head forward, decoding of a trained pipeline --------------------------------


def head_parts(model: Path, texts: Sequence[str], batch_size: int = 256, component: str = "global_pointer",
               repeats: int = 7) -> Dict[str, Any]:
    """Whole-pipeline timings take the head's share as the difference of two runs, which a
    shared machine's noise swamps once the head is a few percent. Here the parts run one
    after another on each batch, in one process, `repeats` passes after a warm-up: the
    head's share is (forward + decoding) / all three, each part the median over passes."""
    import spacy

    import bench.crf_component  # noqa: F401  (registers the benchmark's CRF tagger)

    nlp = spacy.load(model)
    batches = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    n_words = sum(len(nlp.make_doc(text)) for text in texts)
    seconds: Dict[str, List[float]] = {"encoder": [], "forward": [], "decode": []}
    n_spans = 0
    for repeat in range(repeats + 1):  # the first is a warm-up
        one = time_parts(nlp, component, batches)
        n_spans = one["spans"]
        if repeat:
            for part, value in one["seconds"].items():
                seconds[part].append(value)
    medians = {part: median(values) for part, values in seconds.items()}
    total = sum(medians.values())
    return {"model": str(model), "docs": len(texts), "words": n_words, "spans": n_spans,
            "batch_size": batch_size, "repeats": repeats, "seconds": seconds, "medians": medians,
            "head_share": (medians["forward"] + medians["decode"]) / total}


# --- forward: the torch head alone ---------------------------------------------------------------


def head_forward(tokens: int = 16, labels: int = 5, efficient: bool = True, calls: int = 2000,
                 repeats: int = 7, width: int = 96) -> Dict[str, Any]:
    """Seconds per call of the torch head's forward on one sentence (batch size 1): what an
    app calling nlp(text) per request pays in the head beyond the encoder, without the
    pipeline around it; the figure to compare two versions of torch_head.py by."""
    import torch

    from spacy_globalpointer.torch_head import GlobalPointerHead

    torch.manual_seed(0)
    head = GlobalPointerHead(width, labels, 64, rope=True, efficient=efficient)
    X = torch.randn(1, tokens, width)
    lengths = torch.tensor([tokens])

    def one_repeat() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            head(X, tokens, lengths=lengths)
        return (time.perf_counter() - start) / calls

    with torch.no_grad():
        for _ in range(200):  # warm-up: caches, allocator
            head(X, tokens, lengths=lengths)
        seconds = interleaved({"forward": one_repeat}, repeats)["forward"]
    return {"tokens": tokens, "labels": labels, "efficient": efficient, "calls": calls, "repeats": repeats,
            "seconds_per_call": seconds, "median_seconds_per_call": median(seconds)}
