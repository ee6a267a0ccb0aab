"""The torch scoring head against a naive implementation written straight from the
formulas; RoPE and the band product; precision; the thread policy in forked children."""

import math
import os
import subprocess
import sys

import numpy
import pytest
import torch
from thinc.api import NumpyOps

from spacy_globalpointer import torch_head
from spacy_globalpointer.loss import global_pointer_loss
from spacy_globalpointer.torch_head import (
    GlobalPointerHead,
    apply_rope,
    band_dot,
    band_window,
    rope_rotations,
)

OPS = NumpyOps()


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


@pytest.mark.parametrize("efficient", [False, True])
@pytest.mark.parametrize("row_block", [2048, 4])
def test_lengths_zero_the_padding_cells_and_their_gradient(efficient, row_block, monkeypatch):
    """With lengths, the head masks padding cells itself: real cells as without lengths,
    padding cells exactly 0, and no gradient flows from them."""
    monkeypatch.setattr(torch_head, "ROW_BLOCK", row_block)
    torch.manual_seed(0)
    module = GlobalPointerHead(6, 3, 8, rope=True, efficient=efficient)
    X = torch.randn(3, 9, 6)
    lengths = torch.tensor([9, 4, 1])
    with torch.no_grad():
        unmasked = module(X, 5)
        masked = module(X, 5, lengths=lengths)
    real = (torch.arange(9)[:, None] + torch.arange(5)[None, :])[None] < lengths[:, None, None]
    assert torch.equal(masked[real], unmasked[real])
    assert not masked[~real].any()
    X_grad = X.clone().requires_grad_()
    scores = module(X_grad, 5, lengths=lengths)
    (scores * torch.randn_like(scores)).sum().backward()
    # doc 2 is one token long: its padded rows 1.. get no gradient
    assert not X_grad.grad[2, 1:].any() and X_grad.grad[2, 0].any()


def test_rope_table_gives_the_rotations_computed_afresh():
    module = GlobalPointerHead(4, 1, 8, rope=True, efficient=True)
    device = torch.device("cpu")
    for n_positions, offset in [(1, 0), (37, 0), (10, 2048), (5, torch_head.ROPE_TABLE_POSITIONS - 5), (20, torch_head.ROPE_TABLE_POSITIONS - 5), (3, 70_000)]:
        expected = rope_rotations(n_positions, 8, device=device, offset=offset)
        assert torch.equal(module._rotations(n_positions, offset, device), expected)
    assert module._rope_table is not None and "_rope_table" not in module.state_dict()


@pytest.mark.parametrize("length,width", [(1, 1), (5, 3), (4, 9), (30, 32)])
def test_band_window_reads_the_next_rows(length, width):
    x = torch.randn(2, length, 3)
    window = band_window(x, width)
    assert window.shape == (2, length, width, 3)
    for i in range(length):
        for d in range(width):
            expected = x[:, i + d] if i + d < length else torch.zeros(2, 3)
            assert torch.equal(window[:, i, d], expected)


def test_torch_head_in_bfloat16_on_cpu():
    torch.manual_seed(0)
    head = GlobalPointerHead(16, 3, 16, rope=True, efficient=True)
    X = torch.randn(2, 40, 16) * 3
    reference = head(X, 8)
    half = GlobalPointerHead(16, 3, 16, rope=True, efficient=True)
    half.load_state_dict(head.state_dict())
    half = half.to(torch.bfloat16)
    X_half = X.to(torch.bfloat16).requires_grad_()
    scores = half(X_half, 8)
    assert scores.dtype == torch.bfloat16 and scores.shape == reference.shape
    # bfloat16 keeps 8 bits of mantissa: about 2-3 significant digits
    scale = reference.abs().max().item()
    assert (scores.float() - reference).abs().max().item() < 0.02 * scale
    scores.float().square().sum().backward()
    assert X_half.grad is not None and torch.isfinite(X_half.grad.float()).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = head(X, 8)
    assert torch.isfinite(autocast.float()).all()
    assert (autocast.float() - reference).abs().max().item() < 0.02 * scale
    # the bf16 scores feed the loss through float32
    numpy_scores = [scores[0].detach().float().numpy().astype("float16")]
    loss, grads = global_pointer_loss(OPS, numpy_scores, [numpy.asarray([[0, 1, 2]], dtype="i")])
    assert math.isfinite(loss) and numpy.isfinite(grads[0]).all()


FORK_PROBE = """
import os, sys, torch
import spacy_globalpointer.torch_head as torch_head

def child_threads():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, str(torch.get_num_threads()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    return int(os.read(read, 16))

torch.set_num_threads(2)
before = child_threads()
head = torch_head.GlobalPointerHead(8, 2, 4, rope=True, efficient=True)
head(torch.randn(1, 5, 8), 3)
after = child_threads()
print(before, after, torch.get_num_threads())
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_children_get_one_thread_only_once_the_head_ran():
    """Importing the package leaves a forked child's threads alone (a pre-forking server);
    once the head ran, children get one thread, as libgomp's pool does not survive fork."""
    result = subprocess.run(
        [sys.executable, "-c", FORK_PROBE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "1", "2"]


def bucket_of_width(width: int) -> int:
    """The width bucket, written out: 1..16 one each, then [17, 24), [24, 32), [32, 48),
    [48, 64), [64, 96), [96, 128), [128, ...)."""
    if width <= 16:
        return width - 1
    for bucket, upper in enumerate((24, 32, 48, 64, 96, 128)):
        if width < upper:
            return 16 + bucket
    return 22


def test_width_buckets_follow_the_written_out_edges():
    assert torch_head.width_buckets(200).tolist() == [bucket_of_width(w) for w in range(1, 201)]
    assert torch_head.N_WIDTH_BUCKETS == 23


@pytest.mark.parametrize("efficient", [False, True])
@pytest.mark.parametrize("width", [3, None])
@pytest.mark.parametrize("row_block", [2048, 4])
def test_width_bias_adds_its_label_and_width_entry(efficient, width, row_block, monkeypatch):
    monkeypatch.setattr(torch_head, "ROW_BLOCK", row_block)
    torch.manual_seed(0)
    n, n_in, n_labels = 9, 7, 3
    module = GlobalPointerHead(n_in, n_labels, 8, rope=True, efficient=efficient, width_bias=True)
    with torch.no_grad():
        module.width_bias.normal_()
    bias = module.width_bias.detach().double().numpy()
    H = numpy.random.default_rng(1).normal(size=(n, n_in))
    expected = naive_scores(module, H)
    w = n if width is None else width
    with torch.no_grad():
        band = module(torch.tensor(H[None], dtype=torch.float32), w)[0].numpy()
    for i in range(n):
        for d in range(w):
            if i + d < n:
                want = expected[:, i, i + d] + bias[bucket_of_width(d + 1)]
                numpy.testing.assert_allclose(band[i, d], want, rtol=1e-4, atol=1e-4)


def test_width_bias_gradient_sums_the_cells_of_its_bucket():
    """d(sum w * s)/d c[bucket, a] = sum of w over the real cells of that width and label
    (padding cells are zeroed given the lengths, and get none)."""
    torch.manual_seed(0)
    lengths = [6, 4]
    module = GlobalPointerHead(5, 2, 4, rope=True, efficient=True, width_bias=True)
    X = torch.randn(2, 6, 5)
    scores = module(X, 6, lengths=torch.tensor(lengths))
    weights = torch.randn(scores.shape)
    (scores * weights).sum().backward()
    expected = numpy.zeros((torch_head.N_WIDTH_BUCKETS, 2))
    for b, n in enumerate(lengths):
        for i in range(n):
            for d in range(6):
                if i + d < n:
                    expected[bucket_of_width(d + 1)] += weights[b, i, d].numpy()
    numpy.testing.assert_allclose(module.width_bias.grad.numpy(), expected, rtol=1e-5, atol=1e-5)
