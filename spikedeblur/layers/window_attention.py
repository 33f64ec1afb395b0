"""3-D (time x height x width) window attention with the relative position bias of Video Swin
Transformer (Liu et al., arXiv:2106.13230) and the mutual attention of VRT (Liang et al.,
"VRT: A Video Restoration Transformer", arXiv:2201.12288).

Windows hold ``Wd * Wh * Ww`` tokens flattened time-major, then row, then column. All attention
runs through ``torch.nn.functional.scaled_dot_product_attention`` with the bias and the shift mask
passed as ``attn_mask``, so GPUs can use fused kernels.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

Size3 = tuple[int, int, int]

SHIFT_MASK_VALUE = -100.0
"""Logit added between tokens from different regions of a shifted window. VRT's checkpoints were
trained with this finite value (not -inf), so it is kept for identical outputs."""

ATTENTION_CHUNK_ELEMENTS = 1 << 27
"""Attention-matrix elements (windows x heads x N x N) handled per attention call, which bounds
memory on backends that materialise the attention matrix (512 MiB in float32)."""


def window_partition(x: Tensor, window: Size3) -> Tensor:
    """Split ``(B, D, H, W, C)`` into windows ``(B * nD * nH * nW, Wd * Wh * Ww, C)``.

    D, H and W must be multiples of the window; windows are ordered (b, nD, nH, nW).
    """
    return rearrange(
        x,
        "b (nd wd) (nh wh) (nw ww) c -> (b nd nh nw) (wd wh ww) c",
        wd=window[0],
        wh=window[1],
        ww=window[2],
    )


def window_reverse(windows: Tensor, window: Size3, size: Size3) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, N, C)`` -> ``(B, D, H, W, C)``."""
    d, h, w = size
    return rearrange(
        windows,
        "(b nd nh nw) (wd wh ww) c -> b (nd wd) (nh wh) (nw ww) c",
        nd=d // window[0],
        nh=h // window[1],
        nw=w // window[2],
        wd=window[0],
        wh=window[1],
    )


def effective_window(size: Size3, window: Size3, shift: Size3) -> tuple[Size3, Size3]:
    """Shrink the window to the input where the input is not larger, and drop the shift there."""
    use_window = tuple(s if s <= ws else ws for s, ws in zip(size, window))
    use_shift = tuple(0 if s <= ws else ss for s, ws, ss in zip(size, window, shift))
    return use_window, use_shift  # type: ignore[return-value]


def relative_position_index(window: Size3) -> Tensor:
    """Index into the relative position bias table for every token pair of a window.

    Returns:
        int64 ``(N, N)`` with ``N = Wd * Wh * Ww``. Entry (i, j) is
        ``rd * (2Wh - 1) * (2Ww - 1) + rh * (2Ww - 1) + rw``, where ``(rd, rh, rw)`` is the offset
        of token i from token j with each component shifted to start at 0.
    """
    wd, wh, ww = window
    coords = torch.stack(
        torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww), indexing="ij")
    ).flatten(1)
    relative = coords[:, :, None] - coords[:, None, :]
    rd = relative[0] + wd - 1
    rh = relative[1] + wh - 1
    rw = relative[2] + ww - 1
    return rd * (2 * wh - 1) * (2 * ww - 1) + rh * (2 * ww - 1) + rw


def sine_position_encoding(height: int, width: int, channels: int, *, temperature: float = 10000.0) -> Tensor:
    """Normalised 2-D sine position encoding (DETR, arXiv:2005.12872) of an ``height x width`` grid.

    Positions run 1..H (and 1..W), divided by ``size + 1e-6`` and scaled by 2 pi; each axis gets
    ``channels / 2`` features with interleaved sin/cos pairs, y features first.

    Returns:
        float32 ``(1, H * W, channels)``, tokens row-major.
    """
    if channels % 4:
        raise ValueError(f"sine position encoding needs channels divisible by 4, got {channels}")
    features = channels // 2
    y_embed = torch.arange(1, height + 1, dtype=torch.float32) / (height + 1e-6) * 2 * math.pi
    x_embed = torch.arange(1, width + 1, dtype=torch.float32) / (width + 1e-6) * 2 * math.pi
    dim_t = temperature ** (2 * (torch.arange(features, dtype=torch.float32) // 2) / features)

    def encode(positions: Tensor) -> Tensor:
        angles = positions[:, None] / dim_t
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=-1).flatten(1)

    pos_y = encode(y_embed)[:, None, :].expand(height, width, features)
    pos_x = encode(x_embed)[None, :, :].expand(height, width, features)
    return torch.cat((pos_y, pos_x), dim=-1).reshape(1, height * width, channels)


def shifted_window_labels(padded_size: Size3, window: Size3, shift: Size3, *, device: torch.device | None = None) -> Tensor:
    """Region label of every token of a cyclically shifted window partition.

    After rolling by ``-shift``, the last window along each shifted axis mixes tokens from the
    start and the end of the input. Tokens with different labels must not attend to each other;
    :func:`shift_mask` turns labels into the additive mask. Storing labels instead of the
    ``(nW, N, N)`` mask keeps memory linear in the number of tokens.

    Returns:
        int64 ``(nW, N)``, windows ordered as in :func:`window_partition`.
    """
    region_ids = []
    for size, ws, ss in zip(padded_size, window, shift):
        position = torch.arange(size, device=device)
        region = (position >= size - ws).long()
        if ss > 0:
            region = region + (position >= size - ss).long()
        region_ids.append(region)
    labels = region_ids[0].view(-1, 1, 1) * 9 + region_ids[1].view(1, -1, 1) * 3 + region_ids[2].view(1, 1, -1)
    return window_partition(labels[None, ..., None], window).squeeze(-1)


def shift_mask(labels: Tensor, dtype: torch.dtype) -> Tensor:
    """Additive mask ``(nW, N, N)``: 0 within a region, :data:`SHIFT_MASK_VALUE` across regions."""
    differs = labels[:, None, :] != labels[:, :, None]
    return differs.to(dtype) * SHIFT_MASK_VALUE


@dataclass(frozen=True, eq=False)
class ShiftedWindows:
    """Windows of a shifted partition grouped by their mask pattern.

    Only windows in the last slab along a shifted axis mix regions, so a partition has at most
    8 distinct masks. Attention runs once per pattern with a ``(1, heads, N, N)`` mask instead of
    a mask per window.

    Attributes:
        order: ``(nW,)`` window indices sorted by pattern.
        inverse: ``(nW,)`` the inverse permutation of ``order``.
        sizes: number of windows of each pattern, in ``order``.
        labels: ``(P, N)`` region labels of one window of each pattern.
    """

    order: Tensor
    inverse: Tensor
    sizes: tuple[int, ...]
    labels: Tensor

    def to(self, device: torch.device) -> ShiftedWindows:
        """Return a copy with the index tensors on ``device``."""
        if self.order.device == device:
            return self
        return ShiftedWindows(self.order.to(device), self.inverse.to(device), self.sizes, self.labels.to(device))


@functools.lru_cache(maxsize=64)
def shifted_windows(padded_size: Size3, window: Size3, shift: Size3) -> ShiftedWindows:
    """Group the windows of a shifted partition of ``padded_size`` by mask pattern (cached, CPU).

    The grouping is computed from the sizes alone in plain Python, so ``torch.compile`` folds it
    into constants instead of breaking the graph.
    """
    counts = [size // ws for size, ws in zip(padded_size, window)]

    # pattern bit per axis: the window is the last one along a shifted axis
    patterns = []
    for d, h, w in itertools.product(*(range(count) for count in counts)):
        bits = 0
        for axis, (position, count, ss) in enumerate(zip((d, h, w), counts, shift)):
            if ss > 0 and position == count - 1:
                bits |= 1 << axis
        patterns.append(bits)

    order = sorted(range(len(patterns)), key=patterns.__getitem__)
    inverse = [0] * len(order)
    for rank, window_index in enumerate(order):
        inverse[window_index] = rank
    present = sorted(set(patterns))
    sizes = tuple(patterns.count(pattern) for pattern in present)
    representatives = [patterns.index(pattern) for pattern in present]

    labels = shifted_window_labels(padded_size, window, shift)
    return ShiftedWindows(
        order=torch.tensor(order),
        inverse=torch.tensor(inverse),
        sizes=sizes,
        labels=labels[representatives],
    )


class WindowAttention(nn.Module):
    """Multi-head self attention inside 3-D windows, optionally with VRT's mutual attention.

    Mutual attention needs windows of exactly two frames: frame-1 tokens query frame 2 and
    frame-2 tokens query frame 1, with a sine position encoding instead of the relative bias.
    Its output is concatenated with the self-attention output before the projection.

    Args:
        dim: channels C.
        window: window size (Wd, Wh, Ww) the bias table is built for.
        num_heads: heads; must divide ``dim``.
        mutual: add mutual attention (then ``window[0]`` must be 2).
        qkv_bias: bias on the query/key/value projections.
    """

    def __init__(
        self,
        dim: int,
        window: Size3,
        num_heads: int,
        *,
        mutual: bool = False,
        qkv_bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if mutual and window[0] != 2:
            raise ValueError(f"mutual attention needs a window of 2 frames, got {window}")
        factory = {"device": device, "dtype": dtype}
        self.dim = dim
        self.window = tuple(window)
        self.num_heads = num_heads
        self.mutual = mutual

        table_size = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_size, num_heads, **factory))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        # recomputed, not stored: the checkpoint importer compares VRT's stored copies with these
        index = relative_position_index(self.window).to(device=device)
        self.register_buffer("relative_position_index", index, persistent=False)

        self.qkv_self = nn.Linear(dim, 3 * dim, bias=qkv_bias, **factory)
        self.proj = nn.Linear(2 * dim if mutual else dim, dim, **factory)
        if mutual:
            self.qkv_mut = nn.Linear(dim, 3 * dim, bias=qkv_bias, **factory)
            encoding = sine_position_encoding(window[1], window[2], dim).to(device=device, dtype=dtype)
            self.register_buffer("position_bias", encoding, persistent=False)

    def relative_bias(self, tokens: int) -> Tensor:
        """Relative position bias ``(num_heads, N, N)`` for windows of ``tokens`` tokens.

        A temporally shrunk window keeps the leading ``tokens`` rows and columns, which is exact
        because time is the outermost token axis.
        """
        index = self.relative_position_index[:tokens, :tokens]
        bias = self.relative_position_bias_table[index.reshape(-1)].view(tokens, tokens, self.num_heads)
        return rearrange(bias, "i j heads -> heads i j")

    def forward(self, x: Tensor, groups: ShiftedWindows | None = None) -> Tensor:
        """Attend within windows.

        Args:
            x: windows ``(B * nW, N, C)`` in :func:`window_partition` order.
            groups: pattern grouping of a shifted partition from :func:`shifted_windows`, or
                None for an unshifted partition.

        Returns:
            ``(B * nW, N, C)``.
        """
        tokens = x.shape[1]
        if groups is not None:
            # sort windows by mask pattern so each pattern is one contiguous run
            x = rearrange(x, "(b w) n c -> b w n c", w=groups.order.shape[0])[:, groups.order]
            x = rearrange(x, "b w n c -> (b w) n c")

        q, k, v = rearrange(self.qkv_self(x), "bw n (qkv heads d) -> qkv bw heads n d", qkv=3, heads=self.num_heads)
        bias = self.relative_bias(tokens).to(q.dtype).unsqueeze(0)
        out = self._attend(q, k, v, bias, groups, None if groups is None else groups.labels)

        if self.mutual:
            out = torch.cat((self._mutual_attention(x, groups), out), dim=-1)
        out = self.proj(out)

        if groups is not None:
            out = rearrange(out, "(b w) n c -> b w n c", w=groups.order.shape[0])[:, groups.inverse]
            out = rearrange(out, "b w n c -> (b w) n c")
        return out

    def _mutual_attention(self, x: Tensor, groups: ShiftedWindows | None) -> Tensor:
        """Cross-frame attention: frame-1 slots read frame 2 keyed by frame-2 queries, and back."""
        half = x.shape[1] // 2
        x = x + self.position_bias.to(x.dtype).repeat(1, 2, 1)
        q, k, v = rearrange(self.qkv_mut(x), "bw n (qkv heads d) -> qkv bw heads n d", qkv=3, heads=self.num_heads)
        q1, q2 = q.split(half, dim=2)
        k1, k2 = k.split(half, dim=2)
        v1, v2 = v.split(half, dim=2)

        # VRT masks both directions with the first-frame block of the shift mask; kept for parity
        half_labels = None if groups is None else groups.labels[:, :half]
        frame1 = self._attend(q2, k1, v1, None, groups, half_labels)
        frame2 = self._attend(q1, k2, v2, None, groups, half_labels)
        return torch.cat((frame1, frame2), dim=1)

    def _attend(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        bias: Tensor | None,
        groups: ShiftedWindows | None,
        labels: Tensor | None,
    ) -> Tensor:
        """Scaled dot-product attention over ``(B * nW, heads, N, d)`` windows.

        With ``groups``, the windows are in pattern order and run of pattern p gets mask
        ``bias + shift_mask(labels[p])``; otherwise every window gets ``bias``.

        Returns:
            ``(B * nW, N, heads * d)``.
        """
        if groups is None:
            return self._attend_chunks(q, k, v, bias)

        windows = groups.order.shape[0]
        batch = q.shape[0] // windows
        split = [rearrange(t, "(b w) heads n d -> b w heads n d", b=batch) for t in (q, k, v)]
        outputs = []
        start = 0
        for pattern, size in enumerate(groups.sizes):
            stop = start + size
            mask = shift_mask(labels[pattern : pattern + 1], q.dtype).unsqueeze(1)
            if bias is not None:
                mask = mask + bias
            q_run, k_run, v_run = (rearrange(t[:, start:stop], "b w heads n d -> (b w) heads n d") for t in split)
            outputs.append(rearrange(self._attend_chunks(q_run, k_run, v_run, mask), "(b w) n c -> b w n c", b=batch))
            start = stop
        return rearrange(torch.cat(outputs, dim=1), "b w n c -> (b w) n c")

    @staticmethod
    def _attend_chunks(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Attention with a mask shared by all windows, in chunks of :data:`ATTENTION_CHUNK_ELEMENTS`."""
        batch_windows, heads, tokens, _ = q.shape
        chunk = max(1, ATTENTION_CHUNK_ELEMENTS // (heads * tokens * tokens))
        outputs = [
            F.scaled_dot_product_attention(q[start : start + chunk], k[start : start + chunk], v[start : start + chunk], attn_mask=mask)
            for start in range(0, batch_windows, chunk)
        ]
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=0)
        return rearrange(out, "bw heads n d -> bw n (heads d)")
