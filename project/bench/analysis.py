"""Errors by kind and F by span length of finished runs (`python -m bench analyse`): for
runs trained before train-one stored the breakdown in result.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from bench import registry
from bench.common import PROJECT, set_threads, write_json
from bench.corpus import breakdown_lines, corpus_paths, heldout_breakdown, load_gold, predict_sets


def analysed_run_dirs(run_dirs: Sequence[Path], below: Optional[Path]) -> List[Path]:
    """The run dirs given, then every dir holding a result.json below `below` (any depth:
    seed dirs of a runs dir, or a sweep's run dirs), each once, in that order."""
    found = list(run_dirs)
    if below is not None:
        found += sorted(p.parent for p in below.rglob("result.json"))
    return list(dict.fromkeys(found))


def analyse(dirs: Sequence[Path], corpus_dir: Optional[Path] = None, force: bool = False,
            threads: int = 1) -> Tuple[int, int]:
    """Errors by kind and F by span length of finished runs: predict the held-out split with
    model-best (flat systems against the outermost gold spans, as train-one scores them)
    and add test["errors"] and test["by_length"] to result.json, nothing else changed.
    New runs carry them from train-one; this is for runs trained before."""
    set_threads(threads)
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
        spec = registry.dataset(dataset)
        cdir = corpus_dir or PROJECT / "corpus" / "bench" / dataset
        stats_path = cdir / "stats.json"
        corpus_dataset = json.loads(stats_path.read_text())["dataset"] if stats_path.exists() else None
        if corpus_dataset != dataset:
            print(f"{rdir}: a {dataset} run, but {cdir} holds {corpus_dataset or 'no prepared corpus'}, skipped")
            skipped += 1
            continue
        split = result.get("heldout_split") or spec.heldout
        key = (cdir.resolve(), split)
        if key not in gold_cache:
            gold_cache[key] = load_gold(corpus_paths(cdir)[split], spec.lang)
        texts, gold = gold_cache[key]
        flat = bool(result.get("flat", not registry.system(result["system"]).nested))
        pred = predict_sets(spacy.load(rdir / "model-best"), texts, flat)
        breakdown = heldout_breakdown(pred, gold, texts, spec.lang, flat)
        # The breakdown should describe the predictions result.json scored: say so when the
        # model predicts differently now (other package code, another tokenizer).
        scored = result["test"]["outermost" if flat else "overall"]
        now = breakdown["errors"]
        if (scored["tp"], scored["predicted"], scored["gold"]) != (now["tp"], now["predicted"], now["gold"]):
            print(f"{rdir}: WARNING predictions differ from result.json's scores (tp/predicted/gold "
                  f"{scored['tp']}/{scored['predicted']}/{scored['gold']} then, "
                  f"{now['tp']}/{now['predicted']}/{now['gold']} now)")
        result["test"].update(breakdown)
        write_json(path, result)
        done += 1
        print(f"{rdir}: {result['system']}, {dataset} {split}, "
              f"against {breakdown['errors']['gold_spans']} gold spans")
        for line in breakdown_lines(result["test"]):
            print(f"   {line}")
    print(f"{done} analysed, {skipped} skipped")
    return done, skipped
