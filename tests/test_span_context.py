"""Interior evidence and span context (GlobalPointer.v4) against a naive implementation
over the full n x n span matrix; gradients; batching, chunking and row blocks; the v4
architecture (round trip, v3 equivalence, score budget)."""

import copy
import math

import numpy
import pytest
import spacy
import torch
from gp_testing import NESTED_TRAIN, train_pipeline
from test_torch_head import naive_scores
from thinc.api import noop

from spacy_globalpointer import model as model_module
from spacy_globalpointer import torch_head
from spacy_globalpointer.architectures import build_global_pointer_v4
from spacy_globalpointer.band import values_per_cell
from spacy_globalpointer.model import build_head_layers, wrapped_module
from spacy_globalpointer.torch_head import GlobalPointerHead

V4 = "spacy-globalpointer.GlobalPointer.v4"


def _gelu(x: numpy.ndarray) -> numpy.ndarray:
    return 0.5 * x * (1.0 + numpy.vectorize(math.erf)(x / math.sqrt(2.0)))


def naive_v4(module: GlobalPointerHead, H: numpy.ndarray, width: int) -> numpy.ndarray:
    """s[a, i, j] for the spans in the band (i <= j < n, j - i < width), 0 elsewhere, by
    loops over the full n x n matrix: the plain score (test_torch_head.naive_scores), the
    interior mean, then the context written straight from its definition."""
    n = H.shape[0]
    plain = numpy.nan_to_num(naive_scores(module, H))  # (A, n, n), nan below the diagonal
    n_labels = plain.shape[0]
    band = numpy.array([[i <= j and j - i < width for j in range(n)] for i in range(n)])
    s = numpy.where(band, plain, 0.0)
    if module.interior is not None:
        W = module.interior.weight.detach().double().numpy()
        b = module.interior.bias.detach().double().numpy()
        u = H @ W.T + b  # (n, A)
        for i in range(n):
            for j in range(i, n):
                if band[i, j]:
                    s[:, i, j] += u[i : j + 1].mean(axis=0)
    ctx = module.context
    if ctx is None:
        return s
    C = ctx.channels
    P = H @ ctx.pair.weight.detach().double().numpy().T + ctx.pair.bias.detach().double().numpy()
    z = P[:, : C // 2] + 1j * P[:, C // 2 : C]
    w = P[:, C : 3 * C // 2] + 1j * P[:, 3 * C // 2 :]
    theta = 10000.0 ** (-numpy.arange(0, C, 2) / C)
    # RoPE: start turned by e^{i i theta}, end by e^{i j theta}, product with the conjugate
    x = numpy.zeros((C + n_labels, n, n))
    for i in range(n):
        for j in range(n):
            if band[i, j]:
                f = (z[i] * numpy.exp(1j * i * theta)) * numpy.conj(w[j] * numpy.exp(1j * j * theta))
                x[:, i, j] = numpy.concatenate([f.real, f.imag, s[:, i, j]])
    h = None
    for layer, conv in enumerate(ctx.convs):
        K = conv.weight.detach().double().numpy()  # (out, in, 3, 5)
        inp = x if layer == 0 else _gelu(h)
        out = numpy.zeros((K.shape[0], n, n))
        for i in range(n):
            for j in range(n):
                if not band[i, j]:
                    continue  # zero outside the band after every layer
                total = conv.bias.detach().double().numpy().copy()
                for di in (-1, 0, 1):
                    for dj in (-1, 0, 1):
                        p, q = i + di, j + dj
                        if 0 <= p < n and 0 <= q < n and band[p, q]:
                            # the (start, end) neighbour (p, q) is band cell (p, q - p):
                            # offset dd = dj - di from cell (i, j - i)
                            total += K[:, :, di + 1, dj - di + 2] @ inp[:, p, q]
                out[:, i, j] = total
        h = out if layer == 0 else h + out
    R = ctx.readout.weight.detach().double().numpy()
    rb = ctx.readout.bias.detach().double().numpy()
    gamma = ctx.gamma.detach().double().numpy()
    for i in range(n):
        for j in range(n):
            if band[i, j]:
                s[:, i, j] += gamma * (R @ _gelu(h[:, i, j]) + rb)
    return s


def _module(interior=True, channels=4, layers=2, n_in=7, n_labels=3, efficient=True, rope=True):
    torch.manual_seed(0)
    module = GlobalPointerHead(
        n_in, n_labels, 8, rope=rope, efficient=efficient, interior=interior,
        context_channels=channels, context_layers=layers,
    )
    with torch.no_grad():  # both start at 0 in training: make them count here
        if module.interior is not None:
            module.interior.weight.normal_()
            module.interior.bias.normal_()
        if module.context is not None:
            module.context.gamma.normal_()
    return module


def _band(s: numpy.ndarray, width: int) -> numpy.ndarray:
    """(A, n, n) -> (n, width, A): s[a, i, i + d], 0 past the end."""
    n_labels, n, _ = s.shape
    out = numpy.zeros((n, width, n_labels))
    for i in range(n):
        for d in range(width):
            if i + d < n:
                out[i, d] = s[:, i, i + d]
    return out


@pytest.mark.parametrize(
    "interior,channels,layers", [(True, 0, 2), (False, 4, 1), (True, 4, 2), (False, 2, 3)]
)
@pytest.mark.parametrize("width", [1, 3, None])
@pytest.mark.parametrize("efficient", [False, True])
def test_scores_equal_the_naive_full_matrix_inside_the_band(interior, channels, layers, width, efficient):
    module = _module(interior, channels, layers, efficient=efficient)
    n = 8
    H = numpy.random.default_rng(1).normal(size=(n, 7))
    w = n if width is None else width
    expected = _band(naive_v4(module, H, w), w)
    X = torch.tensor(H[None], dtype=torch.float32)
    with torch.no_grad():
        unmasked = module(X, w)[0].numpy()
        masked = module(X, w, lengths=torch.tensor([n]))[0].numpy()
    real = numpy.arange(n)[:, None] + numpy.arange(w)[None, :] < n
    numpy.testing.assert_allclose(unmasked[real], expected[real], rtol=1e-4, atol=1e-4)
    numpy.testing.assert_allclose(masked, expected, rtol=1e-4, atol=1e-4)
    assert not masked[~real].any()


def test_gradients_match_finite_differences_in_float64():
    # the plain head's RoPE turns in complex64 (float32) whatever the input: off here, so
    # that the whole module runs in float64 (the pair features' turns run in its dtype)
    module = _module(True, 4, 2, n_in=5, n_labels=2, rope=False).double()
    names = [name for name, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in module.named_parameters()]
    lengths = torch.tensor([6, 3])
    X = torch.randn(2, 6, 5, dtype=torch.float64, requires_grad=True)

    def scores(X, *values):
        return torch.func.functional_call(
            module, dict(zip(names, values)), (X, 4), {"lengths": lengths}
        )

    assert torch.autograd.gradcheck(scores, (X, *params), eps=1e-6, atol=1e-5, fast_mode=True)


def _v4_head(max_length=None, channels=4, interior=True, n_in=6, n_labels=2, budget=20_000_000):
    model = build_global_pointer_v4(
        noop(), nO=n_labels, head_width=8, max_length=max_length, score_budget=budget,
        interior=interior, context_channels=channels,
    )
    head = model.get_ref("head")
    head.set_dim("nI", n_in)
    build_head_layers(head)
    module = wrapped_module(head.layers[0])
    with torch.no_grad():
        if module.interior is not None:
            module.interior.weight.normal_()
        if module.context is not None:
            module.context.gamma.normal_()
    return head


@pytest.mark.parametrize("max_length", [None, 3])
def test_a_doc_scores_the_same_alone_in_a_padded_batch_and_chunked(max_length, monkeypatch):
    torch.manual_seed(0)
    head = _v4_head(max_length)
    rng = numpy.random.default_rng(2)
    X = [rng.normal(size=(n, 6)).astype("f") for n in (9, 4, 12, 1)]
    alone = [head.predict([x])[0] for x in X]
    batched = head.predict(X)
    trained, _ = head.begin_update(X)
    # one chunk per doc
    monkeypatch.setattr(model_module, "chunk_docs", lambda lengths, *_: [[i] for i, n in enumerate(lengths) if n])
    chunked = head.predict(X)
    for a, b, c, d in zip(alone, batched, trained, chunked):
        assert a.shape == b.shape == c.shape == d.shape
        for other in (b, c, d):
            numpy.testing.assert_allclose(other, a, rtol=1e-5, atol=1e-5)


def test_padded_batch_equals_each_doc_alone_in_the_module():
    """In the torch module itself: a short doc next to longer ones, batch padding zero."""
    module = _module(True, 4, 2)
    rng = torch.Generator().manual_seed(3)
    docs = [torch.randn(n, 7, generator=rng) for n in (3, 10, 7)]
    padded = torch.nn.utils.rnn.pad_sequence(docs, batch_first=True)
    with torch.no_grad():
        batch = module(padded, 5, lengths=torch.tensor([3, 10, 7]))
        for row, doc in enumerate(docs):
            alone = module(doc[None], 5, lengths=torch.tensor([len(doc)]))[0]
            torch.testing.assert_close(batch[row, : len(doc)], alone, rtol=1e-5, atol=1e-5)
            assert not batch[row, len(doc) :].any()


def test_row_blocked_long_input_equals_one_pass(monkeypatch):
    module = _module(True, 4, 2)
    X = torch.randn(2, 23, 7)
    lengths = torch.tensor([23, 15])
    with torch.no_grad():
        whole = module(X, 6, lengths=lengths)
        monkeypatch.setattr(torch_head, "ROW_BLOCK", 4)
        blocked = module(X, 6, lengths=lengths)
    torch.testing.assert_close(blocked, whole, rtol=1e-5, atol=1e-5)


def test_interior_means_keep_their_precision_far_into_a_long_doc():
    """Prefix sums restart with each row block: 100k tokens in, a span's mean is as exact
    as a block's float32 sums allow (a running sum over the whole doc would be ~50x off)."""
    torch.manual_seed(0)
    module = GlobalPointerHead(2, 1, 2, rope=True, efficient=True, interior=True)
    n = 100_000
    X = torch.randn(1, n, 2)
    with torch.no_grad():
        module.interior.weight.copy_(torch.tensor([[10.0, 0.0]]))
        module.interior.bias.fill_(500.0)  # u ~ 500 +- 10: large running sums
        with_interior = module(X, 3)
        module.interior.weight.zero_()
        module.interior.bias.zero_()
        plain = module(X, 3)
    u = X[0, :, 0].double() * 10 + 500
    i = n - 10
    got = (with_interior - plain)[0, i, :, 0].double()
    want = torch.stack([u[i : i + d + 1].mean() for d in range(3)])
    # float32 sums of a block of ROW_BLOCK + width values of ~510: ~1 ulp of 1e6 each
    bound = 4 * (torch_head.ROW_BLOCK + 3) * 510 * 2.0**-24
    assert (got - want).abs().max() < bound


def test_both_options_off_scores_as_v3():
    from spacy_globalpointer.architectures import build_global_pointer_v3

    torch.manual_seed(0)
    heads = []
    for model in (
        build_global_pointer_v3(noop(), nO=2, head_width=8, max_length=4, width_bias=True),
        build_global_pointer_v4(noop(), nO=2, head_width=8, max_length=4, width_bias=True,
                                interior=False, context_channels=0),
    ):
        head = model.get_ref("head")
        head.set_dim("nI", 6)
        build_head_layers(head)
        heads.append(head)
    v3, v4 = (wrapped_module(h.layers[0]) for h in heads)
    with torch.no_grad():
        v3.width_bias.normal_()
    v4.load_state_dict(v3.state_dict())  # strict: the same parameters, no others
    X = [numpy.random.default_rng(4).normal(size=(n, 6)).astype("f") for n in (7, 2, 0)]
    for a, b in zip(heads[0].predict(X), heads[1].predict(X)):
        numpy.testing.assert_array_equal(a, b)


def test_score_budget_counts_the_context_values_of_a_cell():
    assert values_per_cell({}, 5) == 5
    assert values_per_cell({"interior": True, "context_channels": 0, "context_layers": 2}, 5) == 5
    assert values_per_cell({"context_channels": 8, "context_layers": 2}, 5) == 5 + 8 * 3
    head = _v4_head(channels=4, n_labels=2, budget=1000 * 7 * (2 + 4 * 3))
    with pytest.warns(UserWarning, match="score_budget"):
        (scores,) = head.predict([numpy.zeros((1000, 6), dtype="f")])
    assert scores.shape == (1000, 7, 2)


@pytest.mark.parametrize("channels,layers", [(3, 2), (-2, 2), (4, 0)])
def test_bad_context_settings_are_named(channels, layers):
    with pytest.raises(ValueError, match=f"context_(channels|layers) must .* got {channels if layers else layers}"):
        build_global_pointer_v4(noop(), nO=2, context_channels=channels, context_layers=layers)


def v4_config(**settings) -> dict:
    """The factory's default model on v4 (a new @architectures replaces the whole block)."""
    from spacy_globalpointer.architectures import DEFAULT_MODEL

    return {"model": {**copy.deepcopy(dict(DEFAULT_MODEL)), "@architectures": V4, **settings}}


V4_CONFIG = v4_config(context_channels=4)


@pytest.fixture(scope="module")
def trained_v4():
    return train_pipeline(V4_CONFIG, n_updates=40)


def test_v4_pipeline_learns_and_round_trips(trained_v4, tmp_path):
    nlp, examples = trained_v4
    assert nlp.evaluate(examples)["spans_sc_f"] == 1.0
    module = wrapped_module(nlp.get_pipe("global_pointer").model.get_ref("head").layers[0])
    assert module.context.gamma.abs().sum() > 0 and module.interior.weight.abs().sum() > 0
    nlp.to_disk(tmp_path / "v4")
    loaded = spacy.load(tmp_path / "v4")
    assert loaded.get_pipe("global_pointer").model.get_ref("head").attrs["context_channels"] == 4
    docs = [nlp.make_doc(text) for text, _ in NESTED_TRAIN]
    before = nlp.get_pipe("global_pointer").predict(docs)
    after = loaded.get_pipe("global_pointer").predict(docs)
    for a, b in zip(before, after):
        numpy.testing.assert_array_equal(a, b)
    # weights with span context refuse a config without it
    plain = spacy.blank("en")
    plain.add_pipe("global_pointer", config=v4_config(context_channels=0))
    with pytest.raises(ValueError, match="(?s)Cannot load 'global_pointer' weights.*context"):
        plain.from_disk(tmp_path / "v4")


def test_v4_long_doc_under_small_budget_matches_region_with_the_same_band(trained_v4):
    """As test_long_docs' test for the plain head: a doc of > 5000 tokens goes through
    row blocks under a budget of a 5-token band; a region of it, scored alone on the same
    band (max_length 5: the context sees the band's cells only), gives the same spans."""
    nlp, _ = trained_v4
    gp = nlp.get_pipe("global_pointer")
    head = gp.model.get_ref("head")
    long_doc = nlp.make_doc(" ".join([t for t, _ in NESTED_TRAIN if t] * 200))
    assert len(long_doc) > torch_head.ROW_BLOCK * 2
    saved = dict(head.attrs)
    head.attrs["score_budget"] = len(long_doc) * 5 * values_per_cell(head.attrs, len(gp.labels))
    try:
        with pytest.warns(UserWarning, match="score_budget"):
            (scores,) = gp.predict([long_doc])
        assert scores.shape == (len(long_doc), 5, len(gp.labels))
        head.attrs["score_budget"], head.attrs["max_length"] = saved["score_budget"], 5
        middle = len(long_doc) // 2
        region = long_doc[middle - 100 : middle + 100]
        (region_scores,) = gp.predict([nlp.make_doc(region.text)])
    finally:
        head.attrs.update(saved)
    assert len(nlp.make_doc(region.text)) == len(region)
    # the CNN sees 4 tokens either side and the context 2 more cells: compare away from the edges
    margin = 12
    inner = slice(margin, len(region) - margin - 5)
    numpy.testing.assert_allclose(
        scores[region.start : region.end][inner], region_scores[inner], rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("max_length", [1, 3])
def test_interior_only_band_equals_the_full_scores_inside_it(max_length):
    """As test_long_docs' banded-vs-full test for the plain head: the interior term of a
    span does not depend on the band. (The context does, by design: cells outside the
    band are zero inputs to the convolutions.)"""
    torch.manual_seed(0)
    full = _v4_head(None, channels=0)
    banded = _v4_head(max_length, channels=0)
    banded._layers[:] = full.layers  # same weights
    rng = numpy.random.default_rng(0)
    X = [rng.normal(size=(n, 6)).astype("f") for n in (7, 2, 5)]
    for y_full, y_band in zip(full.predict(X), banded.predict(X)):
        w = y_band.shape[1]
        assert w == min(max_length, y_full.shape[0])
        numpy.testing.assert_allclose(y_band, y_full[:, :w], atol=1e-5)
