"""Report-generation overlap metrics: corpus BLEU-4 and ROUGE-L, with one documented tokenizer.

Tokenization (:func:`tokenize`): text containing any CJK ideograph is split into characters
(each non-space character is a token, as is usual for Chinese report generation since Chinese has
no spaces); other text is lower-cased and split on whitespace after separating punctuation
(``.,;:()`` and similar become their own tokens). Both metrics take pre-tokenized lists too.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from .extractor import detect_language

_PUNCT = re.compile(r"([.,;:!?()\[\]\"'，。；：！？（）、])")


def tokenize(text: str) -> list[str]:
    """Characters for Chinese text, lower-cased whitespace tokens (punctuation split) otherwise."""
    if detect_language(text) == "zh":
        return [ch for ch in text if not ch.isspace()]
    # Keep decimals ("2.5") whole: only split a "." that is not between digits.
    spaced = _PUNCT.sub(lambda m: f" {m.group()} ", text.lower())
    spaced = re.sub(r"(\d) \. (\d)", r"\1.\2", spaced)
    return spaced.split()


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _as_tokens(item: str | Sequence[str]) -> list[str]:
    return tokenize(item) if isinstance(item, str) else list(item)


def corpus_bleu(
    hypotheses: Sequence[str | Sequence[str]],
    references: Sequence[str | Sequence[str]],
    *,
    max_n: int = 4,
) -> float:
    """Corpus-level BLEU (Papineni et al., ACL 2002), one reference per hypothesis.

    Clipped n-gram precisions are pooled over the corpus, combined by a geometric mean with
    uniform weights 1/max_n, and scaled by the brevity penalty ``exp(1 - r/c)`` when the total
    hypothesis length ``c`` is below the total reference length ``r``. No smoothing: BLEU is 0
    when some order has no match (as in ``nltk.translate.bleu_score.corpus_bleu``).

    Parameters
    ----------
    hypotheses, references : Sequence[str | Sequence[str]]
        Generated and reference reports, as text (tokenized with :func:`tokenize`) or tokens.
    max_n : int
        Largest n-gram order (default: 4, i.e. BLEU-4).

    Returns
    -------
    float
        BLEU in [0, 1].

    Raises
    ------
    ValueError
        If the two lists differ in length or are empty, or ``max_n < 1``.
    """
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"need equal, non-zero numbers of hypotheses and references, "
                         f"got {len(hypotheses)} and {len(references)}")
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp_item, ref_item in zip(hypotheses, references):
        hyp, ref = _as_tokens(hyp_item), _as_tokens(ref_item)
        hyp_len, ref_len = hyp_len + len(hyp), ref_len + len(ref)
        for n in range(1, max_n + 1):
            hyp_counts, ref_counts = _ngrams(hyp, n), _ngrams(ref, n)
            matches[n - 1] += sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, O(len(a) * len(b)) time, O(len(b)) memory."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag = 0
        for j, y in enumerate(b, 1):
            prev_diag, row[j] = row[j], prev_diag + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(hypothesis: str | Sequence[str], reference: str | Sequence[str], *, beta: float = 1.0) -> float:
    """ROUGE-L F-measure of one pair (Lin, 2004): ``(1+b^2) R P / (R + b^2 P)`` from the LCS.

    Parameters
    ----------
    hypothesis, reference : str | Sequence[str]
        Text (tokenized with :func:`tokenize`) or tokens.
    beta : float
        Recall weight (default: 1.0, the F1 used by ``rouge_score``; the COCO caption toolkit uses 1.2).

    Returns
    -------
    float
        ROUGE-L in [0, 1]; 0 when either side is empty.
    """
    hyp, ref = _as_tokens(hypothesis), _as_tokens(reference)
    lcs = _lcs_length(hyp, ref) if hyp and ref else 0
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)


def mean_rouge_l(
    hypotheses: Sequence[str | Sequence[str]], references: Sequence[str | Sequence[str]]
) -> float:
    """Mean sentence-level ROUGE-L F1 over the corpus."""
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"need equal, non-zero numbers of hypotheses and references, "
                         f"got {len(hypotheses)} and {len(references)}")
    return sum(rouge_l(h, r) for h, r in zip(hypotheses, references)) / len(hypotheses)
