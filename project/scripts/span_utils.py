"""Helpers shared by the converters and the benchmark (bench/): reading span JSONL,
building docs whose tokens can carry every annotated span, and converting records to a
DocBin. No imports of sibling modules, so the bench imports it as `scripts.span_utils`."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Sequence, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span

CharSpan = Tuple[int, int, str]


def read_jsonl(path: Path) -> Iterator[Dict[str, Any]]:
    """Yield one record a line, skipping blank lines."""
    with Path(path).open(encoding="utf8") as file_:
        for line_no, line in enumerate(file_, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: invalid JSON ({err})") from err


def record_id(record: Dict[str, Any], fallback: int) -> str:
    """The corpora name their ids differently (`id`, or GENIA's `sent_id`)."""
    for key in ("id", "sent_id"):
        if key in record:
            return str(record[key])
    return str(fallback)


def tokenize_at_boundaries(nlp: Language, text: str, boundaries: Iterable[int]) -> Doc:
    """Tokenize `text` with the pipeline's tokenizer, then split any token that a
    boundary falls inside, so every span edge is a token edge. Splitting keeps the
    text byte for byte: only `Doc.text` offsets matter for the spans."""
    doc = nlp.make_doc(text)
    cuts = sorted(set(boundaries))
    if not cuts:
        return doc
    words: List[str] = []
    spaces: List[bool] = []
    for token in doc:
        start = token.idx
        end = start + len(token.text)
        inner = [c for c in cuts if start < c < end]
        pieces = [start, *inner, end]
        for i in range(len(pieces) - 1):
            words.append(text[pieces[i] : pieces[i + 1]])
            last = i == len(pieces) - 2
            spaces.append(bool(token.whitespace_) if last else False)
    return Doc(nlp.vocab, words=words, spaces=spaces)


def spans_overlap_nested(spans: Sequence[CharSpan]) -> int:
    """Number of spans lying inside another (different) span: the nesting the
    converters must keep rather than flatten."""
    count = 0
    for i, (s1, e1, _) in enumerate(spans):
        for j, (s2, e2, _) in enumerate(spans):
            if i != j and s2 <= s1 and e1 <= e2 and (s1, e1) != (s2, e2):
                count += 1
                break
    return count


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
