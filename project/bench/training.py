"""One training run of the benchmark (`python -m bench train-one`, which the runner calls
once per run in its own process), and the training step it takes."""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bench import registry
from bench.common import code_version, machine_info, set_threads, write_json
from bench.corpus import (
    breakdown_lines,
    check_alignment,
    corpus_paths,
    heldout_breakdown,
    load_gold,
    predict_sets,
)

# result.json's layout: 1 (no "schema_version" key): before experiments; 2: "experiment",
# "variant", "model_used", and an evaluation after the last step.
RESULT_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Schedule:
    """When a run stops and how often dev is scored; the same for every system of an experiment."""

    steps: int = 1500  # the cap (with patience) or the budget
    eval_every: int = 300
    patience: int = 0  # stop when dev F has not improved for this many steps (0: off)
    train_limit: int = 0  # train on the first N training docs (0: all)
    max_train_seconds: float = 0.0  # also stop after this much time in updates (0: no limit)


def update(nlp: Any, batch: Sequence[Any], optimizer: Any, drop: float,
           losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """nlp.update on the batch, then advance the optimizer's schedules.

    thinc moves a scheduled setting (a warmup_linear learn_rate) only on
    optimizer.step_schedules(), which spaCy's training loop calls after every update;
    a loop that skips it trains at the schedule's first value for ever (warmup_linear's
    is 0: nothing learns)."""
    losses = nlp.update(batch, drop=drop, sgd=optimizer, losses=losses if losses is not None else {})
    optimizer.step_schedules()
    return losses


def patience_exhausted(curve: Sequence[Dict[str, Any]], patience: int) -> bool:
    """Whether the dev F has not improved on its best for `patience` steps: spaCy's
    patience, on the benchmark's own dev curve (0: never). Patience waits while the model
    predicts nothing right on dev (dev F 0): it has not started, or has fallen back to
    predicting nothing after an early blip, as spancat does on Weibo for its first ~2,000
    steps; the step cap still bounds the run."""
    # A latest dev F of 0 also covers a best of 0 (every point 0).
    if not patience or not curve or not curve[-1]["dev"]["f"]:
        return False
    best = max(curve, key=lambda point: (point["dev"]["f"], -point["step"]))
    return curve[-1]["step"] - best["step"] >= patience


def run_dir(output: Path, dataset: str, encoder: str, system: str, seed: int) -> Path:
    return output / dataset / encoder / system / f"seed{seed}"


def train_one(dataset: str, encoder: str, system: str, out_dir: Path, corpus_dir: Path, *, seed: int = 0,
              schedule: Schedule = Schedule(), threads: int = 1, overrides: Optional[Dict[str, Any]] = None,
              experiment: str = "adhoc", variant: str = "baseline") -> Dict[str, Any]:
    """Train one system; score dev every `eval_every` steps and after the last step; keep
    the best dev checkpoint (model-best); score it on the held-out split; write result.json.
    A run with no evaluation at all (no training step) is scored with its last model
    (model-last); "model_used" says which."""
    from bench.configs import config_text, transformer_overrides

    code = code_version()  # before the package is imported: the code this run uses
    set_threads(threads)
    import spacy
    from spacy.schemas import ConfigSchemaTraining
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import create_train_batches
    from spacy.util import fix_random_seed, load_config_from_str, resolve_dot_names
    from spacy.util import registry as spacy_registry

    import bench.crf_component  # noqa: F401  (registers the CRF factory)
    from scripts.span_metrics import outermost, score_predictions

    spec = registry.dataset(dataset)
    system_spec = registry.system(system)
    flat = not system_spec.nested
    stats = json.loads((corpus_dir / "stats.json").read_text())
    paths = corpus_paths(corpus_dir)
    steps, eval_every = schedule.steps, schedule.eval_every
    config_overrides: Dict[str, Any] = {
        "paths.train": str(paths["train"]), "paths.dev": str(paths["dev"]),
        "nlp.lang": spec.lang, "system.seed": seed,
        "training.max_steps": steps, "training.eval_frequency": eval_every,
        "corpora.train.limit": schedule.train_limit,
    }
    if system_spec.family == "spancat" and system_spec.options.get("sizes") is None:
        # n-gram sizes from the data: those covering 99.5% of the training spans
        config_overrides[f"components.{system_spec.component}.suggester.sizes"] = stats["spancat_sizes"]
    config_overrides.update(transformer_overrides(encoder))
    user_overrides = dict(overrides or {})
    config_overrides.update(user_overrides)
    # The configs name spaCy's default (whitespace and punctuation) tokenizer; other
    # languages need their own (Chinese: one token per character, as in the corpus).
    blank_config = spacy.blank(spec.lang).config
    config_overrides["nlp.tokenizer"] = dict(blank_config["nlp"]["tokenizer"])
    config_overrides["initialize.tokenizer"] = dict(blank_config["initialize"]["tokenizer"])
    out_dir.mkdir(parents=True, exist_ok=True)
    config = load_config_from_str(config_text(encoder, system), overrides=config_overrides, interpolate=False)
    config.to_disk(out_dir / "config.cfg")
    wall_start = time.perf_counter()
    fix_random_seed(seed)
    nlp = init_nlp(config)
    init_seconds = time.perf_counter() - wall_start
    check_alignment(nlp, paths["train"])
    config = nlp.config.interpolate()
    T = spacy_registry.resolve(config["training"], schema=ConfigSchemaTraining)
    train_corpus, _ = resolve_dot_names(config, [T["train_corpus"], T["dev_corpus"]])
    optimizer = T["optimizer"]
    dev_texts, dev_gold = load_gold(paths["dev"], spec.lang)
    if flat:
        dev_gold = [outermost(g) for g in dev_gold]
    batches = create_train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"])
    tag = f"[{dataset}/{encoder}/{system}/seed{seed}]"
    curve: List[Dict[str, Any]] = []
    train_seconds = eval_seconds = 0.0
    words = step = epoch = 0
    losses: Dict[str, float] = {}
    best: Dict[str, Any] = {"dev_f": -1.0}

    def evaluate() -> None:
        nonlocal eval_seconds, losses, best
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
              f"train {words / train_seconds if train_seconds else 0:.0f} words/s | "
              f"{point['wall_seconds']:.0f}s", flush=True)
        losses = {}

    stopped_by: Optional[str] = None
    for step, (epoch, batch) in enumerate(batches, start=1):  # noqa: B007  (evaluate reads epoch)
        n_words = sum(len(eg.predicted) for eg in batch)
        start = time.perf_counter()
        update(nlp, batch, optimizer, T["dropout"], losses)
        train_seconds += time.perf_counter() - start
        words += n_words
        time_up = bool(schedule.max_train_seconds) and train_seconds >= schedule.max_train_seconds
        if step % eval_every == 0 or step == steps or time_up:
            evaluate()
        stopped_by = "steps" if step >= steps else "time" if time_up else None
        if stopped_by is None and step % eval_every == 0 and patience_exhausted(curve, schedule.patience):
            stopped_by = "patience"
        if stopped_by:
            break
    stopped_by = stopped_by or "max_epochs"
    if step and (not curve or curve[-1]["step"] != step):
        evaluate()  # the steps after the last evaluation count (a run the epochs stopped)
    print(f"{tag} stopped at step {step} ({stopped_by}): {train_seconds:.0f}s of updates", flush=True)
    if "step" in best:
        model_used, scored_nlp = "best", spacy.load(out_dir / "model-best")
    else:
        print(f"{tag} WARNING no dev evaluation (no training step): scoring the last model", flush=True)
        model_used, scored_nlp = "last", nlp
        nlp.to_disk(out_dir / "model-last")
    test_texts, test_gold = load_gold(paths[spec.heldout], spec.lang)
    start = time.perf_counter()
    test_pred = predict_sets(scored_nlp, test_texts, flat)
    test = score_predictions(test_pred, test_gold)
    test_seconds = time.perf_counter() - start
    test.update(heldout_breakdown(test_pred, test_gold, test_texts, spec.lang, flat))
    o = test["overall"]
    print(f"{tag} held-out ({spec.heldout}, model-{model_used}): P {o['p']:.4f} R {o['r']:.4f} "
          f"F {o['f']:.4f} | outermost F {test['outermost']['f']:.4f}", flush=True)
    for line in breakdown_lines(test):
        print(f"{tag} {line}", flush=True)
    result = {
        "schema_version": RESULT_SCHEMA_VERSION, "experiment": experiment, "variant": variant,
        "dataset": dataset, "encoder": encoder, "system": system, "seed": seed,
        "flat": flat, "steps": steps, "eval_every": eval_every, "threads": threads,
        "steps_run": step, "max_train_seconds": schedule.max_train_seconds, "overrides": user_overrides,
        "final_learn_rate": float(optimizer.learn_rate),
        "patience": schedule.patience, "stopped_by": stopped_by, "train_limit": schedule.train_limit,
        "spancat_sizes": config_overrides.get(f"components.{system_spec.component}.suggester.sizes"),
        "heldout_split": spec.heldout, "model_used": model_used,
        "init_seconds": init_seconds, "train_seconds": train_seconds, "train_words": words,
        "train_words_per_second": words / train_seconds if train_seconds else 0.0,
        "eval_seconds": eval_seconds, "wall_seconds": time.perf_counter() - wall_start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "curve": curve, "best": best, "test": test, "test_seconds": test_seconds,
        "machine": machine_info(), "code": code,
    }
    write_json(out_dir / "result.json", result)
    return result
