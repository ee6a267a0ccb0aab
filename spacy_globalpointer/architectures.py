"""The registered architectures: tok2vec >> the GlobalPointer scoring head (model.py).

Each version is a thin wrapper over one builder; a registered signature never changes,
a new argument is a new version beside the old. Output: one array per doc of shape
(n_tokens, width, n_labels), where ``Y[i, d, a]`` is the score that tokens i..i+d form
an entity of label a. Entries with ``i + d >= n_tokens`` are padding (see
``band.span_mask``) and hold 0. The width is ``min(n_tokens, max_length)``, further
capped by ``score_budget`` for very long docs so that memory stays linear in the doc
length.
"""

from typing import Any, List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Config, Model, chain
from thinc.types import Floats2d, Floats3d

from .model import new_head

# The component's default model (pipeline.py): the efficient head on a CNN tok2vec of its own.
DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy-globalpointer.GlobalPointer.v2"
head_width = 64
rope = true
efficient = true
max_length = 32
score_budget = 20000000
mixed_precision = false

[model.tok2vec]
@architectures = "spacy.Tok2Vec.v2"

[model.tok2vec.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 96
rows = [5000, 1000, 2500, 1000]
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
include_static_vectors = false

[model.tok2vec.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = ${model.tok2vec.embed.width}
window_size = 1
maxout_pieces = 3
depth = 4
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]


@registry.architectures("spacy-globalpointer.GlobalPointer.v1")
def build_global_pointer(
    tok2vec: Model[List[Doc], List[Floats2d]],
    nO: Optional[int] = None,
    head_width: int = 64,
    rope: bool = True,
    efficient: bool = False,
    max_length: Optional[int] = None,
    score_budget: int = 20_000_000,
) -> Model[List[Doc], List[Floats3d]]:
    """Build a GlobalPointer span scorer on top of any tok2vec.

    tok2vec: the token encoder (Tok2Vec, Tok2VecListener, TransformerListener ...).
    nO: number of labels; set by the component from its labels.
    head_width: size D of each query/key vector (even, for RoPE pairs).
    rope: apply rotary position encoding, so scores see the relative offset j - i.
    efficient: Efficient GlobalPointer (shared q/k, per-label start/end biases).
    max_length: longest span scored, in tokens (None: no bound). Cost is
        O(n * max_length * labels) per doc instead of O(n^2 * labels).
    score_budget: most scores computed for one doc (and one padded chunk of
        docs). A doc whose n * width * labels exceeds it is scored on a narrower
        band, so memory stays bounded; spans up to that width stay exact.
    """
    return _build(
        tok2vec, nO, head_width=head_width, rope=rope, efficient=efficient,
        max_length=max_length, score_budget=score_budget, mixed_precision=False,
    )


@registry.architectures("spacy-globalpointer.GlobalPointer.v2")
def build_global_pointer_v2(
    tok2vec: Model[List[Doc], List[Floats2d]],
    nO: Optional[int] = None,
    head_width: int = 64,
    rope: bool = True,
    efficient: bool = True,
    max_length: Optional[int] = None,
    score_budget: int = 20_000_000,
    mixed_precision: bool = False,
) -> Model[List[Doc], List[Floats3d]]:
    """GlobalPointer.v1's scorer, efficient by default, with optional mixed precision.

    The arguments of v1 (see ``build_global_pointer``), with efficient = True by
    default: the efficient head is as accurate in the benchmark and costs a fraction
    of the plain one. mixed_precision: run the torch head under autocast (float16 on a
    CUDA device) with a gradient scaler for its backward pass; on CPU it does nothing.
    """
    return _build(
        tok2vec, nO, head_width=head_width, rope=rope, efficient=efficient,
        max_length=max_length, score_budget=score_budget, mixed_precision=bool(mixed_precision),
    )


@registry.architectures("spacy-globalpointer.GlobalPointer.v3")
def build_global_pointer_v3(
    tok2vec: Model[List[Doc], List[Floats2d]],
    nO: Optional[int] = None,
    head_width: int = 64,
    rope: bool = True,
    efficient: bool = True,
    max_length: Optional[int] = None,
    score_budget: int = 20_000_000,
    mixed_precision: bool = False,
    width_bias: bool = False,
) -> Model[List[Doc], List[Floats3d]]:
    """GlobalPointer.v2 with an optional learned bias per label and span width.

    The arguments of v2 (see ``build_global_pointer_v2``). width_bias: add a learned
    score per label and span width (1..16 tokens one each, longer widths in shared
    buckets up to 128+) to every span's score.
    """
    return _build(
        tok2vec, nO, head_width=head_width, rope=rope, efficient=efficient,
        max_length=max_length, score_budget=score_budget, mixed_precision=bool(mixed_precision),
        width_bias=bool(width_bias),
    )


@registry.architectures("spacy-globalpointer.GlobalPointer.v4")
def build_global_pointer_v4(
    tok2vec: Model[List[Doc], List[Floats2d]],
    nO: Optional[int] = None,
    head_width: int = 64,
    rope: bool = True,
    efficient: bool = True,
    max_length: Optional[int] = None,
    score_budget: int = 20_000_000,
    mixed_precision: bool = False,
    width_bias: bool = False,
    interior: bool = True,
    context_channels: int = 16,
    context_layers: int = 2,
) -> Model[List[Doc], List[Floats3d]]:
    """GlobalPointer.v3 with a span's interior and its neighbouring spans in the score.

    The arguments of v3 (see ``build_global_pointer_v3``), and:
    interior: add the mean over the span's tokens of a per-label projection of the
        token vectors (prefix sums: O(band x labels)); starts at 0.
    context_channels: C, the width of per-span pair features (a RoPE-style product of
        start and end projections, plus the span's per-label scores) and of
        context_layers 3x3 convolution blocks over neighbouring spans in the (start,
        end) plane, read out per label and mixed in as s + gamma * s_ctx with gamma
        starting at 0. 0 switches the context off. Even. Cost and memory
        O(band x C^2) and O(band x C): a doc's band is sized for labels + C x
        (context_layers + 1) values a cell within score_budget.
    context_layers: how many convolution blocks (each widens the neighbourhood a
        span sees by one token at either boundary).
    With interior = false and context_channels = 0 it scores as v3.
    """
    if not isinstance(context_channels, int) or context_channels < 0 or context_channels % 2:
        raise ValueError(
            f"context_channels must be an even integer >= 0 (0: off), got {context_channels!r}"
        )
    if not isinstance(context_layers, int) or context_layers < 1:
        raise ValueError(f"context_layers must be an integer >= 1, got {context_layers!r}")
    return _build(
        tok2vec, nO, head_width=head_width, rope=rope, efficient=efficient,
        max_length=max_length, score_budget=score_budget, mixed_precision=bool(mixed_precision),
        width_bias=bool(width_bias), interior=bool(interior), context_channels=context_channels,
        context_layers=context_layers,
    )


def _build(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int], **attrs: Any
) -> Model[List[Doc], List[Floats3d]]:
    """The model every version builds: tok2vec >> the head, whose attrs are the
    architecture's settings (the torch module reads them in ``model.build_head_layers``).
    An attr a version does not have is left out, so that its saved weights and configs
    stay as they were."""
    head_width, max_length = attrs["head_width"], attrs["max_length"]
    if not isinstance(head_width, int) or head_width < 2 or head_width % 2:
        raise ValueError(f"head_width must be an even integer >= 2, got {head_width!r}")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"max_length must be a positive integer or null, got {max_length!r}")
    score_budget = attrs["score_budget"]
    if not isinstance(score_budget, int) or score_budget < 1:
        raise ValueError(f"score_budget must be a positive integer, got {score_budget!r}")
    head = new_head(nO, attrs)
    model: Model[List[Doc], List[Floats3d]] = chain(tok2vec, head)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("head", head)
    return model
