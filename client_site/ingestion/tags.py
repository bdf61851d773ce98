"""Cheap access to the header values ingestion reads for every file.

pydicom converts an element's bytes to a Python value on first access, with validation hooks;
for the ~20 numeric, code-string and UID tags read per file that conversion costs more than
parsing the file. These helpers read the raw bytes of still-unconverted elements directly
(numbers, code strings and UIDs are ASCII by definition) and fall back to the converted value
otherwise. Character-set-dependent text (IDs, names) is left to pydicom (:func:`value`).
Elements are looked up by their tag number, not by keyword: pydicom's keyword lookup costs
several times the dictionary access itself.
"""

from __future__ import annotations

import functools
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue


@functools.cache
def tag_of(keyword: str) -> int:
    """The tag number of a DICOM keyword (raises KeyError for an unknown keyword)."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {keyword!r}")
    return tag


def _value(source: Dataset, keyword: str) -> Any:
    element = source.get_item(tag_of(keyword))
    return None if element is None else element.value


def value(source: Dataset, keyword: str) -> Any:
    """An element's value converted by pydicom (character sets applied); None if absent."""
    tag = tag_of(keyword)
    return source[tag].value if tag in source else None


def texts(source: Dataset, keyword: str) -> list[str]:
    """The values of a multi-valued text element (CS, DS, IS, UI), stripped; [] if absent or empty."""
    value = _value(source, keyword)
    if value is None:
        return []
    if isinstance(value, bytes):
        text = value.decode("latin-1").strip(" \x00")
        return [part.strip(" \x00") for part in text.split("\\")] if text else []
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v).strip() for v in value]
    text = str(value).strip()
    return [text] if text else []


def text(source: Dataset, keyword: str) -> str:
    """A single-valued ASCII text element (CS, UI, IS, DS) as stripped text; "" if absent."""
    values = texts(source, keyword)
    return "\\".join(values) if values else ""


def unsigned(source: Dataset, keyword: str, little_endian: bool) -> int | None:
    """A US (unsigned short) element's first value; None if absent or empty."""
    value = _value(source, keyword)
    if value is None or value == b"" or value == "":
        return None
    if isinstance(value, bytes):
        if len(value) < 2:
            return None
        return int.from_bytes(value[:2], "little" if little_endian else "big")
    if isinstance(value, (list, tuple, MultiValue)):
        return int(value[0]) if value else None
    return int(value)
