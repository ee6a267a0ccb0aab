"""Convert span-annotated JSON lines into a spaCy DocBin with `doc.spans[key]`.

Input: one object a line, `{"id", "text", "entities": [{"start", "end", "label"}]}`,
character offsets with `end` exclusive. Overlapping and nested spans are kept.
Spans whose edges fall inside a token are never dropped silently: they are
counted and listed in a report that is printed and written as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

import typer
from span_utils import Alignment, convert_records, read_jsonl
from typing_extensions import Annotated


def print_report(report: Dict[str, Any], limit: int = 10) -> None:
    print(
        f"docs={report['docs']} spans_in={report['spans_in']} kept={report['spans_kept']} "
        f"misaligned={report['misaligned']} adjusted={report['adjusted']} "
        f"invalid={report['invalid']} duplicates={report['duplicates']} "
        f"(alignment={report['alignment']})"
    )
    for kind in ("misaligned", "invalid"):
        for item in report[f"{kind}_spans"][:limit]:
            print(f"  {kind}: {item['id']} [{item['start']}:{item['end']}] {item['label']} {item['text']!r}")
        if report[kind] > limit:
            print(f"  ... {report[kind] - limit} more {kind} spans listed in the report file")


def main(
    input_path: Annotated[Path, typer.Argument(help="JSONL file", exists=True, dir_okay=False)],
    output_path: Annotated[Path, typer.Argument(help="Output .spacy file")],
    lang: Annotated[str, typer.Option(help="Language code for spacy.blank (zh: per-character tokens)")] = "en",
    spans_key: Annotated[str, typer.Option(help="Key in doc.spans")] = "sc",
    alignment: Annotated[Alignment, typer.Option(help="How span edges inside a token are handled")] = Alignment.strict,
    report_path: Annotated[Optional[Path], typer.Option("--report", help="Report JSON (default: next to the output)")] = None,
) -> None:
    """Convert a span JSONL file to a DocBin and report misaligned spans."""
    docbin, report = convert_records(
        list(read_jsonl(input_path)), lang=lang, spans_key=spans_key, alignment=alignment
    )
    report["input"] = str(input_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    docbin.to_disk(output_path)
    report_path = report_path or output_path.with_suffix(".report.json")
    report_path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf8")
    print_report(report)
    print(f"Saved {output_path} and {report_path}")


if __name__ == "__main__":
    typer.run(main)
