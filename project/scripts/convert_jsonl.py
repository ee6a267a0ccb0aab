"""Convert span-annotated JSON lines into a spaCy DocBin with `doc.spans[key]`.

Input: one object a line, `{"id", "text", "entities": [{"start", "end", "label"}]}`,
character offsets with `end` exclusive. Overlapping and nested spans are kept.
Spans whose edges fall inside a token are never dropped silently: they are
counted and listed in a report that is printed and written as JSON.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Optional

import spacy
import typer
from spacy.tokens import DocBin, Span
from span_utils import read_jsonl, record_id, tokenize_at_boundaries
from typing_extensions import Annotated


class Alignment(str, Enum):
    # The first three are spaCy's `Doc.char_span` modes; `split` instead cuts
    # tokens at span edges, so no span is lost (useful for biomedical names
    # such as "CD28-mediated" whose parts are separate entities).
    strict = "strict"
    contract = "contract"
    expand = "expand"
    split = "split"


def convert_records(
    records: List[Dict[str, Any]],
    *,
    lang: str = "en",
    spans_key: str = "sc",
    alignment: Alignment = Alignment.strict,
    max_listed: int = 1000,
) -> tuple[DocBin, Dict[str, Any]]:
    """Build the DocBin and the alignment report for already-loaded records."""
    nlp = spacy.blank(lang)
    docbin = DocBin(attrs=["ORTH", "SPACY"], store_user_data=False)
    report: Dict[str, Any] = {
        "lang": lang,
        "spans_key": spans_key,
        "alignment": alignment.value,
        "docs": 0,
        "spans_in": 0,
        "spans_kept": 0,
        "misaligned": 0,
        "adjusted": 0,
        "invalid": 0,
        "duplicates": 0,
        "labels": {},
        "misaligned_spans": [],
        "adjusted_spans": [],
        "invalid_spans": [],
    }

    def note(kind: str, rid: str, text: str, start: int, end: int, label: str, **extra: Any) -> None:
        listed = report[f"{kind}_spans"]
        if len(listed) < max_listed:
            listed.append(
                {"id": rid, "start": start, "end": end, "label": label, "text": text[start:end], **extra}
            )

    for i, record in enumerate(records):
        text: str = record["text"]
        rid = record_id(record, i)
        entities = record.get("entities", [])
        report["spans_in"] += len(entities)
        valid = []
        for ent in entities:
            start, end, label = int(ent["start"]), int(ent["end"]), str(ent["label"])
            # A wrong offset is a data error, not a tokenization one: list it apart.
            if not (0 <= start < end <= len(text)) or (
                "text" in ent and ent["text"] != text[start:end]
            ):
                report["invalid"] += 1
                note("invalid", rid, text, start, end, label, given_text=ent.get("text"))
                continue
            valid.append((start, end, label))
        if alignment is Alignment.split:
            doc = tokenize_at_boundaries(nlp, text, [b for s, e, _ in valid for b in (s, e)])
        else:
            doc = nlp.make_doc(text)
        spans: List[Span] = []
        seen = set()
        for start, end, label in valid:
            mode = "strict" if alignment is Alignment.split else alignment.value
            span = doc.char_span(start, end, label=label, alignment_mode=mode)
            if span is None:
                report["misaligned"] += 1
                note("misaligned", rid, text, start, end, label)
                continue
            if (span.start_char, span.end_char) != (start, end):
                report["adjusted"] += 1
                note("adjusted", rid, text, start, end, label,
                     new_start=span.start_char, new_end=span.end_char)
            key = (span.start, span.end, label)
            if key in seen:
                # The same span twice would count twice as gold in the scorer.
                report["duplicates"] += 1
                continue
            seen.add(key)
            spans.append(span)
            report["labels"][label] = report["labels"].get(label, 0) + 1
        doc.spans[spans_key] = spans
        report["spans_kept"] += len(spans)
        report["docs"] += 1
        docbin.add(doc)
    return docbin, report


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
