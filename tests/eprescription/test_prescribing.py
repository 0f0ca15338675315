"""Writing and signing a prescription: who may, the signing ceremony, what the patient then sees."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
import httpx
import pytest

from api.settings import Settings
from eprescription import national_sync
from eprescription.national_sandbox import NationalRxSandbox
from tests.consultations.factories import make_consultation
from tests.eprescription.prescribing import draft, line, patient_headers, sign, signing_code, staff_headers
from tests.helpers import Client

pytestmark = pytest.mark.usefixtures("demo")
MAI = "+84912345678"
HUNG = "+84987654321"


async def test_doctor_drafts_signs_and_the_patient_reads_it(client: Client, pool: asyncpg.Pool,
                                                            settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(client, doctor, consultation_id,
                          [await line(pool, "Paracetamol", "500 mg", dose=1, times=3, days=3)],
                          advice="Uống nhiều nước, nghỉ ngơi.", follow_up_days=3)
    assert created["status"] == "draft" and created["code"] is None
    assert created["lines"][0]["instructions"] == "Mỗi lần 01 viên, ngày 03 lần. Uống sau ăn"
    assert created["lines"][0]["quantity"] == 9

    signed = await sign(client, doctor, created["id"])
    assert signed.status_code == 200, signed.text
    rx = signed.json()
    assert rx["status"] == "issued" and rx["rx_type"] == "c"
    assert re.fullmatch(r"79026[0-9a-z]{7}-c", rx["code"])
    issued = datetime.fromisoformat(rx["issued_at"])
    until = datetime.fromisoformat(rx["valid_until"])
    assert issued.utcoffset() == timedelta(hours=7)  # shown in Vietnam time
    assert (until.date() - issued.date()).days == 4 and (until.hour, until.minute, until.second) == (23, 59, 59)
    assert rx["national"]["status"] == "pending"  # queued in the signing transaction

    patient = await patient_headers(pool, settings, MAI)
    mine = (await client.get("/prescriptions", headers=patient)).json()
    assert [(p["code"], p["status"], p["lines"], p["remaining_lines"]) for p in mine] == [
        (rx["code"], "issued", 1, 1)]
    seen = (await client.get(f"/prescriptions/{rx['id']}", headers=patient)).json()
    assert seen["lines"][0]["remaining_quantity"] == 9 and seen["advice"] == "Uống nhiều nước, nghỉ ngơi."
    views = await pool.fetch("SELECT actor_role FROM audit_log WHERE action = 'prescription.viewed' AND target_id = $1",
                             rx["id"])
    assert [v["actor_role"] for v in views] == ["patient"]


async def test_only_the_treating_doctor_may_prescribe(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    other = await staff_headers(pool, settings, "bs.minh")
    body = {"consultation_id": str(consultation_id), "lines": [await line(pool, "Paracetamol", "500 mg")]}
    response = await client.post("/prescriptions", headers=other, json=body)
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/prescribing-not-allowed"
    for username in ("ds.hoa", "admin"):
        refused = await client.post("/prescriptions", headers=await staff_headers(pool, settings, username), json=body)
        assert refused.status_code == 403, username
    patient = await client.post("/prescriptions", headers=await patient_headers(pool, settings, MAI), json=body)
    assert patient.status_code == 403


@pytest.mark.parametrize(("status", "ended_hours_ago", "allowed"), [
    ("booked", None, False), ("waiting", None, False), ("in_call", None, True),
    ("completed", 1, True), ("completed", 25, False), ("no_show", None, False),
])
async def test_prescribing_follows_the_consultation_state_and_window(
        client: Client, pool: asyncpg.Pool, settings: Settings, status: str, ended_hours_ago: int | None,
        allowed: bool) -> None:
    consultation_id = await make_consultation(pool, status=status, starts_in=timedelta(hours=-30))
    if ended_hours_ago is not None:
        await pool.execute("UPDATE consultations SET call_ended_at = now() - make_interval(hours => $2) WHERE id = $1",
                           consultation_id, ended_hours_ago)
    doctor = await staff_headers(pool, settings, "bs.lan")
    response = await client.post("/prescriptions", headers=doctor, json={
        "consultation_id": str(consultation_id), "lines": [await line(pool, "Paracetamol", "500 mg")]})
    assert (response.status_code == 201) is allowed, response.text


async def test_patients_see_only_their_own_and_their_childrens(client: Client, pool: asyncpg.Pool,
                                                               settings: Settings) -> None:
    child_consultation = await make_consultation(pool, status="in_call", for_child=True)
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(client, doctor, child_consultation,
                          [await line(pool, "Paracetamol", "250 mg", unit="gói", dose=1, times=3, days=2)])
    mai, hung = await patient_headers(pool, settings, MAI), await patient_headers(pool, settings, HUNG)
    # a draft is the doctor's working copy: not even the guardian sees it
    assert (await client.get(f"/prescriptions/{created['id']}", headers=mai)).status_code == 404
    assert (await sign(client, doctor, created["id"])).status_code == 200
    assert (await client.get(f"/prescriptions/{created['id']}", headers=mai)).status_code == 200
    assert [p["patient_name"] for p in (await client.get("/prescriptions", headers=mai)).json()] == ["Trần Gia Bảo"]
    stranger = await client.get(f"/prescriptions/{created['id']}", headers=hung)
    assert stranger.status_code == 404 and stranger.json()["type"] == "/problems/prescription-not-found"
    assert (await client.get("/prescriptions", headers=hung)).json() == []
    other_doctor = await staff_headers(pool, settings, "bs.minh")
    assert (await client.get(f"/prescriptions/{created['id']}", headers=other_doctor)).status_code == 404
    pharmacist = await staff_headers(pool, settings, "ds.hoa")
    assert (await client.get(f"/prescriptions/{created['id']}", headers=pharmacist)).status_code == 403


async def test_a_wrong_or_replayed_signing_code_signs_nothing(client: Client, pool: asyncpg.Pool,
                                                             settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    first = await draft(client, doctor, consultation_id, [await line(pool, "Paracetamol", "500 mg")])
    wrong = await client.post(f"/prescriptions/{first['id']}/sign", headers=doctor,
                              json={"totp_code": "000000" if signing_code() != "000000" else "111111"})
    assert wrong.status_code == 422
    assert wrong.json()["type"] == "/problems/signing-code-rejected"
    assert wrong.json()["errors"][0]["path"] == "body.totp_code"
    assert (await client.get(f"/prescriptions/{first['id']}", headers=doctor)).json()["status"] == "draft"
    assert await pool.fetchval("SELECT failed_logins FROM accounts WHERE username = 'bs.lan'") == 1
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'prescription.sign_code_rejected'") == 1

    assert (await sign(client, doctor, first["id"])).status_code == 200
    await client.post(f"/prescriptions/{first['id']}/cancel", headers=doctor, json={"reason": "prescribing_error"})
    second = await draft(client, doctor, consultation_id, [await line(pool, "Loratadin")])
    replayed = await sign(client, doctor, second["id"])  # the same code again, seconds later
    assert replayed.status_code == 422
    assert (await sign(client, doctor, second["id"], steps_ahead=1)).status_code == 200


async def test_a_contraindicated_finding_needs_an_override_reason_which_is_kept(
        client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call", for_child=True)  # penicillin allergy
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(client, doctor, consultation_id,
                          [await line(pool, "Amoxicilin", "250 mg", unit="gói", dose=1, times=2, days=5)])
    refused = await sign(client, doctor, created["id"])
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["type"] == "/problems/clinical-override-required"
    allergy = next(f for f in problem["findings"] if f["rule"] == "CDS-2")
    assert allergy["severity"] == "contraindicated" and allergy["positions"] == [1]
    assert (await client.get(f"/prescriptions/{created['id']}", headers=doctor)).json()["status"] == "draft"

    reason = "Đã hỏi kỹ: chỉ phát ban nhẹ năm 2025, mẹ đồng ý, theo dõi sát."
    signed = await sign(client, doctor, created["id"], overrides=[{"key": allergy["key"], "reason": reason}])
    assert signed.status_code == 200, signed.text
    stored = next(f for f in signed.json()["findings"] if f["key"] == allergy["key"])
    assert stored["override_reason"] == reason
    audit = await pool.fetchval("SELECT details FROM audit_log WHERE action = 'prescription.signed'")
    assert audit["overridden"] == [allergy["key"]]


async def test_dry_run_reports_without_storing(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    body = {"consultation_id": str(consultation_id), "diagnoses": [{"code": "J02.9"}],
            "lines": [await line(pool, "Warfarin"), await line(pool, "Metronidazol", days=31)]}
    report = (await client.post("/prescriptions/dry-run", headers=doctor, json=body)).json()
    assert {p["rule"] for p in report["problems"]} == {"TM-5", "VN-2.3"}
    assert any(f["rule"] == "CDS-1" and f["severity"] == "major" and f["positions"] == [1, 2]
               for f in report["findings"])
    assert await pool.fetchval("SELECT count(*) FROM prescriptions") == 0


async def test_draft_edits_and_signed_prescriptions_are_immutable(client: Client, pool: asyncpg.Pool,
                                                                  settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(client, doctor, consultation_id, [await line(pool, "Paracetamol", "500 mg")])
    edited = await client.patch(f"/prescriptions/{created['id']}", headers=doctor, json={
        "lines": [await line(pool, "Cetirizin", times=1, days=7)], "advice": "Tránh bụi."})
    assert edited.status_code == 200
    assert [li["drug_name"] for li in edited.json()["lines"]] == ["Cetirizin"]
    assert edited.json()["advice"] == "Tránh bụi."
    bad = await client.patch(f"/prescriptions/{created['id']}", headers=doctor, json={
        "lines": [{**await line(pool, "Cetirizin"), "drug_id": "00000000-0000-0000-0000-000000000000"}]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "body.lines[0].drug_id"

    assert (await sign(client, doctor, created["id"])).status_code == 200
    again = await client.patch(f"/prescriptions/{created['id']}", headers=doctor, json={"advice": "x"})
    assert again.status_code == 409 and again.json()["type"] == "/problems/prescription-state-conflict"
    assert (await client.delete(f"/prescriptions/{created['id']}", headers=doctor)).status_code == 409
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await pool.execute("UPDATE prescription_lines SET quantity = 99 WHERE prescription_id = $1", created["id"])
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await pool.execute("UPDATE prescriptions SET advice = 'x' WHERE id = $1", created["id"])
    # what pharmacy_link will do is still possible
    await pool.execute("UPDATE prescription_lines SET dispensed_quantity = 1 WHERE prescription_id = $1",
                       created["id"])


async def test_a_draft_can_be_discarded(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(client, doctor, consultation_id, [await line(pool, "Paracetamol", "500 mg")])
    assert (await client.delete(f"/prescriptions/{created['id']}", headers=doctor)).status_code == 204
    assert (await client.get(f"/prescriptions/{created['id']}", headers=doctor)).status_code == 404


async def test_two_simultaneous_signs_of_one_draft_give_one_signed_prescription(
        live_server: str, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, status="in_call")
    doctor = await staff_headers(pool, settings, "bs.lan")
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as http:
        created = await http.post("/prescriptions", headers=doctor, json={
            "consultation_id": str(consultation_id), "diagnoses": [{"code": "J00"}],
            "lines": [await line(pool, "Paracetamol", "500 mg")]})
        assert created.status_code == 201, created.text
        rx_id = created.json()["id"]
        # two console tabs, each with a valid code of its own
        results = await asyncio.gather(*(
            http.post(f"/prescriptions/{rx_id}/sign", headers=doctor, json={"totp_code": signing_code(steps_ahead=s)})
            for s in (0, 1)))
    assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert loser.json()["type"] == "/problems/prescription-state-conflict"
    rows = await pool.fetch("SELECT code FROM prescriptions WHERE consultation_id = $1", consultation_id)
    assert len(rows) == 1 and rows[0]["code"] is not None
    assert await pool.fetchval("SELECT count(*) FROM national_rx_outbox WHERE prescription_id = $1",
                               UUID(rx_id)) == 1


async def test_a_signed_prescription_reaches_the_national_system_once(
        client: Client, pool: asyncpg.Pool, settings: Settings, national_settings: Settings,
        national_sandbox: NationalRxSandbox) -> None:
    """API-R2/R3 end to end: signed through the API for a child (weight and guardian, VN-1.4), queued in the signing
    transaction, sent by the worker job to the QĐ 808 sandbox, visible to the doctor as sent."""
    consultation_id = await make_consultation(pool, status="in_call", for_child=True)
    doctor = await staff_headers(pool, settings, "bs.lan")
    created = await draft(client, doctor, consultation_id,
                          [await line(pool, "Paracetamol", "250 mg", unit="gói", dose=0.5, times=3, days=3)])
    rx = (await sign(client, doctor, created["id"])).json()
    assert rx["national"]["status"] == "pending"

    assert await national_sync.send_due(pool, national_settings) == 1
    assert await national_sync.send_due(pool, national_settings) == 0  # nothing is sent twice
    [received] = national_sandbox.prescriptions()
    body = received.body
    assert body["ma_don_thuoc"] == rx["code"] and body["loai_don_thuoc"] == "c"
    assert body["can_nang"] == 11.5 and "Nguyễn Thị Mai" in body["thong_tin_nguoi_giam_ho"]
    assert body["chan_doan"][0]["ma_chan_doan"] == "J00"
    assert body["thong_tin_don_thuoc"][0]["so_luong"] == 5  # 0.5 × 3 × 3 = 4.5 → 5 sachets
    seen = (await client.get(f"/prescriptions/{rx['id']}", headers=doctor)).json()
    assert seen["national"]["status"] == "sent" and seen["national"]["errors"] == []
