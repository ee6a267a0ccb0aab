"""The page's results: runs trained until dev F stopped improving (experiment
"converged"), per corpus and encoder, and the variants tried, each beside its baseline."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from bench.records import DEFAULT_VARIANT, HeadPartsRecord, TrainRecord, variant_settings
from bench.report.common import (
    HEADS,
    dataset_info,
    dev_f,
    encoder_name,
    group_runs,
    mean,
    mean_std,
    mean_std_pair,
    median,
    minutes,
    num,
    paired,
    pct,
    seeds_text,
    system_name,
    table,
    test_f,
)

EXPERIMENT = "converged"
# The variant a system ships with, where it is not the experiment's baseline:
# project/configs/trf.cfg sets head_learn_rate_scale = 10 (a test checks it does).
SHIPPED_VARIANTS = {("minilm", "global_pointer_efficient"): "head_learn_rate_scale=10"}
CAP_STOPS = {"steps": "the step cap", "time": "the time cap", "max_epochs": "the epoch limit"}


def shipped_variant(encoder: str, system: str) -> str:
    return SHIPPED_VARIANTS.get((encoder, system), DEFAULT_VARIANT)


def headline_runs(runs: Sequence[TrainRecord]) -> List[TrainRecord]:
    """The converged runs of each system at the setting it ships with."""
    return [r for r in runs if r.experiment == EXPERIMENT and r.variant == shipped_variant(r.encoder, r.system)]


def baseline_of(variant: str, variants: Sequence[str]) -> str:
    """A variant's baseline: the variant among `variants` whose settings are the largest
    proper subset of its own ("head_learn_rate_scale=10, max_steps=3200" ->
    "head_learn_rate_scale=10" where that ran), else the baseline."""
    mine = variant_settings(variant)
    best, size = DEFAULT_VARIANT, 0
    for other in variants:
        theirs = variant_settings(other)
        if other != variant and len(theirs) > size and theirs.items() <= mine.items():
            best, size = other, len(theirs)
    return best


def predict_speeds(parts: Sequence[HeadPartsRecord], batch_size: int = 256) -> Dict[Tuple[str, str, str, int], float]:
    """(dataset, encoder, system, seed) -> words/s of the trained model at a batch size
    (encoder + head forward + decoding, `python -m bench time parts`), from the measurement
    set that timed the most systems on that corpus and encoder (timed together), the median
    over its runs."""
    chosen = choose_parts(parts)
    out: Dict[Tuple[str, str, str, int], List[float]] = {}
    for r in chosen:
        if r.batch_size == batch_size and r.words_per_second:
            out.setdefault((r.dataset, r.encoder, r.system, r.seed), []).append(r.words_per_second)
    return {k: median(v) for k, v in out.items()}  # type: ignore[misc]


def choose_parts(parts: Sequence[HeadPartsRecord]) -> List[HeadPartsRecord]:
    """Per (experiment, dataset, encoder): the records of the package that timed the most
    systems (ties: the most records)."""
    groups: Dict[Tuple[str, str, str], Dict[Optional[str], List[HeadPartsRecord]]] = {}
    for r in parts:
        groups.setdefault((r.experiment, r.dataset, r.encoder), {}).setdefault(r.package, []).append(r)
    out: List[HeadPartsRecord] = []
    for by_package in groups.values():
        best = max(by_package.values(), key=lambda rs: (len({r.system for r in rs}), len(rs)))
        out += best
    return out


def _learn_rate(r: TrainRecord) -> str:
    given = {**(r.config_overrides or {}), **r.overrides}
    if "training.optimizer.learn_rate" in given:
        return f"{given['training.optimizer.learn_rate']:g}"
    rate = given.get("training.optimizer.learn_rate.initial_rate")
    warmup = given.get("training.optimizer.learn_rate.warmup_steps")
    if rate is not None:
        text = f"{rate:g}"
        if warmup is not None:
            text += f", warmed up over {warmup:,} steps, linear to 0 at the cap"
        return text
    return "the config's"


def _stops(runs: Sequence[TrainRecord]) -> str:
    counts: Dict[str, int] = {}
    for r in runs:
        counts[r.stopped_by or "?"] = counts.get(r.stopped_by or "?", 0) + 1
    return ", ".join((f"**{CAP_STOPS[k]}**" if k in CAP_STOPS else k) + (f" ({n})" if len(runs) > 1 else "")
                     for k, n in counts.items())


def _recall_cells(runs: Sequence[TrainRecord], nested: bool, spans: bool) -> List[str]:
    cells = []
    if nested:
        cells.append(mean_std([r.test.nested_recall for r in runs]))
    if spans:
        cells += [mean_std([r.test.inner_spans.recall if r.test.inner_spans else None for r in runs]),
                  mean_std([r.test.outer_spans.recall if r.test.outer_spans else None for r in runs])]
    return cells


def results_section(runs: Sequence[TrainRecord], parts: Sequence[HeadPartsRecord]) -> List[str]:
    """Per corpus and encoder: every system at its shipped setting."""
    chosen = headline_runs(runs)
    if not chosen:
        return ["No converged runs collected.", ""]
    speeds = predict_speeds(parts)
    out: List[str] = []
    for (dataset, encoder), systems in group_runs(chosen).items():
        info = dataset_info(dataset)
        everything = [r for rs in systems.values() for r in rs]
        spans = any(r.test.inner_spans or r.test.outer_spans for r in everything)
        out += [f"### {info.name}, {encoder_name(encoder)}", "",
                _conditions(everything, info.heldout), ""]
        header = ["system", "variant", "seeds", "dev F", "test F", "test F, threshold tuned on dev", "test P / R"]
        header += ["nested recall"] if info.nested else []
        header += ["inner-span recall", "outer-span recall"] if spans else []
        header += ["steps to best dev", "wall-clock to best dev", "updates to best dev",
                   "stopped by", "train words/s", "predict words/s (batch 256)"]
        shares = any(r.head_share is not None for r in everything)
        header += ["head's share of prediction time"] if shares else []
        lines = []
        for system, rs in systems.items():
            speed = mean([r.predict_words_per_second or speeds.get((dataset, encoder, system, r.seed)) for r in rs])
            lines.append([
                system_name(system), f"`{rs[0].variant}`", seeds_text(rs), mean_std(dev_f(r) for r in rs),
                mean_std(test_f(r) for r in rs), mean_std(r.tuned_f for r in rs),
                f"{pct(mean(r.test.overall.p for r in rs))} / {pct(mean(r.test.overall.r for r in rs))}",
                *_recall_cells(rs, info.nested, spans),
                num(mean(r.best.step for r in rs)), minutes(mean(r.best.wall_seconds for r in rs)),
                num(mean(r.best.train_seconds for r in rs), "{:,.0f} s"), _stops(rs),
                _train_speed(rs), num(speed)] + ([mean_std(r.head_share for r in rs)] if shares else []))
        out += [table(header, lines), ""]
        out += _margins(systems)
        out += per_type_table(systems)
        out += errors_tables(systems, info.nested)
    return out


def _train_speed(runs: Sequence[TrainRecord]) -> str:
    """Training words/s, mean over seeds; the threads where a run had more than one."""
    cell = num(mean(r.train_words_per_second for r in runs))
    threads = [f"seed {r.seed}: {r.threads} threads" for r in runs if r.threads and r.threads > 1]
    return cell + (f" ({', '.join(threads)})" if threads else "")


def _conditions(runs: Sequence[TrainRecord], heldout: str) -> str:
    patience = sorted({r.patience for r in runs if r.patience})
    caps = sorted({r.steps for r in runs if r.steps})
    evals = sorted({r.eval_every for r in runs if r.eval_every})
    limits = sorted({r.train_limit for r in runs if r.train_limit})
    rates = sorted({_learn_rate(r) for r in runs})
    text = (f"Held-out split: {heldout}. Patience {', '.join(f'{p:,}' for p in patience) or '—'} steps, "
            f"cap {', '.join(f'{c:,}' for c in caps)} steps, dev F every {', '.join(f'{e:,}' for e in evals)} "
            f"steps; learning rate {'; '.join(rates)}")
    if limits:
        text += f"; the first {', '.join(f'{n:,}' for n in limits)} training docs"
    return text + "."


def _margins(systems: Dict[str, List[TrainRecord]]) -> List[str]:
    """Each head against every other system, paired by seed."""
    out = []
    for head in HEADS:
        if head not in systems:
            continue
        for other, rs in systems.items():
            if other in HEADS:
                continue
            p = paired(systems[head], rs, test_f)
            if p.diffs:
                out.append(f"- {system_name(head)} minus {system_name(other)}, test F: {p.text()}.")
    return out + [""] if out else []


def per_type_table(systems: Dict[str, List[TrainRecord]]) -> List[str]:
    labels = sorted({label for rs in systems.values() for r in rs for label in r.test.per_type})
    if not labels:
        return []
    lines = [[system_name(s)] + [pct(mean(r.test.per_type[label].f if label in r.test.per_type else None
                                          for r in rs)) for label in labels]
             for s, rs in systems.items()]
    return ["Test F per type (mean over seeds):", "", table(["system", *labels], lines), ""]


ERROR_KINDS = {
    "fp": [("type", "type"), ("boundary", "boundary"), ("boundary_and_type", "boundary + type"),
           ("spurious", "spurious")],
    "fn": [("type", "type"), ("boundary", "boundary"), ("boundary_and_type", "boundary + type"),
           ("missed", "missed")],
}


def errors_tables(systems: Dict[str, List[TrainRecord]], nested: bool) -> List[str]:
    """Errors by kind and P/R/F by span length, means over the seeds whose records carry
    them; nothing where none does."""
    carrying = {s: [r for r in rs if r.test.errors and r.test.by_length] for s, rs in systems.items()}
    carrying = {s: rs for s, rs in carrying.items() if rs}
    if not carrying:
        return []
    header = ["system", "seeds", "gold spans"]
    for side in ("fp", "fn"):
        header += [side.upper()] + [f"{side.upper()} {name}" for _, name in ERROR_KINDS[side]]
    lines = []
    for system, rs in carrying.items():
        line = [system_name(system), seeds_text(rs), num(mean(r.test.errors["gold"] for r in rs))]  # type: ignore[index]
        for side in ("fp", "fn"):
            line.append(num(mean(r.test.errors[side]["total"] for r in rs)))  # type: ignore[index]
            for kind, _ in ERROR_KINDS[side]:
                line.append(num(mean(r.test.errors[side][kind] for r in rs)))  # type: ignore[index]
        lines.append(line)
    out = ["Errors on the held-out split (mean counts over the seeds listed): false positives (FP, predictions "
           "without an exact gold match) and false negatives (FN, gold spans without an exact "
           "prediction), each counted once under the first kind that applies: type (same "
           "offsets, another label), boundary (overlaps one of the same label), boundary + type "
           "(overlaps only spans of other labels), spurious / missed (overlaps none).", ""]
    if nested and any(r.test.errors.get("gold_spans") == "outermost" for rs in carrying.values() for r in rs):  # type: ignore[union-attr]
        out += ["The CRF tagger and spaCy ner cannot nest: their errors are counted against the "
                "outermost gold spans.", ""]
    out += [table(header, lines), ""]
    # One table per set of length buckets: records made with other buckets are not pooled.
    schemes: Dict[Tuple[str, ...], Dict[str, List[TrainRecord]]] = {}
    for system, rs in carrying.items():
        for r in rs:
            scheme = tuple(r.test.by_length.buckets)  # type: ignore[union-attr]
            schemes.setdefault(scheme, {}).setdefault(system, []).append(r)
    for buckets, by_system in schemes.items():
        unit = ", ".join(sorted({r.test.by_length.unit or "?" for rs in by_system.values() for r in rs}))  # type: ignore[union-attr]
        lines = []
        for system, rs in by_system.items():
            line = [system_name(system), seeds_text(rs)]
            for name in buckets:
                cells = [r.test.by_length.buckets.get(name) for r in rs]  # type: ignore[union-attr]
                cells = [c for c in cells if c is not None and (c.gold or c.predicted)]
                line.append("—" if not cells else
                            f"{pct(mean(c.f for c in cells))} (P {pct(mean(c.p for c in cells))}, "
                            f"R {pct(mean(c.r for c in cells))}; {num(mean(c.gold for c in cells))})")
            lines.append(line)
        out += [f"By span length in {unit}: test F (precision over the predictions of that length, recall "
                "over the gold spans of that length; gold spans), mean over the seeds listed.", "",
                table(["system", "seeds", *buckets], lines), ""]
    return out


# --- variants --------------------------------------------------------------------------------

LONG_SPAN = 6  # the shortest span counted as long: the CNN encoder's window is ~9 tokens


def inner_recall(r: TrainRecord) -> Optional[float]:
    return r.test.inner_spans.recall if r.test.inner_spans else None


def outer_recall(r: TrainRecord) -> Optional[float]:
    return r.test.outer_spans.recall if r.test.outer_spans else None


def long_recall(r: TrainRecord) -> Optional[float]:
    """Recall pooled over the length buckets that start at LONG_SPAN or more tokens
    ("6-10", "11-20", "21+"; older records' "11+")."""
    if not r.test.by_length:
        return None
    long = [c for name, c in r.test.by_length.buckets.items()
            if int(name.split("-")[0].rstrip("+")) >= LONG_SPAN]
    gold = sum(c.gold or 0 for c in long)
    return sum(c.tp or 0 for c in long) / gold if gold else None


def variants_section(runs: Sequence[TrainRecord]) -> List[str]:
    """Every variant of the converged experiment beside its baseline: same corpus, encoder
    and system, never pooled."""
    converged = [r for r in runs if r.experiment == EXPERIMENT]
    keys: Dict[Tuple[str, str, str], Dict[str, List[TrainRecord]]] = {}
    for r in converged:
        keys.setdefault((r.dataset, r.encoder, r.system), {}).setdefault(r.variant, []).append(r)
    variants = sorted({r.variant for r in converged if r.variant != DEFAULT_VARIANT})
    if not variants:
        return ["No variant runs collected.", ""]
    out: List[str] = []
    for variant in variants:
        out += [f"### `{variant}`", ""]
        lines, margins, nesting = [], [], []
        for (dataset, encoder, system), by_variant in sorted(keys.items()):
            if variant not in by_variant:
                continue
            nested = dataset_info(dataset).nested
            nearest = baseline_of(variant, list(by_variant))
            mine = sorted(by_variant[variant], key=lambda r: r.seed)
            where = [f"{dataset_info(dataset).name}, {encoder_name(encoder)}", system_name(system)]
            # Beside the nearest variant it extends, and beside the plain baseline too.
            for base_name in dict.fromkeys([nearest, DEFAULT_VARIANT]):
                if base_name not in by_variant and base_name != nearest:
                    continue
                base = sorted(by_variant.get(base_name, []), key=lambda r: r.seed)
                lines.append([
                    *where, f"`{base_name}`",
                    f"{seeds_text(mine)} / {seeds_text(base) or '—'}",
                    mean_std_pair(mine, base, dev_f), mean_std_pair(mine, base, test_f),
                    mean_std_pair(mine, base, lambda r: r.test.nested_recall) if nested else "—",
                    f"{num(mean(r.best.step for r in mine))} / {num(mean(r.best.step for r in base))}",
                    f"{_stops(mine)} / {_stops(base) if base else '—'}"])
                if nested and any(r.test.inner_spans for r in mine + base):
                    nesting.append([*where, f"`{base_name}`", *(mean_std_pair(mine, base, get)
                                                                 for get in (inner_recall, outer_recall, long_recall))])
                for split, value in (("dev", dev_f), ("test", test_f)):
                    p = paired(mine, base, value)
                    if p.diffs:
                        margins.append(f"- {where[0]}, {where[1]}: "
                                       f"{split} F, variant minus `{base_name}`: {p.text()}.")
        out += [table(["data, encoder", "system", "baseline", "seeds (variant / baseline)",
                       "dev F (variant / baseline)", "test F (variant / baseline)",
                       "nested recall (variant / baseline)", "steps to best dev", "stopped by"], lines), ""]
        if nesting:
            out += ["Held-out recall of inner gold spans (inside another), outer ones (containing "
                    f"another) and spans of {LONG_SPAN} or more tokens, variant / baseline:", "",
                    table(["data, encoder", "system", "baseline", "inner-span recall", "outer-span recall",
                           f"recall, spans of {LONG_SPAN}+ tokens"], nesting), ""]
        out += margins + ([""] if margins else [])
    out += decoding_section(converged)
    return out


def decoding_section(runs: Sequence[TrainRecord]) -> List[str]:
    """Decoding settings scored on the same trained model (decoding.json), where runs have them."""
    carrying = [r for r in runs if isinstance(r.decoding, dict) and r.decoding]
    if not carrying:
        return []
    lines = []
    for r in sorted(carrying, key=lambda r: (r.dataset, r.encoder, r.system, r.variant, r.seed)):
        for name, v in r.decoding.items():  # type: ignore[union-attr]
            lines.append([f"{dataset_info(r.dataset).name}, {encoder_name(r.encoder)}", system_name(r.system),
                          f"`{r.variant}`", str(r.seed), name, str(v.get("setting")),
                          pct(v.get("dev", {}).get("f")), pct(v.get("test", {}).get("overall", {}).get("f"))])
    return ["### Decoding settings on the same trained models", "",
            "Each trained model decoded again with other settings (the threshold picked on dev, "
            "per-label thresholds, non-overlapping spans), scored on dev and on the held-out split.", "",
            table(["data, encoder", "system", "variant", "seed", "decoding", "setting", "dev F", "test F"], lines), ""]


def experiment_section(runs: Sequence[TrainRecord]) -> List[str]:
    """Any other experiment's runs: per corpus and encoder, each system and variant, so that
    no collected run is left off the page."""
    out: List[str] = []
    for (dataset, encoder), systems in group_runs(runs).items():
        info = dataset_info(dataset)
        lines = []
        for system, rs in systems.items():
            for variant in sorted({r.variant for r in rs}):
                mine = [r for r in rs if r.variant == variant]
                lines.append([system_name(system), f"`{variant}`", seeds_text(mine), mean_std(dev_f(r) for r in mine),
                              mean_std(test_f(r) for r in mine),
                              mean_std(r.test.nested_recall for r in mine) if info.nested else "—",
                              num(mean(r.best.step for r in mine)), minutes(mean(r.best.wall_seconds for r in mine)),
                              _stops(mine)])
        everything = [r for rs in systems.values() for r in rs]
        out += [f"#### {info.name}, {encoder_name(encoder)}", "", _conditions(everything, info.heldout), "",
                table(["system", "variant", "seeds", "dev F", "test F", "nested recall", "steps to best dev",
                       "wall-clock to best dev", "stopped by"], lines), ""]
    return out
