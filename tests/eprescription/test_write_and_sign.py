"""Writing and signing in one request (``POST /prescriptions/signed``): what the console sends when the doctor signs
content that was never saved as a draft. Same rules, checks and ceremony as signing a draft; nothing is stored
unless the signature is made."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from api.settings import Settings
from eprescription import signing
from tests.consultations.factories import make_consultation
from tests.eprescription.prescribing import line, patient_headers, signing_code, staff_headers
from tests.helpers import Client

pytestmark = pytest.mark.usefixtures("demo")
MAI = "+84912345678"


def body(consultation_id: UUID, lines: list[dict[str, Any]], *, steps_ahead: int = 0, code: str | None = None,
         **fields: Any) -> dict[str, Any]:
    return {"consultation_id": str(consultation_id), "lines": lines,
            "diagnoses": fields.pop("diagnoses", [{"code": "J00", "conclusion": "Cảm lạnh"}]),
            "totp_code": code or signing_code(steps_ahead=steps_ahead), **fields}


async def stored(pool: asyncpg.Pool, consultation_id: UUID) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT id, status, code FROM prescriptions WHERE consultation_id = $1", consultation_id)


async def test_written_and_signed_in_one_request(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    response = await client.post("/prescriptions/signed", headers=doctor, json=body(
        consultation_id, [await line(pool, "Paracetamol", "500 mg", dose=1, times=3, days=3),
                          await line(pool, "Loratadin", dose=1, times=1, days=5)],
        advice="Uống nhiều nước, nghỉ ngơi.", follow_up_days=3))
    assert response.status_code == 201, response.text
    rx = response.json()
    assert rx["status"] == "issued" and re.fullmatch(r"79026[0-9a-z]{7}-c", rx["code"])
    assert [(li["position"], li["quantity"], li["instructions"]) for li in rx["lines"]] == [
        (1, 9, "Mỗi lần 01 viên, ngày 03 lần. Uống sau ăn"), (2, 5, "Mỗi lần 01 viên, ngày 01 lần. Uống sau ăn")]
    assert rx["lines"][0]["drug_name"].startswith("Paracetamol") and rx["diagnoses"][0]["name"]
    assert rx["advice"] == "Uống nhiều nước, nghỉ ngơi." and rx["national"]["status"] == "pending"
    assert [(r["status"], r["code"]) for r in await stored(pool, consultation_id)] == [("issued", rx["code"])]

    # the stored signature covers what the rows say, as the pharmacy counter checks it
    document = (await client.get(f"/prescriptions/{rx['id']}/signature", headers=doctor)).json()
    keys = {k["id"]: k for k in (await client.get("/prescriptions/signing-keys")).json()}
    assert signing.verify(signing.unb64url(keys[document["key_id"]]["public_key"]),
                          signing.unb64url(document["content"]), signing.unb64url(document["signature"]))
    audit = await pool.fetchrow("SELECT target_id, details FROM audit_log WHERE action = 'prescription.signed'")
    assert audit["target_id"] == rx["id"] and audit["details"]["drafted"] is False
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'prescription.draft_created'") == 0
    notices = await pool.fetchval(
        "SELECT count(*) FROM notification_outbox WHERE kind = 'prescription_issued' AND subject = $1",
        f"prescription:{rx['id']}")
    assert notices >= 1

    mine = (await client.get("/prescriptions", headers=await patient_headers(pool, settings, MAI))).json()
    assert [(p["code"], p["lines"]) for p in mine] == [(rx["code"], 2)]


async def test_a_wrong_code_stores_nothing_but_counts(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    lines = [await line(pool, "Paracetamol", "500 mg")]
    wrong = await client.post("/prescriptions/signed", headers=doctor, json=body(
        consultation_id, lines, code="000000" if signing_code() != "000000" else "111111"))
    assert wrong.status_code == 422
    assert wrong.json()["type"] == "/problems/signing-code-rejected"
    assert wrong.json()["errors"][0]["path"] == "body.totp_code"
    assert await stored(pool, consultation_id) == []  # no draft left behind
    assert await pool.fetchval("SELECT failed_logins FROM accounts WHERE username = 'bs.lan'") == 1
    rejected = await pool.fetchrow(
        "SELECT target_type, target_id FROM audit_log WHERE action = 'prescription.sign_code_rejected'")
    assert (rejected["target_type"], rejected["target_id"]) == ("consultation", str(consultation_id))

    assert (await client.post("/prescriptions/signed", headers=doctor,
                              json=body(consultation_id, lines))).status_code == 201
    replayed = await client.post("/prescriptions/signed", headers=doctor, json=body(
        await make_consultation(pool, status="in_call", starts_in=timedelta(minutes=40)),
        lines))
    assert replayed.status_code == 422 and replayed.json()["type"] == "/problems/signing-code-rejected"


async def test_rule_problems_and_blocking_findings_are_refused_before_the_code_is_spent(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call", for_child=True)  # penicillin allergy
    doctor = await staff_headers(pool, settings, "bs.lan")
    amoxicillin = await line(pool, "Amoxicilin", "250 mg", unit="gói", dose=1, times=2, days=5)

    unknown = await client.post("/prescriptions/signed", headers=doctor, json=body(
        consultation_id, [{**amoxicillin, "drug_id": "00000000-0000-4000-8000-000000000000"}], weight_kg=12))
    assert unknown.status_code == 422 and unknown.json()["type"] == "/problems/prescription-rule-violated"
    assert "lines[0].drug_id" in {e["path"] for e in unknown.json()["errors"]}

    refused = await client.post("/prescriptions/signed", headers=doctor,
                                json=body(consultation_id, [amoxicillin], weight_kg=12))
    assert refused.status_code == 422 and refused.json()["type"] == "/problems/clinical-override-required"
    allergy = next(f for f in refused.json()["findings"] if f["rule"] == "CDS-2")
    assert await stored(pool, consultation_id) == []

    reason = "Đã hỏi kỹ: chỉ phát ban nhẹ năm 2025, mẹ đồng ý, theo dõi sát."
    signed = await client.post("/prescriptions/signed", headers=doctor, json=body(  # the same code: still unspent
        consultation_id, [amoxicillin], weight_kg=12, overrides=[{"key": allergy["key"], "reason": reason}]))
    assert signed.status_code == 201, signed.text
    kept = next(f for f in signed.json()["findings"] if f["key"] == allergy["key"])
    assert kept["override_reason"] == reason
    document = (await client.get(f"/prescriptions/{signed.json()['id']}/signature", headers=doctor)).json()
    signed_patient = json.loads(signing.unb64url(document["content"]))["patient"]
    assert signed_patient["guardian"]["full_name"] and signed_patient["weight_kg"] == 12  # VN-1.4


async def test_only_the_treating_doctor_may_write_and_sign(client: Client, pool: asyncpg.Pool,
                                                           settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    lines = [await line(pool, "Paracetamol", "500 mg")]
    for headers in (await staff_headers(pool, settings, "bs.minh"), await staff_headers(pool, settings, "ds.hoa"),
                    await staff_headers(pool, settings, "admin"), await patient_headers(pool, settings, MAI)):
        refused = await client.post("/prescriptions/signed", headers=headers,
                                    json=body(consultation_id, lines, code=signing_code("bs.minh")))
        assert refused.status_code == 403, refused.text
    assert await stored(pool, consultation_id) == []
    assert await pool.fetchval("SELECT failed_logins FROM accounts WHERE username = 'bs.minh'") == 0


async def test_a_double_submitted_signature_gives_one_prescription(live_server: str, pool: asyncpg.Pool,
                                                                   settings: Settings) -> None:
    """A double click sends the same code twice; two console tabs send two valid codes. Either way the consultation
    ends with one open normal prescription (VN-1.10), settled by the statement that spends the TOTP step (it
    re-checks the step under the row lock its UPDATE takes) and by the database's index."""
    doctor = await staff_headers(pool, settings, "bs.lan")
    lines = [await line(pool, "Paracetamol", "500 mg")]
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as http:
        # a double click: the same code twice (the step before this one, still accepted); then two tabs, codes 0, +1
        for minutes, steps in ((0, (-1, -1)), (40, (0, 1))):
            consultation_id = await make_consultation(pool, status="in_call", starts_in=timedelta(minutes=minutes))
            results = await asyncio.gather(*(
                http.post("/prescriptions/signed", headers=doctor, json=body(consultation_id, lines, steps_ahead=s))
                for s in steps))
            assert sorted(r.status_code for r in results) == [201, 422], [r.text for r in results]
            loser = next(r for r in results if r.status_code == 422).json()["type"]
            # tabs: whichever code comes second is either older than the one just spent, or valid and then refused
            # by VN-1.10 (one open normal prescription per consultation)
            assert loser in ({"/problems/signing-code-rejected"} if steps == (-1, -1) else {
                "/problems/signing-code-rejected", "/problems/prescription-rule-violated"})
            rows = await stored(pool, consultation_id)
            assert len(rows) == 1 and rows[0]["status"] == "issued"


async def test_the_answer_is_the_prescription_as_read_back(client: Client, pool: asyncpg.Pool,
                                                           settings: Settings) -> None:
    """The 201 is built from what the request already holds, not read back: it must say exactly what reading the
    prescription says, here for a child (guardian, weight), a dose and a weight that the numeric columns round, the
    consultation record's diagnoses and an overridden finding. The notice reaches the guardian, as from a draft."""
    consultation_id = await make_consultation(pool, status="in_call", for_child=True)  # penicillin allergy
    await pool.execute("""INSERT INTO consultation_diagnoses (consultation_id, position, code, name, is_principal)
                          VALUES ($1, 1, 'R05', 'Ho', false), ($1, 2, 'J00', 'Cảm lạnh', true)""", consultation_id)
    doctor = await staff_headers(pool, settings, "bs.lan")
    lines = [await line(pool, "Amoxicilin", "250 mg", unit="gói", dose=1, times=2, days=5),
             await line(pool, "Paracetamol", "500 mg", dose=0.7505, times=3, days=3)]
    ask = body(consultation_id, lines, weight_kg=10.045, diagnoses=None, advice="Theo dõi sốt.")
    refused = await client.post("/prescriptions/signed", headers=doctor, json=ask)
    assert refused.status_code == 422, refused.text
    overrides = [{"key": f["key"], "reason": "Đã hỏi kỹ tiền sử dị ứng, mẹ đồng ý."}
                 for f in refused.json()["findings"] if f["blocks_signing"]]
    signed = await client.post("/prescriptions/signed", headers=doctor, json={**ask, "overrides": overrides})
    assert signed.status_code == 201, signed.text
    rx = signed.json()
    read_back = await client.get(f"/prescriptions/{rx['id']}", headers=doctor)
    assert rx == read_back.json()

    # what the columns keep, as PostgreSQL rounds a float8 into them: the same as a draft would have stored
    assert rx["lines"][1]["dose_per_time"] == await pool.fetchval("SELECT 0.7505::float8::numeric(10, 3)::float8")
    assert rx["weight_kg"] == await pool.fetchval("SELECT 10.045::float8::numeric(5, 2)::float8")
    assert [d["code"] for d in rx["diagnoses"]] == ["J00", "R05"] and rx["diagnoses"][0]["name"]
    assert [f["override_reason"] for f in rx["findings"] if f["blocks_signing"]] == [o["reason"] for o in overrides]
    document = (await client.get(f"/prescriptions/{rx['id']}/signature", headers=doctor)).json()
    content = json.loads(signing.unb64url(document["content"]))
    assert [li["dose_per_time"] for li in content["lines"]] == [li["dose_per_time"] for li in rx["lines"]]
    assert content["patient"]["weight_kg"] == rx["weight_kg"]

    guardians = await pool.fetch(
        """SELECT g.account_id FROM prescriptions p JOIN guardianships gs ON gs.dependent_id = p.patient_id
           JOIN patients g ON g.id = gs.guardian_id WHERE p.id = $1 AND g.account_id IS NOT NULL""", UUID(rx["id"]))
    notified = await pool.fetch("SELECT account_id, channel FROM notification_outbox WHERE subject = $1",
                                f"prescription:{rx['id']}")
    assert guardians and sorted((r["account_id"], r["channel"]) for r in notified) == sorted(
        (g["account_id"], "push") for g in guardians)


async def test_lines_are_fixed_once_the_signing_transaction_commits(client: Client, pool: asyncpg.Pool,
                                                                    settings: Settings) -> None:
    """A prescription inserted already signed gets its lines in the same statement; afterwards nobody adds,
    changes or removes one (the database refuses, whoever asks)."""
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    signed = await client.post("/prescriptions/signed", headers=doctor,
                               json=body(consultation_id, [await line(pool, "Paracetamol", "500 mg")]))
    assert signed.status_code == 201, signed.text
    rx_id = UUID(signed.json()["id"])
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await pool.execute(
            """INSERT INTO prescription_lines (prescription_id, position, drug_id, drug_name, strength, dosage_form,
                                               dose_per_time, dose_unit, times_per_day, days, quantity, quantity_unit,
                                               route)
               SELECT prescription_id, 2, drug_id, drug_name, strength, dosage_form, dose_per_time, dose_unit,
                      times_per_day, days, quantity, quantity_unit, route
               FROM prescription_lines WHERE prescription_id = $1""", rx_id)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await pool.execute("UPDATE prescription_lines SET quantity = 99 WHERE prescription_id = $1", rx_id)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await pool.execute("DELETE FROM prescription_lines WHERE prescription_id = $1", rx_id)
    assert await pool.fetchval("SELECT count(*) FROM prescription_lines WHERE prescription_id = $1", rx_id) == 1
