"""The GlobalPointer scoring head as a torch module.

Kept apart from the Thinc wrapper (``model.py``) so that torch is only imported
once a model is actually built.

Scores come out *banded*: ``scores[b, i, d, a]`` is s_a(i, i + d) for
``0 <= d < width``. With ``width == n`` this is the full upper triangle; with a
span-width bound it is O(n * width) instead of O(n^2). Entries with
``i + d >= length`` are padding: given the docs' lengths, the module zeroes them;
otherwise the caller must mask them.
"""

import math
import os
from functools import lru_cache
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .span_context import SpanContext, band_cells, interior_means

ROPE_BASE = 10000.0
# Query rows scored per pass over a long input (bounds the q/k intermediates).
ROW_BLOCK = 2048
# Positions whose RoPE rotations a head keeps, computed once (1 MiB at head_width 64):
# docs and row blocks within them reuse the table instead of recomputing sines and cosines.
ROPE_TABLE_POSITIONS = 4096
# Band index arrays up to this many cells are cached (sentence-length docs and chunks).
CACHED_BAND_CELLS = 8192
# Span widths with a bias of their own (width_bias): 1..16 tokens one each, longer ones
# share buckets ([17, 24), [24, 32), [32, 48) ... 128+): long spans are rare.
WIDTH_BUCKET_EDGES = (*range(1, 18), 24, 32, 48, 64, 96, 128)
N_WIDTH_BUCKETS = len(WIDTH_BUCKET_EDGES)


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
    # (N, 1, D // 2) broadcasts over the batch and the heads: one view, no unsqueezes.
    rotated = torch.view_as_real(pairs * rotations.view(rotations.shape[0], 1, -1)).flatten(-2)
    return rotated.to(x.dtype)


def band_dot(q: Tensor, k: Tensor, width: int, zero_outside: bool = True) -> Tensor:
    """out[b, i, d, h] = <q[b, i, h], k[b, i + d, h]> for d < width (0 where i + d >= Nk).

    q: (B, Nq, H, D), k: (B, Nk, H, D) with Nq <= Nk: the keys may run on past the
    last query row, so that a block of rows sees the keys that follow it. One
    matmul per block of R = max(width, 64) query rows against the R + width - 1 keys
    they reach, then the band is gathered: O(Nq * (R + width) * H * D) work in
    Nq / R BLAS calls (measured: 10-40x faster than a loop over diagonals).
    zero_outside=False leaves cells with i + d >= Nk unspecified, for a caller that masks
    them anyway (one pass less over the band).
    """
    n_batch, n_rows, n_heads, _ = q.shape
    if width <= 0 or n_rows == 0:
        return q.new_zeros((n_batch, n_rows, max(width, 0), n_heads))
    block_rows = max(width, 64)
    blocks = []
    for row in range(0, n_rows, block_rows):
        q_block = q[:, row : row + block_rows]
        k_block = k[:, row : row + block_rows + width - 1]
        n_block, n_cols = q_block.shape[1], k_block.shape[1]
        # (B, H, rows, cols): every query row of the block against the keys it can reach
        full = torch.matmul(q_block.transpose(1, 2), k_block.permute(0, 2, 3, 1))
        index, valid = _band_index(n_block, n_cols, width, q.device)
        band = torch.gather(full, 3, index.expand(n_batch, n_heads, n_block, width))
        if zero_outside:
            band = band * valid
        blocks.append(band.permute(0, 2, 3, 1))
    return blocks[0].contiguous() if len(blocks) == 1 else torch.cat(blocks, dim=1)


def band_window(x: Tensor, width: int) -> Tensor:
    """out[b, i, d, :] = x[b, i + d, :] (0 where i + d >= N). x: (B, N, H).

    A strided view of x padded with width - 1 zero rows: sliding windows, nothing
    gathered or copied, so an addition reads it straight from x.
    """
    if width <= 0:
        return x.new_zeros((x.shape[0], x.shape[1], 0, x.shape[2]))
    padded = torch.nn.functional.pad(x, (0, 0, 0, width - 1))
    return padded.unfold(1, width, 1).transpose(2, 3)


def width_buckets(width: int) -> Tensor:
    """Bucket of each span width 1..width (band offset d = width - 1), shape (width,):
    the last edge of WIDTH_BUCKET_EDGES at or below it."""
    return _width_buckets(width)


@lru_cache(maxsize=64)
def _width_buckets(width: int) -> Tensor:
    edges = torch.tensor(WIDTH_BUCKET_EDGES)
    return torch.searchsorted(edges, torch.arange(1, width + 1), right=True) - 1


def _band_index(
    n_rows: int, n_cols: int, width: int, device: torch.device, clamp: bool = True
) -> Tuple[Tensor, Tensor]:
    """Column i + d of band cell (i, d), clamped into [0, n_cols) (unless clamp=False), and
    whether it is a real column: (n_rows, width) each. Small ones are cached: doc and chunk
    shapes recur."""
    if n_rows * width <= CACHED_BAND_CELLS:
        return _cached_band_index(n_rows, n_cols, width, device, clamp)
    return _make_band_index(n_rows, n_cols, width, device, clamp)


def _make_band_index(
    n_rows: int, n_cols: int, width: int, device: torch.device, clamp: bool
) -> Tuple[Tensor, Tensor]:
    cols = torch.arange(n_rows, device=device)[:, None] + torch.arange(width, device=device)
    return cols.clamp(max=max(n_cols - 1, 0)) if clamp else cols, cols < n_cols


_cached_band_index = lru_cache(maxsize=128)(_make_band_index)


class GlobalPointerHead(nn.Module):
    """Span scores s_a(i, j) = (R_i q_i,a)^T (R_j k_j,a) / sqrt(head_width).

    efficient=False: one q/k projection per label.
    efficient=True (Efficient GlobalPointer): one shared q/k projection p_i, plus
    per-label start/end biases read off p_i: s_a(i, j) = <R_i q_i, R_j k_j> / sqrt(D)
    + (b_start_a(i) + b_end_a(j)) / 2.
    width_bias=True: plus a learned bias per label and span width bucket,
    c_a(bucket(j - i + 1)) (RoPE makes the dot product depend on j - i, but gives no
    prior over span lengths).
    interior=True: plus the mean over the span's tokens of a per-label projection,
    context_channels > 0: plus the mixed-in output of context_layers convolution blocks
    over neighbouring spans (both in span_context.py).
    """

    def __init__(
        self,
        n_in: int,
        n_labels: int,
        head_width: int,
        *,
        rope: bool,
        efficient: bool,
        width_bias: bool = False,
        interior: bool = False,
        context_channels: int = 0,
        context_layers: int = 2,
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
        self.width_bias = (
            nn.Parameter(torch.zeros(N_WIDTH_BUCKETS, n_labels)) if width_bias else None
        )
        # Zero weights: the interior term starts at 0, training starts from the plain head.
        self.interior = nn.Linear(n_in, n_labels) if interior else None
        if self.interior is not None:
            nn.init.zeros_(self.interior.weight)
            nn.init.zeros_(self.interior.bias)
        self.context = (
            SpanContext(n_in, n_labels, context_channels, context_layers)
            if context_channels
            else None
        )
        # rope_rotations(ROPE_TABLE_POSITIONS, head_width) on the device last used; not a
        # buffer, so neither saved nor loaded.
        self._rope_table: Optional[Tensor] = None

    def forward(self, X: Tensor, width: int, lengths: Optional[Tensor] = None) -> Tensor:
        """X: (B, N, n_in) -> banded scores (B, N, width, n_labels).

        Long inputs go through in blocks of ROW_BLOCK query rows (each with the
        width - 1 keys after it), so the q/k intermediates stay O(ROW_BLOCK) while
        the scores are the same as in one pass.

        lengths: (B,) the docs' lengths in the padded batch. Given, the padding cells
        (i + d >= lengths[b]) come out as 0 (times the score: NaN stays NaN), in place at
        the end, and so get no gradient; without, they are for the caller to mask.
        """
        global _ran_in_this_process
        _ran_in_this_process = True
        length = X.shape[1]
        # The caller's mask (lengths) covers the cells past the batch's end too.
        exact = lengths is None
        if length <= ROW_BLOCK:
            scores = self._score_rows(X, 0, length, width, exact)
        else:
            blocks = []
            for start in range(0, length, ROW_BLOCK):
                stop = min(length, start + ROW_BLOCK)
                key_stop = min(length, stop + width - 1)
                blocks.append(
                    self._score_rows(X[:, start:key_stop], start, stop - start, width, exact)
                )
            scores = torch.cat(blocks, dim=1)
        if lengths is not None:
            ends, _ = _band_index(length, length, width, X.device, clamp=False)
            scores.mul_((ends < lengths.view(-1, 1, 1)).unsqueeze(-1))
        if self.context is not None:
            # Over the whole band, not in row blocks: the convolutions need their
            # neighbouring rows, and the band is linear in the doc.
            scores = self.context(X, scores, band_cells(length, width, lengths, X.device), lengths)
        return scores

    def _score_rows(
        self, X: Tensor, offset: int, n_rows: int, width: int, exact: bool = True
    ) -> Tensor:
        """Scores for the first n_rows positions of X, which start at doc position offset."""
        n_batch, length, _ = X.shape
        D = self.head_width
        projected = self.qk(X)
        qk = projected.view(n_batch, length, -1, 2 * D)
        if self.rope:
            # q and k of a position turn by the same angles: one call rotates both (the
            # key rows past n_rows rotate their unused q too).
            rotations = self._rotations(length, offset, X.device)
            qk = apply_rope(qk.view(n_batch, length, -1, D), rotations).view(qk.shape)
        q, k = qk[:, :n_rows, :, :D], qk[..., D:]
        scores = band_dot(q, k, width, zero_outside=exact) / math.sqrt(D)
        if self.bias is not None:
            biases = self.bias(projected) / 2
            start, end = biases[:, :n_rows, : self.n_labels], biases[..., self.n_labels :]
            # (dot + start) + end, the second sum in place: one band-sized array, not two.
            scores = scores + start.unsqueeze(2)
            scores += band_window(end, width)[:, :n_rows]
        if self.width_bias is not None:
            # In place: scores is this call's own tensor, and no backward reads it.
            scores += self.width_bias[width_buckets(width).to(scores.device)].to(scores.dtype)
        if self.interior is not None:
            # Per row block: the prefix sums restart at the block, their rounding stays small.
            scores = scores + interior_means(self.interior(X), n_rows, width).to(scores.dtype)
        return scores

    def _rotations(self, n_positions: int, offset: int, device: torch.device) -> Tensor:
        """rope_rotations(n_positions, head_width, offset=offset), from the table where it
        reaches: the same values, as each position's rotation is computed on its own."""
        if offset + n_positions > ROPE_TABLE_POSITIONS:
            return rope_rotations(n_positions, self.head_width, device=device, offset=offset)
        table = self._rope_table
        if table is None or table.device != device:
            table = rope_rotations(ROPE_TABLE_POSITIONS, self.head_width, device=device)
            self._rope_table = table
        return table[offset : offset + n_positions]
