"""How many SMS segments a text takes, and in which encoding (what the composer shows before sending).

GSM-7 (3GPP TS 23.038): the basic set takes one septet a character, the
extension set (``^{}\\[~]|€`` and form feed) two; a text of up to 160 septets
is one segment, longer texts are split in segments of 153 (7 septets go to
the concatenation header), and an extension character is never split across
two segments. Any other character makes the whole text UCS-2: 70 UTF-16 code
units in one segment, else 67 a segment, a surrogate pair (most emoji) never
split.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")

GSM7 = "GSM-7"
UCS2 = "UCS-2"


@dataclass(frozen=True)
class SegmentCount:
    encoding: str
    segments: int
    characters: int
    # What is left in the last segment before another one starts (in characters of the text's encoding).
    remaining: int


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def _split(units: list[int], single: int, multi: int) -> tuple[int, int]:
    """Segments for characters of the given widths; and room left in the last one."""
    total = sum(units)
    if total <= single:
        return 1, single - total
    segments, used = 1, 0
    for width in units:
        if used + width > multi:
            segments, used = segments + 1, 0
        used += width
    return segments, multi - used


def count_segments(text: str) -> SegmentCount:
    text = text or ""
    if is_gsm7(text):
        units = [2 if ch in GSM7_EXTENDED else 1 for ch in text]
        segments, remaining = _split(units, 160, 153)
        return SegmentCount(GSM7, segments, len(text), remaining)
    units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    segments, remaining = _split(units, 70, 67)
    return SegmentCount(UCS2, segments, len(text), remaining)
