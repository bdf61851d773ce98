"""Report tokenizer built from the shipped radiology lexicon, never fitted on site data.

A vocabulary learned from a hospital's reports would be a release that differential privacy
does not cover (docs/privacy.md), so the vocabulary is fixed by the code:
:mod:`client_site.reference.lexicon` (English words, Chinese characters) plus single tokens for
digits, ASCII and CJK punctuation, space and newline. Text is cut into atoms (a run of ASCII
letters, one digit, one CJK character, one other character); an English word is one token, in
lower case after a marker token when it is written Capitalised or in CAPITALS. A letter run
that is no lexicon word is spelled letter by letter (so every report round-trips), and a
character outside the vocabulary becomes UNK: :meth:`ReportTokenizer.unknown_words` lists both,
and :meth:`ReportTokenizer.lexicon_only` is the mask that keeps generation to lexicon words.
"""

from __future__ import annotations

import re
import string
from functools import cache
from typing import Final

import torch

from client_site.reference.lexicon import chinese_characters, english_words

PAD_ID: Final = 0
BOS_ID: Final = 1
EOS_ID: Final = 2
MASK_ID: Final = 3
UNK_ID: Final = 4
CAP_ID: Final = 5
"""Marker: the next word is written with a capital first letter ("Lungs")."""
UPPER_ID: Final = 6
"""Marker: the next word is written in capitals ("FINDINGS")."""
FIRST_TEXT_ID: Final = 7
"""Ids below this are special; text tokens (pieces) start here."""
SPECIAL_IDS: Final = (PAD_ID, BOS_ID, EOS_ID, MASK_ID, UNK_ID, CAP_ID, UPPER_ID)

_CJK_PUNCTUATION = "，。、；：？！（）“”‘’《》【】—…～·"
# Letter runs, single digits, single CJK ideographs, any other single character.
_ATOM = re.compile(r"[A-Za-z]+|[\u3400-\u9fff\uf900-\ufaff]|[\s\S]")


@cache
def _pieces() -> tuple[str, ...]:
    """Surface strings of the text ids, in id order (from ``FIRST_TEXT_ID``)."""
    singles = [" ", "\n", *string.digits, *string.punctuation, *string.ascii_letters, *_CJK_PUNCTUATION]
    pieces = list(dict.fromkeys([*singles, *chinese_characters()]))
    taken = set(pieces)
    pieces += [w for w in english_words() if w not in taken]
    return tuple(pieces)


VOCAB_SIZE: Final = FIRST_TEXT_ID + len(_pieces())


def _is_word(piece: str) -> bool:
    return piece.isascii() and piece.isalpha()


class ReportTokenizer:
    """Lexicon tokenizer with PAD/BOS/EOS/MASK/UNK and two capitalisation markers.

    Attributes
    ----------
    pad_id, bos_id, eos_id, mask_id, unk_id : int
        Special ids (0-4).
    vocab_size : int
        :data:`VOCAB_SIZE`.
    """

    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    mask_id: int = MASK_ID
    unk_id: int = UNK_ID
    vocab_size: int = VOCAB_SIZE

    def __init__(self) -> None:
        self.pieces = _pieces()
        self._ids = {piece: FIRST_TEXT_ID + i for i, piece in enumerate(self.pieces)}
        self._words = frozenset(w for w in english_words())

    # ----------------------------------------------------------------- encode
    def tokens(self, text: str) -> list[int]:
        """Ids of ``text`` without BOS/EOS/PAD (any length)."""
        out: list[int] = []
        for atom in _ATOM.findall(text):
            out.extend(self._atom_ids(atom))
        return out

    def _atom_ids(self, atom: str) -> list[int]:
        if atom in self._ids and (len(atom) == 1 or atom in self._words):
            return [self._ids[atom]]
        lower = atom.lower()
        if atom[0].isascii() and atom.isalpha() and lower in self._words:
            if atom == lower.capitalize():
                return [CAP_ID, self._ids[lower]]
            if atom == lower.upper():
                return [UPPER_ID, self._ids[lower]]
        return [self._ids.get(ch, UNK_ID) for ch in atom]

    def encode(self, text: str, max_len: int) -> torch.Tensor:
        """Encode ``text`` as ``[BOS, tokens..., EOS, PAD...]`` of exactly ``max_len`` ids.

        Parameters
        ----------
        text : str
            Any Unicode text.
        max_len : int
            Output length, >= 2. Longer texts are cut (and still end with EOS).

        Returns
        -------
        torch.Tensor
            ``(max_len,)`` int64.
        """
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2 to hold BOS and EOS, got {max_len}")
        body = self.tokens(text)[: max_len - 2]
        ids = torch.full((max_len,), PAD_ID, dtype=torch.int64)
        ids[0] = BOS_ID
        ids[1 : 1 + len(body)] = torch.tensor(body, dtype=torch.int64)
        ids[1 + len(body)] = EOS_ID
        return ids

    # ----------------------------------------------------------------- decode
    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """Text of ``ids``, stopping at the first EOS; PAD/BOS/MASK are skipped, UNK is U+FFFD.

        Two adjacent word pieces of which one has several letters are joined by a space: an
        encoding never puts them side by side (one letter run is one word or single spelled
        letters), so this changes no round trip, and a generated "lung" "nodule" reads as two
        words instead of a new letter run.
        """
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        out: list[str] = []
        marker = 0
        for value in values:
            if value == EOS_ID:
                break
            if value in (CAP_ID, UPPER_ID):
                marker = value
                continue
            if value == UNK_ID:
                out.append("\ufffd")
            elif FIRST_TEXT_ID <= value < VOCAB_SIZE:
                piece = self.pieces[value - FIRST_TEXT_ID]
                if marker == CAP_ID:
                    piece = piece[:1].upper() + piece[1:]
                elif marker == UPPER_ID:
                    piece = piece.upper()
                if out and _is_word(out[-1]) and _is_word(piece) and max(len(out[-1]), len(piece)) > 1:
                    out.append(" ")
                out.append(piece)
            marker = 0
        return "".join(out)

    # ---------------------------------------------------------------- lexicon
    def unknown_words(self, text: str) -> list[str]:
        """Atoms of ``text`` that are not lexicon tokens: spelled letter runs and UNK characters.

        Digits, punctuation, white space, lexicon words (in any of the three casings) and
        lexicon characters are lexicon tokens; the draft test asserts this list is empty.
        """
        unknown = []
        for atom in _ATOM.findall(text):
            ids = self._atom_ids(atom)
            ids = [i for i in ids if i not in (CAP_ID, UPPER_ID)]
            if len(ids) != 1 or ids[0] == UNK_ID or not self._is_lexicon_id(ids[0]):
                unknown.append(atom)
        return unknown

    def _is_lexicon_id(self, token: int) -> bool:
        piece = self.pieces[token - FIRST_TEXT_ID]
        return not _is_word(piece) or piece.lower() in self._words

    def lexicon_only(self) -> torch.Tensor:
        """``(vocab_size,)`` bool: the ids free generation may emit (EOS, the case markers and
        lexicon tokens; not PAD/BOS/MASK/UNK and not the single letters that spell other words)."""
        allowed = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
        allowed[[EOS_ID, CAP_ID, UPPER_ID]] = True
        for i in range(FIRST_TEXT_ID, VOCAB_SIZE):
            allowed[i] = self._is_lexicon_id(i)
        return allowed
