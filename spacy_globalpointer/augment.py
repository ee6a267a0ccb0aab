"""Training-data augmentation: messy whitespace, with every annotation carried over.

spaCy makes a token of extra whitespace (a double space, a newline), and an encoder that
never saw one in training reads it as noise: on the demo pipeline, doubling every space
cost two thirds of the predicted spans. spaCy's own whitespace augmenter leaves docs with
``doc.spans`` untouched, so this one rewrites the text and carries the annotation over.

An augmented example carries exactly the gold it had. The reference keeps its own
tokens, each with its new text, and a replaced space that is not a single trailing
space becomes a whitespace token of its own (as spaCy's tokenizer makes one), so every
span in every ``doc.spans`` key, the entities (missing and outside kept apart), ``cats``
and ``user_data`` stay on the same tokens and text. Training then sees each gold span as
it did without the augmenter: learned, or skipped and counted for the same reason (a
span that does not align with the tokenizer's tokens stays misaligned, never widened).
An example for which that cannot hold, or one with token annotation (tags, parses,
lemmas ...), passes unchanged. Whitespace inside a span adds whitespace tokens to it, as
it would in messy input; an example in which that would make a learned span longer than
a global_pointer component's ``max_length`` also passes unchanged.
"""

import copy
import random
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from spacy.util import registry

from .gold import aligned_gold, new_counts

DEFAULT_VARIANTS = ("  ", "\n", "\n\n", " \n", "\t")
# Token annotation that inserted whitespace tokens would need values for: such examples
# pass unchanged.
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
    """The example with some spaces replaced by whitespace variants, its annotation
    carried over (see the module's docstring), or the example itself where nothing
    changed or the gold could not stay the same."""
    reference = example.reference
    if any(reference.has_annotation(attr) for attr in _TOKEN_ATTRS):
        return example
    text = reference.text
    pieces: List[str] = []
    for char in text:
        piece = char
        if char == " " and draw() < per_space:
            piece = variants[int(draw() * len(variants)) % len(variants)]
        pieces.append(piece)
    if "".join(pieces) == text:
        return example
    moved = _Moved(reference, pieces)
    if moved.doc.text != "".join(pieces):  # never seen: tokens not where their idx says
        return example
    moved.carry(reference)
    variant = Example(nlp.make_doc(moved.doc.text), moved.doc)
    return variant if _same_gold(example, variant, moved, _max_lengths(nlp)) else example


class _Moved:
    """The reference rebuilt on the new text: its tokens, each with its new text, and a
    whitespace token wherever a trailing space became more than one space."""

    def __init__(self, reference: Doc, pieces: List[str]) -> None:
        self.pieces = pieces
        # new_offset[c]: where character c of the old text starts in the new one.
        self.new_offset = [0]
        for piece in pieces:
            self.new_offset.append(self.new_offset[-1] + len(piece))
        words: List[str] = []
        spaces: List[bool] = []
        self.token_map: List[int] = []  # old token i -> new token
        inserted: List[int] = []  # old token after which each whitespace token was inserted
        for token in reference:
            self.token_map.append(len(words))
            words.append("".join(pieces[token.idx : token.idx + len(token)]))
            trailing = pieces[token.idx + len(token)] if token.whitespace_ else ""
            spaces.append(trailing.startswith(" "))
            rest = trailing[1:] if trailing.startswith(" ") else trailing
            if rest:  # as the tokenizer does: a single space trails, more is a token
                words.append(rest)
                spaces.append(False)
                inserted.append(token.i)
        self.token_map.append(len(words))
        self.doc = Doc(reference.vocab, words=words, spaces=spaces)
        self.inserted = inserted

    def token_span(self, span: Span) -> Tuple[int, int]:
        """A span's token bounds on the new doc: whitespace inserted inside it is part of
        it, whitespace after its last token is not."""
        start = self.token_map[span.start]
        end = self.token_map[span.end - 1] + 1 if span.end > span.start else start
        return start, end

    def char_bounds(self, start: int, end: int) -> Tuple[int, int]:
        """Old character bounds on the new text (a replaced space after the end stays out)."""
        new_start = self.new_offset[start]
        new_end = self.new_offset[end - 1] + len(self.pieces[end - 1]) if end > start else new_start
        return new_start, new_end

    def span(self, span: Span) -> Span:
        start, end = self.token_span(span)
        return Span(self.doc, start, end, label=span.label, kb_id=span.kb_id, span_id=span.id)

    def carry(self, reference: Doc) -> None:
        """Put the reference's annotation on the new doc."""
        doc, inserted = self.doc, self.inserted
        for key, group in reference.spans.items():
            doc.spans[key] = SpanGroup(
                doc, name=group.name, attrs=copy.deepcopy(group.attrs),
                spans=[self.span(span) for span in group],
            )
        if reference.has_annotation("ENT_IOB"):
            ents = [self.span(ent) for ent in reference.ents]
            outside = [self.token_map[t.i] for t in reference if t.ent_iob_ == "O"]
            inside = {i for ent in ents for i in range(ent.start, ent.end)}
            for i in inserted:
                # Between two annotated tokens and in no entity: outside; next to an
                # unannotated token: unannotated, as the tokens around it.
                new = self.token_map[i] + 1
                neighbours = [reference[j] for j in (i, i + 1) if j < len(reference)]
                if new not in inside and all(t.ent_iob_ for t in neighbours):
                    outside.append(new)
            doc.set_ents(ents, outside=[doc[i : i + 1] for i in outside], default="missing")
        doc.cats = dict(reference.cats)
        doc.user_data = self._user_data(reference.user_data)

    def _user_data(self, user_data: Dict[Any, Any]) -> Dict[Any, Any]:
        """Doc-level values as they are; token and span extension values (keyed by
        character offsets: ("._.", name, start, end)) moved with their text."""
        moved: Dict[Any, Any] = {}
        for key, value in user_data.items():
            if isinstance(key, tuple) and len(key) == 4 and key[0] == "._." and isinstance(key[2], int):
                start, end = key[2], key[3]
                if end is None:  # a token's: its first character
                    key = (*key[:2], self.new_offset[start], None)
                else:
                    key = (*key[:2], *self.char_bounds(start, end))
            moved[key] = copy.deepcopy(value)
        return moved


def _max_lengths(nlp: Language) -> Dict[str, int]:
    """The smallest max_length of the pipeline's global_pointer components, by spans key."""
    limits: Dict[str, int] = {}
    for name in nlp.component_names:
        if nlp.get_pipe_meta(name).factory != "global_pointer":
            continue
        pipe = nlp.get_pipe(name)
        limit, key = getattr(pipe, "max_length", None), getattr(pipe, "key", None)
        if isinstance(limit, int) and isinstance(key, str):
            limits[key] = min(limit, limits.get(key, limit))
    return limits


def _same_gold(old: Example, new: Example, moved: _Moved, limits: Dict[str, int]) -> bool:
    """Whether training learns from new what it learns from old, in every spans key: the
    same spans (moved to the new text) and the same skips, counted as gold.py counts them,
    and the same spans longer than a global_pointer component's max_length (whitespace
    inside a span adds tokens to it)."""
    for key in old.reference.spans:
        old_counts, new_counts_ = new_counts(), new_counts()
        old_learned = aligned_gold(old, key, old_counts)
        new_learned = aligned_gold(new, key, new_counts_)
        if old_counts != new_counts_:
            return False
        limit = limits.get(key)
        expected = sorted(
            (*moved.char_bounds(s.start_char, s.end_char), s.label_, limit is not None and len(s) > limit)
            for s in old_learned
        )
        found = sorted(
            (s.start_char, s.end_char, s.label_, limit is not None and len(s) > limit)
            for s in new_learned
        )
        if expected != found:
            return False
    return True
