"""Transformer pieces of :mod:`client_site.model`, written for Opacus per-sample gradients.

Every trainable leaf is an ``nn.Linear``, ``nn.LayerNorm`` or ``nn.Embedding`` that sees a
batch-first tensor, so the hooks, functorch, ew (ExpandedWeights) and ghost modes of Opacus all
compute per-patient gradients (no ``nn.MultiheadAttention``, no BatchNorm, no bare
``nn.Parameter``). Attention is ``F.scaled_dot_product_attention`` (parameter-free).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Positions(nn.Module):
    """Learned absolute position embeddings added to ``(B, T, E)`` tokens.

    The table is an ``nn.Embedding`` looked up with batch-first contiguous ids, so every
    Opacus mode (hooks, functorch, ew, ghost) computes its per-sample gradient.
    """

    def __init__(self, num_positions: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding(num_positions, dim)

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Add the embeddings of ``ids`` (B, T) (default: ``0..T-1``) to ``x`` (B, T, E)."""
        if ids is None:
            ids = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
        return x + self.table(ids.contiguous())


class Attention(nn.Module):
    """Multi-head attention with ``nn.Linear`` projections and ``F.scaled_dot_product_attention``.

    Self-attention when ``context`` is None (one fused qkv projection), else cross-attention.
    ``group`` splits the T tokens into ``group`` independent sequences (slices) that attend only
    within themselves, while every Linear still sees a batch-first ``(B, T, E)`` tensor.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.cross = context_dim is not None
        if self.cross:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(context_dim, 2 * dim)
        else:
            self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor, parts: int, group: int) -> torch.Tensor:
        b, t, _ = x.shape  # (B, T, parts*E) -> (parts, B, G, H, T/G, E/H)
        x = x.reshape(b, group, t // group, parts, self.heads, -1)
        return x.permute(3, 0, 1, 4, 2, 5)

    def forward(
        self, x: torch.Tensor, *, group: int = 1, causal: bool = False,
        key_mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t, e = x.shape
        if self.cross:
            q = self._split(self.q(x), 1, 1)[0]
            k, v = self._split(self.kv(context), 2, 1)
        else:
            q, k, v = self._split(self.qkv(x), 3, group)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, is_causal=causal)
        return self.proj(out.permute(0, 1, 3, 2, 4).reshape(b, t, e))

    def incremental(
        self, x: torch.Tensor, cache: dict[str, torch.Tensor], *, context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention of the newest token ``x`` (B, 1, E) during causal decoding (inference only).

        ``cache`` holds the keys and values seen so far and is updated in place: self-attention
        appends the new token's, cross-attention projects ``context`` once. Equals the last
        position of :meth:`forward` with ``causal=True`` over the whole prefix.
        """
        b, t, e = x.shape
        if self.cross:
            q = self._split(self.q(x), 1, 1)[0]
            if "k" not in cache:
                cache["k"], cache["v"] = self._split(self.kv(context), 2, 1)
        else:
            q, k, v = self._split(self.qkv(x), 3, 1)
            cache["k"] = k if "k" not in cache else torch.cat([cache["k"], k], dim=-2)
            cache["v"] = v if "v" not in cache else torch.cat([cache["v"], v], dim=-2)
        out = F.scaled_dot_product_attention(q, cache["k"], cache["v"])
        return self.proj(out.permute(0, 1, 3, 2, 4).reshape(b, t, e))


class Block(nn.Module):
    """Pre-LN transformer block: self-attention, optional cross-attention, GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.cross = None
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(dim)
            self.cross = Attention(dim, heads, context_dim=context_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)

    def forward(
        self, x: torch.Tensor, *, group: int = 1, causal: bool = False,
        key_mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x`` (B, T, dim), ``context`` (B, M, context_dim) -> (B, T, dim)."""
        x = x + self.attn(self.norm1(x), group=group, causal=causal, key_mask=key_mask)
        if self.cross is not None:
            x = x + self.cross(self.norm_cross(x), context=context)
        return self._mlp(x)

    def incremental(
        self, x: torch.Tensor, cache: dict[str, dict[str, torch.Tensor]], *, context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The newest token (B, 1, dim) of causal decoding, with cached keys and values
        (:meth:`Attention.incremental`; ``cache`` starts empty and is updated in place)."""
        x = x + self.attn.incremental(self.norm1(x), cache.setdefault("self", {}))
        if self.cross is not None:
            x = x + self.cross.incremental(self.norm_cross(x), cache.setdefault("cross", {}), context=context)
        return self._mlp(x)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))
