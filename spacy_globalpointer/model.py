"""The registered Thinc architecture: tok2vec >> GlobalPointer scoring head.

Output: one array per doc of shape (n_tokens, width, n_labels), where
``Y[i, d, a]`` is the score that tokens i..i+d form an entity of label a. Entries
with ``i + d >= n_tokens`` are padding (see ``band.span_mask``) and hold 0. The width is
``min(n_tokens, max_length)``, further capped by ``score_budget`` for very long
docs so that memory stays linear in the doc length.
"""

from typing import Any, Callable, List, Optional, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    ArgsKwargs,
    Model,
    PyTorchGradScaler,
    PyTorchWrapper_v2,
    chain,
    get_torch_default_device,
    torch2xp,
    xp2torch,
)
from thinc.types import Floats2d, Floats3d

from .band import BandScores, chunk_docs, span_width, warn_if_capped

HEAD_NAME = "global_pointer_head"


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
    return _build(tok2vec, nO, head_width, rope, efficient, max_length, score_budget, False)


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
        tok2vec, nO, head_width, rope, efficient, max_length, score_budget, mixed_precision
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
        tok2vec,
        nO,
        head_width,
        rope,
        efficient,
        max_length,
        score_budget,
        mixed_precision,
        width_bias=width_bias,
    )


def _build(
    tok2vec: Model[List[Doc], List[Floats2d]],
    nO: Optional[int],
    head_width: int,
    rope: bool,
    efficient: bool,
    max_length: Optional[int],
    score_budget: int,
    mixed_precision: bool,
    width_bias: Optional[bool] = None,
) -> Model[List[Doc], List[Floats3d]]:
    """width_bias None: an architecture without the option (v1, v2); the attr is left out,
    so that their saved weights and configs stay as they were."""
    if not isinstance(head_width, int) or head_width < 2 or head_width % 2:
        raise ValueError(f"head_width must be an even integer >= 2, got {head_width!r}")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"max_length must be a positive integer or null, got {max_length!r}")
    if not isinstance(score_budget, int) or score_budget < 1:
        raise ValueError(f"score_budget must be a positive integer, got {score_budget!r}")
    attrs = {
        "head_width": head_width,
        "rope": rope,
        "efficient": efficient,
        "max_length": max_length,
        "score_budget": score_budget,
        "mixed_precision": bool(mixed_precision),
    }
    if width_bias is not None:
        attrs["width_bias"] = bool(width_bias)
    head = Model(
        HEAD_NAME, _head_forward, init=_head_init, dims={"nI": None, "nO": nO}, attrs=attrs
    )
    model: Model[List[Doc], List[Floats3d]] = chain(tok2vec, head)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("head", head)
    return model


def build_head_layers(head: Model) -> None:
    """Create the torch module once nI and nO are known (also before deserialising)."""
    from .torch_head import GlobalPointerHead  # torch is only needed once a model is built

    for dim in ("nI", "nO"):
        if not head.has_dim(dim):
            raise ValueError(
                f"Cannot build the GlobalPointer head: dimension {dim} is unset. "
                "Initialize the component with labels (nO) and sample docs (nI)."
            )
    module = GlobalPointerHead(
        head.get_dim("nI"),
        head.get_dim("nO"),
        head.attrs["head_width"],
        rope=head.attrs["rope"],
        efficient=head.attrs["efficient"],
        width_bias=head.attrs.get("width_bias", False),
    )
    # thinc autocasts to CUDA only, and its gradient scaler refuses CPU tensors: mixed
    # precision is switched on where the head runs on a CUDA device, and is a no-op elsewhere.
    device = get_torch_default_device()
    mixed = bool(head.attrs.get("mixed_precision", False)) and device.type == "cuda"
    wrapper = PyTorchWrapper_v2(
        module,
        convert_inputs=_convert_inputs,
        convert_outputs=_convert_outputs,
        mixed_precision=mixed,
        grad_scaler=PyTorchGradScaler(enabled=mixed),
        device=device,
    )
    head._layers[:] = [wrapper]


def initialize_model(model: Model, n_labels: int, sample_docs: List[Doc]) -> None:
    """Size the head for n_labels and infer its input width from sample docs (or from
    the tok2vec's width when there are none), then initialize the model."""
    head = model.get_ref("head")
    head.set_dim("nO", n_labels, force=True)
    tok2vec = model.get_ref("tok2vec")
    if sample_docs:
        model.initialize(X=sample_docs)
    elif tok2vec.has_dim("nO"):
        head.set_dim("nI", tok2vec.get_dim("nO"), force=True)
        model.initialize()
    else:
        raise ValueError("its input width cannot be inferred: get_examples gave no examples.")


def _head_init(model: Model, X: Optional[List[Floats2d]] = None, Y: Any = None) -> None:
    if X is not None and len(X):
        model.set_dim("nI", int(X[0].shape[1]), force=True)
    build_head_layers(model)


def _head_forward(
    model: Model, X: List[Floats2d], is_train: bool
) -> Tuple[List[Floats3d], Callable[[List[Floats3d]], List[Floats2d]]]:
    if not model.layers:
        raise ValueError(
            "The GlobalPointer head has no weights yet: call nlp.initialize() "
            "(or load a trained pipeline) before using it."
        )
    ops = model.ops
    wrapper = model.layers[0]
    n_labels = model.get_dim("nO")
    budget = model.attrs["score_budget"]
    lengths = [int(x.shape[0]) for x in X]
    widths = [span_width(n, n_labels, model.attrs["max_length"], budget) for n in lengths]
    warn_if_capped(lengths, widths, model.attrs["max_length"])
    # Empty docs get a (0, 0, n_labels) array here; the others a view of their chunk's scores.
    Y: List[Any] = [None if n else ops.alloc3f(0, 0, n_labels) for n in lengths]
    chunk_backprops = []
    predicted_chunks = []
    for chunk in chunk_docs(lengths, widths, n_labels, budget):
        padded = ops.pad([X[i] for i in chunk])
        width = max(widths[i] for i in chunk)
        # The head zeroes padding cells (i + d >= n), in the output and so in its gradient,
        # so that outputs do not depend on batching.
        chunk_lengths = [lengths[i] for i in chunk]
        if is_train:
            Y_chunk, backprop_chunk = wrapper((padded, width, chunk_lengths), is_train)
            chunk_backprops.append((chunk, Y_chunk.shape, backprop_chunk))
        else:
            Y_chunk = _predict_chunk(model, padded, width, chunk_lengths)
            predicted_chunks.append((Y_chunk, chunk))
        for row, i in enumerate(chunk):
            Y[i] = Y_chunk[row, : lengths[i], : widths[i]]

    def backprop(dY: List[Floats3d]) -> List[Floats2d]:
        dX: List[Any] = [None if n else ops.alloc2f(*x.shape) for n, x in zip(lengths, X)]
        for chunk, shape, backprop_chunk in chunk_backprops:
            dY_chunk = ops.alloc(shape, dtype="f")
            for row, i in enumerate(chunk):
                dY_chunk[row, : lengths[i], : widths[i]] = dY[i]
            dX_chunk = backprop_chunk(dY_chunk)
            for row, i in enumerate(chunk):
                dX[i] = dX_chunk[row, : lengths[i]]
        return dX

    if not is_train:
        return BandScores(Y, predicted_chunks), backprop
    return Y, backprop


def _predict_chunk(model: Model, padded: Floats3d, width: int, lengths: List[int]) -> Floats3d:
    """The wrapper's prediction, calling the torch module itself: thinc's shim switches the
    module to eval mode and back on every call, which the head (no dropout, no batch
    norm) does not need, and which costs as much as a sentence's scores at batch size 1."""
    import torch

    module = model.layers[0].shims[0]._model
    device = module.qk.weight.device
    Xt = xp2torch(padded, device=device)
    lengths_t = torch.tensor(lengths, device=device)
    with torch.no_grad():
        if model.attrs.get("mixed_precision") and device.type == "cuda":
            with torch.autocast("cuda"):
                Yt = module(Xt, width, lengths=lengths_t)
        else:
            Yt = module(Xt, width, lengths=lengths_t)
    return torch2xp(Yt.float())


def _convert_inputs(
    model: Model, X_width_lengths: Tuple[Floats3d, int, List[int]], is_train: bool
) -> Tuple[ArgsKwargs, Callable[[ArgsKwargs], Floats3d]]:
    import torch

    padded, width, lengths = X_width_lengths
    device = model.shims[0].device
    Xt = xp2torch(padded, requires_grad=is_train, device=device)
    lengths_t = torch.tensor(lengths, device=device)

    def reverse(dXt: ArgsKwargs) -> Floats3d:
        return torch2xp(dXt.args[0])

    return ArgsKwargs(args=(Xt, width), kwargs={"lengths": lengths_t}), reverse


def _convert_outputs(
    model: Model, X_Yt: Tuple[Any, Any], is_train: bool
) -> Tuple[Floats3d, Callable[[Floats3d], ArgsKwargs]]:
    _, Yt = X_Yt
    device = model.shims[0].device
    Y = torch2xp(Yt.float())

    def reverse(dY: Floats3d) -> ArgsKwargs:
        dYt = xp2torch(dY, device=device)
        return ArgsKwargs(args=((Yt,),), kwargs={"grad_tensors": (dYt,)})

    return Y, reverse


# Head attrs that decide the torch module's layout or function, and those that only
# decide which spans are scored.
STRUCTURAL_ATTRS = ("head_width", "rope", "efficient", "width_bias")
BAND_ATTRS = ("max_length", "score_budget")
# Attrs the config decides whatever the saved weights say (how the head runs).
CONFIG_ATTRS = (*BAND_ATTRS, "mixed_precision")


def load_weights(
    model: Model,
    data: bytes,
    labels: List[str],
    input_width: Optional[int],
    name: str,
    source: str,
) -> None:
    """Read saved weights into a GlobalPointer model, building its head first.

    The torch module is built lazily from the input width, so it must exist before
    weights are read into it. Thinc's from_bytes overwrites attrs with the saved ones:
    those that shape the head must agree with the config's, and the config's band
    settings (max_length, score_budget) and mixed_precision stay in force. Raises a ValueError naming the
    source for weights that do not fit.
    """
    head = model.get_ref("head")
    # A stale label list must not survive loading weights saved without one.
    head.attrs.pop("labels", None)
    configured = dict(head.attrs)
    if not head.layers:
        if input_width is None:
            raise ValueError(
                f"Cannot load '{name}' weights from {source}: the saved cfg has no input_width, so "
                "the component was never initialized before saving."
            )
        head.set_dim("nO", len(labels), force=True)
        head.set_dim("nI", int(input_width), force=True)
        build_head_layers(head)
    try:
        model.from_bytes(data)
    except Exception as err:
        raise ValueError(
            f"Cannot load '{name}' weights from {source}: {err}. The file may be truncated or "
            f"corrupted, or saved with other dimensions or labels (cfg labels: {labels}, "
            f"input_width: {input_width})."
        ) from err
    for attr in STRUCTURAL_ATTRS:
        if attr in configured and head.attrs.get(attr) != configured[attr]:
            raise ValueError(
                f"Cannot load '{name}' weights from {source}: they were saved with "
                f"{attr}={head.attrs.get(attr)!r}, but the config builds the head with "
                f"{attr}={configured[attr]!r}."
            )
    for attr in CONFIG_ATTRS:
        if attr in configured:
            head.attrs[attr] = configured[attr]
    saved_labels = head.attrs.get("labels")
    if saved_labels is not None and list(saved_labels) != list(labels):
        raise ValueError(
            f"Cannot load '{name}' weights from {source}: they were trained for labels "
            f"{list(saved_labels)}, but the component's cfg lists {list(labels)}. The cfg "
            "and model files do not belong together."
        )
    head.attrs["labels"] = list(labels)
