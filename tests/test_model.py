"""The scoring head against a naive implementation written straight from the formulas."""

import math

import numpy
import pytest
import torch
from thinc.api import NumpyOps

from spacy_globalpointer import torch_head
from spacy_globalpointer.band import span_mask
from spacy_globalpointer.model import build_head_layers
from spacy_globalpointer.torch_head import GlobalPointerHead, apply_rope, band_dot, rope_rotations


def rotation(position: int, dim: int) -> numpy.ndarray:
    """R_position as an explicit block-diagonal matrix of 2x2 rotations (base 10000)."""
    R = numpy.zeros((dim, dim))
    for k in range(dim // 2):
        theta = position * 10000.0 ** (-2 * k / dim)
        c, s = math.cos(theta), math.sin(theta)
        R[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = [[c, -s], [s, c]]
    return R


def naive_scores(module: GlobalPointerHead, H: numpy.ndarray) -> numpy.ndarray:
    """s[a, i, j] for i <= j (nan elsewhere), looping over i, j, a."""
    D, L = module.head_width, module.n_labels
    W = module.qk.weight.detach().double().numpy()
    b = module.qk.bias.detach().double().numpy()
    n = H.shape[0]
    out = numpy.full((L, n, n), numpy.nan)
    R = [rotation(i, D) if module.rope else numpy.eye(D) for i in range(n)]
    if module.efficient:
        P = H @ W.T + b  # shared projection p_i = [q_i; k_i]
        Wb = module.bias.weight.detach().double().numpy()
        bb = module.bias.bias.detach().double().numpy()
        biases = (P @ Wb.T + bb) / 2
    for a in range(L):
        for i in range(n):
            for j in range(i, n):
                if module.efficient:
                    q, k = P[i, :D], P[j, D:]
                    extra = biases[i, a] + biases[j, L + a]
                else:
                    Wa, ba = W[a * 2 * D : (a + 1) * 2 * D], b[a * 2 * D : (a + 1) * 2 * D]
                    q = Wa[:D] @ H[i] + ba[:D]
                    k = Wa[D:] @ H[j] + ba[D:]
                    extra = 0.0
                out[a, i, j] = (R[i] @ q) @ (R[j] @ k) / math.sqrt(D) + extra
    return out


@pytest.mark.parametrize("efficient", [False, True])
@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("width", [1, 3, None])
@pytest.mark.parametrize("row_block", [2048, 4])
def test_head_scores_equal_naive_reference(efficient, rope, width, row_block, monkeypatch):
    # row_block 4 < n sends the input through in blocks of query rows
    monkeypatch.setattr(torch_head, "ROW_BLOCK", row_block)
    torch.manual_seed(0)
    n, n_in, n_labels = 9, 7, 3
    module = GlobalPointerHead(n_in, n_labels, 8, rope=rope, efficient=efficient)
    H = numpy.random.default_rng(1).normal(size=(n, n_in))
    expected = naive_scores(module, H)
    w = n if width is None else width
    with torch.no_grad():
        band = module(torch.tensor(H[None], dtype=torch.float32), w)[0].numpy()
    assert band.shape == (n, w, n_labels)
    for i in range(n):
        for d in range(w):
            if i + d < n:
                numpy.testing.assert_allclose(band[i, d], expected[:, i, i + d], rtol=1e-4, atol=1e-4)


def test_rope_is_invariant_to_shifting_all_positions():
    rng = numpy.random.default_rng(0)
    n, D = 6, 16
    q = torch.tensor(rng.normal(size=(1, n, 2, D)), dtype=torch.float32)
    k = torch.tensor(rng.normal(size=(1, n, 2, D)), dtype=torch.float32)

    def scores(offset):
        rotations = rope_rotations(n, D, device=q.device, offset=offset)
        return torch.einsum("bihd,bjhd->bhij", apply_rope(q, rotations), apply_rope(k, rotations))

    torch.testing.assert_close(scores(0), scores(37), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores(0), scores(60_000), rtol=1e-5, atol=1e-5)
    # and the encoding is not trivial: the score does depend on the offset j - i
    assert not torch.allclose(scores(0), torch.einsum("bihd,bjhd->bhij", q, k))


def test_apply_rope_rotates_interleaved_pairs():
    x = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]])  # one position, pairs (1, 2) and (3, 4)
    rotations = rope_rotations(2, 4, device=x.device)[1:]  # position 1
    out = apply_rope(x, rotations)[0, 0, 0].double().numpy()
    expected = rotation(1, 4) @ numpy.array([1.0, 2.0, 3.0, 4.0])
    numpy.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("length,width", [(12, 1), (12, 3), (12, 12), (30, 5), (7, 20), (1, 1), (200, 3), (150, 70)])
def test_band_dot_both_paths_equal_full_product(length, width):
    # one block of rows, or several (length > max(width, 64))
    rng = numpy.random.default_rng(length * 100 + width)
    q = torch.tensor(rng.normal(size=(2, length, 3, 4)))
    k = torch.tensor(rng.normal(size=(2, length, 3, 4)))
    full = torch.einsum("bihd,bjhd->bijh", q, k).numpy()
    band = band_dot(q, k, width).numpy()
    assert band.shape == (2, length, width, 3)
    for i in range(length):
        for d in range(width):
            expected = full[:, i, i + d] if i + d < length else numpy.zeros((2, 3))
            numpy.testing.assert_allclose(band[:, i, d], expected, atol=1e-10)


def test_span_mask_marks_real_spans():
    mask = span_mask(NumpyOps(), 3, 2)
    assert mask.tolist() == [[True, True], [True, True], [True, False]]


def _head_model(efficient: bool, max_length=None, n_in: int = 6, n_labels: int = 2):
    from thinc.api import Model, noop

    from spacy_globalpointer.model import build_global_pointer

    model = build_global_pointer(noop(), nO=n_labels, head_width=4, efficient=efficient, max_length=max_length)
    head: Model = model.get_ref("head")
    head.set_dim("nI", n_in)
    build_head_layers(head)
    return head


@pytest.mark.parametrize("efficient", [False, True])
def test_head_gradient_matches_finite_differences(efficient):
    torch.manual_seed(0)
    head = _head_model(efficient, max_length=3)
    rng = numpy.random.default_rng(3)
    X = [rng.normal(size=(5, 6)).astype("f"), rng.normal(size=(2, 6)).astype("f")]
    Y, backprop = head.begin_update(X)
    weights = [rng.normal(size=y.shape).astype("f") for y in Y]

    def objective(xs):
        return sum(float((w * y).sum()) for w, y in zip(weights, head.predict(xs)))

    dX = backprop(weights)
    eps = 1e-2
    for doc in range(2):
        for i, j in [(0, 0), (1, 3), (X[doc].shape[0] - 1, 5)]:
            plus = [x.copy() for x in X]
            minus = [x.copy() for x in X]
            plus[doc][i, j] += eps
            minus[doc][i, j] -= eps
            numeric = (objective(plus) - objective(minus)) / (2 * eps)
            assert numeric == pytest.approx(float(dX[doc][i, j]), rel=2e-2, abs=2e-3)

