"""Demo data: a clinic, two doctors, six pharmacies around Ho Chi Minh City with their published stock (the first
with its pharmacist), an admin, two patients and one child.

For demo mode only: the passwords and authenticator secrets below are published in the README so a person can
sign in as each role. ``seed_demo`` refuses to run in production mode.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, time

import asyncpg
import msgspec

from api.audit import AuditContext
from api.auth.accounts import StaffAccountIn, create_staff_account
from api.auth.secrets_box import seal
from api.db import Conn
from api.settings import Settings
from consultations import db as consultations_db
from pharmacy_link import db as pharmacy_db
from pharmacy_link.schemas import OpeningHours, PharmacyIn

FACILITY_CODE = "79026"
PHARMACY_ID = uuid.UUID("6c1f7e2a-0000-4000-8000-000000000001")


def _hours(opens: str, closes: str, days: range = range(1, 8)) -> list[OpeningHours]:
    return [OpeningHours(weekday=day, opens=opens, closes=closes) for day in days]


# Identifiers are marked DEMO: the national formats are unknown (spec §9 U-9) and these outlets do not exist.
PHARMACIES: tuple[tuple[uuid.UUID, PharmacyIn], ...] = (
    (PHARMACY_ID, PharmacyIn(
        name="Nhà thuốc Liên Thông (demo)", kind="nha_thuoc", gpp_certificate_number="DEMO-GPP-79-0001",
        national_outlet_id="DEMO-79-NT-0001", phone="02838550001",
        address="220 Hồng Bàng, Phường 12, Quận 5, TP. Hồ Chí Minh", province="TP. Hồ Chí Minh",
        latitude=10.7546, longitude=106.6633, opening_hours=_hours("06:30", "22:30"))),
    (uuid.UUID("6c1f7e2a-0000-4000-8000-000000000002"), PharmacyIn(
        name="Nhà thuốc Bến Thành 24h (demo)", kind="nha_thuoc", gpp_certificate_number="DEMO-GPP-79-0002",
        national_outlet_id="DEMO-79-NT-0002", phone="02838550002",
        address="45 Lê Lợi, Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh", province="TP. Hồ Chí Minh",
        latitude=10.7727, longitude=106.6984, opening_hours=_hours("00:00", "24:00"))),
    (uuid.UUID("6c1f7e2a-0000-4000-8000-000000000003"), PharmacyIn(
        name="Nhà thuốc Đêm Quận 3 (demo)", kind="nha_thuoc", gpp_certificate_number="DEMO-GPP-79-0003",
        national_outlet_id="DEMO-79-NT-0003", phone="02838550003",
        address="120 Võ Văn Tần, Phường 6, Quận 3, TP. Hồ Chí Minh", province="TP. Hồ Chí Minh",
        latitude=10.7779, longitude=106.6890, opening_hours=_hours("18:00", "02:00"))),
    (uuid.UUID("6c1f7e2a-0000-4000-8000-000000000004"), PharmacyIn(
        name="Quầy thuốc Thủ Đức (demo)", kind="quay_thuoc", gpp_certificate_number="DEMO-GPP-79-0004",
        national_outlet_id="DEMO-79-QT-0004", phone="0912000004",
        address="8 Võ Văn Ngân, Phường Linh Chiểu, TP. Thủ Đức, TP. Hồ Chí Minh", province="TP. Hồ Chí Minh",
        latitude=10.8503, longitude=106.7576, opening_hours=_hours("07:00", "21:00", range(1, 7)))),
    (uuid.UUID("6c1f7e2a-0000-4000-8000-000000000005"), PharmacyIn(
        name="Nhà thuốc Phú Mỹ Hưng (demo)", kind="nha_thuoc", gpp_certificate_number="DEMO-GPP-79-0005",
        national_outlet_id="DEMO-79-NT-0005", phone="02838550005",
        address="15 Nguyễn Lương Bằng, Phường Tân Phú, Quận 7, TP. Hồ Chí Minh", province="TP. Hồ Chí Minh",
        latitude=10.7295, longitude=106.7218,
        opening_hours=_hours("07:30", "11:30") + _hours("13:30", "21:30"))),
    (uuid.UUID("6c1f7e2a-0000-4000-8000-000000000006"), PharmacyIn(
        name="Nhà thuốc Tân Bình (demo)", kind="nha_thuoc", gpp_certificate_number="DEMO-GPP-79-0006",
        national_outlet_id="DEMO-79-NT-0006", phone="02838550006",
        address="300 Hoàng Văn Thụ, Phường 4, Quận Tân Bình, TP. Hồ Chí Minh", province="TP. Hồ Chí Minh",
        latitude=10.7990, longitude=106.6600, opening_hours=_hours("07:00", "23:00"))),
)


class DemoAccount(msgspec.Struct):
    role: str
    login: str
    password: str | None
    totp_secret: str | None
    note: str


STAFF: tuple[tuple[StaffAccountIn, str, str], ...] = (
    (StaffAccountIn(role="doctor", username="bs.lan", password="demo-Lan-2026", full_name="Nguyễn Thị Lan",
                    facility_code=FACILITY_CODE, title="BSCKI", licence_number="000123/HCM-CCHN"),
     "JBSWY3DPEHPK3PXPLANLANLANLANLAN2", "Bác sĩ Nhi khoa"),
    (StaffAccountIn(role="doctor", username="bs.minh", password="demo-Minh-2026", full_name="Trần Quang Minh",
                    facility_code=FACILITY_CODE, title="ThS.BS", licence_number="000456/HCM-CCHN"),
     "JBSWY3DPEHPK3PXPMINHMINHMINHMIN", "Bác sĩ Nội tổng quát"),
    (StaffAccountIn(role="pharmacist", username="ds.hoa", password="demo-Hoa-2026", full_name="Phạm Thu Hoa",
                    pharmacy_id=PHARMACY_ID, has_pharmacist_degree=True),
     "JBSWY3DPEHPK3PXPHOAHOAHOAHOAHOA", "Dược sĩ đại học, Nhà thuốc Liên Thông"),
    (StaffAccountIn(role="admin", username="admin", password="demo-Admin-2026", full_name="Quản trị viên"),
     "JBSWY3DPEHPK3PXPADMINADMINADMIN", "Administrator"),
)

# Demo doctors work every day, mornings to late evening, so a demo started at any hour has slots to book.
DOCTOR_PROFILES = {
    "bs.lan": ("nhi_khoa", 150_000, 20, ["vi", "en"], "Khám và tư vấn sức khỏe trẻ em, dinh dưỡng, tiêm chủng.",
               [(time(7, 0), time(11, 30)), (time(13, 0), time(22, 0))]),
    "bs.minh": ("noi_tong_quat", 0, 15, ["vi"], "Tăng huyết áp, đái tháo đường, bệnh mạn tính người lớn.",
                [(time(6, 0), time(23, 0))]),
}

# The demo doctors' accounts on the national e-prescription system (API-R1: mã liên thông bác sĩ and password). The
# sandbox `lienthong serve` starts holds the same, so demo prescriptions reach it; the facility adds each doctor
# (API-2) on the first send.
NATIONAL_RX_DOCTORS = {
    "bs.lan": ("79026BS00123", "demo-national-Lan"),
    "bs.minh": ("79026BS00456", "demo-national-Minh"),
}

PATIENTS = (
    ("+84912345678", "Nguyễn Thị Mai", date(1992, 3, 14), "female", "12 Nguyễn Huệ, Phường Bến Nghé, Quận 1, TP.HCM"),
    ("+84987654321", "Lê Văn Hùng", date(1978, 11, 2), "male", "Ấp 3, xã Tân Phú, Đồng Nai"),
)
CHILD = ("Trần Gia Bảo", date(2024, 5, 10), "male", 11.5)


def national_rx_demo_doctors() -> dict[str, str]:
    """National doctor code → password, for the sandbox."""
    return dict(NATIONAL_RX_DOCTORS.values())


def demo_accounts() -> list[DemoAccount]:
    accounts = [DemoAccount(role=s.role, login=s.username, password=s.password, totp_secret=secret, note=note)
                for s, secret, note in STAFF]
    accounts += [DemoAccount(role="patient", login=phone, password=None, totp_secret=None,
                             note=f"{name}: sign in with an SMS code from the sandbox inbox")
                 for phone, name, *_ in PATIENTS]
    return accounts


async def _seed_stock(conn: Conn) -> None:
    """Everything non-controlled in good supply at the first pharmacy, so a demo prescription can always be sold
    there; at the others a repeatable scatter of drugs, some sold out, so the nearby search has something to rank."""
    drug_ids = sorted(await conn.fetchval(
        "SELECT array_agg(id) FROM drugs WHERE control_class = 'none' AND is_medicine AND active"))
    for pharmacy_id, _ in PHARMACIES:
        rng = random.Random(str(pharmacy_id))  # noqa: S311 - a repeatable scatter, not a secret
        if pharmacy_id == PHARMACY_ID:
            stocked = [(drug_id, rng.randint(100, 500)) for drug_id in drug_ids]
        else:
            stocked = [(drug_id, rng.choice((0, 5, 20, 60, 200))) for drug_id in drug_ids if rng.random() < 0.7]
        await pharmacy_db.upsert_stock(conn, pharmacy_id, [d for d, _ in stocked], [q for _, q in stocked],
                                       [""] * len(stocked))


async def seed_demo(pool: asyncpg.Pool, settings: Settings) -> bool:
    """Load the demo data once; returns False when it is already there."""
    if settings.mode != "demo":
        raise RuntimeError("demo data is only loaded in LIENTHONG_MODE=demo")
    ctx = AuditContext(None, "system", None, "lienthong seed-demo", None)
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM facilities WHERE code = $1)", FACILITY_CODE):
            return False
        await conn.execute(
            "INSERT INTO facilities (code, name, address, province) VALUES ($1, $2, $3, $4)",
            FACILITY_CODE, "Phòng khám Đa khoa Liên Thông (demo)", "215 Hồng Bàng, Quận 5", "TP. Hồ Chí Minh")
        for pharmacy_id, pharmacy in PHARMACIES:
            await pharmacy_db.insert_pharmacy(conn, pharmacy, pharmacy_id)
        await _seed_stock(conn)
    for account, secret, _ in STAFF:
        await create_staff_account(pool, settings, account, ctx, totp_secret=secret)
    async with pool.acquire() as conn, conn.transaction():
        for username, (specialty, fee, minutes, languages, bio, hours) in DOCTOR_PROFILES.items():
            doctor_id = await conn.fetchval("SELECT id FROM accounts WHERE username = $1", username)
            national_code, national_password = NATIONAL_RX_DOCTORS[username]
            # sealed like TOTP secrets: bound to the doctor's account id
            await conn.execute(
                "UPDATE doctors SET national_rx_code = $2, national_rx_password_enc = $3 WHERE account_id = $1",
                doctor_id, national_code, seal(settings.data_key, national_password.encode(), doctor_id.bytes))
            await conn.execute(
                """INSERT INTO doctor_profiles (account_id, specialty_code, fee_vnd, slot_minutes, languages, bio)
                   VALUES ($1, $2, $3, $4, $5, $6)""", doctor_id, specialty, fee, minutes, languages, bio)
            await consultations_db.refresh_search_doc(conn, doctor_id)
            await conn.executemany(
                """INSERT INTO availability_rules (doctor_id, weekday, start_time, end_time)
                   VALUES ($1, $2, $3, $4)""",
                [(doctor_id, weekday, start, end) for weekday in range(1, 8) for start, end in hours])
    async with pool.acquire() as conn, conn.transaction():
        patient_ids = []
        for phone, name, dob, sex, address in PATIENTS:
            account_id = await conn.fetchval(
                "INSERT INTO accounts (role, phone, full_name) VALUES ('patient', $1, $2) RETURNING id", phone, name)
            patient_ids.append(await conn.fetchval(
                """INSERT INTO patients (account_id, full_name, date_of_birth, sex, address)
                   VALUES ($1, $2, $3, $4, $5) RETURNING id""", account_id, name, dob, sex, address))
        child_name, child_dob, child_sex, child_weight = CHILD
        child_id = await conn.fetchval(
            """INSERT INTO patients (full_name, date_of_birth, sex, weight_kg, allergies)
               VALUES ($1, $2, $3, $4, '[{"substance": "penicillin", "reaction": "phát ban", "severity": "moderate"}]')
               RETURNING id""", child_name, child_dob, child_sex, child_weight)
        await conn.execute(
            "INSERT INTO guardianships (guardian_id, dependent_id, relationship) VALUES ($1, $2, 'parent')",
            patient_ids[0], child_id)
        for patient_id, recorder in ((patient_ids[0], patient_ids[0]), (child_id, patient_ids[0]),
                                     (patient_ids[1], patient_ids[1])):
            await conn.execute(
                """INSERT INTO consents (patient_id, kind, version, granted, recorded_by, user_agent)
                   SELECT $1, d.kind, d.version, true, p.account_id, 'lienthong seed-demo'
                   FROM consent_documents d, patients p WHERE p.id = $2""", patient_id, recorder)
    return True
