"""Clinical metrics against hand-computed values on small fixtures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from client_site.clinical_metrics import (
    corpus_bleu, ddi_rate, interaction_pairs, label_f1, load_interactions, macro_auc,
    mean_rouge_l, per_finding_auc, pointing_game, pointing_hit, pr_auc, report_finding_f1,
    rouge_l, set_metrics, tokenize,
)
from client_site.findings import FINDINGS
from synthetic import INTERACTIONS


def test_per_finding_and_macro_auc() -> None:
    # Prepare: columns = FINDINGS. nodule: sklearn's textbook case, pairs (pos, neg) ranked right
    # 3 of 4 -> 0.75; consolidation: perfect -> 1.0; GGO all negative -> NaN; emphysema: the
    # positive scored below every negative -> 0.0; effusion all positive -> NaN.
    y_true = np.array([[0, 0, 0, 1, 1], [0, 1, 0, 0, 1], [1, 0, 0, 0, 1], [1, 1, 0, 0, 1]])
    y_score = np.array([[0.1, 0.1, 0.5, 0.0, 0.2], [0.4, 0.9, 0.5, 1.0, 0.3],
                        [0.35, 0.2, 0.5, 1.0, 0.4], [0.8, 0.8, 0.5, 1.0, 0.5]])
    # Execute
    auc = per_finding_auc(y_true, y_score)
    # Assert
    assert list(auc) == list(FINDINGS)
    assert auc["nodule"] == pytest.approx(0.75) and auc["consolidation"] == pytest.approx(1.0)
    assert auc["emphysema"] == pytest.approx(0.0)
    assert math.isnan(auc["ground_glass_opacity"]) and math.isnan(auc["pleural_effusion"])
    assert macro_auc(auc) == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    with pytest.raises(ValueError, match="shape"):
        per_finding_auc(y_true[:, :3], y_score[:, :3])


def test_bleu_identical_is_one_in_both_languages() -> None:
    # Execute / Assert
    assert corpus_bleu(["no pleural effusion is seen"], ["no pleural effusion is seen"]) == pytest.approx(1.0)
    assert corpus_bleu(["双侧胸腔未见积液。"], ["双侧胸腔未见积液。"]) == pytest.approx(1.0)
    assert tokenize("双侧 积液。") == ["双", "侧", "积", "液", "。"]
    assert tokenize("Small effusion, 2.5 cm.") == ["small", "effusion", ",", "2.5", "cm", "."]


def test_bleu_partial_overlap_by_hand() -> None:
    # hyp "small left pleural effusion is present" (c = 6), ref "a small left pleural effusion is seen"
    # (r = 7). Clipped precisions: 1-gram 5/6, 2-gram 4/5, 3-gram 3/4, 4-gram 2/3; their product
    # is 1/3, so the geometric mean is (1/3)^(1/4) = 0.7598; BP = exp(1 - 7/6) = 0.8465;
    # BLEU-4 = 0.6432.
    hyp, ref = "small left pleural effusion is present", "a small left pleural effusion is seen"
    # Execute
    bleu = corpus_bleu([hyp], [ref])
    # Assert
    assert bleu == pytest.approx(math.exp(-1 / 6) * (1 / 3) ** 0.25)
    assert bleu == pytest.approx(0.6432, abs=1e-4)


def test_bleu_is_corpus_level() -> None:
    # Adding the identical 4-token pair "no pleural effusion seen" pools counts: precisions
    # 9/10, 7/8, 5/6, 3/4; c = 10, r = 11 -> BP = exp(-0.1); BLEU = 0.7579 (not a mean of sentences).
    hyps = ["no pleural effusion seen", "small left pleural effusion is present"]
    refs = ["no pleural effusion seen", "a small left pleural effusion is seen"]
    # Execute
    bleu = corpus_bleu(hyps, refs)
    # Assert
    expected = math.exp(-0.1) * (9 / 10 * 7 / 8 * 5 / 6 * 3 / 4) ** 0.25
    assert bleu == pytest.approx(expected) and bleu == pytest.approx(0.7579, abs=1e-4)
    assert corpus_bleu(["effusion"], ["no effusion"]) == 0.0  # no 2-gram match, no smoothing
    with pytest.raises(ValueError, match="equal"):
        corpus_bleu(hyps, refs[:1])


def test_rouge_l_textbook_example() -> None:
    # Lin (2004), section 3.1: reference "police killed the gunman"; S2 "police kill the gunman"
    # has LCS 3 -> P = R = 3/4 -> F = 0.75; S3 "the gunman kill police" has LCS 2 -> F = 0.5.
    ref = "police killed the gunman"
    # Execute / Assert
    assert rouge_l("police kill the gunman", ref) == pytest.approx(0.75)
    assert rouge_l("the gunman kill police", ref) == pytest.approx(0.5)
    # "a b c d e" vs "a c e": LCS 3, P = 3/5, R = 1 -> F1 = 2 * 0.6 / 1.6 = 0.75.
    assert rouge_l("a b c d e", "a c e") == pytest.approx(0.75)
    assert rouge_l("", ref) == 0.0
    assert mean_rouge_l(["police kill the gunman", ref], [ref, ref]) == pytest.approx(0.875)
    # Chinese by characters: "右侧积液" vs "右侧少量积液": LCS 4, P = 1, R = 4/6 -> F1 = 0.8.
    assert rouge_l("右侧积液", "右侧少量积液") == pytest.approx(0.8)


def test_label_f1_micro_macro_by_hand() -> None:
    # nodule TP 1 FN 1 -> 2/3; consolidation TP 1 -> 1; GGO, emphysema absent -> NaN;
    # effusion FP 1 -> 0. Micro: TP 2, FP 1, FN 1 -> 4/6. Macro: (2/3 + 1 + 0) / 3 = 5/9.
    truth = [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0]]
    pred = [[1, 0, 0, 0, 1], [0, 1, 0, 0, 0]]
    # Execute
    f1 = label_f1(truth, pred)
    # Assert
    assert f1["nodule"] == pytest.approx(2 / 3) and f1["consolidation"] == pytest.approx(1.0)
    assert f1["pleural_effusion"] == 0.0 and math.isnan(f1["emphysema"])
    assert f1["micro"] == pytest.approx(2 / 3) and f1["macro"] == pytest.approx(5 / 9)


def test_report_finding_f1_reads_both_languages() -> None:
    # Pair 1: generated says effusion, reference says nodule. Pair 2 (Chinese): both say nodule.
    # nodule TP 1 FN 1 -> 2/3; effusion FP 1 -> 0; micro TP 1 FP 1 FN 1 -> 1/2; macro 1/3.
    generated = ["Small right pleural effusion. No nodule.", "右肺上叶见一实性结节。"]
    references = ["No pleural effusion. A 6 mm nodule.", "右肺上叶见一实性结节，双侧胸腔未见积液。"]
    # Execute
    f1 = report_finding_f1(generated, references)
    # Assert
    assert f1["nodule"] == pytest.approx(2 / 3) and f1["pleural_effusion"] == 0.0
    assert f1["micro"] == pytest.approx(0.5) and f1["macro"] == pytest.approx(1 / 3)


def test_medication_set_metrics_by_hand() -> None:
    # Visit 1: {a,b} vs {b,c}: Jaccard 1/3, P = R = F1 = 1/2. Visit 2: nothing recommended -> 0.
    # Visit-averaged: Jaccard 1/6, P = R = F1 = 1/4.
    # Execute
    one = set_metrics([{"a", "b"}], [{"b", "c"}])
    two = set_metrics([{"a", "b"}, {"a"}], [{"b", "c"}, set()])
    # Assert
    assert one == pytest.approx({"jaccard": 1 / 3, "precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert two == pytest.approx({"jaccard": 1 / 6, "precision": 0.25, "recall": 0.25, "f1": 0.25})


def test_visits_without_prescription_are_skipped() -> None:
    # Visit 1 as above; visits 2 and 3 have no prescription: skipped, whatever is recommended.
    # Execute
    three = set_metrics([{"a", "b"}, set(), set()], [{"b", "c"}, set(), {"a"}])
    none = set_metrics([set()], [{"a"}])
    # Assert
    assert three == pytest.approx({"jaccard": 1 / 3, "precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert all(math.isnan(v) for v in none.values())


def test_pr_auc_by_hand() -> None:
    # Visit 1 ranked (+ - + -): AP = (1/1 + 2/3) / 2 = 5/6. Visit 2 perfect: 1. Visit 3 has no
    # prescribed drug: skipped. Mean = 11/12.
    y_true = [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    y_score = [[0.9, 0.8, 0.7, 0.1], [0.1, 0.9, 0.2, 0.3], [0.5, 0.5, 0.5, 0.5]]
    # Execute / Assert
    assert pr_auc(y_true, y_score) == pytest.approx(11 / 12)


def test_ddi_rate_by_hand(tmp_path: Path) -> None:
    # {clarithromycin, warfarin, salbutamol}: 3 pairs, only clarithromycin-warfarin interacts -> 1/3.
    # With a second visit {a, b} (1 pair, none) the pooled rate is 1/4.
    table = tmp_path / "drug_interactions.csv"
    table.write_text("drug_a,drug_b,severity,description\n"
                     "warfarin,clarithromycin,major,INR rise\n"
                     "salbutamol,theophylline,moderate,hypokalaemia\n", encoding="utf-8")
    visit = {"clarithromycin", "warfarin", "salbutamol"}
    # Execute
    pairs = load_interactions(table)
    # Assert
    assert ddi_rate([visit], pairs) == pytest.approx(1 / 3)
    assert ddi_rate([visit, {"a", "b"}], pairs) == pytest.approx(1 / 4)
    assert ddi_rate([visit], interaction_pairs(INTERACTIONS)) == pytest.approx(1 / 3)
    assert ddi_rate([{"salbutamol", "theophylline"}], load_interactions(table, severities={"major"})) == 0.0
    assert ddi_rate([{"warfarin"}, set()], pairs) == 0.0
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\nx,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match="columns"):
        load_interactions(bad)


def test_pointing_game_two_of_three() -> None:
    # Prepare: 3 lesion cases (hit, hit, miss by one voxel) and one case without a lesion.
    mask = np.zeros((4, 6, 6), dtype=bool)
    mask[1:3, 2:4, 2:4] = True
    hit = np.zeros(mask.shape)
    hit[2, 3, 3] = 1.0
    near = np.zeros(mask.shape)
    near[2, 3, 4] = 1.0  # one column right of the lesion
    far = np.zeros(mask.shape)
    far[0, 0, 0] = 1.0
    saliencies = [hit, hit * 2, near, far]
    masks = [mask, mask, mask, None]
    # Execute / Assert
    assert pointing_game(saliencies, masks) == pytest.approx(2 / 3)
    assert pointing_game(saliencies, masks, tolerance=1) == pytest.approx(1.0)
    assert not pointing_hit(far, mask, tolerance=1)
    assert math.isnan(pointing_game([far], [None]))
    with pytest.raises(ValueError, match="shape"):
        pointing_hit(far, mask[0])
