"""The lexicon tokenizer: round trips, special ids, lexicon coverage of every report template,
every report of a generated consortium, and a vocabulary built without reading site data."""

from __future__ import annotations

import builtins
import importlib
import io
import itertools
from pathlib import Path

import torch

import client_site.tokenizer as tokenizer_module
from client_site.datasets import load_cache_index
from client_site.layout import SiteLayout
from client_site.tokenizer import (
    BOS_ID,
    CAP_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    UPPER_ID,
    VOCAB_SIZE,
    ReportTokenizer,
)
from synthetic.measure import Finding
from synthetic.report_common import ORDER, ReportContext
from synthetic.reports import report_body


def test_round_trips_english_and_chinese():
    # Prepare
    tok = ReportTokenizer()
    texts = ["FINDINGS: 6 mm nodule. IMPRESSION: benign.", "检查所见：右肺上叶结节。诊断意见：良性。", "",
             "Dr. [NAME] McQuaid saw it at 10:30\n\n- Lungs: Clear."]
    for text in texts:
        # Execute
        ids = tok.encode(text, 128)
        # Assert
        assert ids.shape == (128,) and ids.dtype == torch.int64
        assert tok.decode(ids) == text


def test_words_are_single_tokens_with_case_markers():
    # Prepare
    tok = ReportTokenizer()
    # Execute
    ids = tok.tokens("Lungs LUNGS lungs")
    # Assert: three words, two markers, two spaces
    assert len(ids) == 7 and ids[0] == CAP_ID and ids[3] == UPPER_ID and ids[1] == ids[4] == ids[6]
    assert tok.encode("ab", 6).tolist()[0] == BOS_ID and tok.encode("", 3).tolist() == [BOS_ID, EOS_ID, PAD_ID]


def test_unknown_words_are_spelled_or_unk_and_listed():
    # Prepare
    tok = ReportTokenizer()
    # Execute
    unknown = tok.unknown_words("Nodule zyxq 12 mm ☃ 结节")
    # Assert: a letter run that is no word and a character outside the vocabulary
    assert unknown == ["zyxq", "☃"]
    assert UNK_ID in tok.tokens("☃") and tok.decode(tok.encode("☃", 8)) == "\ufffd"


def test_truncation_keeps_eos():
    # Prepare / Execute
    ids = ReportTokenizer().encode("right upper lobe nodule", 6)
    # Assert
    assert ids[-1].item() == EOS_ID and ReportTokenizer().decode(ids) == "right upper "


def test_lexicon_only_mask_excludes_specials_and_spelling_letters():
    # Prepare / Execute
    allowed = ReportTokenizer().lexicon_only()
    tok = ReportTokenizer()
    # Assert
    assert allowed.shape == (VOCAB_SIZE,)
    assert not allowed[[PAD_ID, BOS_ID, UNK_ID]].any() and allowed[EOS_ID]
    assert allowed[tok.tokens("nodule")[0]] and allowed[tok.tokens("a")[0]]
    assert not allowed[tok.tokens("q")[0]]


def _contexts() -> list[ReportContext]:
    return [ReportContext(language=lang, style=style, thickness_mm=2.5, has_prior=prior, cardiomegaly=heart,
                          referring_display="[NAME] [NAME]")
            for lang in ("en", "zh") for style in range(3) for prior in (False, True) for heart in (False, True)]


def _findings() -> list[list[Finding]]:
    # Every kind, change, grade, side and lobe combination the templates distinguish.
    out: list[list[Finding]] = [[]]
    for kind, change, size, lobes in itertools.product(
            ORDER, (None, "new", "stable", "increased", "decreased"), (8.0, 25.0),
            ((0,), (1,), (2,), (3,), (4,), (0, 3, 2))):
        for volume, fraction, (right, left) in ((50.0, 0.02, (True, False)), (300.0, 0.08, (False, True)),
                                                (900.0, 0.2, (True, True))):
            out.append([Finding(kind, lobes, right, left, size, volume, fraction, change,
                                6.0 if change else None)])
    out.append([Finding("consolidation", (2,), True, False, 40.0, 90.0, 0.02),
                Finding("ground_glass_opacity", (2,), True, False, 30.0, 40.0, 0.01)])
    out.append([Finding("ground_glass_opacity", (0,), True, True, 30.0, 40.0, 0.01),
                Finding("pleural_effusion", (2,), True, True, 30.0, 400.0, 0.01)])
    return out


def test_every_template_report_is_lexicon_only_and_round_trips():
    # Prepare
    tok = ReportTokenizer()
    resolved_options = ([], list(ORDER))
    unknown: set[str] = set()
    n = 0
    for ctx, findings, resolved in itertools.product(_contexts(), _findings(), resolved_options):
        # Execute
        body = report_body(findings, resolved, ctx)
        n += 1
        # Assert
        unknown.update(tok.unknown_words(body))
        assert tok.decode(tok.tokens(body)) == body
    assert n > 1000 and not unknown, sorted(unknown)


def test_every_report_of_a_generated_site_round_trips(ingested_site: Path):
    # Prepare
    tok = ReportTokenizer()
    reports = [r for r in load_cache_index(SiteLayout(ingested_site).cache_dir) if r.report]
    languages = {r.language for r in reports}
    # Execute / Assert
    assert reports
    for record in reports:
        assert tok.decode(tok.tokens(record.report)) == record.report
        assert tok.unknown_words(record.report) == [], record.report
    assert languages <= {"en", "zh"}


def test_vocabulary_is_built_without_reading_any_file(monkeypatch, tmp_path):
    # Prepare: any file opened while the module builds its vocabulary is recorded
    opened: list[str] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: opened.append(str(self)) or "")
    monkeypatch.chdir(tmp_path)
    before = ReportTokenizer().pieces
    tokenizer_module._pieces.cache_clear()
    # Execute
    module = importlib.reload(tokenizer_module)
    pieces = module.ReportTokenizer().pieces
    # Assert: the same vocabulary, from code only
    assert pieces == before and module.VOCAB_SIZE == VOCAB_SIZE
    assert [p for p in opened if not p.endswith(".py") and "__pycache__" not in p] == []
