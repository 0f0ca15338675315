"""Thin wrappers over the crypto libraries: password hashing (argon2), keyed hashes, and sealing secrets at rest."""

from __future__ import annotations

import hashlib
import hmac
import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_hasher = PasswordHasher()
# Verifying against this when the account does not exist keeps "no such user" as slow as "wrong password".
_DUMMY_HASH = _hasher.hash("lienthong-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def keyed_hash(pepper: bytes, *parts: str) -> bytes:
    """HMAC-SHA256 over the parts: how OTPs, refresh tokens and recovery codes are stored (never in clear)."""
    return hmac.new(pepper, "\x1f".join(parts).encode(), hashlib.sha256).digest()


def same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def seal(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """AES-GCM with a random nonce; ``context`` (e.g. the account id) binds the ciphertext to its row."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def unseal(key: bytes, blob: bytes, context: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:12], blob[12:], context)
    except InvalidTag:
        raise ValueError("sealed value does not match its key or context") from None
