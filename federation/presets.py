"""Consortium-wide model presets: the model's size and the input grid every site ingests to.

All sites and the aggregator must agree on the preset of a run; it travels by name in the
train/evaluate config and is checked against each site's cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from client_site.ingestion.preprocess import PreprocessConfig
from client_site.model import ModelConfig


@dataclass(frozen=True)
class Preset:
    """A model size with the input grid its sites must ingest to."""

    model: ModelConfig
    preprocess: PreprocessConfig


PRESETS: dict[str, Preset] = {
    # CPU demo: 16 axial slices of 64x64 at 16 x 5 x 5 mm covers a 256 x 320 x 320 mm chest.
    # 256 report tokens (lexicon tokenizer: a word, a digit, a punctuation mark, a space or a
    # Chinese character each) hold every synthetic report of one or two findings whole
    # (single-finding reports: 99th percentile 272 tokens in English, 173 in Chinese).
    "demo": Preset(
        model=ModelConfig(num_slices=16, image_size=64, text_max_len=256),
        preprocess=PreprocessConfig(spacing_mm=(16.0, 5.0, 5.0), shape=(16, 64, 64)),
    ),
    # Test suite: same anatomy coverage, coarser and smaller, so a round takes seconds.
    "tiny": Preset(
        model=ModelConfig(
            num_slices=8, image_size=32, dim=32, heads=2, slice_depth=1, fusion_depth=1,
            mae_decoder_dim=32, text_max_len=96, text_dim=32, text_encoder_depth=1,
            text_decoder_depth=1,
        ),
        preprocess=PreprocessConfig(spacing_mm=(32.0, 10.0, 10.0), shape=(8, 32, 32)),
    ),
}


def get_preset(name: str) -> Preset:
    """Look up a preset by name, with a helpful error."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}") from None
