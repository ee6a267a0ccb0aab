"""Training-data augmentation: messy whitespace, with every span group carried over.

spaCy makes a token of extra whitespace (a double space, a newline), and an encoder that
never saw one in training reads it as noise: on the demo pipeline, doubling every space
cost two thirds of the predicted spans. spaCy's own whitespace augmenter leaves docs with
``doc.spans`` untouched, so this one rewrites the text and carries the spans (and
entities) over by character offset.
"""

import random
from typing import Callable, Iterator, List, Optional, Sequence

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry

DEFAULT_VARIANTS = ("  ", "\n", "\n\n", " \n", "\t")
# Token annotation that a re-tokenised text would lose: such examples pass unchanged.
_TOKEN_ATTRS = ("TAG", "POS", "MORPH", "LEMMA", "DEP", "SENT_START")


@registry.augmenters("spacy-globalpointer.whitespace_augmenter.v1")
def create_whitespace_augmenter(
    level: float = 0.2,
    per_space: float = 0.2,
    variants: Optional[List[str]] = None,
) -> Callable[[Language, Example], Iterator[Example]]:
    """Replace spaces in a share of the training texts by other whitespace.

    level: share of the examples that are rewritten.
    per_space: in a rewritten text, the chance that each space becomes a variant.
    variants: the whitespace strings a space may become (default: double space,
        newlines, a tab).
    """
    chosen = list(DEFAULT_VARIANTS if variants is None else variants)
    for name, value in (("level", level), ("per_space", per_space)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if not chosen or not all(isinstance(v, str) and v and not v.strip() for v in chosen):
        raise ValueError(f"variants must be non-empty whitespace strings, got {variants!r}")

    def augment(nlp: Language, example: Example) -> Iterator[Example]:
        if random.random() >= level:
            yield example
            return
        yield whitespace_variant(nlp, example, per_space, chosen, random.random)

    return augment


def whitespace_variant(
    nlp: Language,
    example: Example,
    per_space: float,
    variants: Sequence[str],
    draw: Callable[[], float],
) -> Example:
    """The example with some single spaces replaced by whitespace variants.

    The reference is re-tokenised from the new text; its span groups and entities are
    moved by character offset. Examples with token annotation (tags, parses ...) that
    re-tokenising would lose are returned unchanged.
    """
    reference = example.reference
    if any(reference.has_annotation(attr) for attr in _TOKEN_ATTRS):
        return example
    text = reference.text
    pieces: List[str] = []
    # new_offset[c]: where character c of the old text lands in the new one.
    new_offset: List[int] = []
    length = 0
    for char in text:
        new_offset.append(length)
        piece = char
        if char == " " and draw() < per_space:
            piece = variants[int(draw() * len(variants)) % len(variants)]
        pieces.append(piece)
        length += len(piece)
    new_offset.append(length)
    new_text = "".join(pieces)
    if new_text == text:
        return example
    new_reference = nlp.make_doc(new_text)
    for key, group in reference.spans.items():
        new_reference.spans[key] = _moved(new_reference, group, new_offset)
    if reference.has_annotation("ENT_IOB"):
        new_reference.set_ents(_moved(new_reference, reference.ents, new_offset))
    return Example(nlp.make_doc(new_text), new_reference)


def _moved(doc: Doc, spans: Sequence, new_offset: List[int]) -> List:
    moved = []
    for span in spans:
        # The span's last character, not its end offset: a space replaced right after
        # the span must not be pulled into it.
        start = new_offset[span.start_char]
        end = new_offset[span.end_char - 1] + 1 if len(span) else start
        new_span = doc.char_span(start, end, label=span.label, kb_id=span.kb_id)
        if new_span is None:  # the tokenizer split differently: keep the gold span exact
            new_span = doc.char_span(start, end, label=span.label, alignment_mode="expand")
        moved.append(new_span)
    return moved
