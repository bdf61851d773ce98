"""MedMPT returns per-example losses whose per-sample gradients are independent under Opacus."""

import copy

import pytest
import torch
from opacus.grad_sample import get_gsm_class

from client_site.model import MedMPT, ModelConfig, patch_features, patchify
from client_site.ssl_masks import MaskingConfig, make_ssl_inputs
from client_site.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, ReportTokenizer

pytestmark = pytest.mark.usefixtures("single_thread")

TEXTS = ["FINDINGS: nodule.", "检查所见：胸腔积液。", "", "IMPRESSION: normal."]


def _batch(cfg, seed=0, has=(1.0, 1.0, 0.0, 1.0)):
    g = torch.Generator().manual_seed(seed)
    volume = torch.rand(len(has), 3, cfg.num_slices, cfg.image_size, cfg.image_size, generator=g)
    ids = torch.stack([ReportTokenizer().encode(t, cfg.text_max_len) for t in TEXTS[: len(has)]])
    return make_ssl_inputs(volume, ids, torch.tensor(has), model_cfg=cfg, masking=MaskingConfig(),
                           generator=g)


def _grad_samples(model, inputs, mode):
    gsm = get_gsm_class(mode)(model, batch_first=True, loss_reduction="sum")
    inputs = dict(inputs)
    gsm(inputs.pop("volume"), **inputs)[0].sum().backward()
    return {n: p.grad_sample.detach().clone() for n, p in model.named_parameters()}


def _ghost_norms(model, inputs):
    gsm = get_gsm_class("ghost")(model, batch_first=True, loss_reduction="sum", max_grad_norm=1.0)
    inputs = dict(inputs)
    gsm(inputs.pop("volume"), **inputs)[0].sum().backward()
    return gsm.get_norm_sample().detach().clone()


def test_forward_gives_per_example_losses_and_parts(tiny_cfg):
    # Prepare
    torch.manual_seed(0)
    model = MedMPT(tiny_cfg)
    inputs = _batch(tiny_cfg)
    # Execute
    loss, parts = model(**inputs)
    # Assert
    assert loss.shape == (4,) and torch.isfinite(loss).all()
    assert set(parts) == {"loss", "mim", "mlm", "gen"}
    assert not any(v.requires_grad for v in parts.values())
    # the example without a report carries only the image loss
    single, single_parts = model(**{k: v[2:3] for k, v in inputs.items()})
    assert torch.allclose(single, single_parts["mim"].reshape(1))


@pytest.mark.parametrize("mode", ["ew", "hooks", "ghost"])
def test_per_sample_gradients_are_independent(tiny_cfg, mode):
    # Prepare: batches that differ only in example 3
    torch.manual_seed(0)
    base = MedMPT(tiny_cfg)
    a, b = _batch(tiny_cfg, seed=1), _batch(tiny_cfg, seed=1)
    b["volume"][3] = torch.rand_like(b["volume"][3])
    b["text_ids"][3] = ReportTokenizer().encode("something else entirely", tiny_cfg.text_max_len)
    if mode == "ghost":  # ghost clipping keeps only per-sample gradient norms
        na, nb = _ghost_norms(copy.deepcopy(base), a), _ghost_norms(copy.deepcopy(base), b)
        torch.testing.assert_close(na[:3], nb[:3], rtol=1e-5, atol=1e-7)
        assert not torch.allclose(na[3], nb[3])
        # and the ghost norms are the norms of the true per-sample gradients
        ga = _grad_samples(copy.deepcopy(base), a, "ew")
        flat = torch.cat([g.reshape(4, -1) for g in ga.values()], dim=1)
        torch.testing.assert_close(na, flat.norm(dim=1), rtol=1e-4, atol=1e-6)
        return
    # Execute
    ga = _grad_samples(copy.deepcopy(base), a, mode)
    gb = _grad_samples(copy.deepcopy(base), b, mode)
    # Assert: examples 0..2 unchanged (bit-identical up to float reassociation), example 3 changed
    for name in ga:
        torch.testing.assert_close(ga[name][:3], gb[name][:3], rtol=1e-5, atol=1e-7)
    assert any(not torch.allclose(ga[n][3], gb[n][3]) for n in ga)


def test_grad_sample_equals_single_example_gradient(tiny_cfg):
    # Prepare
    torch.manual_seed(0)
    base = MedMPT(tiny_cfg)
    inputs = _batch(tiny_cfg, seed=2)
    # Execute
    per_sample = _grad_samples(copy.deepcopy(base), inputs, "ew")
    single = copy.deepcopy(base)
    single(**{k: v[1:2] for k, v in inputs.items()})[0].sum().backward()
    # Assert
    for name, p in single.named_parameters():
        torch.testing.assert_close(per_sample[name][1], p.grad, rtol=1e-4, atol=1e-7)


def test_encode_and_generate_shapes(tiny_cfg):
    # Prepare
    model = MedMPT(tiny_cfg).eval()
    volume = torch.rand(2, 3, tiny_cfg.num_slices, tiny_cfg.image_size, tiny_cfg.image_size)
    # Execute
    slice_emb, scan_emb = model.encode_scan(volume)
    ids = model.generate_report(volume, max_len=12)
    # Assert
    assert slice_emb.shape == (2, tiny_cfg.num_slices, tiny_cfg.dim)
    assert scan_emb.shape == (2, tiny_cfg.dim)
    assert ids.shape == (2, 12) and (ids[:, 0] == BOS_ID).all()
    assert isinstance(ReportTokenizer().decode(ids[0]), str)


def test_free_generation_emits_only_lexicon_words(tiny_cfg):
    # Prepare: an untrained decoder whose LM head prefers single letters and UNK
    torch.manual_seed(0)
    model = MedMPT(tiny_cfg).eval()
    tok = ReportTokenizer()
    with torch.no_grad():
        model.report_decoder.head.bias[[UNK_ID, *tok.tokens("qxzj")]] = 50.0
    volume = torch.rand(2, 3, tiny_cfg.num_slices, tiny_cfg.image_size, tiny_cfg.image_size)
    # Execute
    texts = [tok.decode(row) for row in model.generate_report(volume, max_len=40)]
    # Assert
    assert all(text and tok.unknown_words(text) == [] for text in texts), texts


def test_cached_decoding_steps_equal_the_full_causal_forward(tiny_cfg):
    torch.manual_seed(0)
    model = MedMPT(tiny_cfg).eval()
    volume = torch.rand(2, 3, tiny_cfg.num_slices, tiny_cfg.image_size, tiny_cfg.image_size)
    ids = torch.randint(0, 256, (2, 10))
    with torch.no_grad():
        memory = model.image_memory(volume)
        full = model.report_decoder(ids, memory)
        caches = [{} for _ in model.report_decoder.blocks]
        steps = torch.stack([model.report_decoder.next_logits(ids[:, t:t + 1], t, memory, caches)
                             for t in range(ids.shape[1])], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-4)


def test_greedy_reports_are_the_argmax_of_the_full_forward_at_every_step(tiny_cfg):
    torch.manual_seed(1)
    model = MedMPT(tiny_cfg).eval()
    volume = torch.rand(2, 3, tiny_cfg.num_slices, tiny_cfg.image_size, tiny_cfg.image_size)
    with torch.no_grad():
        ids = model.generate_report(volume, max_len=16)
        logits = model.report_decoder(ids[:, :-1].contiguous(), model.image_memory(volume))
    logits[..., ~ReportTokenizer().lexicon_only()] = float("-inf")
    for row in range(2):
        tokens = ids[row, 1:].tolist()
        end = tokens.index(EOS_ID) if EOS_ID in tokens else len(tokens) - 1  # the last is forced EOS
        assert tokens[:end] == logits[row, :end].argmax(dim=-1).tolist()


def test_bad_inputs_are_refused(tiny_cfg):
    model = MedMPT(tiny_cfg)
    inputs = _batch(tiny_cfg)
    inputs["image_mask"][0, 0, :] = False  # unequal masked counts per slice
    with pytest.raises(ValueError, match="image_mask"):
        model(**inputs)
    with pytest.raises(ValueError, match="volume"):
        model.encode_scan(torch.rand(1, 3, 2, 8, 8))


def test_no_opacus_pitfalls(tiny_cfg):
    # top-level parameters and BatchNorm break Opacus; keys must be plain
    model = MedMPT(tiny_cfg)
    assert not list(model.parameters(recurse=False))
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    ptrs = [p.data_ptr() for p in model.parameters()]
    assert len(ptrs) == len(set(ptrs))  # no tied weights


def test_patch_features_append_one_soft_histogram_per_window():
    # Prepare: window 0 uniform at a bin centre, window 1 halfway between two centres
    patches = torch.cat([torch.full((1, 4), 0.25), torch.full((1, 4), 0.375)], dim=-1)
    # Execute
    features = patch_features(patches, in_windows=2, bins=5)
    # Assert: pixels kept first, then 5 fractions per window that sum to 1
    assert features.shape == (1, 8 + 2 * 5)
    assert torch.equal(features[:, :8], patches)
    assert torch.allclose(features[0, 8:13], torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]))
    assert torch.allclose(features[0, 13:], torch.tensor([0.0, 0.5, 0.5, 0.0, 0.0]))
    assert torch.equal(patch_features(patches, in_windows=2, bins=0), patches)


def test_patch_embedding_reads_histograms_and_mae_target_stays_pixels(tiny_cfg):
    model = MedMPT(tiny_cfg)
    c = tiny_cfg
    assert model.patch_embed.in_features == c.patch_dim + c.in_windows * c.intensity_bins
    assert model.mae_decoder.head.out_features == c.patch_dim
    # the same pixel sum per patch, a different density spread: only the histograms tell them apart
    flat = torch.full((1, 3, c.num_slices, c.image_size, c.image_size), 0.5)
    spread = flat.clone()
    spread[..., ::2] = 0.0
    spread[..., 1::2] = 1.0
    flat_feat, spread_feat = (patch_features(patchify(v, c.patch_size), c.in_windows, c.intensity_bins)
                              for v in (flat, spread))
    assert torch.allclose(flat_feat[..., : c.patch_dim].sum(-1), spread_feat[..., : c.patch_dim].sum(-1))
    assert not torch.allclose(flat_feat[..., c.patch_dim :], spread_feat[..., c.patch_dim :])


def test_intensity_bins_are_validated():
    with pytest.raises(ValueError, match="intensity_bins"):
        ModelConfig(intensity_bins=1)
