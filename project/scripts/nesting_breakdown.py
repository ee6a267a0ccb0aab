"""Where two span systems differ on nested data: recall of inner, outer and flat gold
spans, recall and precision by span length, per-type F1, on dev and the held-out split.

    python scripts/nesting_breakdown.py analyse RUN_DIR... --corpus-dir corpus/bench/genia
    python scripts/nesting_breakdown.py compare --base RUN_DIR... --variant RUN_DIR...

``analyse`` predicts dev and test with each benchmark run's model-best (bench/run.py's
layout) and writes breakdown.json beside its result.json: at the pipe's own threshold
and, where the run has a threshold.json, at the dev-tuned one. ``compare`` prints a
table of two systems' runs paired by seed: mean, standard deviation, the paired
differences. Gold spans are the corpus's nested spans; a gold span is *inner* when
another gold span (other offsets) contains it, *outer* when it contains one, *flat*
when neither (a span can be both inner and outer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence, Set, Tuple

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from scripts.span_metrics import (  # noqa: E402
    LENGTH_BUCKETS,
    CharSpan,
    error_breakdown,
    nested_gold,
    role_recall,
    score_predictions,
)

SPANS_KEY = "sc"


def breakdown(pred_sets: Sequence[Set[CharSpan]], gold_sets: Sequence[Set[CharSpan]],
              texts: Sequence[str], lang: str) -> Dict[str, Any]:
    scores = score_predictions(pred_sets, gold_sets)
    n_nested = sum(len(nested_gold(g)) for g in gold_sets)
    return {
        "overall": scores["overall"],
        "per_type": scores["per_type"],
        "nested_recall": scores["nested_gold"]["recall"],
        "nested_spans": n_nested,
        "recall_by_role": {role.removesuffix("_spans"): counts
                           for role, counts in role_recall(pred_sets, gold_sets).items()},
        "by_length": error_breakdown(pred_sets, gold_sets, texts, lang)["by_length"]["buckets"],
    }


def analyse(run_dirs: Sequence[Path], corpus_dir: Path, batch_size: int = 256) -> None:
    import spacy
    import torch
    from spacy.tokens import DocBin

    torch.set_num_threads(1)
    for run_dir in run_dirs:
        nlp = spacy.load(run_dir / "model-best")
        pipe = nlp.get_pipe("global_pointer") if "global_pointer" in nlp.pipe_names else None
        default = float(pipe.cfg["threshold"]) if pipe is not None else None
        tuned_path = run_dir / "threshold.json"
        tuned = json.loads(tuned_path.read_text())["best_threshold"] if tuned_path.exists() else None
        lowest = min(t for t in (default, tuned) if t is not None) if pipe is not None else None
        if pipe is not None:
            pipe.cfg["threshold"] = lowest - 1e-6
        lang = nlp.lang
        out: Dict[str, Any] = {"run": str(run_dir), "default_threshold": default,
                               "tuned_threshold": tuned}
        for split in ("dev", "test"):
            docs = list(DocBin().from_disk(corpus_dir / f"{split}.spacy").get_docs(nlp.vocab))
            texts = [d.text for d in docs]
            gold = [{(s.start_char, s.end_char, s.label_) for s in d.spans[SPANS_KEY]} for d in docs]
            scored: List[List[Tuple[CharSpan, float]]] = []
            for doc in nlp.pipe(texts, batch_size=batch_size):
                group = doc.spans.get(SPANS_KEY, [])
                values = group.attrs.get("scores", [1.0] * len(group)) if len(group) else []
                scored.append([((s.start_char, s.end_char, s.label_), float(v))
                               for s, v in zip(group, values)])
            for name, threshold in (("default", default), ("tuned", tuned)):
                if threshold is None and name == "tuned":
                    continue
                pred = [{span for span, v in doc if threshold is None or v >= threshold} for doc in scored]
                out[f"{split}_{name}"] = breakdown(pred, gold, texts, lang)
        (run_dir / "breakdown.json").write_text(json.dumps(out, indent=1))
        d = out["dev_default"]
        print(f"{run_dir}: dev F {d['overall']['f']:.4f} nested R {d['nested_recall']:.4f} "
              f"inner R {d['recall_by_role']['inner']['recall']:.4f} "
              f"outer R {d['recall_by_role']['outer']['recall']:.4f}", flush=True)


def _row(name: str, base: List[float], variant: List[float]) -> str:
    def ms(xs: List[float]) -> str:
        if not xs:
            return "-"
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.mean(xs) * 100:.2f} ± {sd * 100:.2f}"

    diffs = [v - b for b, v in zip(base, variant)]
    each = ", ".join(f"{d * 100:+.2f}" for d in diffs)
    mean = f"{statistics.mean(diffs) * 100:+.2f}" if diffs else "-"
    return f"| {name} | {ms(base)} | {ms(variant)} | {mean} | {each} |"


def compare(base: Sequence[Path], variant: Sequence[Path], threshold: str) -> None:
    def load(dirs: Sequence[Path]) -> Dict[int, Dict[str, Any]]:
        out = {}
        for d in dirs:
            result = json.loads((d / "result.json").read_text())
            out[result["seed"]] = {"result": result,
                                   "breakdown": json.loads((d / "breakdown.json").read_text())}
        return out

    b, v = load(base), load(variant)
    seeds = sorted(set(b) & set(v))
    print(f"seeds {seeds}; threshold: {threshold}; base {base[0].parent}, variant {variant[0].parent}")
    print("| figure | base mean ± sd | variant mean ± sd | mean diff | diff per seed |")
    print("|---|---|---|---|---|")

    def figure(name: str, get: Any) -> None:
        xs = [get(b[s]) for s in seeds]
        ys = [get(v[s]) for s in seeds]
        print(_row(name, xs, ys))

    for split in ("dev", "test"):
        key = f"{split}_{threshold}"
        figure(f"{split} F", lambda r, key=key: r["breakdown"][key]["overall"]["f"])
        figure(f"{split} P", lambda r, key=key: r["breakdown"][key]["overall"]["p"])
        figure(f"{split} R", lambda r, key=key: r["breakdown"][key]["overall"]["r"])
        figure(f"{split} nested R", lambda r, key=key: r["breakdown"][key]["nested_recall"])
        for role in ("inner", "outer", "flat"):
            figure(f"{split} {role} R", lambda r, role=role, key=key: r["breakdown"][key]["recall_by_role"][role]["recall"])
        for name, _, _ in LENGTH_BUCKETS:
            figure(f"{split} R {name}", lambda r, name=name, key=key: r["breakdown"][key]["by_length"][name]["r"])
            figure(f"{split} P {name}", lambda r, name=name, key=key: r["breakdown"][key]["by_length"][name]["p"])
        labels = sorted(b[seeds[0]]["breakdown"][key]["per_type"])
        for label in labels:
            figure(f"{split} F {label}",
                   lambda r, label=label, key=key: r["breakdown"][key]["per_type"].get(label, {"f": 0.0})["f"])
    figure("runner test F (result.json)", lambda r: r["result"]["test"]["overall"]["f"])
    figure("best dev F (curve)", lambda r: r["result"]["best"]["dev_f"])
    for name, get in (("train words/s", lambda r: r["result"]["train_words_per_second"]),
                      ("steps to best", lambda r: r["result"]["best"]["step"]),
                      ("steps run", lambda r: r["result"]["steps_run"])):
        xs = [get(b[s]) for s in seeds]
        ys = [get(v[s]) for s in seeds]
        print(f"| {name} | {', '.join(f'{x:.0f}' for x in xs)} | {', '.join(f'{y:.0f}' for y in ys)} | "
              f"ratio {statistics.mean(ys) / statistics.mean(xs):.3f} | |")
    gold = b[seeds[0]]["breakdown"][f"dev_{threshold}"]
    print("dev gold spans by length: " + ", ".join(
        f"{n} {gold['by_length'][n]['gold']}" for n, _, _ in LENGTH_BUCKETS)
        + "; by role: " + ", ".join(f"{r} {c['spans']}" for r, c in gold["recall_by_role"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyse")
    a.add_argument("run_dirs", nargs="+", type=Path)
    a.add_argument("--corpus-dir", type=Path, required=True)
    c = sub.add_parser("compare")
    c.add_argument("--base", nargs="+", type=Path, required=True)
    c.add_argument("--variant", nargs="+", type=Path, required=True)
    c.add_argument("--threshold", choices=("default", "tuned"), default="default")
    args = parser.parse_args()
    if args.command == "analyse":
        analyse(args.run_dirs, args.corpus_dir)
    else:
        compare(args.base, args.variant, args.threshold)


if __name__ == "__main__":
    main()
