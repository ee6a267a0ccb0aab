"""Convert the official GENIA term corpus 3.02 (GENIAcorpus3.02.tgz) into
train/dev/test DocBins, following document-ID split lists.

The rules reproduce the widely used nested-NER version of GENIA (the split of
CNN-Nested-NER / W2NER); they were checked entity for entity against it:
- a sentence's text is the text of its <sentence> element, markup removed;
- an entity is a <cons> whose `sem` is a single G# type starting with DNA_,
  RNA_, protein_, or equal to cell_line / cell_type, mapped to DNA, RNA,
  protein, cell_line, cell_type. Coordinated terms ("(AND G#... G#...)") are
  not entities: their span covers words that are not part of each conjunct,
  while the conjuncts that are contiguous are annotated inside them anyway;
- a span annotated twice with the same label (nested <cons> over the same
  words) counts once;
- one MEDLINE ID (97218353) occurs twice in the XML: the later, revised copy wins.
Tokens come from spaCy's English tokenizer, cut further at entity edges so
that no entity is lost ("CD28" inside "CD28-mediated").
"""

from __future__ import annotations

import json
import re
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import spacy
import typer
from spacy.tokens import DocBin
from span_utils import CharSpan, spans_overlap_nested, tokenize_at_boundaries
from typing_extensions import Annotated

XML_MEMBER = "GENIA_term_3.02/GENIAcorpus3.02.xml"
SEM_RE = re.compile(r"^G#(DNA|RNA|protein|cell_line|cell_type)(_|$)")
SPLITS = ("train", "dev", "test")
# Published statistics of this split (see shared/data/README.md).
EXPECTED = {
    "train": {"sentences": 15038, "entities": 46203},
    "dev": {"sentences": 1765, "entities": 4714},
    "test": {"sentences": 1732, "entities": 5119},
}

Sentence = Tuple[str, List[CharSpan]]


def map_sem(sem: Optional[str]) -> Optional[str]:
    if sem is None:
        return None
    match = SEM_RE.match(sem)
    return match.group(1) if match else None


def _walk(elem: ET.Element, offset: int, spans: List[CharSpan]) -> int:
    """Collect labelled <cons> spans below `elem`; return the offset after its content."""
    if elem.text:
        offset += len(elem.text)
    for child in elem:
        start = offset
        offset = _walk(child, offset, spans)
        label = map_sem(child.get("sem")) if child.tag == "cons" else None
        if label is not None and (start, offset, label) not in spans:
            spans.append((start, offset, label))
        if child.tail:
            offset += len(child.tail)
    return offset


def parse_sentence(elem: ET.Element) -> Sentence:
    spans: List[CharSpan] = []
    _walk(elem, 0, spans)
    # Sort outer spans before the spans nested in them: stable, readable order.
    spans.sort(key=lambda s: (s[0], -s[1], s[2]))
    return "".join(elem.itertext()), spans


def read_genia_xml(tgz_path: Path) -> Dict[str, List[Sentence]]:
    """Sentences of each article, keyed by its MEDLINE ID (later copies replace earlier)."""
    with tarfile.open(tgz_path, "r:gz") as tar:
        member = tar.extractfile(XML_MEMBER)
        if member is None:
            raise ValueError(f"{tgz_path} has no {XML_MEMBER}")
        # The DTD is not fetched: ElementTree does not resolve external entities.
        root = ET.parse(member).getroot()
    articles: Dict[str, List[Sentence]] = {}
    for article in root.iter("article"):
        ident = article.findtext("articleinfo/bibliomisc", default="").strip()
        articles[ident] = [parse_sentence(s) for s in article.iter("sentence")]
    return articles


def read_split(path: Path) -> List[str]:
    return [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def convert(
    tgz_path: Path, splits_dir: Path, output_dir: Path, spans_key: str = "sc"
) -> Dict[str, Dict[str, int]]:
    """Write <split>.spacy for each split; return per-split counts."""
    articles = read_genia_xml(tgz_path)
    nlp = spacy.blank("en")
    output_dir.mkdir(parents=True, exist_ok=True)
    stats: Dict[str, Dict[str, int]] = {}
    for split in SPLITS:
        ids = read_split(splits_dir / f"split_{split}.txt")
        missing = [i for i in ids if i not in articles]
        if missing:
            raise ValueError(f"{split}: {len(missing)} IDs not in the XML, e.g. {missing[:3]}")
        docbin = DocBin(attrs=["ORTH", "SPACY"])
        counts = {"documents": len(ids), "sentences": 0, "entities": 0, "nested": 0}
        for ident in ids:
            for text, spans in articles[ident]:
                doc = tokenize_at_boundaries(nlp, text, [b for s, e, _ in spans for b in (s, e)])
                ents = [doc.char_span(s, e, label=lab) for s, e, lab in spans]
                # tokenize_at_boundaries guarantees alignment; fail loudly if not.
                if any(span is None for span in ents):
                    raise AssertionError(f"misaligned entity in {ident}: {text!r}")
                doc.spans[spans_key] = ents
                docbin.add(doc)
                counts["sentences"] += 1
                counts["entities"] += len(spans)
                counts["nested"] += spans_overlap_nested(spans)
        docbin.to_disk(output_dir / f"{split}.spacy")
        stats[split] = counts
    return stats


def main(
    tgz_path: Annotated[Path, typer.Argument(help="GENIAcorpus3.02.tgz", exists=True, dir_okay=False)],
    splits_dir: Annotated[Path, typer.Argument(help="Folder with split_{train,dev,test}.txt", exists=True, file_okay=False)],
    output_dir: Annotated[Path, typer.Argument(help="Folder for train/dev/test .spacy")],
    spans_key: Annotated[str, typer.Option(help="Key in doc.spans")] = "sc",
    strict: Annotated[bool, typer.Option(help="Fail unless counts match the published ones")] = True,
) -> None:
    """Convert the official GENIA 3.02 XML into DocBins with nested spans."""
    stats = convert(tgz_path, splits_dir, output_dir, spans_key)
    (output_dir / "genia_counts.json").write_text(json.dumps(stats, indent=2), encoding="utf8")
    ok = True
    for split, counts in stats.items():
        expected = EXPECTED[split]
        match = all(counts[k] == v for k, v in expected.items())
        ok = ok and match
        print(
            f"{split:5}: {counts['documents']} docs, {counts['sentences']} sentences, "
            f"{counts['entities']} entities ({counts['nested']} nested in another) "
            f"{'== published' if match else f'!= published {expected}'}"
        )
    if strict and not ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
