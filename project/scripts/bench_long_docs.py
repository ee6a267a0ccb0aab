"""Peak memory and wall time of nlp(doc) for long docs, with and without max_length.

Uses a trained pipeline (by default the demo pipeline that `weasel run all` trains) and
measures each doc length in a fresh subprocess, so that peak resident memory is that
doc's alone. Prints a markdown table and writes it, with
the command, to --output.
"""

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import spacy
import typer
from spacy.tokens import Doc

MAX_LENGTH_SETTINGS = {"default": "as trained", "null": None}


def load(model_path: str, max_length: str) -> spacy.Language:
    """Load the pipeline; "null" overrides the head's max_length (weights do not depend on it)."""
    if max_length == "default":
        return spacy.load(model_path)
    overrides = {"components": {"global_pointer": {"model": {"max_length": None}}}}
    return spacy.load(model_path, config=overrides)


def measure(model_path: str, texts_path: str, max_length: str, n_tokens: int, threads: int) -> Dict[str, float]:
    """Run in a child process: load, warm up, then time one nlp(doc) of n_tokens."""
    import warnings

    import psutil
    import torch

    torch.set_num_threads(threads)

    nlp = load(model_path, max_length)
    texts = [json.loads(line)["text"] for line in Path(texts_path).read_text().splitlines() if line.strip()]
    nlp(texts[0])
    # the texts' tokens, repeated until the doc has n_tokens
    words = [t.text for text in texts for t in nlp.make_doc(text)]
    doc = Doc(nlp.vocab, words=[words[i % len(words)] for i in range(n_tokens)])
    rss_before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _, proc in nlp.pipeline:
            doc = proc(doc)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    head = nlp.get_pipe("global_pointer").model.get_ref("head")
    widths = [w for w in [str(m.message) for m in caught] if "score_budget" in w]
    return {
        "tokens": len(doc),
        "seconds": seconds,
        "peak_growth_mb": max(peak - rss_before, 0) / 2**20,
        "rss_before_mb": rss_before / 2**20,
        "spans": len(doc.spans["sc"]),
        "max_length": head.attrs["max_length"],
        "capped": bool(widths),
    }


def main(
    model: Path = typer.Option(Path("training/model-best"), help="Trained pipeline with global_pointer"),
    null_model: Optional[Path] = typer.Option(
        None, help="Pipeline trained with max_length null, for the null rows (default: --model)"
    ),
    texts: Path = typer.Option(Path("assets/demo/dev.jsonl"), help="JSONL texts whose tokens fill the docs"),
    output: Path = typer.Option(Path("LONG_DOCS.md"), help="Markdown file for the table"),
    lengths: str = typer.Option("1000,4000,16000,64000", help="Doc lengths in tokens"),
    child: Optional[str] = typer.Option(None, hidden=True, help="internal: max_length setting to measure"),
    threads: int = typer.Option(1, help="torch threads (1: figures less sensitive to other load)"),
    child_tokens: int = typer.Option(0, hidden=True),
) -> None:
    if child:
        print(json.dumps(measure(str(model), str(texts), child, child_tokens, threads)))
        return
    sizes = [int(x) for x in lengths.split(",")]
    rows: List[Dict[str, float]] = []
    for setting in MAX_LENGTH_SETTINGS:
        path = null_model if setting == "null" and null_model else model
        for n in sizes:
            args = ["--model", str(path), "--texts", str(texts), "--threads", str(threads)]
            args += ["--child", setting, "--child-tokens", str(n)]
            out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["config"] = f"max_length {row['max_length']}"
            rows.append(row)
            print(
                f"{row['config']:18s} {row['tokens']:>7d} tokens  {row['seconds']:7.2f} s  "
                f"peak growth {row['peak_growth_mb']:8.1f} MB  spans {row['spans']}  capped={row['capped']}",
                flush=True,
            )
    table = [
        "| config | tokens | seconds | peak RSS growth (MB) | spans predicted | band capped by score_budget |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        table.append(
            f"| {row['config']} | {row['tokens']} | {row['seconds']:.2f} | {row['peak_growth_mb']:.0f} | "
            f"{row['spans']} | {'yes' if row['capped'] else 'no'} |"
        )
    ratios = []
    for label in {row["config"] for row in rows}:
        by_n = {row["tokens"]: row for row in rows if row["config"] == label}
        ordered = sorted(by_n)
        if len(ordered) >= 2:
            big, small = by_n[ordered[-1]], by_n[ordered[-2]]
            ratios.append(
                f"- {label}: t({ordered[-1]})/t({ordered[-2]}) = {big['seconds'] / small['seconds']:.2f} "
                f"for a {ordered[-1] / ordered[-2]:.0f}x longer doc"
            )
    command = "python scripts/bench_long_docs.py " + " ".join(sys.argv[1:])
    text = "\n".join(
        [
            "# Long documents: time and memory of nlp(doc)",
            "",
            f"Command (from `project/`): `{command.strip()}`",
            "",
            f"Each row is one fresh process ({threads} torch thread(s)): load the pipeline, warm up on a short sentence, then run",
            "the pipeline on one doc. Peak RSS growth is the process's peak resident memory minus",
            "its resident memory just before that doc. The docs repeat the tokens of the texts file;",
            f"pipelines: `{model}`; for `max_length None`, `{null_model or model}` loaded with the",
            "head's max_length set to null (a model should be trained with the max_length it runs with:",
            "a head trained on spans up to 32 tokens has never been told that longer ones are wrong).",
            "",
            *table,
            "",
            *sorted(ratios),
            "",
        ]
    )
    output.write_text(text)
    print(text)


if __name__ == "__main__":
    typer.run(main)
