"""The page's speed sections: trained models timed part by part (`python -m bench time parts`),
the head's cost against its encoder (python -m bench time head-cost), and the timing repeats of
trained models (fixed-budget ones, and converged ones beside their variants)."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench.records import DEFAULT_VARIANT, HeadCostRecord, HeadPartsRecord, TimingRecord
from bench.report.common import (
    dataset_info,
    encoder_name,
    group_order,
    median,
    num,
    system_name,
    system_order,
    table,
)
from bench.report.converged import choose_parts


def _share(value: Optional[float]) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _times(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _data_name(data: str) -> str:
    if data.startswith("../../shared/data/"):
        return data[len("../../shared/data/"):]
    return "demo-like (in memory)" if data == "demo (in memory)" else data


# --- trained models, part by part ------------------------------------------------------------

def head_parts_section(parts: Sequence[HeadPartsRecord]) -> List[str]:
    if not parts:
        return []
    chosen = choose_parts(parts)
    groups: Dict[Tuple[str, str, str], List[HeadPartsRecord]] = {}
    for r in chosen:
        groups.setdefault((r.experiment, r.dataset, r.encoder), []).append(r)
    lines = []
    for (experiment, dataset, encoder) in sorted(groups, key=lambda k: (k[0], *group_order(k[1:]))):
        rs = groups[(experiment, dataset, encoder)]
        for system in sorted({r.system for r in rs}, key=system_order):
            big = [r for r in rs if r.system == system and r.batch_size == 256]
            one = [r for r in rs if r.system == system and r.batch_size == 1]
            first = (big or one)[0]
            lines.append([
                f"{dataset_info(dataset).name}, {encoder_name(encoder)}", system_name(system),
                "converged" if experiment == "converged" else "3,000 steps (timing only)",
                f"{_data_name(first.data)} ({num(first.docs)} docs)", first.package or "?",
                str(len(big)),
                num(median(r.words_per_second for r in big)),
                _share(median(r.medians["encoder"] / sum(r.medians.values()) for r in big)),
                num(median(r.medians["forward"] * 1000 for r in big), "{:,.1f}"),
                num(median(r.medians["decode"] * 1000 for r in big), "{:,.1f}"),
                _share(median(r.head_share for r in one)),
            ])
    out = ["Trained seed-0 models, timed one part after another on every batch in one process "
           "(`python -m bench time parts`: the encoder, the head's forward pass, decoding), one "
           "thread, medians of 7 repeats; where a model was timed by several package versions, the "
           "version that timed the most systems of that corpus and encoder is shown (all systems "
           "of a row group timed together). Batch 256 on every doc of the file, batch 1 on the "
           "first 300. Throughput / encoder = encoder time / (encoder + forward + decoding).", "",
           table(["data, encoder", "system", "model", "timed on", "package", "runs (batch 256)",
                  "batch 256: words/s", "batch 256: throughput / encoder's", "batch 256: forward (ms)",
                  "batch 256: decoding (ms)", "batch 1: head share"], lines), ""]
    other = [r for r in parts if r not in chosen and r.batch_size == 256]
    if other:
        lines = [[f"{dataset_info(r.dataset).name}, {encoder_name(r.encoder)}", system_name(r.system),
                  r.package or "?", _share(r.medians["encoder"] / sum(r.medians.values())),
                  num(r.medians["forward"] * 1000, "{:,.1f}"), num(r.medians["decode"] * 1000, "{:,.1f}")]
                 for r in sorted(other, key=lambda r: (group_order((r.dataset, r.encoder)), r.package or ""))]
        out += ["The same models timed with other package versions (batch 256):", "",
                table(["data, encoder", "system", "package", "throughput / encoder's", "forward (ms)",
                       "decoding (ms)"], lines), ""]
    return out


# --- head cost (python -m bench time head-cost) -------------------------------------------------------

ROLE_ORDER = ("before", "after", "current")
HEAD_METRICS = ("bs1_share", "large_share", "large_vs_encoder", "train_vs_trivial", "train_vs_crf")


def _run_metrics(systems: Dict[str, Any], system: str) -> Dict[str, Optional[float]]:
    """One `time head-cost` run's figures for a system; training against the CRF paired within
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


def summarize_head_cost(records: Sequence[HeadCostRecord]) -> Dict[Tuple[str, str, str], Dict[str, Any]]:
    """Per (measurement set, data, encoder): per role, its labels, run count and per system
    the medians over runs of each metric."""
    out: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    for r in records:
        role = out.setdefault((r.session, r.data, r.encoder), {}).setdefault(
            r.role, {"labels": [], "runs": 0, "per_run": {}, "docs": None, "words": None})
        if r.label not in role["labels"]:
            role["labels"].append(r.label)
        role["runs"] += 1
        role["docs"], role["words"] = r.figures.get("docs"), r.figures.get("words")
        systems = r.figures["systems"]
        for system in systems:
            if system == "trivial_head":
                continue
            per = role["per_run"].setdefault(system, {m: [] for m in HEAD_METRICS})
            for metric, value in _run_metrics(systems, system).items():
                per[metric].append(value)
    for group in out.values():
        for role in group.values():
            role["systems"] = {s: {m: median(v[m]) for m in HEAD_METRICS}
                               for s, v in sorted(role.pop("per_run").items(), key=lambda kv: system_order(kv[0]))}
    return out


def head_cost_section(records: Sequence[HeadCostRecord]) -> List[str]:
    if not records:
        return []
    out = ["Each system built from its benchmark config and trained 100 updates on the docs it is "
           "timed on (`python -m bench time head-cost`), then timed as the whole pipeline against its encoder "
           "alone (head share = 1 - t_encoder / t_pipeline; throughput = t_encoder / t_pipeline) and "
           "in training against the same encoder with a trivial head; training against the CRF is "
           "words/s over the CRF's in the same run. Medians over runs of ratios taken within a run, "
           "one thread. Runs of one measurement set alternated the package versions on one machine: "
           "compare within a set; \"a → b\" is the earlier version's figure, then the later's. The "
           "CRF and ner run the same code in both: their movement is the noise.", ""]
    summary = summarize_head_cost(records)
    header = ["data, encoder", "system", "batch 1: head share", "batch 256: head share",
              "batch 256: throughput / encoder's", "training / trivial head's", "training words/s / CRF's"]
    sets = sorted({k[0] for k in summary})
    for name in sets:
        groups = {k: v for k, v in summary.items() if k[0] == name}
        lines, sizes = [], []
        labels: Dict[str, List[str]] = {}
        for (_, data, encoder), roles in groups.items():
            shown = [r for r in ROLE_ORDER if r in roles] + [r for r in roles if r not in ROLE_ORDER]
            for role in shown:
                labels.setdefault(role, [])
                labels[role] += [lab for lab in roles[role]["labels"] if lab not in labels[role]]
            last = roles[shown[-1]]
            sizes.append(f"{_data_name(data)}, {encoder_name(encoder)}: "
                         + (f"{last['docs']:,} docs, {last['words']:,} words; " if last.get("docs") and last.get("words") else "")
                         + ", ".join(f"{roles[r]['runs']} run{'s' if roles[r]['runs'] > 1 else ''} of {', '.join(roles[r]['labels'])}"
                                   for r in shown))
            systems = list(dict.fromkeys(s for r in shown for s in roles[r]["systems"]))
            for system in sorted(systems, key=system_order):
                cells = [" → ".join(fmt(roles[r]["systems"][system][m]) for r in shown if system in roles[r]["systems"])
                         for m, fmt in zip(HEAD_METRICS, (_share, _share, _share, _share, _times))]
                lines.append([f"{_data_name(data)}, {encoder_name(encoder)}", system_name(system), *cells])
        versions = " → ".join(", ".join(labels[r]) for r in ROLE_ORDER if r in labels)
        out += [f"#### Measurement set `{name}` (package {versions})", "", *(f"- {s}" for s in sizes), "",
                table(header, lines), ""]
    return out


# --- timing repeats ---------------------------------------------------------------------------

def _session_order(session: str) -> Tuple[Any, ...]:
    """Timing sets in the order they were made: "s3" before "s26" (numbers compared as numbers)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", session))


def timing_rows(timings: Sequence[TimingRecord]) -> Dict[Tuple[str, str, str, str], Dict[str, Any]]:
    """Per (dataset, encoder, system, variant): medians over the repeats of the newest timing set."""
    rows: Dict[Tuple[str, str, str, str], List[TimingRecord]] = {}
    for t in timings:
        rows.setdefault((t.dataset, t.encoder, t.system, t.variant), []).append(t)
    out = {}
    for key, ts in rows.items():
        session = max((t.session for t in ts), key=_session_order)
        ts = [t for t in ts if t.session == session]
        out[key] = {
            "session": session, "repeats": len(ts), "seeds": sorted({t.seed for t in ts}),
            "train": median((t.train or {}).get("words_per_second") for t in ts),
            "bs1": median(t.full["batch1"]["words_per_second"] for t in ts),
            "large": median(t.full["large"]["words_per_second"] for t in ts),
            "enc_large": median(t.encoder_only["large"]["words_per_second"] for t in ts),
            "share_bs1": median(1 - t.full["batch1"]["words_per_second"] / t.encoder_only["batch1"]["words_per_second"]
                                for t in ts),
            "share_large": median(1 - t.full["large"]["words_per_second"] / t.encoder_only["large"]["words_per_second"]
                                  for t in ts),
            "rss": median(t.peak_rss_mb for t in ts),
        }
    return out


def ratios_to_baseline(rows: Dict[Tuple[str, str, str, str], Dict[str, Any]],
                       key: Tuple[str, str, str, str]) -> Optional[Tuple[Optional[float], Optional[float]]]:
    """Training and prediction (batch 256) words/s of rows[key] over its `baseline` variant's, each
    None where not measured; None where the baseline was not timed in the same timing set (sets ran
    at other times and loads, so a ratio across them would compare the loads)."""
    mine, base = rows.get(key), rows.get((*key[:3], DEFAULT_VARIANT))
    if not mine or not base or mine["session"] != base["session"]:
        return None
    return tuple(None if mine[k] is None or not base[k] else mine[k] / base[k]  # type: ignore[return-value]
                 for k in ("train", "large"))


def _ratio(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.2f}x"


FIXED_BUDGET_TIMING = ("The fixed-budget models (below), each timed in a fresh process, the systems of a corpus "
                       "back to back, repeated (`python -m bench time pipeline`); medians over the repeats of "
                       "the newest timing set.")
CONVERGED_TIMING = ("Converged models (the seed a row names) beside their variants, each timed in a fresh process, "
                    "alternated, repeated (`python -m bench time pipeline`); medians over the repeats. Compare "
                    "within a corpus and encoder, as the ratios to the `baseline` model do: the timing sets "
                    "ran at other times and loads.")


def timing_section(timings: Sequence[TimingRecord], intro: str = FIXED_BUDGET_TIMING) -> List[str]:
    if not timings:
        return []
    rows = timing_rows(timings)
    variants = any(variant != DEFAULT_VARIANT for *_, variant in rows)
    lines = []
    for (d, e, s, variant), v in sorted(rows.items(), key=lambda kv: (group_order(kv[0][:2]), system_order(kv[0][2]),
                                                                      kv[0][3] != DEFAULT_VARIANT, kv[0][3])):
        line = [f"{dataset_info(d).name}, {encoder_name(e)}", system_name(s)]
        if variants:
            ratios = ratios_to_baseline(rows, (d, e, s, variant)) or (None, None)
            line += [f"`{variant}`", " / ".join(_ratio(r) for r in ratios)]
        line += [num(v["train"]), num(v["bs1"]), num(v["large"]), num(v["enc_large"]),
                 f"{_share(v['share_bs1'])} / {_share(v['share_large'])}", num(v["rss"]),
                 ", ".join(map(str, v["seeds"])), f"`{v['session']}`", str(v["repeats"])]
        lines.append(line)
    header = ["data, encoder", "system"]
    if variants:
        header += ["variant", "words/s against `baseline` (train / predict, batch 256)"]
    header += ["train words/s", "predict words/s (batch 1)", "predict words/s (batch 256)",
               "encoder alone (batch 256)", "head's share of time (batch 1 / 256)", "peak RSS (MB)",
               "seed", "timing set", "repeats"]
    return [f"{intro} The head's share is 1 - pipeline words/s / encoder-alone words/s in the same process.", "",
            table(header, lines), ""]
