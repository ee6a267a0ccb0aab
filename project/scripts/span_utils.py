"""Helpers shared by the converters: reading span JSONL and building docs whose
tokens can carry every annotated span."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc

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
