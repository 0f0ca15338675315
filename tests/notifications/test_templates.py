"""Message texts: every SMS fits one GSM-7 part with long real names, carries no accents and no health details."""

from __future__ import annotations

import pytest

from notifications.templates import TEMPLATES, has_sms, render_push, render_sms
from notifications.text import sms_segments

# the longest plausible values of each parameter
PARAMS: dict[str, object] = {
    "consultation_id": "7b0e8f7e-55a1-4a8e-9c36-8f7f2ad0f0a1", "prescription_id": "5c5c", "payment_id": "p1",
    "child_id": "c1", "doctor_name": "PGS.TS.BS. Nguyễn Thị Phương Thảo", "starts_at": "14:30 31/12/2026",
    "code": "79026a1b2c3d4e5f-c", "valid_until": "05/01/2027", "pharmacy_name": "Nhà thuốc Long Châu 1234",
    "amount": "1.250.000 ₫", "amount_plain": "1.250.000 dong", "purpose": "phí khám", "child_name": "Nguyễn",
    "vaccine_name": "Bạch hầu, ho gà, uốn ván, viêm gan B, Hib (5 trong 1)", "due_date": "31/12/2026",
}


@pytest.mark.parametrize("kind", [k for k in TEMPLATES if has_sms(k)])
def test_every_sms_is_one_unaccented_part(kind: str) -> None:
    text = render_sms(kind, {**PARAMS, "child_name": "Phương Thảo"})
    assert sms_segments(text) == ("GSM-7", 1), (kind, len(text), text)
    assert "Phuong Thao" in text or "{child_name}" not in (TEMPLATES[kind].sms or "")


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_every_push_renders_with_its_parameters(kind: str) -> None:
    title, body, link = render_push(kind, PARAMS)
    assert title and body and link.startswith("lienthong://")
    assert "{" not in title + body + link


@pytest.mark.parametrize("kind", [k for k in TEMPLATES if has_sms(k)])
def test_sms_never_name_a_drug_vaccine_or_prescription_code(kind: str) -> None:
    text = render_sms(kind, PARAMS)
    assert PARAMS["code"] not in text
    assert "Bach hau" not in text and "Nguyen Thi Phuong Thao" not in text


@pytest.mark.parametrize("kind", [k for k in TEMPLATES if k.startswith("vaccination_")])
def test_vaccination_reminders_ask_for_screening_never_say_eligible(kind: str) -> None:
    _, body, _ = render_push(kind, PARAMS)
    assert "khám sàng lọc" in body
    assert "đủ điều kiện" not in body
