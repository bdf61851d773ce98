"""Masks are drawn outside the model from an explicit generator."""

import torch

from client_site.model import IGNORE_INDEX
from client_site.ssl_masks import PerExampleLoss, mask_report_tokens, sample_image_mask
from client_site.tokenizer import MASK_ID, UNK_ID, ReportTokenizer


def test_image_mask_has_fixed_count_per_slice_and_is_reproducible():
    # Execute
    m1 = sample_image_mask(3, 4, 16, ratio=0.5, generator=torch.Generator().manual_seed(1))
    m2 = sample_image_mask(3, 4, 16, ratio=0.5, generator=torch.Generator().manual_seed(1))
    # Assert
    assert m1.dtype == torch.bool and m1.shape == (3, 4, 16)
    assert (m1.sum(dim=-1) == 8).all()
    assert torch.equal(m1, m2)


def test_mlm_selects_only_text_tokens_bert_style():
    # Prepare
    ids = torch.stack([ReportTokenizer().encode("x" * 500, 512) for _ in range(8)])
    # Execute
    corrupted, targets = mask_report_tokens(ids, probability=0.15, generator=torch.Generator().manual_seed(0))
    # Assert
    selected = targets != IGNORE_INDEX
    assert (ids[selected] >= UNK_ID).all()
    assert 0.12 < selected.float().mean().item() < 0.18
    assert torch.equal(targets[selected], ids[selected])
    frac_mask = (corrupted[selected] == MASK_ID).float().mean().item()
    assert 0.7 < frac_mask < 0.9
    assert torch.equal(corrupted[~selected], ids[~selected])


def test_per_example_loss_reductions():
    # Prepare
    losses = torch.tensor([1.0, 2.0, 3.0])
    crit = PerExampleLoss()
    # Execute / Assert
    assert crit(losses).item() == 2.0
    crit.reduction = "none"
    assert torch.equal(crit(losses, None), losses)
    crit.reduction = "sum"
    assert crit(losses).item() == 6.0
