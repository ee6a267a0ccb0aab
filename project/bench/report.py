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
    "conll2003": "CoNLL-2003 English (flat), held-out split: test (eng.testb)",
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


def tuned_section(results: List[Dict[str, Any]], heading: str = "###") -> List[str]:
    """Runs with per-system settings (learning rate, threshold) chosen on dev: per seed and
    the median, and global_pointer's margin over the best spancat, seed by seed."""
    parts: List[str] = []
    groups: Dict[Tuple[str, str], Dict[str, List[Dict[str, Any]]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["encoder"]), {}).setdefault(r["system"], []).append(r)
    for (dataset, encoder), systems in sorted(groups.items()):
        steps = sorted({r["steps"] for runs in systems.values() for r in runs})
        parts += [f"{heading} {dataset}, {encoder} encoder, {', '.join(map(str, steps))} steps", "",
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
        # The issue's reference systems: the best spancat on nested data (target +3 points),
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


# --- head cost (bench/profile_head.py, collected into head_cost.json) ---------------------

# The head-cost issue's targets: prediction at batch 256 at least this fraction of the
# encoder alone's throughput; training at least this fraction of a trivial head's, and at
# least this multiple of the CRF's words/s; at batch 1 a head share no higher than the
# CRF's and ner's.
HEAD_TARGET_LARGE = 0.90
HEAD_TARGET_TRAIN_TRIVIAL = 0.85
HEAD_TARGET_TRAIN_CRF = 1.3
HEAD_SYSTEMS = ("global_pointer_efficient", "global_pointer")  # the heads the targets are for
ROLE_ORDER = ("before", "after", "current")
HEAD_METRICS = ("bs1_share", "large_share", "large_vs_encoder", "train_vs_trivial", "train_vs_crf")


def _run_metrics(systems: Dict[str, Any], system: str) -> Dict[str, Optional[float]]:
    """One profile_head run's figures for a system; training against the CRF paired within
    the run (both timed in the same rotation, so machine drift cancels)."""
    row = systems[system]
    crf = systems.get("crf", {}).get("train_words_per_s")
    return {
        "bs1_share": row.get("batch1", {}).get("head_share"),
        "large_share": row.get("large", {}).get("head_share"),
        "large_vs_encoder": row.get("large", {}).get("throughput_vs_encoder"),
        "train_vs_trivial": row.get("train_vs_trivial_head"),
        "train_vs_crf": row["train_words_per_s"] / crf if crf and row.get("train_words_per_s") else None,
    }


HeadKey = Tuple[str, str, str]  # session, data, encoder


def summarize_head_cost(records: Sequence[Dict[str, Any]]) -> Dict[HeadKey, Dict[str, Any]]:
    """Per (session, data, encoder): per role, its labels, run count, docs/words and, per
    system, the medians over runs of each metric. Sessions newest first (the reverse of the
    order they were collected in), data sets in the order collected."""
    out: Dict[HeadKey, Dict[str, Any]] = {}
    for r in records:
        key = (r["session"], r["data"], r["encoder"])
        role = out.setdefault(key, {"roles": {}})["roles"].setdefault(
            r["role"], {"labels": [], "runs": 0, "per_run": {}, "docs": None, "words": None})
        if r["label"] not in role["labels"]:
            role["labels"].append(r["label"])
        role["runs"] += 1
        role["docs"], role["words"] = r["figures"].get("docs"), r["figures"].get("words")
        systems = r["figures"]["systems"]
        for system in systems:
            if system == "trivial_head":
                continue
            per = role["per_run"].setdefault(system, {m: [] for m in HEAD_METRICS})
            for metric, value in _run_metrics(systems, system).items():
                per[metric].append(value)
    for group in out.values():
        for role in group["roles"].values():
            role["systems"] = {
                system: {m: _median(values[m]) for m in HEAD_METRICS}
                for system, values in sorted(role.pop("per_run").items(), key=lambda kv: _sort_key(("", "", kv[0])))
            }
    sessions = list(dict.fromkeys(k[0] for k in out))[::-1]
    return {k: out[k] for s in sessions for k in out if k[0] == s}


def _data_name(data: str) -> str:
    if data.startswith("../../shared/data/"):
        return data[len("../../shared/data/"):]
    return "demo-like (in memory)" if data == "demo (in memory)" else data


def _share(value: Optional[float]) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _times(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _verdict(ok: Optional[bool]) -> str:
    return "not measured" if ok is None else "**met**" if ok else "**missed**"


def _judged_role(roles: Dict[str, Any]) -> str:
    """The package the targets judge: the newest side of the comparison measured."""
    known = [r for r in ROLE_ORDER if r in roles]
    return known[-1] if known else next(iter(roles))


def head_targets(systems: Dict[str, Dict[str, Optional[float]]], system: str) -> List[str]:
    """The four targets for one head, each cell its number(s) and verdict, judged on the
    unrounded medians."""
    row = systems[system]
    large = row["large_vs_encoder"]
    cells = [f"{_share(large)}: {_verdict(None if large is None else large >= HEAD_TARGET_LARGE)}"]
    refs = [(name, systems[s]["bs1_share"]) for s, name in (("crf", "CRF"), ("ner", "ner"))
            if s in systems and systems[s]["bs1_share"] is not None]
    bs1 = row["bs1_share"]
    ok = None if bs1 is None or not refs else all(bs1 <= ref for _, ref in refs)
    versus = ", ".join(f"{name} {_share(ref)}" for name, ref in refs) or "no CRF or ner run"
    cells.append(f"{_share(bs1)} ({versus}): {_verdict(ok)}")
    trivial, crf = row["train_vs_trivial"], row["train_vs_crf"]
    cells.append(f"{_share(trivial)}: {_verdict(None if trivial is None else trivial >= HEAD_TARGET_TRAIN_TRIVIAL)}")
    cells.append(f"{_times(crf)}: {_verdict(None if crf is None else crf >= HEAD_TARGET_TRAIN_CRF)}")
    return cells


def head_cost_section(records: Sequence[Dict[str, Any]]) -> List[str]:
    """Head shares, throughput against the encoder and training against a trivial head and
    the CRF, per measurement session, before -> after; the targets judged on the numbers."""
    if not records:
        return ["No head-cost measurements collected yet (`bench/profile_head.py --output OUT.json`, then "
                "`python bench/run.py collect-head-cost OUT.json --label COMMIT --role after`).", ""]
    parts = [
        "From `bench/profile_head.py` (method and commands in the Head cost notes above), collected "
        "in `bench/results/head_cost.json`. Each system is timed as the whole pipeline against its "
        "encoder alone (head share = 1 - t_encoder / t_pipeline; throughput = t_encoder / "
        "t_pipeline) and in training against the same encoder with a trivial head; training "
        "against the CRF is words/s over the CRF's in the same run. Every figure is the median "
        "over runs of a ratio taken within a run, one thread. A session's runs alternated the "
        "packages on one machine: compare within a session. The package timed is the commit "
        "named (imported through `PYTHONPATH`); the records' `code.commit` is the checkout "
        "`profile_head.py` ran from. `crf` and `ner` run the same code on both sides: their "
        "movement is the noise.", ""]
    summary = summarize_head_cost(records)
    header = ["data, encoder", "system", "batch 1: head share", "batch 256: head share",
              "batch 256: throughput / encoder's", "training / trivial head's", "training words/s / CRF's"]
    target_header = ["data, encoder", "head (package)",
                     f"batch 256 >= {HEAD_TARGET_LARGE:.0%} of the encoder",
                     "batch 1: head share <= CRF's and ner's",
                     f"training >= {HEAD_TARGET_TRAIN_TRIVIAL:.0%} of the trivial head",
                     f"training >= {HEAD_TARGET_TRAIN_CRF:.1f}x the CRF's"]
    for session in dict.fromkeys(k[0] for k in summary):
        groups = {k: v for k, v in summary.items() if k[0] == session}
        roles: Dict[str, List[str]] = {}
        for group in groups.values():
            for role, values in group["roles"].items():
                roles.setdefault(role, [])
                roles[role] += [label for label in values["labels"] if label not in roles[role]]
        order = [r for r in ROLE_ORDER if r in roles] + [r for r in roles if r not in ROLE_ORDER]
        title = " → ".join(f"{', '.join(roles[r])} ({r})" for r in order)
        parts += [f"### Session {session}: {title}", ""]
        data_lines, lines, target_lines = [], [], []
        for (_, data, encoder), group in groups.items():
            shown = [r for r in order if r in group["roles"]]
            last = group["roles"][shown[-1]]
            size = (f"{last['docs']:,} docs, {last['words']:,} words" if last.get("docs") and last.get("words")
                    else "size not recorded")
            data_lines.append(f"- {_data_name(data)}, {encoder}: {size}; runs: " + ", ".join(
                f"{group['roles'][r]['runs']} {r} ({', '.join(group['roles'][r]['labels'])})" for r in shown))
            systems = list(dict.fromkeys(s for r in shown for s in group["roles"][r]["systems"]))
            for system in sorted(systems, key=lambda name: _sort_key(("", "", name))):
                cells = []
                for metric, fmt in zip(HEAD_METRICS, (_share, _share, _share, _share, _times)):
                    values = [fmt(group["roles"][r]["systems"][system][metric])
                              for r in shown if system in group["roles"][r]["systems"]]
                    cells.append(" → ".join(values))
                lines.append([f"{_data_name(data)}, {encoder}", SYSTEM_NAMES.get(system, system), *cells])
            judged = _judged_role(group["roles"])
            judged_systems = group["roles"][judged]["systems"]
            for system in HEAD_SYSTEMS:
                if system in judged_systems:
                    target_lines.append([f"{_data_name(data)}, {encoder}",
                                         f"{SYSTEM_NAMES[system]}, {', '.join(group['roles'][judged]['labels'])} ({judged})",
                                         *head_targets(judged_systems, system)])
        parts += [*data_lines, "", _table(header, lines), ""]
        if target_lines:
            parts += [f"Targets, session {session} (judged on the medians above, newest package):", "",
                      _table(target_header, target_lines), ""]
    return parts


# --- converged runs (run until dev F stopped improving) ------------------------------------

# What stops a run other than convergence (patience): its budget.
CAP_STOPS = {"steps": "the cap, not convergence, stopped this run",
             "time": "the cap, not convergence, stopped this run",
             "max_epochs": "the epoch limit, not convergence, stopped this run"}


def _learn_rate(run: Dict[str, Any]) -> str:
    """The run's learning rate: its --set override, else the base config's (marked
    "(default)"); a schedule (minilm's warmup_linear) with any of its settings overridden
    is rendered with the overrides applied."""
    given = {**(run.get("config_overrides") or {}), **(run.get("overrides") or {})}
    value = given.get("training.optimizer.learn_rate")
    if value is not None:
        return str(value)
    prefix = "training.optimizer.learn_rate."
    changed = {key[len(prefix):]: v for key, v in given.items() if key.startswith(prefix)}
    base = _base_learn_rate(run["encoder"], run["system"])
    if isinstance(base, dict):
        text = _schedule_text({**base, **changed}, run["steps"])
    else:
        text = "?" if base is None else str(base)
    return text if changed else f"{text} (default)"


def _base_learn_rate(encoder: str, system: str) -> Any:
    """The base config's [training.optimizer] learn_rate: a number, a schedule's settings
    (uninterpolated), or None for an encoder or system the configs no longer know."""
    from bench.configs import config_text

    try:
        from spacy.util import load_config_from_str

        config = load_config_from_str(config_text(encoder, system), interpolate=False)
        return config["training"]["optimizer"]["learn_rate"]
    except Exception:  # an encoder or system the configs no longer know
        return None


def _schedule_text(schedule: Dict[str, Any], max_steps: int) -> str:
    """A learning-rate schedule in words; total_steps = ${training.max_steps} is the run's cap."""
    name = schedule.get("@schedules", "?")
    total = schedule.get("total_steps")
    if total == "${training.max_steps}":
        total = max_steps
    if name.startswith("warmup_linear") and {"initial_rate", "warmup_steps"} <= schedule.keys():
        end = f"step {total:,}" if isinstance(total, int) else str(total)
        return (f"{schedule['initial_rate']:g}, warmed up over {schedule['warmup_steps']:,} steps, "
                f"linear to 0 at {end}")
    settings = ", ".join(f"{k} {v}" for k, v in schedule.items() if k != "@schedules")
    return f"{name} ({settings})"


def _range_cell(values: Sequence[Optional[float]]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "—"
    cell = _pct(statistics.median(present))
    if len(present) > 1:
        cell += f" ({_pct(min(present))}-{_pct(max(present))})"
    return cell


def _nested(runs: Sequence[Dict[str, Any]]) -> bool:
    """Nested data: the held-out gold has spans inside others (from the scores, not the name)."""
    return any((r["test"].get("nested_gold") or {}).get("spans") for r in runs)


def _converged_targets(systems: Dict[str, List[Dict[str, Any]]], nested: bool) -> List[str]:
    """GENIA-like (nested) data: global_pointer >= the best spancat + 3 points; flat data:
    >= the CRF's and ner's. On median test F at the default threshold, and again with the
    thresholds tuned on dev where the head has them (a system without one keeps its F)."""
    def f(system: str, tuned: bool) -> Optional[float]:
        runs = systems.get(system, [])
        if tuned:
            return _median([_tuned_f(r) if "threshold" in r else r["test"]["overall"]["f"] for r in runs])
        return _median([r["test"]["overall"]["f"] for r in runs])

    refs = ([s for s in systems if s.startswith("spancat")] if nested
            else [s for s in ("crf", "ner") if s in systems])
    goal = "best spancat + 3 points" if nested else "the CRF's and ner's F"
    out = []
    for head in ("global_pointer", "global_pointer_efficient"):
        if head not in systems:
            continue
        texts = []
        for tuned in (False, True):
            if tuned and not any("threshold" in r for r in systems[head]):
                continue
            mine = f(head, tuned)
            scored = [(s, f(s, tuned)) for s in refs if f(s, tuned) is not None]
            if mine is None or not scored:
                texts.append("not measured (no " + ("spancat" if nested else "CRF or ner") + " run)")
                break  # tuned or not, there is nothing to compare with
            if nested:
                best = max(scored, key=lambda x: x[1])
                margin = mine - best[1]
                ok = margin >= 0.03 - 1e-12
                detail = f"{_pct(mine)} vs {SYSTEM_NAMES.get(best[0], best[0])} {_pct(best[1])}: {margin * 100:+.1f} points"
            else:
                ok = all(mine >= v for _, v in scored)
                detail = f"{_pct(mine)} vs " + ", ".join(f"{SYSTEM_NAMES.get(s, s)} {_pct(v)} ({(mine - v) * 100:+.1f})"
                                                          for s, v in scored)
                missing = [SYSTEM_NAMES[s] for s in ("crf", "ner") if s not in dict(scored)]
                if missing:
                    detail += f" ({' and '.join(missing)} not run)"
            how = "thresholds tuned on dev" if tuned else "default threshold"
            texts.append(f"{how}: {detail}, {_verdict(ok)}")
        out.append(f"- Target ({SYSTEM_NAMES[head]} >= {goal}): " + "; ".join(texts) + ".")
    if not out:
        out.append(f"- Target (global_pointer >= {goal}): not measured (no global_pointer run).")
    return out


# Error kinds as span_metrics.error_breakdown counts them, in its order of precedence.
ERROR_KINDS = {
    "fp": [("type", "type"), ("boundary", "boundary"), ("boundary_and_type", "boundary + type"),
           ("spurious", "spurious")],
    "fn": [("type", "type"), ("boundary", "boundary"), ("boundary_and_type", "boundary + type"),
           ("missed", "missed")],
}


def _count(value: Optional[float]) -> str:
    """A count, or the median of an even number of counts (one decimal then)."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def errors_section(systems: Mapping[str, Sequence[Dict[str, Any]]], ordered: Sequence[str],
                   nested: bool) -> List[str]:
    """Why a system trails, from the runs whose result carries the breakdown (bench/run.py
    analyse, or train-one since): errors by kind and F by span length, medians over those
    seeds, cell by cell. Nothing when no run carries it."""
    carrying = {s: sorted((r for r in systems[s] if "errors" in r["test"] and "by_length" in r["test"]),
                          key=lambda r: r["seed"])
                for s in ordered}
    carrying = {s: rs for s, rs in carrying.items() if rs}
    if not carrying:
        return []
    header = ["system", "seeds", "gold spans"]
    for side in ("fp", "fn"):
        header += [side.upper()] + [f"{side.upper()} {name}" for _, name in ERROR_KINDS[side]]
    lines = []
    for system, rs in carrying.items():
        line = [SYSTEM_NAMES.get(system, system), ", ".join(str(r["seed"]) for r in rs),
                _count(_median([r["test"]["errors"]["gold"] for r in rs]))]
        for side in ("fp", "fn"):
            counts = [r["test"]["errors"][side] for r in rs]
            line.append(_count(_median([c["total"] for c in counts])))
            for kind, _ in ERROR_KINDS[side]:
                share = _median([c[kind] / c["total"] if c["total"] else None for c in counts])
                line.append(f"{_count(_median([c[kind] for c in counts]))} ({_pct(share)}%)"
                            if share is not None else _count(_median([c[kind] for c in counts])))
        lines.append(line)
    parts = ["#### Errors on the held-out split", "",
             "False positives (FP: predictions without an exact gold match) and false negatives "
             "(FN: gold spans without an exact prediction) by kind, each span counted once, the "
             "first kind that applies: type (a span at the same offsets with another label), "
             "boundary (overlaps one of the same label), boundary + type (overlaps only spans of "
             "other labels), spurious / missed (overlaps none). Count (share of the FP or FN) at "
             "the default threshold; medians over seeds, cell by cell.", ""]
    if nested and any(r["test"]["errors"].get("gold_spans") == "outermost" for rs in carrying.values() for r in rs):
        parts += ["CRF and ner cannot nest: they are scored against the outermost gold spans (hence "
                  "fewer gold spans).", ""]
    parts += [_table(header, lines), ""]
    buckets = list(next(iter(carrying.values()))[0]["test"]["by_length"]["buckets"])
    units = sorted({r["test"]["by_length"].get("unit", "?") for rs in carrying.values() for r in rs})
    lines = []
    for system, rs in carrying.items():
        line = [SYSTEM_NAMES.get(system, system)]
        for name in buckets:
            cells = [r["test"]["by_length"]["buckets"].get(name) for r in rs]
            cells = [c for c in cells if c is not None]
            if not any(c["gold"] or c["predicted"] for c in cells):
                line.append("—")  # no span of this length on either side
                continue
            line.append(f"{_pct(_median([c['f'] for c in cells]))} ({_count(_median([c['gold'] for c in cells]))})")
        lines.append(line)
    parts += ["#### F by span length", "",
              f"Test F of the spans of each length in {' / '.join(units)} (precision over the "
              "predictions of that length, recall over the gold spans of that length), median over "
              "seeds, and (the gold spans of that length).", "",
              _table(["system", *buckets], lines), ""]
    return parts


def converged_section(runs: Sequence[Dict[str, Any]]) -> List[str]:
    """Runs trained until dev F stopped improving (--patience, --steps as the cap): scores,
    what it took to reach the best dev F, and what stopped each run."""
    if not runs:
        return ["No converged runs yet (`python bench/run.py run DATASET --patience P --steps CAP --output "
                "bench/runs_converged`, then `python bench/run.py collect bench/runs_converged --kind converged`).", ""]
    parts = ["Each run trained until its dev F had not improved for `patience` steps (the best dev "
             "checkpoint is scored), or until its cap; a run the cap stopped is flagged. Medians "
             "over seeds, (min-max) where several.", ""]
    groups: Dict[Tuple[str, str], Dict[str, List[Dict[str, Any]]]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["encoder"]), {}).setdefault(r["system"], []).append(r)
    for (dataset, encoder), systems in sorted(groups.items()):
        everything = [r for rs in systems.values() for r in rs]
        nested = _nested(everything)
        patience = sorted({r.get("patience", 0) for r in everything})
        caps = sorted({r["steps"] for r in everything})
        evals = sorted({r.get("eval_every") for r in everything if r.get("eval_every")})
        parts += [f"### {dataset}, {encoder} encoder", "", DATASET_NOTES.get(dataset, dataset), "",
                  f"Patience {', '.join(f'{p:,}' for p in patience)} steps; cap {', '.join(f'{c:,}' for c in caps)} "
                  f"steps; dev F every {', '.join(f'{e:,}' for e in evals) or '?'} steps.", ""]
        limited = any(r.get("train_limit") for r in everything)
        header = ["system", "seeds", "dev F", "test F", "test F, threshold tuned on dev"]
        header += ["nested recall"] if nested else []
        header += ["steps to best dev", "stopped by", "wall-clock to best dev", "train words/s"]
        header += ["train limit (docs)"] if limited else []
        header += ["learning rate"]
        lines, flagged = [], []
        ordered = sorted(systems, key=lambda name: _sort_key(("", "", name)))
        for system in ordered:
            rs = sorted(systems[system], key=lambda r: r["seed"])
            name = SYSTEM_NAMES.get(system, system)
            stops: Dict[str, int] = {}
            for r in rs:
                stop = r.get("stopped_by") or "?"
                stops[stop] = stops.get(stop, 0) + 1
                if stop in CAP_STOPS:
                    flagged.append(f"- {name}, seed {r['seed']}: stopped by `{stop}` at step "
                                   f"{r.get('steps_run', r['steps']):,} (best dev at step {r['best']['step']:,}): "
                                   f"{CAP_STOPS[stop]}.")
            stop_cell = ", ".join((f"**{k}** ({n})" if k in CAP_STOPS else f"{k} ({n})") for k, n in stops.items())
            wall = _median([r["best"].get("wall_seconds") for r in rs])
            line = [name, ", ".join(str(r["seed"]) for r in rs),
                    _range_cell([r["best"]["dev_f"] for r in rs]),
                    _range_cell([r["test"]["overall"]["f"] for r in rs]),
                    _range_cell([_tuned_f(r) for r in rs])]
            if nested:
                line.append(_pct(_median([(r["test"].get("nested_gold") or {}).get("recall") for r in rs])))
            line += [_num(_median([r["best"]["step"] for r in rs])), stop_cell,
                     "—" if wall is None else f"{wall / 60:,.1f} min",
                     _num(_median([r["train_words_per_second"] for r in rs]))]
            if limited:
                line.append(", ".join(sorted({f"{r['train_limit']:,}" if r.get("train_limit") else "all"
                                              for r in rs})))
            line.append(", ".join(dict.fromkeys(_learn_rate(r) for r in rs)))
            lines.append(line)
        parts += [_table(header, lines), ""]
        if flagged:
            parts += flagged + [""]
        rows = [{"system": s, "per_type": {label: _median([r["test"]["per_type"].get(label, {}).get("f")
                                                           for r in systems[s]])
                                           for label in sorted({lab for r in systems[s] for lab in r["test"]["per_type"]})}}
                for s in ordered]
        parts += [per_type_table(rows), "", *_converged_targets(systems, nested), ""]
        parts += errors_section(systems, ordered, nested)
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
    converged: Sequence[Dict[str, Any]] = (),
    head_cost: Sequence[Dict[str, Any]] = (),
) -> str:
    """The markdown results page: runs at convergence first, the head's cost, then the
    fixed-budget runs (summary, per data set, targets, tuned runs), then the sweeps."""
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
    parts += ["## At convergence", "", *converged_section(converged)]
    parts += ["## Speed: the head's cost", "", *head_cost_section(head_cost)]
    # The fixed-budget runs stop at a step count, not when dev F stops improving: their
    # heading says so, with the budgets the runs record.
    budgets = sorted({r["steps"] for r in [*results, *tuned]})
    budget = (f"{budgets[0]:,}-{budgets[-1]:,}" if len(budgets) > 1 else f"{budgets[0]:,}") if budgets else "no"
    parts += [f"## Fixed budget ({budget} steps, not converged)", "",
              "Every system of a data set trained for the same number of steps (same batcher, "
              "optimizer, dropout and embedding) and was scored at its best dev checkpoint within "
              "them; most were still improving when the budget ran out, so these tables rank the "
              "systems at equal steps, not at their best.", ""]
    parts += ["### Summary", "", "Held-out F1 (median over seeds), training and prediction "
              "throughput (median over timing repeats), one thread.", "", summary_table(rows), ""]
    steps = sorted({r["steps"] for r in results})
    if steps:
        parts += [f"Training budget: {', '.join(map(str, steps))} steps per run, the same for every "
                  "system of a dataset (same batcher, optimizer, dropout and embedding).", ""]
    fig_names = {p.name for p in figures}
    for (dataset, encoder), group in _group(rows).items():
        parts += [f"### {dataset}, {encoder} encoder (fixed budget)", "", DATASET_NOTES.get(dataset, dataset), ""]
        sizes = next((r.get("spancat_sizes") for r in group if r.get("spancat_sizes")), None)
        if sizes:
            parts += [f"spancat n-gram sizes covering 99.5% of the training spans: {sizes[0]}-{sizes[-1]}.", ""]
        nested = dataset == "genia"
        parts += ["#### Accuracy (held-out split)", "", accuracy_table(group, nested), "",
                  "With several seeds, every column is the median over seeds, taken column by column.", ""]
        if nested:
            parts += ["CRF and ner cannot nest: they are trained on the outermost gold spans; "
                      "\"F (outermost gold)\" scores every system against those.", ""]
        parts += [per_type_table(group), "", "#### Speed", "", speed_table(group), ""]
        for kind in ("f1", "speed", "curve"):
            name = f"{dataset}-{encoder}-{kind}.png"
            if name in fig_names:
                rel = next(p for p in figures if p.name == name)
                try:
                    rel = rel.resolve().relative_to(page_dir.resolve())
                except ValueError:
                    pass
                parts += [f"![{dataset} {encoder} {kind}]({rel.as_posix()})", ""]
    parts += ["### Targets (fixed budget)", "", targets_table(targets(rows)), ""]
    if tuned:
        parts += ["### Tuned runs (fixed budget)", "", "Each system with the learning rate that did best for it in the "
                  "tuning sweep below, and its decision threshold picked on dev (`bench/run.py "
                  "tune-threshold`: the grid value with the best dev F1; the held-out split never "
                  "chooses). Same encoder, data and step budget for every system.", "",
                  *tuned_section(list(tuned), heading="####")]
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
                      sweeps=data["sweeps"], converged=data["converged"], head_cost=data["head_cost"])
    output.write_text(page, encoding="utf8")
    print(f"{len(runs)} runs, {len(timings)} timing repeats, {len(data['converged'])} converged runs, "
          f"{len(data['head_cost'])} head-cost records -> {output}, {len(written)} figures in {figures}")


if __name__ == "__main__":
    typer.run(main)
