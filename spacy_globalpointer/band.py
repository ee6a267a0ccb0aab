"""Band arithmetic shared by the model, the loss and the decoder; the chunking of a
batch within the score budget.

A doc of n tokens is scored on a *band*: ``scores[i, d, a]`` is the score that tokens
i..i+d form an entity of label a, for offsets ``0 <= d < width``. Cells with
``i + d >= n`` are padding. Cells whose first or last token may not bound an entity
(whitespace tokens) are excluded too, in training and decoding alike.
"""

import warnings
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import IS_SPACE
from spacy.tokens import Doc
from thinc.api import Ops

# valid_cells masks of at most this many cells are cached (sentences, not long docs).
CACHED_CELLS = 16384


def span_width(n_tokens: int, n_labels: int, max_length: Optional[int], score_budget: int) -> int:
    """The band width scored for a doc of n_tokens: spans of up to this many tokens."""
    width = n_tokens if max_length is None else min(n_tokens, max_length)
    if n_tokens and n_tokens * width * max(n_labels, 1) > score_budget:
        width = max(1, score_budget // (n_tokens * max(n_labels, 1)))
    return width


def values_per_cell(attrs: Dict[str, Any], n_labels: int) -> int:
    """Values a band cell holds, what score_budget counts: the labels' scores and, with span
    context (GlobalPointer.v4), its features and each convolution block's activations, so
    that a doc with span context gets a band within the same memory as a plain head's."""
    channels = attrs.get("context_channels", 0)
    return n_labels + (channels * (attrs.get("context_layers", 2) + 1) if channels else 0)


def span_mask(ops: Ops, n_tokens: int, width: int) -> Any:
    """Boolean (n_tokens, width): True where i + d < n_tokens, i.e. a real span."""
    starts = ops.xp.arange(n_tokens)[:, None]
    return (starts + ops.xp.arange(width)[None, :]) < n_tokens


def boundary_tokens(doc: Doc) -> numpy.ndarray:
    """Boolean (n_tokens,): True for tokens that may start or end an entity.

    spaCy makes a token of extra whitespace (double spaces, newlines); like spaCy's
    ``ner``, an entity never starts or ends on one.
    """
    if not len(doc):
        return numpy.zeros((0,), dtype=bool)
    return doc.to_array([IS_SPACE]).reshape(-1) == 0


def valid_cells(ops: Ops, width: int, boundary: Any) -> Any:
    """Boolean (n_tokens, width): real spans whose first and last tokens may bound one.

    boundary: (n_tokens,) booleans from ``boundary_tokens``. For a sentence-length doc
    without whitespace tokens the result is a cached, read-only array shared with every
    such doc of its length.
    """
    xp = ops.xp
    boundary = xp.asarray(boundary, dtype=bool)
    n_tokens = int(boundary.shape[0])
    if xp is numpy and n_tokens * width <= CACHED_CELLS and boundary.all():
        return _real_cells(n_tokens, width)
    ends = xp.arange(n_tokens)[:, None] + xp.arange(width)[None, :]
    real = ends < n_tokens
    end_ok = xp.concatenate([boundary, xp.zeros((max(width, 1),), dtype=bool)])[ends]
    return real & boundary[:, None] & end_ok


@lru_cache(maxsize=256)
def _real_cells(n_tokens: int, width: int) -> numpy.ndarray:
    """valid_cells of a doc without whitespace tokens: span_mask, shared (read-only) by every
    doc of the same length, in decoding and in the loss."""
    cells = numpy.arange(n_tokens)[:, None] + numpy.arange(width)[None, :] < n_tokens
    cells.flags.writeable = False
    return cells


# Scores (cells x labels) up to which docs of any lengths share one padded chunk: a torch
# call costs about as much as that many scores (measured: a training batch of 16
# sentences in one call instead of three takes 15-20% less head time).
SMALL_CHUNK = 1 << 18


# A chunk holds docs at least this share of its longest doc's length. Sentence batches
# sorted by length and cut at half the length padded GENIA's rows by 45% and its band
# by 60%; at three quarters 23% and 31%, for half as many calls again (29 against 20 on
# six batches of 256), and the head's forward took 32% less time (trained BiLSTM model,
# GENIA test, bench notes).
CHUNK_LENGTH_SHARE = 0.75


def chunk_docs(
    lengths: List[int], widths: List[int], n_labels: int, budget: int
) -> List[List[int]]:
    """Group non-empty docs, longest first, into padded chunks.

    A chunk stays within budget, and holds docs at least CHUNK_LENGTH_SHARE as long as
    its longest, so that padding adds at most a third to the work (sentence batches
    would otherwise pad every doc to the batch's longest), unless the chunk is small
    (SMALL_CHUNK scores): there a call to the head costs more than the padding.
    """
    order = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: -lengths[i])
    chunks: List[List[int]] = []
    current: List[int] = []
    chunk_width = 0
    for i in order:
        width = max(chunk_width, widths[i])
        if current:
            padded = (len(current) + 1) * lengths[current[0]] * width * n_labels
            too_short = lengths[i] < CHUNK_LENGTH_SHARE * lengths[current[0]]
            if padded > budget or (too_short and padded > SMALL_CHUNK):
                chunks.append(current)
                current, width = [], widths[i]
        current.append(i)
        chunk_width = width
    if current:
        chunks.append(current)
    return chunks


class BandScores(list):
    """Per-doc banded scores (views of padded chunks), with the chunks they are views of.

    A list like any other; a decoder may threshold each chunk in one pass instead of one
    pass per doc. chunks: (chunk, doc indices), chunk[row] padding doc indices[row]'s
    scores. ``intact`` says whether every item is still the view it was built with.
    """

    def __init__(self, items: Sequence[Any], chunks: List[Tuple[Any, List[int]]]) -> None:
        super().__init__(items)
        self.chunks = chunks
        self._views = tuple(items)

    def intact(self) -> bool:
        return len(self) == len(self._views) and all(a is b for a, b in zip(self, self._views))


def warn_if_capped(lengths: List[int], widths: List[int], max_length: Optional[int]) -> None:
    """Warn when score_budget narrowed some doc's band below max_length."""
    capped = [
        (n, w)
        for n, w in zip(lengths, widths)
        if w < (n if max_length is None else min(n, max_length))
    ]
    if capped:
        n, w = max(capped)
        warnings.warn(
            f"GlobalPointer: {len(capped)} doc(s) exceed score_budget; the longest "
            f"({n} tokens) is scored for spans of up to {w} tokens only. Set a smaller "
            "max_length or a larger score_budget.",
            stacklevel=3,
        )
