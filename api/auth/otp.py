"""One-time SMS codes for patient sign-in: generation with pyotp, storage as a keyed hash only."""

from __future__ import annotations

import pyotp

from api.auth.secrets_box import keyed_hash

DIGITS = 6


def new_code() -> str:
    # HOTP over a fresh 160-bit random secret: a uniformly distributed 6-digit code; the secret is discarded.
    code: str = pyotp.HOTP(pyotp.random_base32(32), digits=DIGITS).at(0)
    return code


def code_hash(pepper: bytes, challenge_id: str, code: str) -> bytes:
    return keyed_hash(pepper, "otp", challenge_id, code)


def sms_text(code: str, ttl_s: int) -> str:
    # Unaccented so the SMS stays GSM-7 in one segment; no health information in SMS.
    return f"Lienthong: ma xac thuc cua ban la {code}, hieu luc {ttl_s // 60} phut. Khong chia se ma nay cho ai."
