"""ClinicalMedMPT: per-example (DP-valid) loss, masking of missing targets, pretrained weights."""

import copy

import pytest
import torch
from opacus.grad_sample import get_gsm_class

from client_site.downstream import BACKBONE_PREFIX, ClinicalMedMPT, HeadConfig
from client_site.downstream.heads import NUM_FEATURES, encode_image_features
from client_site.findings import FINDINGS
from client_site.model import MedMPT
from client_site.reference.formulary import FORMULARY

pytestmark = pytest.mark.usefixtures("single_thread")


def test_batch_loss_equals_the_losses_of_each_example_alone(tiny_cfg, downstream_batch):
    # Prepare
    torch.manual_seed(0)
    model = ClinicalMedMPT(tiny_cfg).eval()
    batch = downstream_batch(tiny_cfg, len(FORMULARY))
    # Execute
    together, parts = model(**batch)
    alone = torch.cat([model(**{k: v[i:i + 1] for k, v in batch.items()})[0] for i in range(4)])
    # Assert
    assert together.shape == (4,)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    assert set(parts) == {"loss", "diag", "med", "ddi"}  # no "gen": the decoder is frozen
    assert not any(v.requires_grad for v in parts.values())


def test_missing_report_and_record_mask_their_terms(tiny_cfg, downstream_batch):
    # Prepare: patient 2 has neither, patient 3 only a report
    torch.manual_seed(0)
    model = ClinicalMedMPT(tiny_cfg).eval()
    batch = downstream_batch(tiny_cfg, len(FORMULARY))
    no_gen = ClinicalMedMPT(tiny_cfg, heads=HeadConfig(gen_weight=0.0, diag_weight=0.0)).eval()
    no_gen.load_state_dict(model.state_dict())
    # Execute
    loss, _ = model(**batch)
    without_report_terms, _ = no_gen(**batch)
    # Assert
    assert loss[2] == 0.0 and loss[0] > 0 and loss[3] > 0
    assert without_report_terms[3] == 0.0 and without_report_terms[0] > 0  # 3 has no med/ddi terms


@pytest.mark.parametrize("heads", [HeadConfig(), HeadConfig(train_encoder=True, train_report_decoder=True)])
def test_every_trainable_parameter_gets_the_single_example_gradient(tiny_cfg, downstream_batch, heads):
    # Prepare: Opacus "ew" per-sample gradients, as DP-SGD computes them
    torch.manual_seed(0)
    base = ClinicalMedMPT(tiny_cfg, heads=heads)
    batch = downstream_batch(tiny_cfg, len(FORMULARY), seed=1)
    gsm = get_gsm_class("ew")(copy.deepcopy(base), batch_first=True, loss_reduction="sum")
    inputs = dict(batch)
    # Execute
    gsm(inputs.pop("volume"), **inputs)[0].sum().backward()
    per_sample = {n: p.grad_sample for n, p in gsm._module.named_parameters() if p.requires_grad}
    single = copy.deepcopy(base)
    single(**{k: v[0:1] for k, v in batch.items()})[0].sum().backward()
    # Assert
    trainable = [n for n, p in single.named_parameters() if p.requires_grad]
    assert set(per_sample) == set(trainable) and all(g is not None for g in per_sample.values())
    for name, p in single.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(per_sample[name][0], p.grad, rtol=1e-4, atol=1e-6)
    assert not any(n.startswith(("backbone.mae_decoder", "backbone.report_encoder")) for n in trainable)


def test_only_the_heads_are_trained_privately_by_default(tiny_cfg, downstream_batch):
    # Prepare
    heads_only = ClinicalMedMPT(tiny_cfg)
    everything = ClinicalMedMPT(tiny_cfg, heads=HeadConfig(train_encoder=True, train_report_decoder=True))
    batch = downstream_batch(tiny_cfg, len(FORMULARY))
    # Execute
    trainable = {n for n, p in heads_only.named_parameters() if p.requires_grad}
    wide = {n for n, p in everything.named_parameters() if p.requires_grad}
    _, parts = everything(**batch)
    # Assert
    assert trainable and not any(n.startswith(BACKBONE_PREFIX) for n in trainable)
    assert sum(p.numel() for n, p in heads_only.named_parameters() if n in trainable) < 0.1 * sum(
        p.numel() for p in heads_only.parameters())
    assert any(n.startswith("backbone.slice_blocks") for n in wide)
    assert any(n.startswith("backbone.report_decoder") for n in wide) and "gen" in parts
    assert not any(n.startswith(("backbone.mae_decoder", "backbone.report_encoder")) for n in wide)


def test_pretrained_backbone_weights_are_loaded(tiny_cfg):
    # Prepare
    torch.manual_seed(1)
    pretrained = MedMPT(tiny_cfg).state_dict()
    # Execute
    model = ClinicalMedMPT.from_pretrained(pretrained, tiny_cfg)
    again = ClinicalMedMPT(tiny_cfg)
    again.load_weights(model.state_dict())
    # Assert
    for key, value in pretrained.items():
        assert torch.equal(model.state_dict()[BACKBONE_PREFIX + key], value)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    assert "ddi_adjacency" not in model.state_dict()  # public reference data, not exchanged weights
    with pytest.raises(RuntimeError):
        model.load_weights({"unknown.weight": torch.zeros(1)})


def test_inference_heads_have_the_documented_shapes(tiny_cfg, downstream_batch):
    # Prepare
    model = ClinicalMedMPT(tiny_cfg).eval()
    batch = downstream_batch(tiny_cfg, len(FORMULARY))
    # Execute
    diag = model.diagnosis_logits(batch["volume"])
    med = model.medication_logits(batch["volume"], batch["clinical"])
    ids = model.generate_report(batch["volume"][:2], max_len=8)
    # Assert
    assert diag.shape == (4, len(FINDINGS)) and med.shape == (4, len(FORMULARY))
    assert ids.shape == (2, 8)
    torch.testing.assert_close(model.task_logits(batch["volume"], batch["clinical"]), (diag, med))
    with pytest.raises(ValueError, match="clinical_features"):
        model.medication_logits(batch["volume"], batch["clinical"][:, :3])


def test_heads_read_the_image_features_standardised_with_the_shipped_statistics(tiny_cfg, downstream_batch):
    # Prepare: public statistics set in one model travel in its state dict to another
    torch.manual_seed(0)
    model = ClinicalMedMPT(tiny_cfg).eval()
    batch = downstream_batch(tiny_cfg, len(FORMULARY))
    raw = encode_image_features(model.backbone, batch["volume"])
    width = NUM_FEATURES + tiny_cfg.dim
    model.clinical_heads.standardiser.fit(torch.randn(50, width) * 3.0 + raw.mean(dim=0))
    with torch.no_grad():
        model.clinical_heads.diagnosis.linear.weight.normal_()
    received = ClinicalMedMPT(tiny_cfg).eval()
    received.load_weights(model.state_dict())
    stats = model.clinical_heads.standardiser
    # Execute
    logits = received.diagnosis_logits(batch["volume"])
    # Assert
    assert raw.shape == (4, width)
    assert "clinical_heads.standardiser.mean" in model.state_dict()
    expected = model.clinical_heads.diagnosis.logits((raw - stats.mean) / stats.scale)
    torch.testing.assert_close(logits, expected)
    unscaled = model.clinical_heads.diagnosis.logits(raw)
    assert not torch.allclose(logits, unscaled)
