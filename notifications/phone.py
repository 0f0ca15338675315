"""Vietnamese mobile numbers: turn what people type into E.164, and format E.164 for logs and SMS gateways.

Only mobiles are accepted because every number we store is a destination for SMS OTPs and reminders.
"""

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

# Generous for "(+84) 0912 345 678"-style input, small enough that parsing cost is bounded.
MAX_INPUT_LENGTH = 32

# Digits and the punctuation people use when writing numbers. Letters are refused because
# libphonenumber would read them as a vanity number ("0912345678abc") or an extension ("ext 5").
_WRITTEN_NUMBER = re.compile(r"[0-9+()\-.\s]+")
_VN_E164 = re.compile(r"\+84(\d{9})")

# 11-digit mobile prefixes converted to 10 digits in 2018-2019 (spec §2.6). People still have them in
# old contact lists; libphonenumber now reports them invalid, so we translate before validating.
_OLD_MOBILE_PREFIXES = {
    **{f"16{d}": f"3{d}" for d in "23456789"},  # Viettel 0162-0169 -> 032-039
    "120": "70", "121": "79", "122": "77", "126": "76", "128": "78",  # MobiFone
    "123": "83", "124": "84", "125": "85", "127": "81", "129": "82",  # VinaPhone
    "186": "56", "188": "58",  # Vietnamobile
    "199": "59",  # Gmobile
}  # fmt: skip

# Mobile ranges in use (052 Vietnamobile, 055 Reddi) that libphonenumber 9.0.x metadata still marks
# invalid. The spec says not to hard-reject numbers that only fail metadata, so they pass on shape alone.
_MISSING_FROM_METADATA = re.compile(r"5[25]\d{7}")

_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


class InvalidPhoneNumber(ValueError):
    """The text is not a Vietnamese mobile number that can receive SMS."""

    def __init__(self, reason: str) -> None:
        # The rejected input is deliberately left out: exception messages end up in logs.
        super().__init__(
            f"Invalid phone number ({reason}): expected a Vietnamese mobile number, e.g. 0912345678 "
            "or +84912345678."
        )
        self.reason = reason


def normalize_vn_phone(raw: str) -> str:
    """Return the E.164 form (``+84912345678``) of a Vietnamese mobile number written in any usual way."""
    if len(raw) > MAX_INPUT_LENGTH:
        raise InvalidPhoneNumber("too long")
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("empty")
    if not _WRITTEN_NUMBER.fullmatch(text):
        raise InvalidPhoneNumber("unexpected characters")
    try:
        parsed = phonenumbers.parse(text, "VN")
    except NumberParseException:
        raise InvalidPhoneNumber("not a phone number") from None
    if parsed.country_code != 84:
        raise InvalidPhoneNumber("not a Vietnamese number")

    national = str(parsed.national_number)
    old_prefix = national[:3]
    if len(national) == 10 and old_prefix in _OLD_MOBILE_PREFIXES:
        national = _OLD_MOBILE_PREFIXES[old_prefix] + national[3:]
        parsed = phonenumbers.PhoneNumber(country_code=84, national_number=int(national))

    if phonenumbers.is_valid_number(parsed):
        if phonenumbers.number_type(parsed) not in _MOBILE_TYPES:
            raise InvalidPhoneNumber("not a mobile number")
    elif not _MISSING_FROM_METADATA.fullmatch(national):
        raise InvalidPhoneNumber("not a valid number")
    return f"+84{national}"


def _subscriber_digits(e164: str) -> str:
    match = _VN_E164.fullmatch(e164)
    if match is None:
        raise InvalidPhoneNumber("not in +84 E.164 form")
    return match.group(1)


def mask_phone(e164: str) -> str:
    """Hide the middle of a number for logs: ``+84912345678`` -> ``+8491*****78``."""
    digits = _subscriber_digits(e164)
    return f"+84{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"


def to_domestic(e164: str) -> str:
    """Return the 10-digit domestic form (``0912345678``) that Vietnamese SMS gateways expect."""
    return f"0{_subscriber_digits(e164)}"
