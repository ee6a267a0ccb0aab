"""The GlobalPointer scoring head as a torch module.

Kept apart from the Thinc wrapper (``model.py``) so that torch is only imported
once a model is actually built.

Scores come out *banded*: ``scores[b, i, d, a]`` is s_a(i, i + d) for
``0 <= d < width``. With ``width == n`` this is the full upper triangle; with a
span-width bound it is O(n * width) instead of O(n^2). Entries with
``i + d >= length`` are padding and must be masked by the caller.
"""

import math
import os

import torch
from torch import Tensor, nn

ROPE_BASE = 10000.0
# Query rows scored per pass over a long input (bounds the q/k intermediates).
ROW_BLOCK = 2048


# Whether a GlobalPointerHead has run in this process (and so started torch's thread pool).
_ran_in_this_process = False


def _one_thread_after_fork() -> None:
    # libgomp's thread pool does not survive fork(): a child forked after the pool started
    # (nlp.pipe with n_process > 1 under the default "fork" start method) hangs in its first
    # parallel torch op. One intra-op thread avoids the pool; the processes already share
    # out the cores. A process that imported the package but never ran the head (a
    # pre-forking server, DataLoader workers) keeps its thread settings.
    if _ran_in_this_process:
        torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread_after_fork)


def rope_rotations(n_positions: int, head_width: int, *, device: torch.device, offset: int = 0) -> Tensor:
    """Unit complex numbers e^{i pos theta_k}, shape (n_positions, head_width // 2).

    Interleaved RoPE: pair (2k, 2k+1) of a vector, read as the complex number
    x_2k + i x_2k+1, rotates by angle pos * theta_k with theta_k = base^(-2k / head_width).
    """
    # float64 angles: in float32, pos * theta loses ~1e-3 rad by position 64k, which
    # would make equal offsets score differently at different absolute positions.
    theta = ROPE_BASE ** (
        -torch.arange(0, head_width, 2, device=device, dtype=torch.float64) / head_width
    )
    positions = torch.arange(offset, offset + n_positions, device=device, dtype=torch.float64)
    angles = positions[:, None] * theta[None, :]
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def apply_rope(x: Tensor, rotations: Tensor) -> Tensor:
    """Rotate interleaved pairs of the last axis. x: (B, N, H, D); rotations: (N, D // 2).

    One complex multiplication per pair: (x0 + i x1) e^{i a} gives
    (x0 cos a - x1 sin a, x1 cos a + x0 sin a). Computed in float32 (complex64).
    """
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    if pairs.stride(-2) % 2 or pairs.storage_offset() % 2:
        pairs = pairs.contiguous()  # view_as_complex needs whole (re, im) pairs
    pairs = torch.view_as_complex(pairs)
    rotated = torch.view_as_real(pairs * rotations[None, :, None, :]).flatten(-2)
    return rotated.to(x.dtype)


def band_dot(q: Tensor, k: Tensor, width: int) -> Tensor:
    """out[b, i, d, h] = <q[b, i, h], k[b, i + d, h]> for d < width (0 where i + d >= Nk).

    q: (B, Nq, H, D), k: (B, Nk, H, D) with Nq <= Nk: the keys may run on past the
    last query row, so that a block of rows sees the keys that follow it. One
    matmul per block of R = max(width, 64) query rows against the R + width - 1 keys
    they reach, then the band is gathered: O(Nq * (R + width) * H * D) work in
    Nq / R BLAS calls (measured: 10-40x faster than a loop over diagonals).
    """
    n_batch, n_rows, n_heads, _ = q.shape
    if width <= 0 or n_rows == 0:
        return q.new_zeros((n_batch, n_rows, max(width, 0), n_heads))
    block_rows = max(width, 64)
    offsets = torch.arange(width, device=q.device)
    blocks = []
    for row in range(0, n_rows, block_rows):
        q_block = q[:, row : row + block_rows]
        k_block = k[:, row : row + block_rows + width - 1]
        n_block, n_cols = q_block.shape[1], k_block.shape[1]
        # (B, H, rows, cols): every query row of the block against the keys it can reach
        full = torch.einsum("bihd,bjhd->bhij", q_block, k_block)
        cols = torch.arange(n_block, device=q.device)[:, None] + offsets[None, :]
        valid = cols < n_cols
        index = cols.clamp(max=n_cols - 1).expand(n_batch, n_heads, n_block, width)
        band = torch.gather(full, 3, index) * valid
        blocks.append(band.permute(0, 2, 3, 1))
    return torch.cat(blocks, dim=1)


def band_gather(x: Tensor, width: int) -> Tensor:
    """out[b, i, d, :] = x[b, i + d, :] (0 where i + d >= N). x: (B, N, H)."""
    length = x.shape[1]
    cols = torch.arange(length, device=x.device)[:, None] + torch.arange(width, device=x.device)
    valid = (cols < length).to(x.dtype)
    gathered = x[:, cols.clamp(max=max(length - 1, 0))]
    return gathered * valid[None, :, :, None]


class GlobalPointerHead(nn.Module):
    """Span scores s_a(i, j) = (R_i q_i,a)^T (R_j k_j,a) / sqrt(head_width).

    efficient=False: one q/k projection per label.
    efficient=True (Efficient GlobalPointer): one shared q/k projection p_i, plus
    per-label start/end biases read off p_i: s_a(i, j) = <R_i q_i, R_j k_j> / sqrt(D)
    + (b_start_a(i) + b_end_a(j)) / 2.
    """

    def __init__(
        self, n_in: int, n_labels: int, head_width: int, *, rope: bool, efficient: bool
    ) -> None:
        super().__init__()
        if head_width % 2:
            raise ValueError(f"head_width must be even for RoPE pairs, got {head_width}")
        self.n_labels = n_labels
        self.head_width = head_width
        self.rope = rope
        self.efficient = efficient
        n_heads = 1 if efficient else n_labels
        self.qk = nn.Linear(n_in, n_heads * 2 * head_width)
        self.bias = nn.Linear(2 * head_width, 2 * n_labels) if efficient else None

    def forward(self, X: Tensor, width: int) -> Tensor:
        """X: (B, N, n_in) -> banded scores (B, N, width, n_labels).

        Long inputs go through in blocks of ROW_BLOCK query rows (each with the
        width - 1 keys after it), so the q/k intermediates stay O(ROW_BLOCK) while
        the scores are the same as in one pass.
        """
        global _ran_in_this_process
        _ran_in_this_process = True
        length = X.shape[1]
        if length <= ROW_BLOCK:
            return self._score_rows(X, 0, length, width)
        blocks = []
        for start in range(0, length, ROW_BLOCK):
            stop = min(length, start + ROW_BLOCK)
            key_stop = min(length, stop + width - 1)
            blocks.append(self._score_rows(X[:, start:key_stop], start, stop - start, width))
        return torch.cat(blocks, dim=1)

    def _score_rows(self, X: Tensor, offset: int, n_rows: int, width: int) -> Tensor:
        """Scores for the first n_rows positions of X, which start at doc position offset."""
        n_batch, length, _ = X.shape
        D = self.head_width
        projected = self.qk(X)
        qk = projected.view(n_batch, length, -1, 2 * D)
        q, k = qk[:, :n_rows, :, :D], qk[..., D:]
        if self.rope:
            rotations = rope_rotations(length, D, device=q.device, offset=offset)
            q = apply_rope(q, rotations[:n_rows])
            k = apply_rope(k, rotations)
        scores = band_dot(q, k, width) / math.sqrt(D)
        if self.bias is not None:
            biases = self.bias(projected) / 2
            start, end = biases[:, :n_rows, : self.n_labels], biases[..., self.n_labels :]
            scores = scores + start[:, :, None, :] + band_gather(end, width)[:, :n_rows]
        return scores
