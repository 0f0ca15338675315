"""Accent stripping and SMS part counting: what decides whether a reminder costs one SMS or several."""

import pytest

from notifications.text import sms_segments, strip_diacritics

REMINDER = (
    "Nhắc lịch tiêm: bé An, mũi Sởi-Rubella (MR) ngày 15/03/2026 lúc 08:00 tại Trạm Y tế phường "
    "Bến Nghé, Quận 1. Mang theo sổ tiêm chủng."
)
VIETNAMESE_LETTERS = (
    "aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵđ"
    "AÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬEÈÉẺẼẸÊỀẾỂỄỆIÌÍỈĨỊOÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢUÙÚỦŨỤƯỪỨỬỮỰYỲÝỶỸỴĐ"
)


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("Nhắc lịch tiêm: bé Đức", "Nhac lich tiem: be Duc"),
        ("Đường Nguyễn Huệ, Quận 1, TP. Hồ Chí Minh", "Duong Nguyen Hue, Quan 1, TP. Ho Chi Minh"),
        ("Ă Â Ê Ô Ơ Ư ă â ê ô ơ ư", "A A E O O U a a e o o u"),
        ("Sởi–Rubella “MR” ‘5 trong 1’…", "Soi-Rubella \"MR\" '5 trong 1'..."),
        ("Ma OTP: 123456", "Ma OTP: 123456"),
    ],
)
def test_accents_tone_marks_and_typography_are_stripped(text: str, stripped: str) -> None:
    assert strip_diacritics(text) == stripped


def test_every_vietnamese_letter_strips_to_gsm7() -> None:
    stripped = strip_diacritics(VIETNAMESE_LETTERS)
    assert len(stripped) == len(VIETNAMESE_LETTERS)
    assert sms_segments(stripped)[0] == "GSM-7"


def test_an_accented_reminder_needs_two_unicode_parts_but_one_part_once_stripped() -> None:
    assert sms_segments(REMINDER) == ("UCS-2", 2)
    assert sms_segments(strip_diacritics(REMINDER)) == ("GSM-7", 1)


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("", "GSM-7", 0),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("é" * 160, "GSM-7", 1),
        ("{}" * 40, "GSM-7", 1),
        ("[]~^|€\\" + "a" * 146, "GSM-7", 1),
        ("€" * 81, "GSM-7", 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),
        ("ă" * 70, "UCS-2", 1),
        ("ă" * 71, "UCS-2", 2),
        ("ă" * 134, "UCS-2", 2),
        ("ă" * 135, "UCS-2", 3),
        ("a" * 159 + "ư", "UCS-2", 3),
        ("😀" * 35, "UCS-2", 1),
        ("😀" * 36, "UCS-2", 2),
    ],
)
def test_encoding_and_part_count(text: str, encoding: str, parts: int) -> None:
    assert sms_segments(text) == (encoding, parts)
