"""The GlobalPointer head as a Thinc layer: the torch module (torch_head.py) built lazily
from its attrs and wrapped, banded scores a padded chunk of docs at a time, weights
restored before a saved head is read, and the head's own learning rate.

The architectures (architectures.py) chain a tok2vec to this head.
"""

from typing import Any, Callable, Dict, List, Optional, Set, Tuple, cast

from spacy.tokens import Doc
from thinc.api import (
    ArgsKwargs,
    Model,
    Optimizer,
    PyTorchGradScaler,
    PyTorchWrapper_v2,
    get_torch_default_device,
    torch2xp,
    xp2torch,
)
from thinc.types import Floats2d, Floats3d

from .band import BandScores, chunk_docs, span_width, values_per_cell, warn_if_capped

HEAD_NAME = "global_pointer_head"


def new_head(nO: Optional[int], attrs: Dict[str, Any]) -> Model[List[Floats2d], List[Floats3d]]:
    """The head layer, without weights until its input width is known (initialize, or
    build_head_layers before loading saved weights)."""
    return Model(HEAD_NAME, _head_forward, init=_head_init, dims={"nI": None, "nO": nO}, attrs=attrs)


def _torch_module(head: Model) -> Any:
    """The torch module for the head's dims and attrs: the one place that reads them."""
    from .torch_head import GlobalPointerHead  # torch is only needed once a model is built

    attrs = head.attrs
    return GlobalPointerHead(
        head.get_dim("nI"),
        head.get_dim("nO"),
        attrs["head_width"],
        rope=attrs["rope"],
        efficient=attrs["efficient"],
        width_bias=attrs.get("width_bias", False),
        interior=attrs.get("interior", False),
        context_channels=attrs.get("context_channels", 0),
        context_layers=attrs.get("context_layers", 2),
    )


def build_head_layers(head: Model) -> None:
    """Create the torch module once nI and nO are known (also before deserialising)."""
    for dim in ("nI", "nO"):
        if not head.has_dim(dim):
            raise ValueError(
                f"Cannot build the GlobalPointer head: dimension {dim} is unset. "
                "Initialize the component with labels (nO) and sample docs (nI)."
            )
    module = _torch_module(head)
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
    # Thinc's documented way to give a layer its children: edit the layers list in place.
    head.layers[:] = [wrapper]


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
    cell_values = values_per_cell(model.attrs, n_labels)
    lengths = [int(x.shape[0]) for x in X]
    widths = [span_width(n, cell_values, model.attrs["max_length"], budget) for n in lengths]
    warn_if_capped(lengths, widths, model.attrs["max_length"])
    # Empty docs get a (0, 0, n_labels) array here; the others a view of their chunk's scores.
    Y: List[Any] = [None if n else ops.alloc3f(0, 0, n_labels) for n in lengths]
    chunk_backprops = []
    predicted_chunks = []
    for chunk in chunk_docs(lengths, widths, cell_values, budget):
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


def wrapped_module(wrapper: Model) -> Any:
    """The torch module inside thinc's PyTorchWrapper: thinc's shim keeps it in a private
    attribute (``_model``); this is the one place that reads it (tests/test_model.py checks
    it is the module that the shim trains and saves)."""
    return wrapper.shims[0]._model


def _predict_chunk(model: Model, padded: Floats3d, width: int, lengths: List[int]) -> Floats3d:
    """The wrapper's prediction, calling the torch module itself: thinc's shim switches the
    module to eval mode and back on every call, which the head (no dropout, no batch
    norm) does not need, and which costs as much as a sentence's scores at batch size 1."""
    import torch

    module = wrapped_module(model.layers[0])
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
STRUCTURAL_ATTRS = (
    "head_width", "rope", "efficient", "width_bias", "interior", "context_channels", "context_layers"
)
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


class _HeadLearnRate:
    """An optimizer whose steps for the head's parameters take the learning rate times
    scale (thinc's own lr_scale argument); keys are (node or shim id, parameter name), as
    thinc's Model.finish_update and PyTorchShim.finish_update give them."""

    def __init__(self, optimizer: Optimizer, head_keys: Set[Tuple[int, str]], scale: float) -> None:
        self.optimizer, self.head_keys, self.scale = optimizer, head_keys, scale

    def __call__(
        self, key: Tuple[int, str], weights: Any, gradient: Any, *, lr_scale: float = 1.0
    ) -> Tuple[Any, Any]:
        if key in self.head_keys:
            lr_scale *= self.scale
        return self.optimizer(key, weights, gradient, lr_scale=lr_scale)


def finish_update(model: Model, optimizer: Optimizer, head_learn_rate_scale: float) -> None:
    """model.finish_update(optimizer), with the head's weights stepped at the learning
    rate times head_learn_rate_scale (a fresh head on a pretrained transformer may need a
    larger rate than its fine-tuning one; one optimizer has one rate for both). A
    tok2vec shared through a listener steps in its own component, at the optimizer's rate.
    tests/test_training.py checks the steps against plain SGD's."""
    if head_learn_rate_scale == 1:
        model.finish_update(optimizer)
        return
    head = model.get_ref("head")
    # Exact keys: node and shim ids come from separate counters, so an id alone is ambiguous.
    keys = {(node.id, name) for node in head.walk() for name in node.param_names}
    for node in head.walk():
        for shim in node.shims:
            keys.update((shim.id, name) for name, _ in wrapped_module(node).named_parameters())
    model.finish_update(cast(Optimizer, _HeadLearnRate(optimizer, keys, float(head_learn_rate_scale))))
