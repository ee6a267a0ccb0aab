"""The README's results block (one table, one chart) and the page's time-to-accuracy charts."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from bench.records import (
    DEFAULT_VARIANT,
    FLAT_DECODING,
    HeadPartsRecord,
    TimingRecord,
    TrainRecord,
    variant_settings,
)
from bench.report.common import (
    dataset_info,
    encoder_name,
    group_runs,
    mean,
    mean_std,
    minutes,
    num,
    paired,
    pct,
    seeds_text,
    system_name,
    table,
    test_f,
)
from bench.report.converged import CAP_STOPS, EXPERIMENT, headline_runs, predict_speeds
from bench.report.speed import timing_rows

README_SYSTEMS = ("global_pointer_efficient", "spancat", "crf", "ner")
HEAD = "global_pointer_efficient"
CHART_GROUP = ("genia", "bilstm")  # the README's chart: where the heads differ most in time
CHART_NAME = "time-to-accuracy-{dataset}-{encoder}.png"


def chart_name(dataset: str, encoder: str) -> str:
    return CHART_NAME.format(dataset=dataset, encoder=encoder)


def _longer_schedule(runs: Sequence[TrainRecord], r: TrainRecord) -> Optional[List[TrainRecord]]:
    """Runs of the same corpus, encoder and system with the row's settings and a larger cap."""
    mine = variant_settings(r.variant)
    out = [o for o in runs if o.experiment == EXPERIMENT and (o.dataset, o.encoder, o.system) == (r.dataset, r.encoder, r.system)
           and "max_steps" in variant_settings(o.variant)
           and {k: v for k, v in variant_settings(o.variant).items() if k != "max_steps"} == mine]
    return out or None


def _short_encoder(encoder: str) -> str:
    """The encoder's name without its details: "MiniLM (all-MiniLM-L6-v2)" -> "MiniLM"."""
    return encoder_name(encoder).split(" ")[0]


def _doubled_cap_text(corpus: str, encoder: str, longer: Dict[str, List[TrainRecord]]) -> str:
    """Which seeds ran at the larger cap, and each other system's test F1 there against the
    efficient head's, paired by seed (runs there may have been stopped by that cap too)."""
    caps = sorted({int(variant_settings(r.variant)["max_steps"]) for rs in longer.values() for r in rs})
    parts = [f"{system_name(s)} seed{'s' if len(rs) > 1 else ''} {seeds_text(rs)}" for s, rs in longer.items()]
    head = longer.get(HEAD)
    pairs = {s: paired(rs, head, test_f) for s, rs in longer.items() if s != HEAD and head}
    versus = [f"{system_name(s)} {p.short_text()}" for s, p in pairs.items() if p.diffs]
    text = f"{corpus}, {_short_encoder(encoder)}, cap {', '.join(f'{c:,}' for c in caps)} steps ({'; '.join(parts)})"
    return text + (", test F1 against the efficient head's, same seeds: " + "; ".join(versus) if versus else "")


def flat_output_f(r: TrainRecord) -> Optional[float]:
    """Test F1 of the run's flat output (the best-scoring non-overlapping spans), where scored."""
    scored = r.decoding.get(FLAT_DECODING) if isinstance(r.decoding, dict) else None
    return scored["test"]["overall"]["f"] if scored else None


def readme_block(runs: Sequence[TrainRecord], parts: Sequence[HeadPartsRecord], chart: str,
                 timings: Sequence[TimingRecord] = ()) -> str:
    """The converged comparison per corpus and encoder: the efficient head against spancat,
    the CRF tagger and spaCy ner, each at its shipped setting; and the chart. Where not every
    converged model of a corpus and encoder was timed, the fixed-budget models (same
    architectures, timed back to back) give that group's speeds, marked §."""
    chosen = [r for r in headline_runs(runs) if r.system in README_SYSTEMS]
    speeds = predict_speeds(parts)
    fixed = timing_rows(timings)
    from_fixed = False
    lines: List[List[str]] = []
    ahead: List[str] = []
    close: List[str] = []
    sooner: List[str] = []
    dev_ahead: List[str] = []
    flat: List[str] = []
    doubled: List[str] = []
    capped = False
    for (dataset, encoder), systems in group_runs(chosen).items():
        info = dataset_info(dataset)
        head = systems.get(HEAD)
        group_f = {system: mean(test_f(r) for r in rs) for system, rs in systems.items()}
        head_f = group_f.get(HEAD)
        # One source of speeds per group, never mixed: the trained models' timing where every
        # system has one, else the fixed-budget models' where every system has one.
        trained = {system: mean(r.predict_words_per_second or speeds.get((dataset, encoder, system, r.seed))
                                for r in rs) for system, rs in systems.items()}
        use_fixed = (any(v is None for v in trained.values())
                     and all(fixed.get((dataset, encoder, s, DEFAULT_VARIANT), {}).get("large") for s in systems))
        longer_runs: Dict[str, List[TrainRecord]] = {}
        for system, rs in systems.items():
            f = group_f[system]
            if system == HEAD or head_f is None or f is None:
                versus = "—"
            else:
                diff = (f - head_f) * 100
                versus = f"**{diff:+.1f}**" if diff >= 0 else f"{diff:+.1f}"
                where = f"{system_name(system)} on {info.name}, {_short_encoder(encoder)}"
                if diff >= 0:
                    ahead.append(f"{where} ({pct(f)} against {pct(head_f)})")
                elif diff > -1.0:
                    close.append(f"{where} ({diff:+.1f})")
                mine, theirs = (mean(r.best.wall_seconds for r in head),  # type: ignore[union-attr]
                                mean(r.best.wall_seconds for r in rs))
                if mine and theirs and theirs < mine:
                    sooner.append(f"{where} ({minutes(theirs)} against {minutes(mine)})")
                if not info.nested:  # nested data: the CRF and ner select on outermost spans
                    dev_mine, dev_theirs = mean(r.best.dev_f for r in head), mean(r.best.dev_f for r in rs)  # type: ignore[union-attr]
                    if dev_mine is not None and dev_theirs is not None and dev_theirs > dev_mine:
                        dev_ahead.append(f"{where} ({pct(dev_theirs)} against {pct(dev_mine)})")
            cap = any(r.stopped_by in CAP_STOPS for r in rs)
            capped |= cap
            if use_fixed:
                speed_cell, from_fixed = num(fixed[(dataset, encoder, system, DEFAULT_VARIANT)]["large"]) + " §", True
            else:
                speed_cell = num(trained[system])
            lines.append([
                info.name if system == next(iter(systems)) else "", _short_encoder(encoder)
                if system == next(iter(systems)) else "",
                system_name(system) + (" †" if cap else ""),
                str(len(rs)), mean_std(test_f(r) for r in rs), versus,
                mean_std(r.test.nested_recall for r in rs) if info.nested else "—",
                minutes(mean(r.best.wall_seconds for r in rs)), speed_cell])
            longer = _longer_schedule(runs, rs[0]) if cap else None
            if longer:
                longer_runs[system] = longer
                lines[-1][4] += f" ({mean_std(test_f(o) for o in longer)} ‡)"
                longer_nested = [o.test.nested_recall for o in longer]
                if info.nested and any(n is not None for n in longer_nested):
                    # the capped row's nested recall can mislead as its F does
                    lines[-1][6] += f" ({mean_std(longer_nested)} ‡)"
        if longer_runs:
            doubled.append(_doubled_cap_text(info.name, encoder, longer_runs))
        flat_f = [flat_output_f(r) for r in head or []]
        if not info.nested and flat_f and all(f is not None for f in flat_f):
            others = [s for s, f in group_f.items() if s != HEAD and f is not None]
            best = max(others, key=lambda s: group_f[s], default=None)  # type: ignore[arg-type, return-value]
            versus_best = (f", {(mean(flat_f) - group_f[best]) * 100:+.1f} against {system_name(best)}"  # type: ignore[operator]
                           if best else "")
            flat.append(f"{info.name}, {_short_encoder(encoder)} {mean_std(flat_f)} "
                        f"({len(flat_f)} seed{'s' if len(flat_f) > 1 else ''}{versus_best})")
    out = [table(["corpus", "encoder", "system", "seeds", "test F1", "vs global_pointer", "nested recall",
                  "time to best dev", "predict words/s"], lines), ""]
    foot = ["Test F1 on the held-out split at the best dev checkpoint, mean ± std over seeds where "
            "several ran; each system trained until dev F stopped improving, sharing the encoder, "
            "data and optimizer; one CPU thread. \"vs global_pointer\": test F1 minus the efficient "
            "head's, in bold where the other system is level or ahead. Time to best dev: wall-clock "
            "minutes on a shared 2-core machine (indicative). Predict words/s: the trained seed-0 "
            "model at batch 256, where it was timed."]
    foot.append("Another system level or ahead on test F1: " + ("; ".join(ahead) if ahead else "none") + ".")
    if close:
        foot.append("Within 1 point of the efficient head on test F1: " + "; ".join(close) + ".")
    if dev_ahead:
        foot.append("Ahead on dev F1 (the model-selection split): " + "; ".join(dev_ahead) + ".")
    if flat:
        foot.append("The same models' flat output (`annotate_ents = true`: the best-scoring non-overlapping "
                    "spans, in `doc.ents`), test F1 where every seed was scored: " + "; ".join(flat) + ".")
    if sooner:
        foot.append("Reaches its best dev F1 sooner: " + "; ".join(sooner) + ".")
    if capped:
        foot.append("† The step cap of the MiniLM schedule, not convergence, stopped these runs."
                    + (" ‡ The same system with a larger cap: " + "; ".join(doubled) + "." if doubled else ""))
    if from_fixed:
        foot.append("§ Not every converged model of that corpus and encoder was timed: the speeds of the "
                    "fixed-budget models (same architectures, timed back to back; BENCHMARKS.md, "
                    "\"Fixed-budget models\").")
    foot.append("All tables, the variants tried and the head's cost: [project/BENCHMARKS.md](project/BENCHMARKS.md).")
    out += [" ".join(foot[:1]), ""] + [f"- {f}" for f in foot[1:]] + ["", chart, ""]
    return "\n".join(out).strip() + "\n"


def draw_charts(runs: Sequence[TrainRecord], fig_dir: Path) -> Dict[Tuple[str, str], Path]:
    """Dev F against wall-clock time per system (seed 0), one chart per corpus and encoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for (dataset, encoder), systems in group_runs(headline_runs(runs)).items():
        info = dataset_info(dataset)
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        for system, rs in systems.items():
            r = rs[0]
            if not r.curve:
                continue
            outer = info.nested and system in ("crf", "ner")
            ax.plot([(p.wall_seconds or p.train_seconds) / 60 for p in r.curve], [p.dev.f * 100 for p in r.curve],
                    marker="o", markersize=2.5, linestyle="--" if outer else "-",
                    label=system_name(system) + (" (dev F on outermost spans)" if outer else ""))
        ax.set_xlabel("wall-clock training time (minutes, 1 thread)")
        ax.set_ylabel("dev F1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"{info.name}, {encoder_name(encoder)} encoder: dev F1 over training time (seed 0)", fontsize=9)
        fig.tight_layout()
        path = fig_dir / chart_name(dataset, encoder)
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        written[(dataset, encoder)] = path
    return written
