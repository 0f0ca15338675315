"""Seed a large, realistic dataset fast (COPY in batches) for the load tests, and write the manifest the load users
read: who can sign in, with what, and which prescriptions are open at the counter.

Full scale: 1,000 doctors, 200,000 patients, 10,000 pharmacies with 500 stocked drugs each, 1,000,000 prescriptions
signed with each doctor's own Ed25519 key over the same canonical content the service signs (so the counter verifies
them), a year of completed consultations behind them, and consultations in call now for the prescribing load.

Most doctors charge no fee, so a booking with them is confirmed at once without a VNPay payment; every tenth charges
one (the manifest says which). Every generated staff account shares one password (hashed once with argon2) and has its
own TOTP secret; patients sign in by SMS OTP (the sandbox inbox in demo mode).

    python -m load_tests.datagen --dsn postgresql://... --data-key-b64 ... [--scale full|small|tiny]
                                 [--doctors N --patients N --pharmacies N --stock-per-pharmacy N
                                  --prescriptions N --in-call N] --manifest PATH
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import random
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any, Literal

import asyncpg
import msgspec
import pyotp
from asyncpg import Range
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api import db
from api.audit import AuditContext
from api.auth.secrets_box import hash_password, seal, unseal
from api.db import Conn
from api.progress import ProgressBar
from api.settings import Settings, with_overrides
from eprescription import rules, signing
from eprescription.catalogue_import import import_drugs
from eprescription.schemas import (
    SignedContent,
    SignedDiagnosis,
    SignedDoctor,
    SignedFacility,
    SignedLine,
    SignedPatient,
)
from load_tests.bench_pharmacy_search import BOXES, HOURS, STOCK_SQL

PASSWORD = "load-Test-2026!"  # noqa: S105 - published on purpose: every generated staff account uses it
GENERATED_SOURCE = "datagen-generated"
BATCH = 10_000  # prescriptions (and their consultations, lines, dispenses) per transaction
ROW_BATCH = 50_000  # patients, accounts, pharmacies per COPY
STOCK_CHUNK = 500  # pharmacies per stock INSERT ... SELECT
HISTORY_DAYS = 365
OPEN_SHARE = 0.05  # of consultations in the last VALIDITY days, so their prescriptions are still valid
SLOT = timedelta(minutes=20)
MANIFEST_PATIENTS, MANIFEST_PHARMACISTS, MANIFEST_OPEN, MANIFEST_POINTS, MANIFEST_DRUGS = (
    5_000, 1_000, 20_000, 2_000, 300)


class Scale(msgspec.Struct, frozen=True, kw_only=True):
    doctors: int = 1_000
    patients: int = 200_000
    pharmacies: int = 10_000
    stock_per_pharmacy: int = 500
    prescriptions: int = 1_000_000
    in_call: int = 1_000  # consultations in call now, one per doctor at most
    generated_drugs: int = 5_000  # catalogue rows added besides the seed, for the pharmacies' long tail
    seed: int = 20260508


SCALES: dict[str, Scale] = {
    "full": Scale(),
    "small": Scale(doctors=10, patients=2_000, pharmacies=100, prescriptions=10_000, in_call=10,
                   generated_drugs=1_000),
    "tiny": Scale(doctors=3, patients=30, pharmacies=3, stock_per_pharmacy=20, prescriptions=90, in_call=2,
                  generated_drugs=50),
}


class DoctorLogin(msgspec.Struct):
    username: str
    password: str
    totp_secret: str
    account_id: uuid.UUID
    fee_vnd: int  # 0: a booking is confirmed at once; otherwise it waits for a VNPay payment


class PatientLogin(msgspec.Struct):
    phone: str  # sign in with POST /auth/otp/request + /auth/otp/verify (the SMS sandbox inbox in demo mode)
    account_id: uuid.UUID
    patient_id: uuid.UUID


class PharmacistLogin(msgspec.Struct):
    username: str
    password: str
    totp_secret: str
    account_id: uuid.UUID
    pharmacy_id: uuid.UUID


class OpenLine(msgspec.Struct):
    position: int
    quantity: int  # what remains to dispense


class OpenPrescription(msgspec.Struct):
    code: str
    lines: list[OpenLine]


class InCall(msgspec.Struct):
    consultation_id: uuid.UUID
    doctor_username: str
    patient_id: uuid.UUID


class Manifest(msgspec.Struct, kw_only=True):
    generated_at: datetime
    scale: Scale
    password_note: str
    doctors: list[DoctorLogin]
    patients: list[PatientLogin]
    pharmacists: list[PharmacistLogin]
    open_prescriptions: list[OpenPrescription]
    in_call: list[InCall]
    drug_ids: list[uuid.UUID]
    pharmacy_points: list[tuple[float, float]]
    timings_s: dict[str, float]


# ------------------------------------------------------------------------------------------- Vietnamese particulars

SURNAMES = ("Nguyễn", "Nguyễn", "Nguyễn", "Trần", "Trần", "Lê", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ",
            "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý")
MIDDLE = {"male": ("Văn", "Hữu", "Đức", "Minh", "Quang", "Thành", "Công", "Gia"),
          "female": ("Thị", "Thị", "Ngọc", "Thu", "Thanh", "Kim", "Bảo", "Mỹ")}
GIVEN = {"male": ("An", "Bình", "Cường", "Dũng", "Duy", "Hải", "Hiếu", "Hoàng", "Hùng", "Huy", "Khang", "Khánh",
                  "Long", "Minh", "Nam", "Nghĩa", "Phong", "Phúc", "Quân", "Sơn", "Tài", "Thắng", "Trung", "Tuấn",
                  "Việt", "Vinh"),
         "female": ("Anh", "Châu", "Chi", "Giang", "Hà", "Hạnh", "Hằng", "Hoa", "Hương", "Lan", "Linh", "Mai", "My",
                    "Nga", "Ngân", "Nhung", "Oanh", "Phương", "Quyên", "Tâm", "Thảo", "Trang", "Uyên", "Vân", "Yến")}
STREETS = ("Lê Lợi", "Nguyễn Huệ", "Hai Bà Trưng", "Trần Hưng Đạo", "Lý Thường Kiệt", "Điện Biên Phủ",
           "Cách Mạng Tháng Tám", "Nguyễn Trãi", "Lê Duẩn", "Phan Đình Phùng", "Võ Văn Tần", "Pasteur",
           "Nguyễn Thị Minh Khai", "Hoàng Văn Thụ", "Trường Chinh", "Kim Mã", "Láng Hạ", "Giải Phóng")
# (province, its citizen-ID code, districts, mobile-heavy share of patients)
PLACES = (("TP. Hồ Chí Minh", "079", ("Quận 1", "Quận 3", "Quận 5", "Quận 7", "Quận 10", "Bình Thạnh", "Tân Bình",
                                      "Gò Vấp", "TP. Thủ Đức")),
          ("Hà Nội", "001", ("Ba Đình", "Hoàn Kiếm", "Đống Đa", "Cầu Giấy", "Thanh Xuân", "Hai Bà Trưng",
                             "Long Biên")),
          ("Đà Nẵng", "048", ("Hải Châu", "Thanh Khê", "Sơn Trà")),
          ("Cần Thơ", "092", ("Ninh Kiều", "Cái Răng")),
          ("Hải Phòng", "031", ("Lê Chân", "Ngô Quyền")))
PLACE_WEIGHTS = (45, 35, 8, 6, 6)
TITLES = ("BS", "BS", "BSCKI", "BSCKI", "ThS.BS", "BSCKII", "TS.BS")
SPECIALTIES = ("noi_tong_quat", "noi_tong_quat", "nhi_khoa", "tim_mach", "noi_tiet", "da_lieu", "tai_mui_hong",
               "san_phu_khoa", "co_xuong_khop", "y_hoc_gia_dinh", "dinh_duong")
SCHEDULES = (  # weekdays, spans: (Vietnam local time)
    (range(1, 8), ((clock(7), clock(11, 30)), (clock(13), clock(21)))),
    (range(1, 8), ((clock(6), clock(23)),)),
    (range(1, 6), ((clock(17), clock(22)),)),
)
REASONS = ("Sốt, ho 3 ngày", "Đau họng, sổ mũi", "Tái khám tăng huyết áp", "Tái khám đái tháo đường",
           "Đau lưng kéo dài", "Đau khớp gối", "Nổi mẩn ngứa", "Đau đầu, chóng mặt", "Đau dạ dày", "Mất ngủ, lo âu",
           "Tư vấn dinh dưỡng", "Ho kéo dài về đêm")
ADVICE = ("Uống thuốc đúng giờ, tái khám khi có dấu hiệu bất thường.", "Uống nhiều nước, nghỉ ngơi hợp lý.",
          "Hạn chế muối, tập thể dục 30 phút mỗi ngày.", "")
USAGE = ("Uống sau ăn", "Uống trước ăn 30 phút", "Uống sau ăn no", "Uống buổi tối trước khi ngủ")


def _person(rng: random.Random) -> tuple[str, Literal["male", "female"]]:
    sex: Literal["male", "female"] = "female" if rng.random() < 0.53 else "male"
    return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE[sex])} {rng.choice(GIVEN[sex])}", sex


def _address(rng: random.Random, province: str, districts: Sequence[str]) -> str:
    return (f"{rng.randint(1, 480)} {rng.choice(STREETS)}, Phường {rng.randint(1, 15)}, {rng.choice(districts)}, "
            f"{province}")


def _units(dosage_form: str, route: str) -> tuple[str, str, int]:
    """(dose unit, quantity unit, dose per time) a prescriber would write for this form."""
    form = dosage_form.lower()
    if "siro" in form or "dung dịch" in form or "hỗn dịch" in form:
        return "ml", "chai", 5
    if "gói" in form or "bột" in form or "cốm" in form:
        return "gói", "gói", 1
    if route in ("topical", "ophthalmic", "otic", "nasal", "transdermal", "vaginal", "rectal", "inhalation"):
        return "lần", "lọ" if route in ("ophthalmic", "otic", "nasal") else "tuýp", 1
    return "viên", "viên", 1


# ------------------------------------------------------------------------------------------- what is built

@dataclass
class Facility:
    id: uuid.UUID
    code: str
    name: str
    address: str


@dataclass
class Doctor:
    account_id: uuid.UUID
    username: str
    full_name: str
    title: str
    licence_number: str
    facility: Facility
    fee_vnd: int
    totp_secret: str
    key_id: uuid.UUID
    private_key: Ed25519PrivateKey


@dataclass
class Drug:
    id: uuid.UUID
    inn: str
    trade_names: list[str]
    strength: str
    dosage_form: str
    route: str
    atc_code: str | None
    registration_number: str | None


@dataclass
class Patients:
    """Column-wise, so 200,000 patients stay cheap to hold."""

    account_ids: list[uuid.UUID] = field(default_factory=list)
    ids: list[uuid.UUID] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    births: list[date] = field(default_factory=list)
    sexes: list[str] = field(default_factory=list)
    citizen_ids: list[str] = field(default_factory=list)
    insurance: list[str | None] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)


@dataclass
class Pharmacy:
    id: uuid.UUID
    latitude: float
    longitude: float
    pharmacist_id: uuid.UUID
    username: str
    totp_secret: str


@dataclass
class Batch:
    consultations: list[tuple[Any, ...]] = field(default_factory=list)
    diagnoses: list[tuple[Any, ...]] = field(default_factory=list)
    prescriptions: list[tuple[Any, ...]] = field(default_factory=list)
    lines: list[tuple[Any, ...]] = field(default_factory=list)
    statuses: tuple[list[uuid.UUID], list[str]] = field(default_factory=lambda: ([], []))
    dispenses: list[tuple[Any, ...]] = field(default_factory=list)
    dispense_lines: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    open: list[OpenPrescription] = field(default_factory=list)
    sign_s: float = 0.0


Progress = Callable[[str, int, int], None]


def _silent(phase: str, done: int, total: int) -> None:
    """No progress output."""


class Timings:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    async def timed(self, name: str, work: Awaitable[Any]) -> Any:
        started = time.perf_counter()
        try:
            return await work
        finally:
            self.add(name, time.perf_counter() - started)


# ------------------------------------------------------------------------------------------- the generator

class Generator:
    def __init__(self, pool: asyncpg.Pool, conn: Conn, settings: Settings, scale: Scale, progress: Progress) -> None:
        self.pool = pool
        self.conn = conn
        self.settings = settings
        self.scale = scale
        self.progress = progress
        self.rng = random.Random(scale.seed)  # repeatable test data, not secrets
        self.timings = Timings()
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.password_hash = hash_password(PASSWORD)
        self.facilities: list[Facility] = []
        self.doctors: list[Doctor] = []
        self.patients = Patients()
        self.pharmacies: list[Pharmacy] = []
        self.common_drugs: list[Drug] = []
        self.icd: dict[str, str] = {}
        self.tt30: list[str] = []
        self.codes: set[str] = set()
        self.open: list[OpenPrescription] = []
        self.open_count = 0
        self.in_call: list[InCall] = []
        self.layout: tuple[int, int, datetime, timedelta, datetime, timedelta] | None = None
        self.row_patients: list[int] = []  # the patients of the row of consultations being built
        self.drug_ids: list[uuid.UUID] = []

    async def copy(self, table: str, columns: Sequence[str], records: Sequence[tuple[Any, ...]]) -> None:
        started = time.perf_counter()
        await self.conn.copy_records_to_table(table, records=records, columns=list(columns), timeout=3600)
        self.timings.add(f"copy {table}", time.perf_counter() - started)

    # ------------------------------------------------------------------ reference data

    async def facilities_and_catalogue(self) -> None:
        count = max(1, min(200, self.scale.doctors // 20))
        for i in range(count):
            province, code, districts = PLACES[i % len(PLACES)]
            self.facilities.append(Facility(
                uuid.uuid4(), f"{code[1:]}{800 + i // len(PLACES):03d}",
                f"Phòng khám Đa khoa {rng_name(self.rng)} {i + 1}", _address(self.rng, province, districts)))
        await self.copy("facilities", ("id", "code", "name", "address", "province"),
                        [(f.id, f.code, f.name, f.address, f.address.rsplit(", ", 1)[-1]) for f in self.facilities])
        started = time.perf_counter()
        await import_drugs(self.pool, _generated_csv(self.scale.generated_drugs),
                           source=GENERATED_SOURCE, file_label="datagen.csv", demo_data=True,
                           ctx=AuditContext(None, "system", None, "load_tests.datagen", None))
        self.timings.add("drugs (CSV importer)", time.perf_counter() - started)
        rows = await self.conn.fetch(
            """SELECT id, inn, trade_names, strength, dosage_form, route, atc_code, registration_number FROM drugs
               WHERE source_code = 'lienthong-demo-seed' AND control_class = 'none' AND is_medicine AND active
               ORDER BY id""")
        self.common_drugs = [Drug(**dict(r)) for r in rows]
        for r in await self.conn.fetch("SELECT code, title_vi, telemedicine_tt30 FROM icd10_codes ORDER BY code"):
            self.icd[r["code"]] = r["title_vi"]
            if r["telemedicine_tt30"]:
                self.tt30.append(r["code"])

    # ------------------------------------------------------------------ people

    async def doctors_(self) -> None:
        scale, rng = self.scale, self.rng
        accounts, doctors, profiles, hours, keys = [], [], [], [], []
        for i in range(scale.doctors):
            account_id, key_id = uuid.uuid4(), uuid.uuid4()
            name, _ = _person(rng)
            facility = self.facilities[i % len(self.facilities)]
            secret = pyotp.random_base32()
            public, sealed = signing.new_key_pair(self.settings.data_key, key_id)
            private = Ed25519PrivateKey.from_private_bytes(unseal(self.settings.data_key, sealed, key_id.bytes))
            doctor = Doctor(account_id, f"lt.bs{i:05d}", name, rng.choice(TITLES),
                            f"{200000 + i:06d}/{'HCM' if facility.code.startswith('79') else 'BYT'}-CCHN", facility,
                            rng.choice((100_000, 150_000, 200_000)) if i % 10 == 9 else 0, secret, key_id, private)
            self.doctors.append(doctor)
            created = self.now - timedelta(days=HISTORY_DAYS + 30 + rng.randint(0, 300))
            accounts.append((account_id, "doctor", doctor.username, self.password_hash, name,
                             seal(self.settings.data_key, secret.encode(), account_id.bytes), created, created))
            doctors.append((account_id, facility.id, doctor.title, doctor.licence_number))
            profiles.append((account_id, rng.choice(SPECIALTIES), "Khám và tư vấn từ xa; theo dõi bệnh mạn tính.",
                             ["vi", "en"] if rng.random() < 0.2 else ["vi"], doctor.fee_vnd, 20))
            weekdays, spans = SCHEDULES[i % len(SCHEDULES)]
            hours += [(uuid.uuid4(), account_id, day, start, end) for day in weekdays for start, end in spans]
            keys.append((key_id, account_id, public, sealed, created))
        self.progress("doctors", 0, scale.doctors)
        await self.copy("accounts", ("id", "role", "username", "password_hash", "full_name", "totp_secret_enc",
                                     "totp_confirmed_at", "created_at"), accounts)
        await self.copy("doctors", ("account_id", "facility_id", "title", "licence_number"), doctors)
        await self.copy("doctor_profiles", ("account_id", "specialty_code", "bio", "languages", "fee_vnd",
                                            "slot_minutes"), profiles)
        # the same folded text consultations.db.refresh_search_doc writes, for all profiles at once
        await self.conn.execute(
            """UPDATE doctor_profiles dp SET search_doc = search_fold(
                   concat_ws(' ', a.full_name, d.title, s.name_vi, s.name_en, f.name, dp.bio))
               FROM doctors d JOIN accounts a ON a.id = d.account_id JOIN facilities f ON f.id = d.facility_id,
                    specialties s
               WHERE d.account_id = dp.account_id AND s.code = dp.specialty_code AND dp.account_id = ANY($1::uuid[])""",
            [d.account_id for d in self.doctors])
        await self.copy("availability_rules", ("id", "doctor_id", "weekday", "start_time", "end_time"), hours)
        await self.copy("doctor_signing_keys", ("id", "doctor_id", "public_key", "private_key_enc", "created_at"),
                        keys)
        self.progress("doctors", scale.doctors, scale.doctors)

    async def patients_(self) -> None:
        scale, rng, p = self.scale, self.rng, self.patients
        if scale.patients > 1_000_000:
            raise ValueError("citizen IDs are unique by construction up to 1,000,000 patients")
        documents = await self.conn.fetch(
            """SELECT DISTINCT ON (kind) kind, version FROM consent_documents WHERE effective_at <= now()
               ORDER BY kind, effective_at DESC""")
        for start in range(0, scale.patients, ROW_BATCH):
            accounts, patients, consents = [], [], []
            for i in range(start, min(scale.patients, start + ROW_BATCH)):
                account_id, patient_id = uuid.uuid4(), uuid.uuid4()
                name, sex = _person(rng)
                province, code, districts = rng.choices(PLACES, PLACE_WEIGHTS)[0]
                born = date(1940, 1, 1) + timedelta(days=rng.randint(0, 365 * 66))  # adults: 1940-2005
                century = (0 if born.year < 2000 else 2) + (1 if sex == "female" else 0)
                citizen_id = f"{code}{century}{born.year % 100:02d}{i:06d}"
                insurance = f"{rng.choice(('GD', 'DN', 'HT', 'HC'))}4{code[1:]}{rng.randrange(10**10):010d}" \
                    if rng.random() < 0.7 else None
                phone = f"+8470{i:07d}"
                address = _address(rng, province, districts)
                created = self.now - timedelta(days=HISTORY_DAYS + 1 + rng.randint(0, 400),
                                               minutes=rng.randint(0, 1439))
                accounts.append((account_id, "patient", phone, name, created))
                patients.append((patient_id, account_id, name, born, sex, citizen_id, address, insurance, created,
                                 created))
                consents += [(uuid.uuid4(), patient_id, d["kind"], d["version"], True, account_id,
                              "Lienthong/2.4 Android", created) for d in documents]
                p.account_ids.append(account_id)
                p.ids.append(patient_id)
                p.phones.append(phone)
                p.names.append(name)
                p.births.append(born)
                p.sexes.append(sex)
                p.citizen_ids.append(citizen_id)
                p.insurance.append(insurance)
                p.addresses.append(address)
            await self.copy("accounts", ("id", "role", "phone", "full_name", "created_at"), accounts)
            await self.copy("patients", ("id", "account_id", "full_name", "date_of_birth", "sex", "citizen_id",
                                         "address", "health_insurance_number", "created_at", "updated_at"), patients)
            await self.copy("consents", ("id", "patient_id", "kind", "version", "granted", "recorded_by",
                                         "user_agent", "recorded_at"), consents)
            self.progress("patients", len(p.ids), scale.patients)

    # ------------------------------------------------------------------ pharmacies

    async def pharmacies_(self) -> None:
        scale, rng = self.scale, self.rng
        provinces = list(BOXES)
        for start in range(0, scale.pharmacies, ROW_BATCH):
            rows, accounts, pharmacists = [], [], []
            for i in range(start, min(scale.pharmacies, start + ROW_BATCH)):
                province = provinces[0] if rng.random() < 0.55 else provinces[1]
                south, north, west, east = BOXES[province]
                spans = rng.choices([h for _, h in HOURS], weights=[w for w, _ in HOURS])[0]
                prefix = "79" if province == provinces[0] else "01"
                kind = "nha_thuoc" if i % 4 else "quay_thuoc"
                pharmacy = Pharmacy(uuid.uuid4(), rng.uniform(south, north), rng.uniform(west, east), uuid.uuid4(),
                                    f"lt.ds{i:05d}", pyotp.random_base32())
                self.pharmacies.append(pharmacy)
                rows.append((pharmacy.id, f"{'Nhà thuốc' if kind == 'nha_thuoc' else 'Quầy thuốc'} "
                                          f"{rng.choice(GIVEN['female'])} {i + 1}", kind,
                             f"GPP-{prefix}-{i:06d}", f"{prefix}-{'NT' if kind == 'nha_thuoc' else 'QT'}-{i:06d}",
                             f"{'028' if prefix == '79' else '024'}{rng.randrange(10**8):08d}",
                             _address(rng, province, PLACES[0][2] if prefix == "79" else PLACES[1][2]), province,
                             pharmacy.latitude, pharmacy.longitude,
                             [{"weekday": d, "opens": o, "closes": c} for d, o, c in spans]))
                name, _ = _person(rng)
                accounts.append((pharmacy.pharmacist_id, "pharmacist", pharmacy.username, self.password_hash, name,
                                 seal(self.settings.data_key, pharmacy.totp_secret.encode(),
                                      pharmacy.pharmacist_id.bytes), self.now))
                pharmacists.append((pharmacy.pharmacist_id, pharmacy.id, rng.random() < 0.7))
            await self.copy("pharmacies", ("id", "name", "kind", "gpp_certificate_number", "national_outlet_id",
                                           "phone", "address", "province", "latitude", "longitude", "opening_hours"),
                            rows)
            await self.copy("accounts", ("id", "role", "username", "password_hash", "full_name", "totp_secret_enc",
                                         "totp_confirmed_at"), accounts)
            await self.copy("pharmacists", ("account_id", "pharmacy_id", "has_pharmacist_degree"), pharmacists)
            self.progress("pharmacy", len(self.pharmacies), scale.pharmacies)

    async def stock(self) -> None:
        ids = sorted(p.id for p in self.pharmacies)
        started = time.perf_counter()
        for done in range(0, len(ids), STOCK_CHUNK):
            await self.conn.execute(STOCK_SQL, ids[done:done + STOCK_CHUNK], self.scale.stock_per_pharmacy,
                                    GENERATED_SOURCE, timeout=3600)
            self.progress("stock", min(len(ids), done + STOCK_CHUNK), len(ids))
        self.timings.add("insert pharmacy_stock", time.perf_counter() - started)
        # what the load users search for: the drugs most pharmacies hold (the seed medicines are everywhere)
        self.drug_ids = [r["drug_id"] for r in await self.conn.fetch(
            "SELECT drug_id FROM pharmacy_stock GROUP BY drug_id ORDER BY count(*) DESC, drug_id LIMIT $1",
            MANIFEST_DRUGS, timeout=3600)]

    # ------------------------------------------------------------------ consultations and prescriptions

    def _layout(self) -> tuple[int, int, datetime, timedelta, datetime, timedelta]:
        """Rows of consultations, one per doctor a row: old rows spread over a year, the last OPEN_SHARE of them
        over the days whose prescriptions are still valid. (rows, old rows, old start, old spacing, recent start,
        recent spacing)."""
        doctors = len(self.doctors)
        rows = -(-self.scale.prescriptions // doctors)
        recent_rows = max(1, round(rows * OPEN_SHARE)) if rows > 1 else rows
        old_rows = rows - recent_rows
        today_vn = self.now.astimezone(rules.VN).date()
        recent_start = datetime.combine(today_vn - timedelta(days=rules.VALIDITY_CALENDAR_DAYS - 1), clock(0),
                                        rules.VN).astimezone(UTC) + timedelta(hours=1)
        recent_end = self.now - timedelta(hours=1)
        old_start = self.now - timedelta(days=HISTORY_DAYS)
        old_end = recent_start - timedelta(hours=2)
        old_spacing = (old_end - old_start) / max(1, old_rows)
        recent_spacing = (recent_end - recent_start) / recent_rows
        # rows start up to 6/14 of a spacing (+5 minutes of rounding) late, and a patient may be in adjacent rows
        if min(recent_spacing, old_spacing if old_rows else recent_spacing) < 3 * SLOT:
            raise ValueError("too many prescriptions per doctor to keep each one's consultations apart; "
                             "add doctors or lower --prescriptions")
        if doctors > len(self.patients.ids):
            raise ValueError("need at least as many patients as doctors")
        return rows, old_rows, old_start, old_spacing, recent_start, recent_spacing

    def build_batch(self, first: int, last: int) -> Batch:
        """Consultations first..last-1 (index i: doctor i % doctors, row i // doctors) with their prescriptions."""
        assert self.layout is not None
        _, old_rows, old_start, old_spacing, recent_start, recent_spacing = self.layout
        rng, p, batch = self.rng, self.patients, Batch()
        doctors = len(self.doctors)
        for i in range(first, last):
            d, row = i % doctors, i // doctors
            if d == 0:  # a patient sees one doctor at a time: the patients of a row are distinct
                self.row_patients = rng.sample(range(len(p.ids)), doctors)
            doctor, k = self.doctors[d], self.row_patients[d]
            offset = (d % 7) / 14  # doctors do not all start on the same minute
            if row < old_rows:
                starts = old_start + old_spacing * (row + offset)
            else:
                starts = recent_start + recent_spacing * (row - old_rows + offset)
            starts = starts.replace(second=0) - timedelta(minutes=starts.minute % 5)
            recent = row >= old_rows
            self._consultation(batch, doctor, k, starts, recent)
        return batch

    def _consultation(self, batch: Batch, doctor: Doctor, k: int, starts: datetime, recent: bool) -> None:
        rng, p = self.rng, self.patients
        consultation_id, rx_id = uuid.uuid4(), uuid.uuid4()
        icd10 = rng.choice(self.tt30) if rng.random() < 0.6 else None
        diagnosis = icd10 or rng.choice(list(self.icd))
        call_started = starts + timedelta(minutes=rng.randint(0, 3))
        call_ended = call_started + timedelta(minutes=rng.randint(8, 17))
        batch.consultations.append((
            consultation_id, doctor.account_id, p.ids[k], p.account_ids[k], Range(starts, starts + SLOT), "completed",
            rng.choice(REASONS), icd10, doctor.fee_vnd, starts - timedelta(minutes=rng.randint(1, 10)), call_started,
            call_ended, starts - timedelta(days=rng.randint(0, 6), hours=rng.randint(1, 12)), call_ended))
        batch.diagnoses.append((consultation_id, 1, diagnosis, self.icd[diagnosis], True))

        issued_at = call_ended - timedelta(minutes=rng.randint(0, 3))
        valid_until = rules.valid_until(issued_at)
        while True:
            code = f"{doctor.facility.code}{''.join(rng.choices(_ALPHABET, k=7))}-c"
            if code[:12] not in self.codes:
                self.codes.add(code[:12])
                break
        diagnoses = [SignedDiagnosis(code=diagnosis, name=self.icd[diagnosis], conclusion=self.icd[diagnosis])]
        lines, inns = [], []
        for position, drug in enumerate(rng.sample(self.common_drugs, rng.randint(1, min(5, len(self.common_drugs)))),
                                        start=1):
            dose_unit, quantity_unit, dose = _units(drug.dosage_form, drug.route)
            times, days = rng.choice((1, 2, 2, 3)), rng.choice((3, 5, 5, 7, 10, 14, 30))
            inns.append(drug.inn)  # the line row keeps the INN; the signed line names the trade name too (VN-1.7)
            quantity = 1 if quantity_unit not in ("viên", "gói") else rules.required_quantity(dose, times, days)
            lines.append(SignedLine(
                position=position, drug_id=drug.id,
                drug_name=f"{drug.inn} ({drug.trade_names[0]})" if drug.trade_names else drug.inn,
                strength=drug.strength, dosage_form=drug.dosage_form, route=drug.route, atc_code=drug.atc_code,
                registration_number=drug.registration_number, control_class="none", dose_per_time=float(dose),
                dose_unit=dose_unit, times_per_day=times, days=days, quantity=quantity, quantity_unit=quantity_unit,
                usage=rng.choice(USAGE)))
        advice, follow_up = rng.choice(ADVICE), rng.choice((None, None, 7, 14, 30))
        content = SignedContent(
            prescription_id=rx_id, code=code, rx_type="c", issued_at=issued_at, valid_until=valid_until,
            consultation_id=consultation_id, telemedicine=True,
            facility=SignedFacility(id=doctor.facility.id, code=doctor.facility.code, name=doctor.facility.name,
                                    address=doctor.facility.address),
            doctor=SignedDoctor(id=doctor.account_id, full_name=doctor.full_name, title=doctor.title,
                                licence_number=doctor.licence_number, national_rx_code=None),
            patient=SignedPatient(id=p.ids[k], full_name=p.names[k], date_of_birth=p.births[k],
                                  sex=p.sexes[k],  # type: ignore[arg-type]
                                  citizen_id=p.citizen_ids[k], health_insurance_number=p.insurance[k],
                                  address=p.addresses[k], phone=p.phones[k], age_months=None, weight_kg=None,
                                  guardian=None),
            diagnoses=diagnoses, lines=lines, advice=advice, note="", follow_up_days=follow_up, long_term=False,
            replaces_code=None, signing_key_id=doctor.key_id)
        canonical = content.canonical()
        started = time.perf_counter()
        signature = doctor.private_key.sign(canonical)
        batch.sign_s += time.perf_counter() - started

        status, dispensed = self._fate(recent, len(lines))
        cancelled = status == "cancelled"
        batch.prescriptions.append((
            rx_id, consultation_id, p.ids[k], doctor.account_id, doctor.facility.id, "draft", "c", code, diagnoses,
            advice, follow_up, canonical, signature, doctor.key_id, issued_at, valid_until,
            issued_at + timedelta(hours=2) if cancelled else None, doctor.account_id if cancelled else None,
            rng.choice(("prescribing_error", "change_of_treatment")) if cancelled else None,
            call_started + timedelta(minutes=1), valid_until if status == "expired" else issued_at))
        batch.statuses[0].append(rx_id)
        batch.statuses[1].append(status)
        for line, inn, given in zip(lines, inns, dispensed, strict=True):
            batch.lines.append((rx_id, line.position, line.drug_id, inn, line.strength,
                                line.dosage_form, line.dose_per_time, line.dose_unit, line.times_per_day, line.days,
                                line.quantity if given else 0, line.quantity, line.quantity_unit, line.route,
                                line.usage))
        if any(dispensed):
            self._dispense(batch, content, canonical, dispensed, k, status)
        if status in ("issued", "partially_dispensed"):
            self.open_count += 1
            entry = OpenPrescription(code=code, lines=[OpenLine(line.position, line.quantity)
                                                       for line, given in zip(lines, dispensed, strict=True)
                                                       if not given])
            if len(self.open) < MANIFEST_OPEN:
                self.open.append(entry)
            elif (j := rng.randrange(self.open_count)) < MANIFEST_OPEN:  # a uniform sample of all open ones
                self.open[j] = entry

    def _fate(self, recent: bool, lines: int) -> tuple[str, list[bool]]:
        """Status, and which lines were dispensed in full (a partial sale hands out some lines, not others)."""
        roll = self.rng.random()
        partial = [position == 1 for position in range(1, lines + 1)] if lines > 1 else [False]
        if recent:
            if roll < 0.75:
                return "issued", [False] * lines
            if roll < 0.95 or lines == 1:
                return "dispensed", [True] * lines
            return "partially_dispensed", partial
        if roll < 0.74:
            return "dispensed", [True] * lines
        if roll < 0.99:
            return ("expired", partial) if roll > 0.95 and lines > 1 else ("expired", [False] * lines)
        return "cancelled", [False] * lines

    def _dispense(self, batch: Batch, content: SignedContent, canonical: bytes, dispensed: list[bool], k: int,
                  status: str) -> None:
        rng = self.rng
        pharmacy = self.pharmacies[rng.randrange(len(self.pharmacies))]
        dispense_id = uuid.uuid4()
        sold_at = min(content.issued_at + timedelta(hours=rng.uniform(0.5, 72)), content.valid_until,
                      self.now - timedelta(minutes=30))
        sold, total = [], 0
        for line, given in zip(content.lines, dispensed, strict=True):
            if given:
                price = rng.choice((500, 1_200, 2_000, 3_500, 8_000, 15_000))
                expiry = sold_at.date() + timedelta(days=rng.randint(180, 900))
                lot = f"L{rng.randrange(10**5):05d}"
                total += line.quantity * price
                sold.append({"position": line.position, "quantity": line.quantity, "lot_number": lot,
                             "expiry_date": expiry, "unit_price_vnd": price, "origin": "Việt Nam",
                             "substitute_drug_id": None, "buyer_consent": False})
                batch.dispense_lines.append((dispense_id, line.position, line.drug_id, line.drug_id, False, False,
                                             line.quantity, lot, expiry, "Việt Nam", price))
        recipient = self.patients.names[k]
        batch.dispenses.append((
            dispense_id, content.prescription_id, pharmacy.id, pharmacy.pharmacist_id, secrets.token_hex(12),
            hashlib.sha256(canonical + dispense_id.bytes).digest(), f"HD{rng.randrange(10**10):010d}", recipient,
            total,
            {"signed_content": msgspec.Raw(canonical), "dispensed": sold, "recipient": recipient}, sold_at))
        batch.events.append((content.prescription_id, "dispensed" if status == "dispensed" else "partially_dispensed",
                             pharmacy.id, dispense_id, sold_at))

    async def write_batch(self, batch: Batch) -> None:
        async with self.conn.transaction():
            await self.copy("consultations", _CONSULTATION_COLUMNS, batch.consultations)
            await self.copy("consultation_diagnoses", ("consultation_id", "position", "code", "name", "is_principal"),
                            batch.diagnoses)
            # the lines of a signed prescription are immutable (a trigger), so a prescription arrives as a draft
            # carrying its signed content, gets its lines, and then takes its status, as the service does
            await self.copy("prescriptions", _PRESCRIPTION_COLUMNS, batch.prescriptions)
            await self.copy("prescription_lines", _LINE_COLUMNS, batch.lines)
            started = time.perf_counter()
            await self.conn.execute(
                """UPDATE prescriptions p SET status = s.status
                   FROM unnest($1::uuid[], $2::text[]) AS s(id, status) WHERE p.id = s.id""",
                *batch.statuses, timeout=3600)
            self.timings.add("update prescriptions (status)", time.perf_counter() - started)
            await self.copy("dispenses", _DISPENSE_COLUMNS, batch.dispenses)
            await self.copy("dispense_lines", _DISPENSE_LINE_COLUMNS, batch.dispense_lines)
            await self.copy("prescription_events", ("prescription_id", "kind", "pharmacy_id", "dispense_id",
                                                    "created_at"), batch.events)

    async def prescriptions_(self) -> None:
        self.layout = self._layout()
        total = self.scale.prescriptions
        bounds = [(start, min(total, start + BATCH)) for start in range(0, total, BATCH)]
        build_s = sign_s = 0.0

        def build(first: int, last: int) -> tuple[Batch, float]:
            started = time.perf_counter()
            made = self.build_batch(first, last)
            return made, time.perf_counter() - started

        # the next batch is built (and signed) in a thread while the database takes the current one
        pending = asyncio.create_task(asyncio.to_thread(build, *bounds[0])) if bounds else None
        for n, _ in enumerate(bounds):
            assert pending is not None
            batch, seconds = await pending
            build_s += seconds
            sign_s += batch.sign_s
            pending = asyncio.create_task(asyncio.to_thread(build, *bounds[n + 1])) if n + 1 < len(bounds) else None
            await self.write_batch(batch)
            self.progress("rx", bounds[n][1], total)
        self.timings.add("build + sign prescriptions (thread, overlapped)", build_s)
        self.timings.add("  of which Ed25519 signing", sign_s)

    async def in_call_(self) -> None:
        """Consultations in call now, each with a doctor and a patient of its own (none of whom is in another)."""
        count = min(self.scale.in_call, len(self.doctors))
        picked = self.rng.sample(range(len(self.patients.ids)), count)
        starts = self.now - timedelta(minutes=5)
        rows = []
        for doctor, k in zip(self.doctors[:count], picked, strict=True):
            consultation_id = uuid.uuid4()
            rows.append((consultation_id, doctor.account_id, self.patients.ids[k], self.patients.account_ids[k],
                         Range(starts, starts + SLOT), "in_call", self.rng.choice(REASONS),
                         self.rng.choice(self.tt30), doctor.fee_vnd, starts - timedelta(minutes=2), starts, None,
                         starts - timedelta(days=1), starts))
            self.in_call.append(InCall(consultation_id, doctor.username, self.patients.ids[k]))
        await self.copy("consultations", _CONSULTATION_COLUMNS, rows)

    def manifest(self) -> Manifest:
        rng = random.Random(self.scale.seed + 1)
        p = self.patients
        patients = rng.sample(range(len(p.ids)), min(MANIFEST_PATIENTS, len(p.ids)))
        pharmacies = rng.sample(self.pharmacies, min(MANIFEST_PHARMACISTS, len(self.pharmacies)))
        points = rng.sample(self.pharmacies, min(MANIFEST_POINTS, len(self.pharmacies)))
        return Manifest(
            generated_at=self.now, scale=self.scale,
            password_note=f"Every generated doctor and pharmacist signs in with the password {PASSWORD!r} and a "
                          "TOTP code of their own secret (POST /auth/login {username, password, totp_code}); a code "
                          "is accepted once, so a user signs again only in a later 30-second step. Patients sign in "
                          "by SMS OTP (POST /auth/otp/request, then /auth/otp/verify with the code from the SMS "
                          "sandbox inbox).",
            doctors=[DoctorLogin(d.username, PASSWORD, d.totp_secret, d.account_id, d.fee_vnd) for d in self.doctors],
            patients=[PatientLogin(p.phones[k], p.account_ids[k], p.ids[k]) for k in patients],
            pharmacists=[PharmacistLogin(ph.username, PASSWORD, ph.totp_secret, ph.pharmacist_id, ph.id)
                         for ph in pharmacies],
            open_prescriptions=self.open, in_call=self.in_call, drug_ids=self.drug_ids,
            pharmacy_points=[(round(ph.latitude, 6), round(ph.longitude, 6)) for ph in points],
            timings_s={k: round(v, 2) for k, v in self.timings.seconds.items()})


def rng_name(rng: random.Random) -> str:
    return rng.choice(("An Bình", "Hòa Hảo", "Tâm Đức", "Phúc An", "Bình An", "Thiện Nhân", "Minh Khang"))


_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_CONSULTATION_COLUMNS = ("id", "doctor_id", "patient_id", "booked_by", "slot", "status", "reason",
                         "telemedicine_icd10", "fee_vnd", "checked_in_at", "call_started_at", "call_ended_at",
                         "created_at", "updated_at")
_PRESCRIPTION_COLUMNS = ("id", "consultation_id", "patient_id", "doctor_id", "facility_id", "status", "rx_type",
                         "code", "diagnoses", "advice", "follow_up_days", "signed_content", "signature",
                         "signing_key_id", "issued_at", "valid_until", "cancelled_at", "cancelled_by",
                         "cancel_reason", "created_at", "updated_at")
_LINE_COLUMNS = ("prescription_id", "position", "drug_id", "drug_name", "strength", "dosage_form", "dose_per_time",
                 "dose_unit", "times_per_day", "days", "dispensed_quantity", "quantity", "quantity_unit", "route",
                 "usage")
_DISPENSE_COLUMNS = ("id", "prescription_id", "pharmacy_id", "pharmacist_id", "idempotency_key", "request_hash",
                     "invoice_number", "recipient_name", "total_vnd", "snapshot", "created_at")
_DISPENSE_LINE_COLUMNS = ("dispense_id", "position", "prescribed_drug_id", "drug_id", "substituted", "buyer_consent",
                          "quantity", "lot_number", "expiry_date", "origin", "unit_price_vnd")
def _generated_csv(count: int) -> bytes:
    lines = ["inn,strength,dosage_form,route,control_class,registration_number,source"]
    forms = ("viên nén", "viên nang", "viên nén bao phim", "viên sủi")
    lines += [f"Hoạt chất DG {i},{5 * (1 + i % 40)} mg,{forms[i % len(forms)]},oral,none,VD-{80000 + i}-2{i % 7},"
              "generated by load_tests/datagen.py" for i in range(count)]
    return ("\n".join(lines) + "\n").encode()


async def generate(target: db.DatabaseTarget, settings: Settings, scale: Scale, manifest_path: Path,
                   progress: bool = True) -> Manifest:
    """Seed ``scale`` into the migrated database at ``target`` and write the manifest to ``manifest_path``."""
    bar = ProgressBar() if progress else None
    pool = await db.create_pool(target, with_overrides(settings, db_pool_min=1, db_pool_max=2))
    try:
        async with pool.acquire() as conn:
            # COPY is binary; citext's binary form is text's, which asyncpg has no codec for by name
            await conn.set_type_codec("citext", schema="public", encoder=str.encode, decoder=bytes.decode,
                                      format="binary")
            if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM accounts WHERE username = 'lt.bs00000')"):
                raise RuntimeError("this database already holds generated data; generate into a fresh one")
            gen = Generator(pool, conn, settings, scale, bar or _silent)
            started = time.perf_counter()
            for name, step in (("facilities + catalogue", gen.facilities_and_catalogue), ("doctors", gen.doctors_),
                               ("patients", gen.patients_), ("pharmacies", gen.pharmacies_), ("stock", gen.stock),
                               ("prescriptions", gen.prescriptions_), ("in call", gen.in_call_)):
                await gen.timings.timed(f"phase {name}", step())
    finally:
        if bar:
            bar.close()
        await pool.close()
    # what autovacuum would do after such a load; only the tables' owner may
    owner = await asyncpg.connect(target.admin_dsn)
    try:
        await gen.timings.timed("phase VACUUM ANALYZE", owner.execute(
            "VACUUM ANALYZE prescriptions, prescription_lines, consultations, pharmacy_stock, accounts, patients, "
            "dispenses, dispense_lines, pharmacies", timeout=7200))
    finally:
        await owner.close()
    gen.timings.add("total", time.perf_counter() - started)
    manifest = gen.manifest()
    await asyncio.to_thread(manifest_path.write_bytes, msgspec.json.format(msgspec.json.encode(manifest)))
    if progress:
        for name, seconds in manifest.timings_s.items():
            print(f"{name:<52} {seconds:9.2f} s", file=sys.stderr)
        print(f"open prescriptions: {gen.open_count:,} (manifest carries {len(gen.open):,})", file=sys.stderr)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True, help="the schema owner's DSN (migrations run first)")
    parser.add_argument("--app-role", default=None, help="SET ROLE to this after connecting (as LIENTHONG_DB_APP_ROLE)")
    parser.add_argument("--data-key-b64", required=True, help="LIENTHONG_DATA_KEY of the API that will serve the data")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    for name in ("doctors", "patients", "pharmacies", "stock-per-pharmacy", "prescriptions", "in-call"):
        parser.add_argument(f"--{name}", type=int, default=None)
    parser.add_argument("--manifest", type=Path, required=True)
    args = parser.parse_args()
    try:
        data_key = base64.b64decode(args.data_key_b64, validate=True)
    except binascii.Error:
        parser.error("--data-key-b64 is not base64")
    if len(data_key) != 32:
        parser.error("--data-key-b64 must decode to 32 bytes")
    overrides = {name.replace("-", "_"): getattr(args, name.replace("-", "_"))
                 for name in ("doctors", "patients", "pharmacies", "stock-per-pharmacy", "prescriptions", "in-call")}
    scale = msgspec.structs.replace(SCALES[args.scale], **{k: v for k, v in overrides.items() if v is not None})
    settings = Settings(database_url=args.dsn, data_key=data_key)
    target = db.DatabaseTarget(args.dsn, args.dsn, args.app_role)

    async def run() -> None:
        await db.migrate(args.dsn)
        await generate(target, settings, scale, args.manifest)

    asyncio.run(run())


if __name__ == "__main__":
    main()
