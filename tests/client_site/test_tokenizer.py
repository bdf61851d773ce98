"""The byte tokenizer round-trips English and Chinese and lays out specials as documented."""

import torch

from client_site.tokenizer import BOS_ID, EOS_ID, MASK_ID, PAD_ID, VOCAB_SIZE, ByteTokenizer


def test_round_trips_english_and_chinese():
    # Prepare
    tok = ByteTokenizer()
    texts = ["FINDINGS: 6 mm nodule. IMPRESSION: benign.", "检查所见：右肺上叶结节。诊断意见：良性。", ""]
    for text in texts:
        # Execute
        ids = tok.encode(text, 128)
        # Assert
        assert ids.shape == (128,) and ids.dtype == torch.int64
        assert tok.decode(ids) == text


def test_layout_of_special_ids():
    # Prepare / Execute
    ids = ByteTokenizer().encode("ab", 6)
    # Assert
    assert (PAD_ID, BOS_ID, EOS_ID, MASK_ID, VOCAB_SIZE) == (0, 1, 2, 3, 260)
    assert ids.tolist() == [BOS_ID, ord("a") + 4, ord("b") + 4, EOS_ID, PAD_ID, PAD_ID]


def test_truncation_keeps_eos_and_decodes_with_replacement():
    # Prepare
    tok = ByteTokenizer()
    # Execute: 4 body slots cut the second 3-byte character
    ids = tok.encode("肺结节", 6)
    # Assert
    assert ids[-1].item() == EOS_ID
    assert tok.decode(ids) == "肺\ufffd"
    assert tok.decode([BOS_ID, 4 + ord("x"), EOS_ID, 4 + ord("y")]) == "x"
