"""Electronic signature of prescriptions (Ed25519 via ``cryptography``) and the signed QR code.

* Each doctor has one current key pair; the private key is sealed with LIENTHONG_DATA_KEY (AES-GCM bound to the key
  id) and only opened inside the signing transaction. Public keys are published (GET /prescriptions/signing-keys)
  so a pharmacy can verify a prescription offline.
* The signature covers ``SignedContent.canonical()``: any change to any byte of the content fails verification.
* The QR carries the code and a signature over the code only — no patient data, so a photographed QR leaks nothing
  but the code: ``LT1.<code>.<key id>.<signature>``, all base64url without padding.
* §9 U-6: the legal form of the prescriber's signature on the national system is unconfirmed; this signature (with
  the TOTP step-up at signing time, the EPCS pattern of US-3) is our integrity proof, not a qualified e-signature.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import msgspec
import segno
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from api.auth.secrets_box import seal, unseal
from eprescription.schemas import SignedContent

QR_PREFIX = "LT1"
# domain separation: a prescription signature can never be replayed as a QR signature, or the reverse
_QR_CONTEXT = b"lienthong-rx-qr/1\x00"


class BadQr(ValueError):
    """Not a Lienthong prescription QR, or its signature does not verify."""


def new_key_pair(data_key: bytes, key_id: UUID) -> tuple[bytes, bytes]:
    """(raw 32-byte public key, sealed private key)."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return public, seal(data_key, raw_private, key_id.bytes)


def sign(data_key: bytes, key_id: UUID, sealed_private: bytes, message: bytes) -> bytes:
    private = Ed25519PrivateKey.from_private_bytes(unseal(data_key, sealed_private, key_id.bytes))
    return private.sign(message)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def content_matches_record(public_key: bytes, signed_content: bytes, signature: bytes, *, code: str,
                           valid_until: datetime, lines: Sequence[tuple[int, UUID, int]]) -> bool:
    """The prescriber's signature verifies over the stored content, and that content says what the rows say now:
    code, validity and each line's (position, drug, quantity). An edit that went around the database's triggers
    is caught here, wherever a prescription is trusted (the pharmacy counter)."""
    return _content_matches(public_key, signed_content, signature, code, valid_until, tuple(lines))


# The answer is a pure function of every byte it looks at, so it is remembered for identical inputs: the same
# prescription checked again at the counter (verify, hold, dispense) costs a dictionary look-up instead of an
# Ed25519 verification and a JSON decode. A tampered row or signature is a different key and is checked afresh.
@functools.lru_cache(maxsize=8192)
def _content_matches(public_key: bytes, signed_content: bytes, signature: bytes, code: str, valid_until: datetime,
                     lines: tuple[tuple[int, UUID, int], ...]) -> bool:
    if not verify(public_key, signed_content, signature):
        return False
    content = msgspec.json.decode(signed_content, type=SignedContent)
    return (content.code == code and content.valid_until == valid_until
            and tuple((li.position, li.drug_id, li.quantity) for li in content.lines) == lines)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def qr_message(code: str) -> bytes:
    return _QR_CONTEXT + code.encode()


def qr_payload(code: str, key_id: UUID, signature: bytes) -> str:
    return ".".join((QR_PREFIX, code, b64url(key_id.bytes), b64url(signature)))


def parse_qr(text: str) -> tuple[str, UUID, bytes]:
    """(code, key id, signature) of a scanned QR; BadQr if it is not one of ours."""
    parts = text.strip().split(".")
    if len(parts) != 4 or parts[0] != QR_PREFIX:
        raise BadQr("Not a Lienthong prescription QR code.")
    try:
        key_id = UUID(bytes=unb64url(parts[2]))
        signature = unb64url(parts[3])
    except (ValueError, binascii.Error):
        raise BadQr("The QR code is damaged.") from None
    if len(signature) != 64:
        raise BadQr("The QR code is damaged.")
    return parts[1], key_id, signature


def qr_png(payload: str) -> bytes:
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind="png", scale=6, border=4)
    return out.getvalue()


def qr_svg(payload: str) -> bytes:
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind="svg", scale=6, border=4, xmldecl=True)
    return out.getvalue()
