"""SMS text helpers: strip Vietnamese accents so a message fits GSM-7, and count the parts it will be sent in.

One accented letter switches a whole SMS to UCS-2 (70 characters a part instead of 160), which is why
reminders go out unaccented by default (spec §2.3).
"""

import unicodedata
from typing import Literal

SmsEncoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet and its extension table (extension characters cost an escape plus the char).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("\f^{}\\[]~|€")

# đ/Đ are letters of their own, not d + a combining mark, so NFD leaves them alone. The typographic
# characters are what editors and templates tend to insert; each alone would force UCS-2.
_REPLACEMENTS = str.maketrans(
    {
        "đ": "d",
        "Đ": "D",
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u00a0": " ",
    }
)


def strip_diacritics(text: str) -> str:
    """Remove accents and tone marks: ``"Nhắc lịch tiêm: bé Đức"`` -> ``"Nhac lich tiem: be Duc"``."""
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # Recompose what NFD split without marks (e.g. Hangul) so other scripts come back unchanged.
    return unicodedata.normalize("NFC", bare).translate(_REPLACEMENTS)


def sms_segments(text: str) -> tuple[SmsEncoding, int]:
    """Return the encoding an SMS with this text needs and how many parts it is sent as (0 for empty text)."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text):
        return "GSM-7", _count_parts([2 if ch in _GSM7_EXTENSION else 1 for ch in text], 160, 153)
    # Phones send UCS-2 as UTF-16, so a character outside the BMP (emoji) takes two code units.
    return "UCS-2", _count_parts([2 if ord(ch) > 0xFFFF else 1 for ch in text], 70, 67)


def _count_parts(units: list[int], single: int, per_part: int) -> int:
    total = sum(units)
    if total <= single:
        return 1 if total else 0
    # Concatenated parts lose room to the UDH, and an escape sequence or surrogate pair is never split
    # across two parts, so a character that does not fit whole starts the next part.
    parts, used = 1, 0
    for size in units:
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts
