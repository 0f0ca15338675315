"""The electronic signature and the QR code: a pharmacy can verify offline, and nothing altered or forged passes."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from api import db
from api.auth.secrets_box import unseal
from api.settings import Settings
from eprescription import signing
from tests.consultations.factories import make_consultation
from tests.eprescription.factories import behind_the_apps_back
from tests.eprescription.prescribing import draft, line, patient_headers, sign, staff_headers
from tests.helpers import Client

pytestmark = pytest.mark.usefixtures("demo")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def _signed(client: Client, pool: asyncpg.Pool, settings: Settings) -> tuple[dict[str, Any], dict[str, str]]:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(client, doctor, consultation_id, [
        await line(pool, "Paracetamol", "500 mg", times=3, days=3), await line(pool, "Loratadin", times=1, days=5)])
    signed = await sign(client, doctor, created["id"])
    assert signed.status_code == 200, signed.text
    return signed.json(), doctor


async def test_a_pharmacy_verifies_the_signature_offline_with_the_published_key(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    rx, _ = await _signed(client, pool, settings)
    patient = await patient_headers(pool, settings, "+84912345678")
    document = (await client.get(f"/prescriptions/{rx['id']}/signature", headers=patient)).json()
    keys = (await client.get("/prescriptions/signing-keys")).json()  # public: no token
    key = next(k for k in keys if k["id"] == document["key_id"])
    assert key["licence_number"] == "000123/HCM-CCHN" and key["algorithm"] == "Ed25519"

    content, signature = _unb64(document["content"]), _unb64(document["signature"])
    Ed25519PublicKey.from_public_bytes(_unb64(key["public_key"])).verify(signature, content)  # raises if invalid
    signed = json.loads(content)
    assert signed["code"] == rx["code"] and signed["doctor"]["licence_number"] == "000123/HCM-CCHN"
    assert [(li["drug_name"], li["quantity"]) for li in signed["lines"]] == [
        ("Paracetamol (Panadol)", 9), ("Loratadin (Clarityne)", 5)]
    assert signed["patient"]["address"].startswith("12 Nguyễn Huệ")


async def test_any_changed_byte_fails_verification(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    rx, doctor = await _signed(client, pool, settings)
    document = (await client.get(f"/prescriptions/{rx['id']}/signature", headers=doctor)).json()
    public = Ed25519PublicKey.from_public_bytes(_unb64(next(
        k for k in (await client.get("/prescriptions/signing-keys")).json() if k["id"] == document["key_id"]
    )["public_key"]))
    content, signature = _unb64(document["content"]), _unb64(document["signature"])
    for i in range(len(content)):
        altered = bytearray(content)
        altered[i] ^= 0x01
        with pytest.raises(InvalidSignature):
            public.verify(signature, bytes(altered))
    for i in range(len(signature)):
        altered = bytearray(signature)
        altered[i] ^= 0x80
        with pytest.raises(InvalidSignature):
            public.verify(bytes(altered), content)


async def test_a_change_made_behind_the_applications_back_is_detected(client: Client, pool: asyncpg.Pool,
                                                                      settings: Settings,
                                                                      database: db.DatabaseTarget) -> None:
    rx, _ = await _signed(client, pool, settings)
    pharmacist = await staff_headers(pool, settings, "ds.hoa")
    before = (await client.post("/dispensing/verify", headers=pharmacist, json={"code": rx["code"]})).json()
    assert before["signature_valid"] and before["dispensable"]
    # someone with database rights switches the triggers off and raises a quantity
    await behind_the_apps_back(
        database, "prescription_lines",
        "UPDATE prescription_lines SET quantity = 90 WHERE prescription_id = $1 AND position = 1", UUID(rx["id"]))
    after = (await client.post("/dispensing/verify", headers=pharmacist, json={"code": rx["code"]})).json()
    assert not after["signature_valid"] and not after["dispensable"]
    refused = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses",
                                headers={**pharmacist, "Idempotency-Key": "tampered-0001"}, json={
                                    "invoice_number": "HD1", "recipient": {"full_name": "Nguyễn Thị Mai"},
                                    "lines": [{"position": 1, "quantity": 90, "lot_number": "L1",
                                               "expiry_date": "2099-01-01", "unit_price_vnd": 1000}]})
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/prescription-signature-invalid"


async def test_the_private_key_is_never_stored_in_clear(client: Client, pool: asyncpg.Pool,
                                                        settings: Settings) -> None:
    await _signed(client, pool, settings)
    row = await pool.fetchrow("SELECT id, public_key, private_key_enc FROM doctor_signing_keys")
    raw = unseal(settings.data_key, row["private_key_enc"], row["id"].bytes)
    assert raw not in row["private_key_enc"] and len(row["private_key_enc"]) > 32
    derived = Ed25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    assert derived == row["public_key"]


async def test_the_qr_carries_the_signed_code_and_verifies(client: Client, pool: asyncpg.Pool,
                                                           settings: Settings) -> None:
    rx, _doctor = await _signed(client, pool, settings)
    patient = await patient_headers(pool, settings, "+84912345678")
    payload = (await client.get(f"/prescriptions/{rx['id']}/qr", headers=patient)).json()["payload"]
    assert rx["code"] in payload and "Nguyễn" not in payload and len(payload) < 200
    png = await client.get(f"/prescriptions/{rx['id']}/qr.png", headers=patient)
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert png.content == signing.qr_png(payload)
    svg = await client.get(f"/prescriptions/{rx['id']}/qr.svg", headers=patient)
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content

    pharmacist = await staff_headers(pool, settings, "ds.hoa")
    checked = await client.post("/prescriptions/qr-check", headers=pharmacist, json={"qr": payload})
    assert checked.status_code == 200
    assert checked.json()["code"] == rx["code"] and checked.json()["prescription_id"] == rx["id"]
    assert (await client.post("/prescriptions/qr-check", headers=patient, json={"qr": payload})).status_code == 403


async def test_a_forged_qr_is_refused(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    rx, _ = await _signed(client, pool, settings)
    pharmacist = await staff_headers(pool, settings, "ds.hoa")
    # pharmacists find prescriptions by code (pharmacy_link), never by id
    assert (await client.get(f"/prescriptions/{rx['id']}/qr", headers=pharmacist)).status_code == 403
    real = (await client.get(f"/prescriptions/{rx['id']}/qr",
                             headers=await patient_headers(pool, settings, "+84912345678"))).json()["payload"]
    prefix, code, key_id, signature = real.split(".")
    other_code = code[:5] + "zzzzzzz" + code[12:]
    forger = Ed25519PrivateKey.generate()
    forged = {
        "another code, the real signature": ".".join((prefix, other_code, key_id, signature)),
        "signed with someone else's key": ".".join((prefix, code, key_id, signing.b64url(
            forger.sign(signing.qr_message(code))))),
        "random signature": ".".join((prefix, code, key_id, signing.b64url(secrets.token_bytes(64)))),
        "unknown key id": ".".join((prefix, code, signing.b64url(secrets.token_bytes(16)), signature)),
        "truncated": real[:-10],
        "not ours": "https://example.com/rx/" + code,
    }
    for what, text in forged.items():
        response = await client.post("/prescriptions/qr-check", headers=pharmacist, json={"qr": text})
        assert response.status_code == 422, what
        assert response.json()["type"] == "/problems/qr-invalid", what
        assert response.json()["errors"][0]["path"] == "body.qr", what
