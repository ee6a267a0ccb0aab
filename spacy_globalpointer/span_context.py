"""A span's interior and its neighbouring spans in the GlobalPointer score (pure torch).

Both terms work on the head's banded layout: ``x[b, i, d]`` is the span of tokens
i..i+d, for ``0 <= d < width``. Cost and memory stay linear in the doc length.

Interior evidence: a per-label projection of each token, u_t,a = w_a . h_t + c_a,
averaged over the span's tokens through prefix sums,
interior_a(i, j) = (P[j + 1, a] - P[i, a]) / (j - i + 1), P the running sum of u
(restarted with each of the head's row blocks, so that its float32 rounding stays that
of a block, however long the doc).

Context between spans: per-span pair features (an elementwise product of start and end
projections, turned by the span's relative offset as RoPE would, plus the span's
per-label scores), then a few convolution blocks over neighbouring spans in the
(start, end) plane and a per-label readout, mixed in as s = s_plain + gamma * s_ctx
with gamma (per label) starting at 0, so training starts from the plain head.

In band coordinates (i, d), j = i + d, the (start, end) neighbour (i + di, j + dj) is
the band cell (i + di, d + dj - di): a 3x3 stencil in the (start, end) plane is a
sheared one in the band, 9 taps of a 3x5 kernel (rows di = -1, 0, 1; offsets
dd = dj - di in -2..2). It runs as a 3x5 conv2d whose other 6 taps are held at zero.
Cells outside the band (d < 0, d >= width), past the doc's end or padding are zero
inputs to every layer (the output is masked after each one), so the scores do not
depend on batching, chunking or padding. The convolutions run over the whole band, not
in row blocks (they would need halo rows): memory O(n x width x C), linear in the doc,
and the model sizes a doc's band for labels + C x (layers + 1) values a cell.
"""

from typing import Optional

import torch
from torch import Tensor, nn

# The 9 taps of the 3x5 kernel (rows di + 1, columns dd + 2) that are (start, end)
# neighbours: dd = dj - di with di, dj in {-1, 0, 1}.
_STENCIL = torch.zeros(3, 5)
for _di in (-1, 0, 1):
    for _dj in (-1, 0, 1):
        _STENCIL[_di + 1, _dj - _di + 2] = 1.0
STENCIL_ROWS, STENCIL_COLS = 3, 5


def band_cells(n_rows: int, width: int, lengths: Optional[Tensor], device: torch.device) -> Tensor:
    """Boolean (B or 1, n_rows, width): cell (i, d) is a real span (i + d < length)."""
    ends = torch.arange(n_rows, device=device)[:, None] + torch.arange(width, device=device)
    if lengths is None:
        return (ends < n_rows)[None]
    return ends[None] < lengths.view(-1, 1, 1)


def interior_means(u: Tensor, n_rows: int, width: int) -> Tensor:
    """out[b, i, d, a] = mean of u[b, i..i+d, a] for the first n_rows rows (garbage where
    i + d runs past u's end: mask it).

    u: (B, N, A), N >= n_rows. Prefix sums restart at u's first row, so a caller that
    hands over a block of rows of a long doc keeps the running sums, and so the rounding
    of their differences, as small as the block (float32 loses ~1e-7 of the sum)."""
    n_batch, n_tokens, n_labels = u.shape
    if width <= 0 or n_rows == 0:
        return u.new_zeros((n_batch, n_rows, max(width, 0), n_labels))
    # P[t] for t = 0..N with P[0] = 0; width - 1 zero rows past the end keep the windows
    # in range (the cells reading them are past the doc's end).
    prefix = torch.nn.functional.pad(torch.cumsum(u, dim=1), (0, 0, 1, width - 1))
    # ends[i, d] = P[i + d + 1]: a sliding window over the prefix sums
    ends = prefix[:, 1:].unfold(1, width, 1)[:, :n_rows].transpose(2, 3)
    inverse = 1.0 / torch.arange(1, width + 1, device=u.device, dtype=u.dtype)
    return (ends - prefix[:, :n_rows, None, :]) * inverse[:, None]


def _window(x: Tensor, width: int) -> Tensor:
    """out[b, i, d, :] = x[b, i + d, :] (0 where i + d >= N): strided sliding windows."""
    padded = torch.nn.functional.pad(x, (0, 0, 0, width - 1))
    return padded.unfold(1, width, 1).transpose(2, 3)


class SpanContext(nn.Module):
    """Pair features -> n_layers sheared 3x3 convolutions -> per-label readout.

    n_in: token vector width; n_labels: labels; channels: C, both the width of the pair
    features (even: complex pairs) and of the convolution blocks.
    """

    def __init__(self, n_in: int, n_labels: int, channels: int, n_layers: int) -> None:
        super().__init__()
        if channels < 2 or channels % 2:
            raise ValueError(f"context_channels must be an even integer >= 2, got {channels}")
        if n_layers < 1:
            raise ValueError(f"context_layers must be >= 1, got {n_layers}")
        self.channels = channels
        self.n_layers = n_layers
        # start and end projections, each C/2 complex numbers
        self.pair = nn.Linear(n_in, 2 * channels)
        self.convs = nn.ModuleList(
            nn.Conv2d(
                (channels + n_labels) if layer == 0 else channels,
                channels,
                (STENCIL_ROWS, STENCIL_COLS),
                padding=(STENCIL_ROWS // 2, STENCIL_COLS // 2),
            )
            for layer in range(n_layers)
        )
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.mul_(_STENCIL)
        self.readout = nn.Linear(channels, n_labels)
        self.gamma = nn.Parameter(torch.zeros(n_labels))
        self.register_buffer("stencil", _STENCIL.clone(), persistent=False)

    def pair_features(self, X: Tensor, width: int, tokens: Optional[Tensor]) -> Tensor:
        """(B, N, width, C): (z_i e^{i i theta}) conj(w_{i+d} e^{i (i+d) theta}), real
        parts then imaginary parts: z_i conj(w_{i+d}) e^{-i d theta}, so the positions
        count through d only (RoPE). tokens: (B, N, 1) 1 for real tokens, 0 for padding,
        so that cells starting or ending in the padding get 0 (None: no padding)."""
        half = self.channels // 2
        n_tokens = X.shape[1]
        projected = self.pair(X)
        if tokens is not None:
            projected = projected * tokens
        # One turn per complex channel pair, RoPE's frequencies, in float64 (see
        # torch_head.rope_rotations): a module cast to another dtype keeps them exact.
        theta = 10000.0 ** (
            -torch.arange(0, self.channels, 2, device=X.device, dtype=torch.float64) / self.channels
        )
        angles = torch.arange(n_tokens, device=X.device, dtype=torch.float64)[:, None] * theta
        cos, sin = torch.cos(angles).to(X.dtype), torch.sin(angles).to(X.dtype)
        zr, zi, wr, wi = projected.split(half, dim=-1)
        # turned by e^{i t theta}: (r cos - i sin, r sin + i cos), per token (O(n C))
        zr, zi = zr * cos - zi * sin, zr * sin + zi * cos
        wr, wi = wr * cos - wi * sin, wr * sin + wi * cos
        wr, wi = _window(wr, width), _window(wi, width)
        zr, zi = zr.unsqueeze(2), zi.unsqueeze(2)
        # z conj(w) = (zr wr + zi wi) + i (zi wr - zr wi)
        return torch.cat([zr * wr + zi * wi, zi * wr - zr * wi], dim=-1)

    def forward(
        self, X: Tensor, scores: Tensor, cells: Tensor, lengths: Optional[Tensor] = None
    ) -> Tensor:
        """X: (B, N, n_in); scores: (B, N, width, A) the plain scores, 0 outside cells
        where lengths is given; cells: (B or 1, N, width) booleans, the real spans;
        lengths: (B,) -> the mixed scores (B, N, width, A), 0 outside cells."""
        n_batch, n_tokens, width, _ = scores.shape
        if lengths is None:
            tokens = None
            scores_in = scores * cells.unsqueeze(-1)  # unmasked past the end
        else:
            tokens = (torch.arange(n_tokens, device=X.device) < lengths.view(-1, 1)).unsqueeze(-1)
            tokens = tokens.to(X.dtype)
            scores_in = scores
        # Cells past a doc's end read padding tokens or the zero rows after the input:
        # with those zeroed, every feature outside the cells is 0.
        features = torch.cat([self.pair_features(X, width, tokens), scores_in], dim=-1)
        # Channels last throughout: (B, C, N, width) views of (B, N, width, C) arrays,
        # which conv2d takes as they are (measured: 1.2-3x faster than channels first).
        h = features.permute(0, 3, 1, 2)
        mask = cells.unsqueeze(1).to(scores.dtype)  # (B or 1, 1, N, width)
        last = len(self.convs) - 1
        for layer, conv in enumerate(self.convs):
            out = torch.nn.functional.conv2d(
                h if layer == 0 else torch.nn.functional.gelu(h),
                conv.weight * self.stencil,
                conv.bias,
                padding=conv.padding,
            )
            # Zero outside the band after every layer: neighbours past the doc's end, in
            # the padding or beyond the band are zero inputs to the next. The last
            # layer's cells outside feed only themselves, masked below.
            if layer != last:
                out = out * mask
            h = out if layer == 0 else h + out
        context = self.readout(torch.nn.functional.gelu(h).permute(0, 2, 3, 1))
        return scores + (self.gamma * context) * cells.unsqueeze(-1)
