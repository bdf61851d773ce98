"""MedMPT-style chest-CT + report model whose training loss is per-example (DP-SGD ready).

Architecture (after Ma et al., "A vision-language pretrained transformer for versatile clinical
respiratory disease applications", Nat. Biomed. Eng. 2025):

* slice level: a 2D ViT encodes every axial slice (3 CT windows = 3 channels) -> slice embeddings;
* scan level: a small fusion transformer over the slice embeddings -> one scan embedding;
* text: a bidirectional report encoder (masked report modelling) and a causal report decoder
  that cross-attends to the multi-scale image memory (fused slices + scan token).

Training objectives, all decomposable per example (valid under patient-level DP-SGD):
masked image modelling (MAE: the encoder sees only visible patches, a light decoder
reconstructs the masked ones, MSE on masked patches only), masked report modelling and
image-conditioned report generation (teacher forcing).

Opacus constraints that shaped the code:
every token tensor is batch-first and 3D ``(B, T, dim)`` (Opacus' ghost-clipping Linear norm
sampler handles only 2D/3D inputs, and a ``(B * D, ...)`` layout would make per-sample
gradients per slice instead of per patient); patches are embedded with a Linear layer over their
pixels (the same map as a Conv2d with kernel = stride = patch) plus a parameter-free soft
intensity histogram per window (:func:`patch_features`); positions and the MAE mask token are
``nn.Embedding`` lookups on batch-first, contiguous ids; no top-level ``nn.Parameter``, no
weight tying, no BatchNorm, no ``nn.MultiheadAttention``; masks come in as inputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from client_site.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE, ReportTokenizer
from client_site.transformer import Block, Positions

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100

LossParts = dict[str, torch.Tensor]
"""Detached batch means of the parts of a per-example loss, ``"loss"`` (the total) first."""


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of :class:`MedMPT` (defaults: a CPU demo model, about 1.4 M parameters).

    Parameters
    ----------
    in_windows, num_slices, image_size : int
        Input volume ``(in_windows, num_slices, image_size, image_size)``. (default: 3, 16, 64)
    patch_size : int
        Square patch side in pixels. (default: 8)
    dim, heads, slice_depth, fusion_depth : int
        Image width, attention heads, slice-ViT and fusion-transformer depths. (default: 96, 4, 3, 2)
    mlp_ratio : int
        MLP hidden width / model width. (default: 4)
    intensity_bins : int
        Bins of the soft intensity histogram of each window's pixels appended to every patch
        token's input (:func:`patch_features`); 0 = raw pixels only. (default: 8)
    mae_decoder_dim, mae_decoder_depth : int
        Light MAE decoder. (default: 64, 1)
    text_max_len, text_dim, text_encoder_depth, text_decoder_depth : int
        Report length in tokens and text widths/depths. (default: 192, 96, 2, 2)
    vocab_size : int
        Report-tokenizer vocabulary (:data:`client_site.tokenizer.VOCAB_SIZE`, the shipped lexicon).
    mim_weight, mlm_weight, gen_weight : float
        Weights of the three objectives in the per-example loss. (default: 1.0 each)
    """

    in_windows: int = 3
    num_slices: int = 16
    image_size: int = 64
    patch_size: int = 8
    dim: int = 96
    heads: int = 4
    slice_depth: int = 3
    fusion_depth: int = 2
    mlp_ratio: int = 4
    intensity_bins: int = 8
    mae_decoder_dim: int = 64
    mae_decoder_depth: int = 1
    text_max_len: int = 192
    text_dim: int = 96
    text_encoder_depth: int = 2
    text_decoder_depth: int = 2
    vocab_size: int = VOCAB_SIZE
    mim_weight: float = 1.0
    mlm_weight: float = 1.0
    gen_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})"
            )
        if self.intensity_bins < 0 or self.intensity_bins == 1:
            raise ValueError(f"intensity_bins must be 0 or >= 2, got {self.intensity_bins}")
        for name, width in (("dim", self.dim), ("text_dim", self.text_dim),
                            ("mae_decoder_dim", self.mae_decoder_dim)):
            if width % self.heads:
                raise ValueError(f"{name} ({width}) must be a multiple of heads ({self.heads})")

    @property
    def patches_per_slice(self) -> int:
        """Number of patches N in one slice."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        """Pixels per patch, all windows: ``in_windows * patch_size**2`` (the MAE target)."""
        return self.in_windows * self.patch_size**2

    @property
    def patch_feature_dim(self) -> int:
        """Input width of the patch embedding: pixels + ``in_windows * intensity_bins``."""
        return self.patch_dim + self.in_windows * self.intensity_bins


def patchify(volume: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, C, D, H, W)`` -> ``(B, D, N, C * p * p)`` non-overlapping slice patches."""
    b, c, d, h, w = volume.shape
    p = patch_size
    x = volume.reshape(b, c, d, h // p, p, w // p, p)
    return x.permute(0, 2, 3, 5, 1, 4, 6).reshape(b, d, (h // p) * (w // p), c * p * p)


def patch_features(patches: torch.Tensor, in_windows: int, bins: int) -> torch.Tensor:
    """Raw pixels plus a soft intensity histogram of each window: ``(..., P)`` -> ``(..., P + C * K)``.

    Pixel ``v`` (clamped to [0, 1]) votes ``max(0, 1 - |v - k / (K - 1)| * (K - 1))`` for bin
    ``k`` (linear interpolation between the two nearest of ``K`` evenly spaced centres); the
    votes are averaged over the patch's pixels of each window, so each window's ``K`` fractions
    sum to 1. A linear patch embedding reads the patch's density distribution from them, which
    raw pixels alone give it only as a mean that the transformer's LayerNorms partly normalise
    away. Parameter-free input feature engineering: per-sample gradients are unaffected.

    Parameters
    ----------
    patches : torch.Tensor
        ``(..., C * p * p)`` window-major patch pixels (:func:`patchify`).
    in_windows : int
        Windows ``C``.
    bins : int
        Histogram bins ``K``; 0 returns ``patches`` unchanged.
    """
    if bins == 0:
        return patches
    pixels = patches.reshape(*patches.shape[:-1], in_windows, -1, 1).clamp(0.0, 1.0)
    centres = torch.linspace(0.0, 1.0, bins, device=patches.device, dtype=patches.dtype)
    votes = (1.0 - (pixels - centres).abs() * (bins - 1)).clamp(min=0.0)
    return torch.cat([patches, votes.mean(dim=-2).flatten(-2)], dim=-1)


def _gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``x`` (B, D, N, E), ``ids`` (B, D, n) -> (B, D, n, E)."""
    return torch.gather(x, 2, ids.unsqueeze(-1).expand(*ids.shape, x.shape[-1]))


def _per_example_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the non-ignored targets of each example -> (B,)."""
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="none",
    ).reshape(targets.shape)
    count = (targets != IGNORE_INDEX).sum(dim=1).clamp(min=1)
    return ce.sum(dim=1) / count


class _TextTransformer(nn.Module):
    """Token + position embedding, blocks with cross-attention to the image memory, LM head."""

    def __init__(self, cfg: ModelConfig, depth: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.text_dim)
        self.positions = Positions(cfg.text_max_len, cfg.text_dim)
        self.blocks = nn.ModuleList(
            Block(cfg.text_dim, cfg.heads, cfg.mlp_ratio, context_dim=cfg.dim) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(cfg.text_dim)
        self.head = nn.Linear(cfg.text_dim, cfg.vocab_size)  # untied: ghost clipping forbids tying

    def forward(self, ids: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, L) contiguous, ``memory`` (B, M, dim) -> logits (B, L, vocab)."""
        x = self.positions(self.tokens(ids))
        # Causal decoding never looks past EOS, so only the bidirectional encoder masks PAD keys.
        keep = None if self.causal else (ids != PAD_ID)[:, None, None, None, :]
        for block in self.blocks:
            x = block(x, causal=self.causal, key_mask=keep, context=memory)
        return self.head(self.norm(x))

    def next_logits(
        self, ids: torch.Tensor, position: int, memory: torch.Tensor, caches: list[dict[str, dict[str, torch.Tensor]]],
    ) -> torch.Tensor:
        """Causal decoding step: token ``ids`` (B, 1) at ``position`` -> next-token logits (B, vocab).

        ``caches`` (one empty dict per block at the first step) keep the keys and values of the
        earlier positions, so a step costs one token instead of the whole prefix; the logits
        equal the last position of :meth:`forward` on the prefix.
        """
        x = self.positions(self.tokens(ids), torch.full_like(ids, position))
        for block, cache in zip(self.blocks, caches, strict=True):
            x = block.incremental(x, cache, context=memory)
        return self.head(self.norm(x))[:, -1]


class _PatchDecoder(nn.Module):
    """Light MAE decoder: visible tokens + mask tokens -> pixels of the masked patches."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.Linear(cfg.dim, cfg.mae_decoder_dim)
        self.mask_type = nn.Embedding(2, cfg.mae_decoder_dim)  # 1 = the learned mask token
        self.positions = Positions(cfg.patches_per_slice, cfg.mae_decoder_dim)
        self.blocks = nn.ModuleList(
            Block(cfg.mae_decoder_dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.mae_decoder_depth)
        )
        self.norm = nn.LayerNorm(cfg.mae_decoder_dim)
        self.head = nn.Linear(cfg.mae_decoder_dim, cfg.patch_dim)

    def forward(
        self, visible: torch.Tensor, ids_keep: torch.Tensor, ids_masked: torch.Tensor,
        image_mask: torch.Tensor,
    ) -> torch.Tensor:
        """``visible`` (B, D*n_vis, dim) -> predicted masked patches (B, D, n_mask, patch_dim)."""
        b, d, n = image_mask.shape
        vis = self.embed(visible).reshape(b, d, ids_keep.shape[-1], -1)
        full = vis.new_zeros(b, d, n, vis.shape[-1])
        full = full.scatter(2, ids_keep.unsqueeze(-1).expand_as(vis), vis).reshape(b, d * n, -1)
        full = full + self.mask_type(image_mask.reshape(b, d * n).long())
        pos_ids = torch.arange(n, device=full.device).repeat(d).expand(b, -1).contiguous()
        x = self.positions(full, pos_ids)
        for block in self.blocks:
            x = block(x, group=d)
        x = _gather_tokens(self.norm(x).reshape(b, d, n, -1), ids_masked)
        return self.head(x.reshape(b, -1, x.shape[-1])).reshape(b, d, ids_masked.shape[-1], -1)


class MedMPT(nn.Module):
    """Slice ViT -> fusion transformer -> scan embedding, plus report encoder/decoder."""

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        self.patch_embed = nn.Linear(cfg.patch_feature_dim, cfg.dim)
        self.patch_positions = Positions(cfg.patches_per_slice, cfg.dim)
        self.slice_blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.slice_depth)
        )
        self.slice_norm = nn.LayerNorm(cfg.dim)
        self.slice_positions = Positions(cfg.num_slices, cfg.dim)
        self.fusion_blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.fusion_depth)
        )
        self.fusion_norm = nn.LayerNorm(cfg.dim)
        self.mae_decoder = _PatchDecoder(cfg)
        self.report_encoder = _TextTransformer(cfg, cfg.text_encoder_depth, causal=False)
        self.report_decoder = _TextTransformer(cfg, cfg.text_decoder_depth, causal=True)
        self.apply(init_weights)

    # ----------------------------------------------------------------- image
    def _check_volume(self, volume: torch.Tensor) -> None:
        c = self.cfg
        expected = (c.in_windows, c.num_slices, c.image_size, c.image_size)
        if volume.dim() != 5 or tuple(volume.shape[1:]) != expected:
            raise ValueError(f"volume must be (B, {', '.join(map(str, expected))}), got {tuple(volume.shape)}")

    def _encode(self, patches: torch.Tensor, pos_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Raw patches (B, D, n, P) at slice positions ``pos_ids`` (B, D, n).

        Returns tokens (B, D*n, dim), slice embeddings (B, D, dim), fused slices (B, D, dim)
        and the scan embedding (B, dim).
        """
        b, d, n, _ = patches.shape
        features = patch_features(patches, self.cfg.in_windows, self.cfg.intensity_bins)
        x = self.patch_embed(features.reshape(b, d * n, -1))
        x = self.patch_positions(x, pos_ids.reshape(b, d * n))
        for block in self.slice_blocks:
            x = block(x, group=d)  # attention stays within each slice
        tokens = self.slice_norm(x)
        slice_emb = tokens.reshape(b, d, n, -1).mean(dim=2)
        fused = self.slice_positions(slice_emb)
        for block in self.fusion_blocks:
            fused = block(fused)
        fused = self.fusion_norm(fused)
        return tokens, slice_emb, fused, fused.mean(dim=1)

    def encode_scan(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Volume (B, 3, D, H, W) -> slice embeddings (B, D, dim) and scan embedding (B, dim)."""
        self._check_volume(volume)
        patches = patchify(volume, self.cfg.patch_size)
        b, d, n, _ = patches.shape
        pos_ids = torch.arange(n, device=volume.device).expand(b, d, n)
        _, slice_emb, _, scan_emb = self._encode(patches, pos_ids)
        return slice_emb, scan_emb

    def image_memory(self, volume: torch.Tensor) -> torch.Tensor:
        """Multi-scale image memory of the full (unmasked) volume: fused slices + scan token.

        Volume (B, 3, D, H, W) -> (B, D + 1, dim); the last token is the scan embedding.
        The report decoder cross-attends to it.
        """
        return self.encode_volume(volume)[1]

    def encode_volume(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch tokens and image memory of the full (unmasked) volume in one pass.

        Volume (B, 3, D, H, W) -> patch tokens (B, D * N, dim) of the slice ViT (slice-major)
        and the image memory (B, D + 1, dim) of :meth:`image_memory`.
        """
        self._check_volume(volume)
        patches = patchify(volume, self.cfg.patch_size)
        b, d, n, _ = patches.shape
        tokens, _, fused, scan = self._encode(patches, torch.arange(n, device=volume.device).expand(b, d, n))
        return tokens, torch.cat([fused, scan.unsqueeze(1)], dim=1)

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def generate_report(self, volume: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
        """Greedy report decoding -> ids (B, max_len): BOS, tokens, EOS, then PAD (keys and
        values of earlier positions are cached: linear, not quadratic, in the length).

        Only lexicon tokens are emitted (:meth:`~client_site.tokenizer.ReportTokenizer.lexicon_only`):
        no PAD before EOS, no UNK and no letters that would spell a word outside the lexicon.
        """
        max_len = min(max_len or self.cfg.text_max_len, self.cfg.text_max_len)
        memory = self.image_memory(volume)
        b = volume.shape[0]
        ids = torch.full((b, max_len), PAD_ID, dtype=torch.long, device=volume.device)
        ids[:, 0] = BOS_ID
        done = torch.zeros(b, dtype=torch.bool, device=volume.device)
        caches: list[dict[str, dict[str, torch.Tensor]]] = [{} for _ in self.report_decoder.blocks]
        banned = ~ReportTokenizer().lexicon_only()[: self.cfg.vocab_size].to(volume.device)
        for t in range(1, max_len):
            logits = self.report_decoder.next_logits(ids[:, t - 1:t], t - 1, memory, caches)
            logits = logits.masked_fill(banned, float("-inf"))
            token = logits.argmax(dim=-1)
            if t == max_len - 1:
                token = torch.full_like(token, EOS_ID)  # close unfinished reports
            ids[:, t] = torch.where(done, torch.full_like(token, PAD_ID), token)
            done |= token == EOS_ID
            if bool(done.all()):
                break
        return ids

    # -------------------------------------------------------------- training
    def generation_loss(self, text_ids: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Teacher-forced report-generation cross-entropy per example (B,).

        ``text_ids`` (B, L) BOS/tokens/EOS/PAD, ``memory`` (B, M, dim) image memory; PAD
        targets are ignored.
        """
        dec_in = text_ids[:, :-1].contiguous()  # ghost clipping needs contiguous embedding ids
        target = text_ids[:, 1:].masked_fill(text_ids[:, 1:] == PAD_ID, IGNORE_INDEX).contiguous()
        return _per_example_ce(self.report_decoder(dec_in, memory), target)

    def forward(
        self, volume: torch.Tensor, image_mask: torch.Tensor, text_ids: torch.Tensor,
        text_mlm_ids: torch.Tensor, text_mlm_targets: torch.Tensor, has_report: torch.Tensor,
    ) -> tuple[torch.Tensor, LossParts]:
        """Per-example SSL loss (B,) and the batch means of its parts (``loss``, ``mim``, ``mlm``, ``gen``).

        Parameters
        ----------
        volume : torch.Tensor
            ``(B, 3, D, H, W)`` float in [0, 1].
        image_mask : torch.Tensor
            ``(B, D, N)`` bool, True = masked patch; the same count in every slice
            (:func:`client_site.ssl_masks.sample_image_mask`).
        text_ids : torch.Tensor
            ``(B, L)`` BOS/tokens/EOS/PAD ids (teacher forcing input and target).
        text_mlm_ids, text_mlm_targets : torch.Tensor
            ``(B, L)`` corrupted ids and targets (``-100`` = not predicted).
        has_report : torch.Tensor
            ``(B,)`` 1.0 where the study has a report, else 0.0 (text losses are zeroed).
        """
        self._check_volume(volume)
        c = self.cfg
        patches = patchify(volume, c.patch_size)  # (B, D, N, P)
        b, d, n, _ = patches.shape
        n_mask = int(image_mask[0, 0].sum()) if b else 0
        if image_mask.shape != (b, d, n) or bool((image_mask.sum(dim=-1) != n_mask).any()):
            raise ValueError(
                f"image_mask must be bool (B, D, N) = {(b, d, n)} with the same number of masked "
                f"patches per slice, got shape {tuple(image_mask.shape)}"
            )
        order = torch.argsort(image_mask.to(torch.int8), dim=-1, stable=True)  # visible first
        ids_keep, ids_masked = order[..., : n - n_mask], order[..., n - n_mask :]
        tokens, _, fused, scan = self._encode(_gather_tokens(patches, ids_keep), ids_keep)
        pred = self.mae_decoder(tokens, ids_keep, ids_masked, image_mask)
        mim = (pred - _gather_tokens(patches, ids_masked)).pow(2).mean(dim=(1, 2, 3))

        memory = torch.cat([fused, scan.unsqueeze(1)], dim=1)  # multi-scale: slices + scan
        mlm = _per_example_ce(self.report_encoder(text_mlm_ids.contiguous(), memory), text_mlm_targets)
        gen = self.generation_loss(text_ids, memory)

        has = has_report.to(mim.dtype)
        loss = c.mim_weight * mim + has * (c.mlm_weight * mlm + c.gen_weight * gen)
        n_rep = has.sum().clamp(min=1)
        parts = {
            "loss": loss.detach().mean(),
            "mim": mim.detach().mean(),
            "mlm": (mlm.detach() * has).sum() / n_rep,
            "gen": (gen.detach() * has).sum() / n_rep,
        }
        return loss, parts


def init_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) Linear/Embedding weights and zero biases (ViT/GPT-2 init)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.trunc_normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
