"""Build the results page (BENCHMARKS.md) and its PNG charts from the benchmark's compact
results (bench/results/*.json, see bench/results.py).

    python bench/run.py collect bench/runs   # fold finished runs into bench/results/
    python bench/report.py --results bench/results --output BENCHMARKS.md --figures bench/figures

The page is rebuilt from scratch, so run it again whenever more runs have been collected.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import typer
from typing_extensions import Annotated

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
if not __package__:
    # Run as `python bench/report.py`: import bench as a package of project/ (as run.py does).
    sys.path.insert(0, str(PROJECT))

from bench.results import load  # noqa: E402

SYSTEM_ORDER = ["global_pointer", "global_pointer_efficient", "spancat", "spancat_1_3", "crf", "ner"]
SYSTEM_NAMES = {
    "global_pointer": "global_pointer",
    "global_pointer_efficient": "global_pointer (efficient)",
    "spancat": "spancat (99.5% sizes)",
    "spancat_1_3": "spancat (sizes 1-3)",
    "crf": "CRF tagger",
    "ner": "spaCy ner",
}
DATASET_NOTES = {
    "genia": "GENIA (nested), held-out split: test",
    "cluener": "CLUENER (flat), held-out split: the official dev set (model selection on the "
               "last 1,000 train sentences, not trained on)",
    "weibo": "Weibo (flat), held-out split: test",
}

Key = Tuple[str, str, str]  # dataset, encoder, system


def _tuned_f(run: Dict[str, Any]) -> Optional[float]:
    return run["threshold"]["test_tuned"]["overall"]["f"] if "threshold" in run else None


def _median(values: Sequence[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _package_commit(record: Dict[str, Any]) -> str:
    """The package's code a run used: its last commit, "+" if the sources were modified."""
    code = record.get("code", {})
    commit = str(code.get("package_commit") or code.get("commit") or "?")
    return commit + ("+" if code.get("package_modified") else "")


def _median_speed(times: List[Dict[str, Any]], part: str, size: str) -> Optional[float]:
    return _median([t[part][size]["words_per_second"] for t in times])


def _sort_key(key: Key) -> Tuple[str, str, int]:
    order = SYSTEM_ORDER.index(key[2]) if key[2] in SYSTEM_ORDER else len(SYSTEM_ORDER)
    return key[0], key[1], order


def summarize(results: List[Dict[str, Any]], timings: List[Dict[str, Any]]) -> Dict[Key, Dict[str, Any]]:
    """One row per (dataset, encoder, system): medians over seeds (scores, training speed)
    and over timing repeats (prediction speed)."""
    rows: Dict[Key, Dict[str, Any]] = {}
    for r in results:
        rows.setdefault((r["dataset"], r["encoder"], r["system"]), {"runs": [], "timings": []})["runs"].append(r)
    for t in timings:
        rows.setdefault((t["dataset"], t["encoder"], t["system"]), {"runs": [], "timings": []})["timings"].append(t)
    out: Dict[Key, Dict[str, Any]] = {}
    for key in sorted(rows, key=_sort_key):
        runs, times = rows[key]["runs"], rows[key]["timings"]
        row: Dict[str, Any] = {"dataset": key[0], "encoder": key[1], "system": key[2],
                               "seeds": len(runs), "repeats": len(times)}
        if runs:
            test = [r["test"] for r in runs]
            row.update({
                "flat": runs[0].get("flat", False),
                "steps": runs[0]["steps"],
                "spancat_sizes": runs[0].get("spancat_sizes"),
                "p": _median([t["overall"]["p"] for t in test]),
                "r": _median([t["overall"]["r"] for t in test]),
                "f": _median([t["overall"]["f"] for t in test]),
                "f_range": (min(t["overall"]["f"] for t in test), max(t["overall"]["f"] for t in test)),
                "f_outermost": _median([t.get("outermost", {}).get("f") for t in test]),
                "f_tuned": _median([_tuned_f(r) for r in runs]),
                "thresholds": [r["threshold"]["best_threshold"] for r in runs if "threshold" in r],
                "nested_recall": _median([t.get("nested_gold", {}).get("recall") for t in test]),
                "per_type": {label: _median([t["per_type"].get(label, {}).get("f") for t in test])
                             for label in sorted({lab for t in test for lab in t["per_type"]})},
                "train_wps": _median([r["train_words_per_second"] for r in runs]),
                "train_seconds": _median([r["train_seconds"] for r in runs]),
                "best_step": _median([r["best"]["step"] for r in runs]),
                "best_train_seconds": _median([r["best"]["train_seconds"] for r in runs]),
                "dev_f": _median([r["best"]["dev_f"] for r in runs]),
                "train_peak_rss_mb": _median([r.get("peak_rss_mb") for r in runs]),
                "curve": runs[0].get("curve", []),
                "train_commits": sorted({_package_commit(r) for r in runs}),
            })
        if times:
            # Only the newest timing session of this system: the package may have changed
            # between sessions (each records its commit), and drifting machine speed makes
            # only repeats timed back to back comparable.
            session = max(str(t.get("session", "")) for t in times)
            times = [t for t in times if str(t.get("session", "")) == session]
            row["repeats"] = len(times)
            row["timing_session"] = session
            row["timing_commits"] = sorted({_package_commit(t) for t in times})
            row.update({
                "pred_bs1": _median_speed(times, "full", "batch1"),
                "pred_large": _median_speed(times, "full", "large"),
                "enc_bs1": _median_speed(times, "encoder_only", "batch1"),
                "enc_large": _median_speed(times, "encoder_only", "large"),
                "pred_peak_rss_mb": _median([t.get("peak_rss_mb") for t in times]),
                "train_timed": _median([t["train"]["words_per_second"] for t in times if "train" in t]),
            })
            # Speeds per timing repeat, so that systems timed back to back can be paired.
            row["by_repeat"] = {
                f"{t.get('session', '')}-{t['seed']}-{t['repeat']}": {
                    "pred_bs1": t["full"]["batch1"]["words_per_second"],
                    "pred_large": t["full"]["large"]["words_per_second"],
                    "train_timed": t.get("train", {}).get("words_per_second"),
                } for t in times
            }
            for size, part in (("bs1", "batch1"), ("large", "large")):
                # Time is words / speed: the head's share of the full pipeline's time, in
                # each process (full and encoder alone timed back to back), then the median.
                row[f"head_share_{size}"] = _median([
                    1 - t["full"][part]["words_per_second"] / t["encoder_only"][part]["words_per_second"]
                    for t in times
                ])
        out[key] = row
    return out


def _pct(value: Optional[float]) -> str:
    return "—" if value is None else f"{value * 100:.1f}"


def _num(value: Optional[float], fmt: str = "{:,.0f}") -> str:
    return "—" if value is None else fmt.format(value)


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def _group(rows: Dict[Key, Dict[str, Any]]) -> Dict[Tuple[str, str], List[Dict[str, Any]]]:
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for (dataset, encoder, _), row in rows.items():
        groups.setdefault((dataset, encoder), []).append(row)
    return groups


def accuracy_table(group: List[Dict[str, Any]], nested: bool) -> str:
    header = ["system", "P", "R", "F (min-max over seeds)", "seeds", "package commit"]
    tuned = any(row.get("thresholds") for row in group)
    if nested:
        header[4:4] = ["F (outermost gold)", "nested recall"]
    if tuned:
        header[4:4] = ["F, threshold tuned on dev (thresholds)"]
    lines = []
    for row in group:
        if "f" not in row:
            continue
        f_cell = _pct(row["f"])
        if row["seeds"] > 1:
            f_cell += f" ({_pct(row['f_range'][0])}-{_pct(row['f_range'][1])})"
        line = [SYSTEM_NAMES.get(row["system"], row["system"]), _pct(row["p"]), _pct(row["r"]), f_cell]
        if tuned:
            line.append(f"{_pct(row['f_tuned'])} ({', '.join(map(str, row['thresholds']))})"
                        if row.get("thresholds") else "—")
        if nested:
            line += [_pct(row.get("f_outermost")), _pct(row.get("nested_recall"))]
        lines.append(line + [str(row["seeds"]), ", ".join(row.get("train_commits", []))])
    return _table(header, lines)


def per_type_table(group: List[Dict[str, Any]]) -> str:
    labels = sorted({label for row in group for label in row.get("per_type", {})})
    lines = [[SYSTEM_NAMES.get(row["system"], row["system"])] + [_pct(row["per_type"].get(label)) for label in labels]
             for row in group if "per_type" in row]
    return _table(["F per type", *labels], lines)


def speed_table(group: List[Dict[str, Any]]) -> str:
    header = ["system", "train words/s (run)", "train words/s (timed)", "steps to best dev", "train s to best dev",
              "predict words/s (batch 1)", "predict words/s (batch 256)",
              "encoder alone (batch 256)", "head's share of time (batch 1 / 256)",
              "peak RSS predict (MB)", "timing session (commit)", "repeats"]
    lines = []
    for row in group:
        share = (f"{_pct(row.get('head_share_bs1'))}% / {_pct(row.get('head_share_large'))}%"
                 if row.get("head_share_large") is not None else "—")
        lines.append([
            SYSTEM_NAMES.get(row["system"], row["system"]), _num(row.get("train_wps")),
            _num(row.get("train_timed")), _num(row.get("best_step")), _num(row.get("best_train_seconds")),
            _num(row.get("pred_bs1")), _num(row.get("pred_large")), _num(row.get("enc_large")),
            share, _num(row.get("pred_peak_rss_mb")),
            f"{row['timing_session']} ({', '.join(row['timing_commits'])})" if row.get("timing_session") else "—",
            str(row["repeats"]),
        ])
    return _table(header, lines)


def summary_table(rows: Dict[Key, Dict[str, Any]]) -> str:
    """One line per (dataset, encoder, system): what a user picks between."""
    lines = []
    for (dataset, encoder, system), row in rows.items():
        if "f" not in row:
            continue
        lines.append([dataset, encoder, SYSTEM_NAMES.get(system, system), _pct(row["f"]),
                      _pct(row.get("nested_recall")) if dataset == "genia" else "—",
                      _num(row.get("train_wps")), _num(row.get("pred_bs1")), _num(row.get("pred_large")),
                      str(row["seeds"])])
    return _table(["data", "encoder", "system", "F1", "nested recall", "train words/s",
                   "predict words/s (batch 1)", "predict words/s (batch 256)", "seeds"], lines)


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a and b else None


def paired_ratio(row_a: Dict[str, Any], row_b: Dict[str, Any], field: str) -> Tuple[Optional[float], int]:
    """Median over timing repeats of speed(a) / speed(b), pairing the repeats in which both
    were timed back to back (the machine's speed drifts between repeats); falls back to
    the ratio of the medians when no repeat pairs up. Returns (ratio, pairs)."""
    a, b = row_a.get("by_repeat", {}), row_b.get("by_repeat", {})
    pairs = [a[k][field] / b[k][field] for k in a if k in b and a[k][field] and b[k][field]]
    if pairs:
        return statistics.median(pairs), len(pairs)
    return _ratio(row_a.get(field), row_b.get(field)), 0


def _speed_ratio(rows: Dict[Key, Dict[str, Any]], group: Tuple[str, str], other: str,
                 field: str) -> Tuple[Optional[float], str]:
    gp = rows.get((*group, "global_pointer"), {})
    row = rows.get((*group, other), {})
    if field == "train_wps" and not (gp.get("train_timed") and row.get("train_timed")):
        return (_ratio(gp.get(field), row.get(field)),
                f"{_num(gp.get(field))} vs {_num(row.get(field))} (whole training runs, not paired)")
    if field == "train_wps":
        field = "train_timed"
    ratio, pairs = paired_ratio(gp, row, field)
    how = f"median of {pairs} paired repeats" if pairs else "ratio of medians"
    detail = f"{_num(gp.get(field))} vs {_num(row.get(field))} (medians); {how}"
    encoder_field = {"pred_large": "enc_large", "pred_bs1": "enc_bs1"}.get(field)
    bound = _ratio(gp.get(encoder_field), row.get(field)) if encoder_field else None
    if bound is not None:
        # Even a head that cost nothing could not beat the shared encoder alone.
        detail += f"; ceiling with a free head (encoder alone / other): {bound:.2f}x"
    return ratio, detail


def targets(rows: Dict[Key, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The issue's targets, per encoder, with the numbers behind each verdict."""
    out: List[Dict[str, Any]] = []
    encoders = sorted({k[1] for k in rows})

    def get(dataset: str, encoder: str, system: str, field: str) -> Optional[float]:
        return rows.get((dataset, encoder, system), {}).get(field)

    def add(name: str, value: Optional[float], goal: float, detail: str, unit: str = "x") -> None:
        if value is None:
            verdict = "not measured"
        else:
            verdict = "met" if value >= goal else "missed"
        shown = "—" if value is None else (f"{value:+.1f} points" if unit == "pts" else f"{value:.2f}x")
        goal_text = f"{goal:+.1f} points" if unit == "pts" else f">= {goal:.2f}x"
        out.append({"target": name, "value": shown, "goal": goal_text, "verdict": verdict, "detail": detail})

    for enc in encoders:
        gp = get("genia", enc, "global_pointer", "f")
        spancats = [(s, get("genia", enc, s, "f")) for s in ("spancat", "spancat_1_3")]
        spancats = [(s, f) for s, f in spancats if f is not None]
        best = max(spancats, key=lambda x: x[1]) if spancats else None
        add(f"GENIA test F1: global_pointer vs best spancat ({enc})",
            (gp - best[1]) * 100 if gp is not None and best else None, 3.0,
            f"global_pointer {_pct(gp)} vs {SYSTEM_NAMES[best[0]]} {_pct(best[1])}" if best else "spancat not run",
            unit="pts")
        gp_c, crf_c = get("cluener", enc, "global_pointer", "f"), get("cluener", enc, "crf", "f")
        add(f"CLUENER F1: global_pointer >= CRF ({enc})",
            (gp_c - crf_c) * 100 if gp_c is not None and crf_c is not None else None, 0.0,
            f"global_pointer {_pct(gp_c)} vs CRF {_pct(crf_c)}", unit="pts")
        for dataset in ("cluener", "weibo", "genia"):
            for field, goal, label in (("train_wps", 1.3, "training words/s"),
                                       ("pred_large", 1.2, "prediction words/s, batch 256"),
                                       ("pred_bs1", 1.2, "prediction words/s, batch 1")):
                a, b = get(dataset, enc, "global_pointer", field), get(dataset, enc, "crf", field)
                if a is None and b is None and dataset != "cluener":
                    continue
                ratio, detail = _speed_ratio(rows, (dataset, enc), "crf", field)
                add(f"{dataset}: global_pointer vs CRF, {label} ({enc})", ratio, goal, detail)
        for spancat in ("spancat", "spancat_1_3"):
            for field, label in (("pred_large", "batch 256"), ("pred_bs1", "batch 1")):
                ratio, detail = _speed_ratio(rows, ("genia", enc), spancat, field)
                add(f"genia: global_pointer vs {SYSTEM_NAMES[spancat]}, prediction {label} ({enc})",
                    ratio, 1.0, detail)
    return out


def targets_table(items: List[Dict[str, Any]]) -> str:
    return _table(["target", "goal", "measured", "verdict", "numbers"],
                  [[t["target"], t["goal"], t["value"], f"**{t['verdict']}**", t["detail"]] for t in items])


def make_figures(rows: Dict[Key, Dict[str, Any]], fig_dir: Path) -> List[Path]:
    """F1 per system, speed per system, and dev F1 over training time, per dataset/encoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (dataset, encoder), group in _group(rows).items():
        scored = [r for r in group if "f" in r]
        names = [SYSTEM_NAMES.get(r["system"], r["system"]) for r in scored]
        if scored:
            fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=80)
            ax.barh(names, [r["f"] * 100 for r in scored], color="#4c72b0")
            for i, r in enumerate(scored):
                ax.text(r["f"] * 100 + 0.5, i, f"{r['f'] * 100:.1f}", va="center", fontsize=8)
            ax.set_xlabel("held-out F1")
            ax.set_xlim(0, 100)
            ax.invert_yaxis()
            ax.set_title(f"{dataset}, {encoder} encoder: F1")
            fig.tight_layout()
            path = fig_dir / f"{dataset}-{encoder}-f1.png"
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
        timed = [r for r in group if r.get("pred_large") or r.get("train_wps")]
        if timed:
            fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=80)
            width = 0.27
            names_t = [SYSTEM_NAMES.get(r["system"], r["system"]) for r in timed]
            ys = range(len(timed))
            for offset, field, label in ((-width, "train_wps", "training"),
                                         (0.0, "pred_bs1", "predict, batch 1"),
                                         (width, "pred_large", "predict, batch 256")):
                ax.barh([y + offset for y in ys], [r.get(field) or 0 for r in timed], height=width, label=label)
            ax.set_yticks(list(ys), names_t)
            ax.invert_yaxis()
            ax.set_xlabel("words per second (1 thread)")
            ax.legend(fontsize=7, loc="lower right")
            ax.set_title(f"{dataset}, {encoder} encoder: speed")
            fig.tight_layout()
            path = fig_dir / f"{dataset}-{encoder}-speed.png"
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
        curves = [r for r in scored if r.get("curve")]
        if curves:
            fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=80)
            for r in curves:
                ax.plot([p["train_seconds"] for p in r["curve"]], [p["dev"]["f"] * 100 for p in r["curve"]],
                        marker="o", markersize=3, label=SYSTEM_NAMES.get(r["system"], r["system"]))
            ax.set_xlabel("training time, seconds (updates only)")
            ax.set_ylabel("dev F1")
            ax.legend(fontsize=7)
            ax.set_title(f"{dataset}, {encoder} encoder: dev F1 over training time")
            fig.tight_layout()
            path = fig_dir / f"{dataset}-{encoder}-curve.png"
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    return written


def _overrides(run: Dict[str, Any]) -> str:
    items = run.get("overrides") or {}
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in items.items()) or "defaults"


def tuned_section(results: List[Dict[str, Any]]) -> List[str]:
    """Runs with per-system settings (learning rate, threshold) chosen on dev: per seed and
    the median, and global_pointer's margin over the best spancat, seed by seed."""
    parts: List[str] = []
    groups: Dict[Tuple[str, str], Dict[str, List[Dict[str, Any]]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["encoder"]), {}).setdefault(r["system"], []).append(r)
    for (dataset, encoder), systems in sorted(groups.items()):
        steps = sorted({r["steps"] for runs in systems.values() for r in runs})
        parts += [f"### {dataset}, {encoder} encoder, {', '.join(map(str, steps))} steps", "",
                  DATASET_NOTES.get(dataset, dataset), ""]
        lines = []
        medians: Dict[str, Dict[int, float]] = {}
        for system in sorted(systems, key=lambda name: _sort_key(("", "", name))):
            runs = sorted(systems[system], key=lambda r: r["seed"])
            tuned = {r["seed"]: _tuned_f(r) for r in runs}
            # What each system is compared on: its dev-tuned F where it has a threshold,
            # its plain F where it has none (CRF, ner).
            medians[system] = {r["seed"]: tuned[r["seed"]] if tuned[r["seed"]] is not None
                               else r["test"]["overall"]["f"] for r in runs}
            lines.append([
                SYSTEM_NAMES.get(system, system), _overrides(runs[0]),
                ", ".join(f"{r['seed']}: {_pct(r['test']['overall']['f'])}" for r in runs),
                _pct(_median([r["test"]["overall"]["f"] for r in runs])),
                ", ".join(f"{r['seed']}: {_pct(tuned[r['seed']])} (t={r['threshold']['best_threshold']})"
                          for r in runs if "threshold" in r) or "—",
                _pct(_median(list(tuned.values()))),
                _pct(_median([r["test"].get("nested_gold", {}).get("recall") for r in runs])) if dataset == "genia" else "—",
                _num(_median([r["best"]["step"] for r in runs])),
                _num(_median([r["train_words_per_second"] for r in runs])),
            ])
        parts += [_table(["system", "settings", "test F by seed (threshold: default)", "median",
                          "test F by seed (threshold tuned on dev)", "median (tuned)", "nested recall",
                          "steps to best dev", "train words/s (run)"], lines), ""]
        # The reference systems: the best spancat on nested data (target +3 points),
        # the CRF on flat data (target: at least as good).
        nested = dataset == "genia"
        others = {k: v for k, v in medians.items() if (k.startswith("spancat") if nested else k == "crf")}
        goal = "+3.0" if nested else "+0.0"
        for name in ("global_pointer", "global_pointer_efficient"):
            gp = medians.get(name, {})
            if not (gp and others):
                continue
            best = max(others, key=lambda k: statistics.median(others[k].values()))
            paired = [gp[seed] - others[best][seed] for seed in sorted(gp) if seed in others[best]]
            margin = statistics.median(gp.values()) - statistics.median(others[best].values())
            parts += [f"{SYSTEM_NAMES[name]} (threshold tuned on dev) minus {SYSTEM_NAMES[best]}: "
                      f"**{margin * 100:+.1f} points** (medians); seed by seed: "
                      f"{', '.join(f'{d * 100:+.1f}' for d in paired)}. Target: {goal}.", ""]
    return parts


def sweep_section(runs: Sequence[Dict[str, Any]]) -> List[str]:
    """The tuning sweep: every run's settings, budget and scores, one table per dataset;
    runs of the same encoder and system keep their order (that of their run dirs)."""
    if not runs:
        return []
    machine = runs[0].get("machine", {})
    parts = [f"Machine: {machine.get('cpu', machine.get('processor', '?'))}; "
             f"{len(runs)} runs, up to 14 at a time in parallel (`bench/gpu/sweep.sh`), one thread each. Each run stopped after a fixed time of "
             "updates (column \"budget\"), so a system that trains faster gets more steps: this "
             "sweep compares settings at equal training *time*; the tables above compare systems at "
             "equal *steps*.", ""]
    for dataset in sorted({r["dataset"] for r in runs}):
        lines = []
        group = sorted((r for r in runs if r["dataset"] == dataset),
                       key=lambda r: (r["encoder"], _sort_key(("", "", r["system"]))[2]))
        for r in group:
            o = r["test"]["overall"]
            lines.append([
                r["encoder"], SYSTEM_NAMES.get(r["system"], r["system"]), _overrides(r), str(r["seed"]),
                f"{r.get('max_train_seconds', 0):.0f} s", str(r.get("steps_run", r["steps"])),
                str(r["curve"][-1]["epoch"] + 1 if r["curve"] else "?"),
                _pct(r["best"]["dev_f"]), _pct(o["p"]), _pct(o["r"]), _pct(o["f"]),
                (f"{_pct(_tuned_f(r))} (t={r['threshold']['best_threshold']})" if "threshold" in r else "—"),
                _pct(r["test"].get("nested_gold", {}).get("recall")) if dataset == "genia" else "—",
            ])
        parts += [f"### {dataset}", "", DATASET_NOTES.get(dataset, dataset), "",
                  _table(["encoder", "system", "settings", "seed", "budget", "steps", "epochs (started)",
                          "best dev F", "test P", "test R", "test F", "test F, threshold tuned on dev",
                          "nested recall"], lines), ""]
    return parts


def build_page(
    results: List[Dict[str, Any]],
    timings: List[Dict[str, Any]],
    *,
    figures: Sequence[Path] = (),
    page_dir: Path = PROJECT,
    commands: Sequence[str] = (),
    notes: str = "",
    tuned: Sequence[Dict[str, Any]] = (),
    sweeps: Optional[Mapping[str, Sequence[Dict[str, Any]]]] = None,
) -> str:
    """The markdown results page."""
    rows = summarize(results, timings)
    machine = results[0]["machine"] if results else {}
    parts = ["# Benchmarks: global_pointer vs spancat, a CRF tagger and spaCy ner", "",
             "Generated by `bench/report.py` from the benchmark's results "
             "(`bench/results/`); do not edit by hand.", ""]
    if notes:
        parts += [notes.strip(), ""]
    if commands:
        parts += ["## Commands", "", "```bash", *commands, "```", ""]
    if machine:
        parts += ["## Machine and versions", "",
                  _table(["", ""], [[k, str(v)] for k, v in machine.items()]), ""]
    commits = sorted({_package_commit(r) for r in results})
    threads = sorted({str(r.get("threads", "?")) for r in results})
    if results:
        parts += [f"Package commit(s) the training runs used (last commit of `spacy_globalpointer/`; "
                  f"\"+\": modified sources): {', '.join(commits)}; torch/BLAS threads per "
                  f"process: {', '.join(threads)}; one training or timing process at a time.", ""]
    parts += ["## Summary", "", "Held-out F1 (median over seeds), training and prediction "
              "throughput (median over timing repeats), one thread.", "", summary_table(rows), ""]
    steps = sorted({r["steps"] for r in results})
    if steps:
        parts += [f"Training budget: {', '.join(map(str, steps))} steps per run, the same for every "
                  "system of a dataset (same batcher, optimizer, dropout and embedding).", ""]
    fig_names = {p.name for p in figures}
    for (dataset, encoder), group in _group(rows).items():
        parts += [f"## {dataset}, {encoder} encoder", "", DATASET_NOTES.get(dataset, dataset), ""]
        sizes = next((r.get("spancat_sizes") for r in group if r.get("spancat_sizes")), None)
        if sizes:
            parts += [f"spancat n-gram sizes covering 99.5% of the training spans: {sizes[0]}-{sizes[-1]}.", ""]
        nested = dataset == "genia"
        parts += ["### Accuracy (held-out split)", "", accuracy_table(group, nested), "",
                  "With several seeds, every column is the median over seeds, taken column by column.", ""]
        if nested:
            parts += ["CRF and ner cannot nest: they are trained on the outermost gold spans; "
                      "\"F (outermost gold)\" scores every system against those.", ""]
        parts += [per_type_table(group), "", "### Speed", "", speed_table(group), ""]
        for kind in ("f1", "speed", "curve"):
            name = f"{dataset}-{encoder}-{kind}.png"
            if name in fig_names:
                rel = next(p for p in figures if p.name == name)
                try:
                    rel = rel.resolve().relative_to(page_dir.resolve())
                except ValueError:
                    pass
                parts += [f"![{dataset} {encoder} {kind}]({rel.as_posix()})", ""]
    parts += ["## Targets", "", targets_table(targets(rows)), ""]
    if tuned:
        parts += ["## Tuned runs", "", "Each system with the learning rate that did best for it in the "
                  "tuning sweep below, and its decision threshold picked on dev (`bench/run.py "
                  "tune-threshold`: the grid value with the best dev F1; the held-out split never "
                  "chooses). Same encoder, data and step budget for every system.", "",
                  *tuned_section(list(tuned))]
    for name, runs in sorted((sweeps or {}).items()):
        section = sweep_section(runs)
        if section:
            parts += [f"## Tuning sweep: {name}", "", *section]
    return "\n".join(parts)


def main(
    results: Annotated[Path, typer.Option(help="Folder of the compact results (bench/run.py collect)")] = BENCH / "results",
    output: Annotated[Path, typer.Option(help="Markdown page to write")] = PROJECT / "BENCHMARKS.md",
    figures: Annotated[Path, typer.Option(help="Folder for the PNG charts")] = BENCH / "figures",
    notes: Annotated[Optional[Path], typer.Option(help="Markdown to put at the top (e.g. bench/NOTES.md)")] = None,
    command: Annotated[Optional[List[str]], typer.Option(help="Command lines that produced the runs")] = None,
    command_file: Annotated[Optional[Path], typer.Option(help="File with those command lines, one a line")] = None,
) -> None:
    """Write the results page and charts from the compact results."""
    command = list(command or [])
    if command_file is not None:
        command += [line for line in command_file.read_text(encoding="utf8").splitlines() if line.strip()]
    data = load(results)
    runs, timings = data["runs"], data["timings"]
    written = make_figures(summarize(runs, timings), figures)
    page = build_page(runs, timings, figures=written, page_dir=output.parent, commands=command,
                      notes=notes.read_text(encoding="utf8") if notes else "", tuned=data["tuned"],
                      sweeps=data["sweeps"])
    output.write_text(page, encoding="utf8")
    print(f"{len(runs)} runs, {len(timings)} timing repeats -> {output}, {len(written)} figures in {figures}")


if __name__ == "__main__":
    typer.run(main)
