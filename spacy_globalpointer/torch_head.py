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
from typing import Tuple

import torch
from torch import Tensor, nn

ROPE_BASE = 10000.0
# Query rows scored per pass over a long input (bounds the q/k intermediates).
ROW_BLOCK = 2048


def _one_thread_after_fork() -> None:
    # libgomp's thread pool does not survive fork(): a forked child (nlp.pipe with
    # n_process > 1 under the default "fork" start method) hangs in its first parallel
    # torch op. One intra-op thread per child avoids the pool; the processes already
    # share out the cores.
    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread_after_fork)


def rope_tables(
    n_positions: int, head_width: int, *, like: Tensor, offset: int = 0
) -> Tuple[Tensor, Tensor]:
    """Cosine and sine tables (n_positions, head_width) for positions offset, offset + 1, ...

    Interleaved RoPE: pair (2k, 2k+1) rotates by angle pos * base^(-2k / head_width).
    """
    # float64 angles: in float32, pos * freq loses ~1e-3 rad by position 64k, which
    # would make equal offsets score differently at different absolute positions.
    inv_freq = ROPE_BASE ** (
        -torch.arange(0, head_width, 2, device=like.device, dtype=torch.float64) / head_width
    )
    positions = torch.arange(
        offset, offset + n_positions, device=like.device, dtype=torch.float64
    )
    angles = positions[:, None] * inv_freq[None, :]
    # Each angle serves both members of its pair.
    angles = angles.repeat_interleave(2, dim=-1)
    return angles.cos().to(like.dtype), angles.sin().to(like.dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved pairs of the last axis. x: (B, N, H, D); cos/sin: (N, D)."""
    x_even = x[..., 0::2]
    x_odd = x[..., 1::2]
    # rotate_half for interleaved pairs: (x0, x1) -> (-x1, x0)
    rotated = torch.stack((-x_odd, x_even), dim=-1).flatten(-2)
    return x * cos[None, :, None, :] + rotated * sin[None, :, None, :]


def band_dot(q: Tensor, k: Tensor, width: int) -> Tensor:
    """out[b, i, d, h] = <q[b, i, h], k[b, i + d, h]> for d < width (0 where i + d >= Nk).

    q: (B, Nq, H, D), k: (B, Nk, H, D) with Nq <= Nk: the keys may run on past the
    last query row, so that a block of rows sees the keys that follow it. Uses
    whichever loop is shorter: one step per diagonal (width steps) or one matmul per
    block of `width` rows (Nq / width steps): O(Nq * width * H * D) work with at most
    sqrt(Nq) Python-level steps.
    """
    n_batch, n_rows, n_heads, _ = q.shape
    n_keys = k.shape[1]
    if width <= 0 or n_rows == 0:
        return q.new_zeros((n_batch, n_rows, max(width, 0), n_heads))
    if width * width <= n_rows:
        diagonals = []
        for d in range(width):
            m = max(0, min(n_rows, n_keys - d))
            diag = (q[:, :m] * k[:, d : d + m]).sum(-1)
            diagonals.append(nn.functional.pad(diag, (0, 0, 0, n_rows - m)))
        return torch.stack(diagonals, dim=2)
    blocks = []
    offsets = torch.arange(width, device=q.device)
    for row in range(0, n_rows, width):
        q_block = q[:, row : row + width]
        k_block = k[:, row : row + 2 * width - 1]
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
            cos, sin = rope_tables(length, D, like=q, offset=offset)
            q = apply_rope(q, cos[:n_rows], sin[:n_rows])
            k = apply_rope(k, cos, sin)
        scores = band_dot(q, k, width) / math.sqrt(D)
        if self.bias is not None:
            biases = self.bias(projected) / 2
            start, end = biases[:, :n_rows, : self.n_labels], biases[..., self.n_labels :]
            scores = scores + start[:, :, None, :] + band_gather(end, width)[:, :n_rows]
        return scores
