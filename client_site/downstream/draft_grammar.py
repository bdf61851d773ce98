"""Constrained decoding of a draft's findings: sentences of a small grammar, picked by the decoder.

The diagnosis heads decide *which* findings a draft states (probability >= the finding's
threshold); the report decoder decides *how*: for each stated finding the grammar lists the
sentences a chest-CT report would use (every lobe; nodule diameters; emphysema grades; effusion
sizes and sides) and the decoder's likelihood of each, teacher-forced after the findings heading
on the study's image memory, picks one. Absent findings get the pertinent negatives of the
consortium's reports. Every word of a drafted sentence is a lexicon word by construction
(the grammar's words are in :mod:`client_site.reference.lexicon`; a test checks it), so a draft
never shows an unreadable token, however little the decoder has learnt (constrained decoding over
a finite output set, as in Cao et al., "Autoregressive entity retrieval", ICLR 2021).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from client_site.findings import FINDINGS
from client_site.model import MedMPT
from client_site.tokenizer import BOS_ID, PAD_ID, ReportTokenizer

LOBES = {
    "en": ("right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "left lower lobe"),
    "zh": ("右肺上叶", "右肺中叶", "右肺下叶", "左肺上叶", "左肺下叶"),
}
NODULE_SIZES_MM: tuple[int, ...] = (6, 8, 10, 12, 15, 20, 25, 30)
"""Nodule diameters a draft may state (the decoder picks one)."""
HEADING = {"en": "FINDINGS:\n", "zh": "检查所见：\n"}
REPORT_ORDER: tuple[str, ...] = (
    "consolidation", "ground_glass_opacity", "nodule", "emphysema", "pleural_effusion",
)
"""Order in which a draft states findings (airspace disease first, pleura last)."""
_LUNG_CLEAR = {"en": "The lungs are clear. No pulmonary nodule or consolidation.",
               "zh": "双肺纹理清晰，未见明确实变及结节影。"}
_NO_EFFUSION = {"en": "No pleural effusion or pneumothorax.", "zh": "双侧胸腔未见积液。"}
_GRADES = {"en": ("Mild", "Moderate", "Severe"), "zh": ("轻度", "中度", "重度")}
_SIZES = {"en": ("Small", "Moderate", "Large"), "zh": ("少量", "中等量", "大量")}
_SIDES = {"en": (("right", ""), ("left", ""), ("bilateral", "s")), "zh": (("右侧", ""), ("左侧", ""), ("双侧", ""))}


def finding_sentences(finding: str, language: str) -> list[str]:
    """Every sentence the grammar allows for a present ``finding`` in ``language`` ("en"/"zh")."""
    lobes = LOBES[language]
    if language == "zh":
        options = {
            "nodule": [f"{lobe}见一实性结节，大小约{d}mm，边界清楚。" for lobe in lobes for d in NODULE_SIZES_MM],
            "consolidation": [f"{lobe}见大片状实变影，其内可见支气管充气征。" for lobe in lobes],
            "ground_glass_opacity": [f"{lobe}见多发斑片状磨玻璃密度影，以胸膜下分布为主。" for lobe in lobes],
            "emphysema": [f"双肺见多发无壁低密度区，以上叶为著，提示{g}小叶中心型肺气肿。" for g in _GRADES["zh"]],
            "pleural_effusion": [f"{side}{size}胸腔积液。" for side, _ in _SIDES["zh"] for size in _SIZES["zh"]],
        }
    else:
        options = {
            "nodule": [f"{'An' if str(d).startswith('8') else 'A'} {d} mm solid nodule in the {lobe}."
                       for lobe in lobes for d in NODULE_SIZES_MM],
            "consolidation": [f"Consolidation in the {lobe} with air bronchograms." for lobe in lobes],
            "ground_glass_opacity": [f"Patchy ground-glass opacities in the {lobe}, predominantly peripheral."
                                     for lobe in lobes],
            "emphysema": [f"{g} centrilobular emphysema, upper-lobe predominant." for g in _GRADES["en"]],
            "pleural_effusion": [f"{size} {side} pleural effusion{plural}." for side, plural in _SIDES["en"]
                                 for size in _SIZES["en"]],
        }
    return options[finding]


def negative_sentences(present: Sequence[str], language: str) -> list[str]:
    """Pertinent negatives: clear lungs when no lung finding is stated, no effusion when none is."""
    out = []
    if not set(present) - {"pleural_effusion"}:
        out.append(_LUNG_CLEAR[language])
    if "pleural_effusion" not in present:
        out.append(_NO_EFFUSION[language])
    return out


@torch.no_grad()
def sentence_scores(
    decoder_model: MedMPT, memory: torch.Tensor, prefix: str, candidates: Sequence[str],
) -> torch.Tensor:
    """Decoder log-likelihood of each candidate after ``prefix``, on one study's image memory.

    Parameters
    ----------
    decoder_model : MedMPT
        The backbone whose causal report decoder scores the text.
    memory : torch.Tensor
        ``(1, M, dim)`` image memory of the study (:meth:`MedMPT.image_memory`).
    prefix : str
        Text the candidates follow (the findings heading).
    candidates : Sequence[str]
        Alternative continuations.

    Returns
    -------
    torch.Tensor
        ``(len(candidates),)`` summed token log-probabilities.
    """
    tok = ReportTokenizer()
    head = [BOS_ID, *tok.tokens(prefix)]
    rows = [head + tok.tokens(c) for c in candidates]
    width = min(max(map(len, rows)), decoder_model.cfg.text_max_len)
    ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        row = row[:width]
        ids[i, : len(row)] = torch.tensor(row)
    logits = decoder_model.report_decoder(ids[:, :-1].contiguous(), memory.expand(len(rows), -1, -1))
    logp = F.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    scored = torch.zeros_like(logp, dtype=torch.bool)
    scored[:, len(head) - 1:] = True
    scored &= ids[:, 1:] != PAD_ID
    return (logp * scored).sum(dim=1)


def draft_findings(
    decoder_model: MedMPT, memory: torch.Tensor, probabilities: Mapping[str, float], language: str, *,
    thresholds: Mapping[str, float],
) -> str:
    """Findings text of one study: a decoder-picked grammar sentence per stated finding, then negatives.

    Parameters
    ----------
    decoder_model : MedMPT
        Backbone with the report decoder.
    memory : torch.Tensor
        ``(1, M, dim)`` image memory of the study.
    probabilities : Mapping[str, float]
        Diagnosis probability of each finding of ``FINDINGS``.
    language : str
        ``"en"`` or ``"zh"``.
    thresholds : Mapping[str, float]
        Probability from which each finding is stated.
    """
    if language not in HEADING:
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
    present = [f for f in REPORT_ORDER if f in FINDINGS and probabilities[f] >= thresholds[f]]
    sentences = []
    for finding in present:
        candidates = finding_sentences(finding, language)
        scores = sentence_scores(decoder_model, memory, HEADING[language], candidates)
        sentences.append(candidates[int(scores.argmax())])
    sentences += negative_sentences(present, language)
    return ("" if language == "zh" else " ").join(sentences)
