"""A local stand-in for the national e-prescription system (QĐ 808 API-1..API-7, spec §4, API-R7), for tests and the
demo server; it never talks to donthuocquocgia.vn.

It listens on 127.0.0.1 (standard library only) and speaks what ``eprescription.national`` speaks: the same paths,
JSON field names, ``Authorization: bearer`` tokens valid 7 days (API-1, API-4), ``app-name``/``app-key`` headers
(API-6, API-7), 422 ``{"danh_sach_cac_loi": [...]}`` with Vietnamese messages naming the field, and 404 "Không tìm
thấy đơn thuốc". State is in memory and can be inspected by tests (``prescriptions()``, ``sold_reports()``,
``calls()``); faults are injected with ``fail_next``.

API-5 bodies are checked against the QĐ 808 VII.3 field table: required fields and sizes, ``loai_don_thuoc`` in
c/h/n/y and matching the code's suffix, the 14-character code with this facility's prefix, ``gioi_tinh`` 1/2/3,
``d/m/Y`` and ``Y-m-d H:i:s`` dates, ``can_nang`` and ``thong_tin_nguoi_giam_ho`` for a child under 72 months
(§9 U-20), ``dot_dung_thuoc`` for h/n/y, ``hinh_thuc_dieu_tri`` for c, and a non-empty ``chan_doan`` whose entries
have three non-empty fields. A code already accepted is refused with 422 "Mã đơn thuốc đã tồn tại." (API-R3).

Where QĐ 808 is silent the sandbox chooses, and says so here: the wording of messages; numbers must be JSON numbers
(not numeric strings); a request with a missing, unknown or expired token gets 401 ``{"message":
"Unauthenticated."}``; API-2 for a doctor already added answers 422; API-7 refuses a line whose
``ma_thuoc_da_ke_don`` is not on the prescription, and does not check sold quantities against prescribed ones (§9
U-8).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from api.sandbox_server import LoopbackSandbox, SandboxServer, read_body
from eprescription.national import (
    ADD_DOCTOR_PATH,
    DOCTOR_LOGIN_PATH,
    FACILITY_LOGIN_PATH,
    LOOKUP_PATH,
    REMOVE_DOCTOR_PATH,
    REPORT_SOLD_PATH,
    SEND_PATH,
    TOKEN_LIFETIME_S,
    Api,
)

FaultMode = Literal["http500", "http429", "timeout", "drop"]

# Longer than NationalConfig's default 10 s read timeout, so a "timeout" fault outlasts the client.
DEFAULT_STALL_S = 12.0
NOT_FOUND = "Không tìm thấy đơn thuốc"
DUPLICATE_CODE = "Mã đơn thuốc đã tồn tại."
BAD_LOGIN = "Mã liên thông hoặc mật khẩu không đúng."
DOCTOR_NOT_ADDED = "Bác sĩ chưa được thêm vào cơ sở khám chữa bệnh."
CHILD_MONTHS = 72
_MAX_BODY_BYTES = 1024 * 1024
_VN = ZoneInfo("Asia/Ho_Chi_Minh")
_CODE = re.compile(r"^[0-9A-Za-z]{5}[0-9A-Za-z]{7}-[cnhyCNHY]$")
_DMY = re.compile(r"^[0-9]{2}/[0-9]{2}/[0-9]{4}$")
_YMD_HIS = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")
_POST_ROUTES: dict[str, Api] = {
    FACILITY_LOGIN_PATH: "API-1", ADD_DOCTOR_PATH: "API-2", REMOVE_DOCTOR_PATH: "API-3", DOCTOR_LOGIN_PATH: "API-4",
    SEND_PATH: "API-5", REPORT_SOLD_PATH: "API-7",
}
# API-6 answers these fields of what API-5 received (QĐ 808 VIII), plus the doctor's and facility's names
_LOOKUP_FIELDS = ("ma_don_thuoc", "ho_ten_benh_nhan", "ngay_sinh_benh_nhan", "ma_dinh_danh_y_te", "loai_don_thuoc",
                  "hinh_thuc_dieu_tri", "dia_chi", "gioi_tinh", "can_nang", "ma_so_the_bao_hiem_y_te",
                  "thong_tin_don_thuoc", "dot_dung_thuoc", "chan_doan", "luu_y", "loi_dan", "ngay_gio_ke_don")


@dataclass(frozen=True, slots=True)
class SandboxPrescription:
    code: str
    body: dict[str, Any]  # the API-5 body as received
    facility_code: str
    doctor_code: str
    received_at: str  # UTC, ISO 8601


@dataclass(frozen=True, slots=True)
class SandboxSoldReport:
    code: str
    body: dict[str, Any]  # the API-7 body as received
    app_name: str
    received_at: str


@dataclass(frozen=True, slots=True)
class _Token:
    facility_code: str
    doctor_code: str | None  # None: a facility token
    expires_at: float


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: dict[str, Any]


def _errors(status: int, messages: list[str]) -> _Answer:
    return _Answer(status, {"danh_sach_cac_loi": messages})


class NationalRxSandbox(LoopbackSandbox):
    """In-memory QĐ 808 look-alike served from a daemon thread; start/stop it or use it as a context manager.

    ``facilities`` and ``doctors`` map a mã liên thông to its password (accounts issued by the national system);
    ``added_doctors`` lists (facility, doctor) pairs already linked with API-2; ``apps`` maps app-name to app-key.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        facilities: Mapping[str, str] | None = None,
        doctors: Mapping[str, str] | None = None,
        added_doctors: Iterable[tuple[str, str]] = (),
        apps: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(host, port, _Handler, "national e-prescription sandbox")
        self._facilities = dict(facilities if facilities is not None else {"79026": "sandbox-facility"})
        self._doctors = dict(doctors or {})
        self._apps = dict(apps if apps is not None else {"lienthong": "sandbox-app-key"})
        self._lock = threading.Lock()
        self._added: set[tuple[str, str]] = set(added_doctors)
        self._tokens: dict[str, _Token] = {}
        self._prescriptions: dict[str, SandboxPrescription] = {}
        self._reports: list[SandboxSoldReport] = []
        self._calls: Counter[str] = Counter()
        self._faults: deque[tuple[FaultMode, float, Api | None]] = deque()
        self._clock_offset_s = 0.0

    # --- lifecycle


    # --- inspection and control, for tests

    def prescriptions(self) -> list[SandboxPrescription]:
        """Accepted prescriptions, oldest first."""
        with self._lock:
            return list(self._prescriptions.values())

    def sold_reports(self) -> list[SandboxSoldReport]:
        with self._lock:
            return list(self._reports)

    def calls(self, api: Api) -> int:
        """Requests received for ``api``, whatever the answer (faults included)."""
        with self._lock:
            return self._calls[api]

    def facility_doctors(self, facility_code: str) -> set[str]:
        with self._lock:
            return {doctor for facility, doctor in self._added if facility == facility_code}

    def register_doctor(self, doctor_code: str, password: str) -> None:
        """A doctor account issued by the national system (API-R1), not yet added to any facility."""
        with self._lock:
            self._doctors[doctor_code] = password

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox's clock forward: tokens older than 7 days then get 401."""
        with self._lock:
            self._clock_offset_s += seconds

    def fail_next(self, n: int, mode: FaultMode, *, api: Api | None = None, delay_s: float = DEFAULT_STALL_S) -> None:
        """Make the next ``n`` requests (to ``api`` only, when given) fail.

        ``http500`` and ``http429`` answer that status without doing anything; ``drop`` reads the request and
        closes the connection without an answer, without doing anything. ``timeout`` waits ``delay_s`` and then
        handles the request normally, like a system that accepted a prescription after the client gave up: the
        client's next attempt meets "already exists".
        """
        with self._lock:
            self._faults.extend([(mode, delay_s, api)] * n)

    def _next_fault(self, api: Api) -> tuple[FaultMode, float] | None:
        with self._lock:
            self._calls[api] += 1
            for fault in self._faults:
                if fault[2] is None or fault[2] == api:
                    self._faults.remove(fault)
                    return fault[0], fault[1]
            return None

    def _now(self) -> float:
        return time.time() + self._clock_offset_s

    # --- the APIs

    def _handle(self, api: Api, headers: Mapping[str, str], body: dict[str, Any], path: str) -> _Answer:
        if api == "API-1":
            return self._facility_login(body)
        if api == "API-4":
            return self._doctor_login(body)
        if api == "API-6":
            return self._lookup(headers, unquote(path[len(LOOKUP_PATH):]))
        if api == "API-7":
            return self._report_sold(headers, body)
        token = self._bearer(headers)
        if token is None:
            return _Answer(401, {"message": "Unauthenticated."})
        if api in ("API-2", "API-3"):
            return self._doctor_membership(api, token, body)
        return self._send(token, body)

    def _bearer(self, headers: Mapping[str, str]) -> _Token | None:
        scheme, _, value = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            token = self._tokens.get(value.strip())
        if token is None or token.expires_at <= self._now():
            return None
        return token

    def _issue(self, facility_code: str, doctor_code: str | None) -> _Answer:
        value = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[value] = _Token(facility_code, doctor_code, self._now() + TOKEN_LIFETIME_S)
        # QĐ 808 VI.2's sample spells it "tocken_type"; its III.2 sample and the client read "token" only
        return _Answer(200, {"token": value, "token_type": "bearer"})

    def _facility_login(self, body: dict[str, Any]) -> _Answer:
        problems = _required_strings(body, ("ma_lien_thong_co_so_kham_chua_benh", "password"))
        if problems:
            return _errors(422, problems)
        code = body["ma_lien_thong_co_so_kham_chua_benh"]
        password = self._facilities.get(code)
        if password is None or not secrets.compare_digest(password, body["password"]):
            return _errors(422, [BAD_LOGIN])
        return self._issue(code, None)

    def _doctor_login(self, body: dict[str, Any]) -> _Answer:
        problems = _required_strings(body, ("ma_lien_thong_bac_si", "ma_lien_thong_co_so_kham_chua_benh", "password"))
        if problems:
            return _errors(422, problems)
        doctor, facility = body["ma_lien_thong_bac_si"], body["ma_lien_thong_co_so_kham_chua_benh"]
        with self._lock:
            password = self._doctors.get(doctor)
            added = (facility, doctor) in self._added
        if password is None or not secrets.compare_digest(password, body["password"]):
            return _errors(422, [BAD_LOGIN])
        if not added:
            return _errors(422, [DOCTOR_NOT_ADDED])
        return self._issue(facility, doctor)

    def _doctor_membership(self, api: Api, token: _Token, body: dict[str, Any]) -> _Answer:
        if token.doctor_code is not None:
            return _Answer(401, {"message": "Unauthenticated."})
        problems = _required_strings(body, ("ma_lien_thong_bac_si",))
        if problems:
            return _errors(422, problems)
        doctor = body["ma_lien_thong_bac_si"]
        pair = (token.facility_code, doctor)
        with self._lock:
            known = doctor in self._doctors
            added = pair in self._added
            if api == "API-2" and known and not added:
                self._added.add(pair)
                return _Answer(200, {"success": "Bạn đã thêm bác sĩ thành công"})
            if api == "API-3" and added:
                self._added.discard(pair)
                return _Answer(200, {"success": "Bạn đã xóa bác sĩ thành công"})
        if not known:
            return _errors(422, ["Mã liên thông bác sĩ không tồn tại."])
        if api == "API-2":
            return _errors(422, ["Bác sĩ đã được thêm vào cơ sở khám chữa bệnh."])
        return _errors(422, [DOCTOR_NOT_ADDED])

    def _send(self, token: _Token, body: dict[str, Any]) -> _Answer:
        if token.doctor_code is None:
            return _Answer(401, {"message": "Unauthenticated."})
        today = datetime.fromtimestamp(self._now(), _VN).date()
        problems = validate_prescription(body, token.facility_code, today)
        if problems:
            return _errors(422, problems)
        code = body["ma_don_thuoc"]
        with self._lock:
            # checked and stored under one lock: two concurrent sends of one code store it once
            if code.lower() in self._prescriptions:
                return _errors(422, [DUPLICATE_CODE])
            self._prescriptions[code.lower()] = SandboxPrescription(
                code=code, body=body, facility_code=token.facility_code, doctor_code=token.doctor_code,
                received_at=_utc_now())
        return _Answer(200, {"success": "Gửi đơn thuốc thành công"})

    def _app_allowed(self, headers: Mapping[str, str]) -> str | None:
        name, key = headers.get("app-name") or "", headers.get("app-key") or ""
        expected = self._apps.get(name)
        return name if expected is not None and secrets.compare_digest(expected, key) else None

    def _lookup(self, headers: Mapping[str, str], code: str) -> _Answer:
        if self._app_allowed(headers) is None:
            return _errors(401, ["app-name hoặc app-key không hợp lệ."])
        with self._lock:
            found = self._prescriptions.get(code.lower())
        if found is None:
            return _errors(404, [NOT_FOUND])
        answer = {name: found.body.get(name) for name in _LOOKUP_FIELDS}
        answer |= {"ten_bac_si": f"Bác sĩ {found.doctor_code}",
                   "ten_co_so_kham_chua_benh": f"Cơ sở khám chữa bệnh {found.facility_code}",
                   "so_dien_thoai_co_so_kham_chua_benh": "0280000000"}
        return _Answer(200, answer)

    def _report_sold(self, headers: Mapping[str, str], body: dict[str, Any]) -> _Answer:
        app_name = self._app_allowed(headers)
        if app_name is None:
            return _errors(401, ["app-name hoặc app-key không hợp lệ."])
        problems = validate_sold_report(body)
        if problems:
            return _errors(422, problems)
        code = body["ma_don_thuoc"]
        with self._lock:
            found = self._prescriptions.get(code.lower())
            if found is None:
                return _errors(404, [NOT_FOUND])
            prescribed = {line.get("ma_thuoc") for line in found.body["thong_tin_don_thuoc"]}
            unknown = [i for i, line in enumerate(body["thong_tin_thuoc"])
                       if line["ma_thuoc_da_ke_don"] not in prescribed]
            if unknown:
                return _errors(422, [f"Thuốc thong_tin_thuoc.{i}.ma_thuoc_da_ke_don không có trong đơn thuốc."
                                     for i in unknown])
            self._reports.append(SandboxSoldReport(code=code, body=body, app_name=app_name, received_at=_utc_now()))
        return _Answer(200, {"success": "Cập nhật đơn thuốc đã bán thành công"})


# ------------------------------------------------------------------------------------------- validation

def _required(field: str) -> str:
    return f"Trường {field} không được bỏ trống."


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _required_strings(body: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    return [problem for name in names for problem in _text(body, name, 500, required=True)]


def _text(body: Mapping[str, Any], name: str, max_len: int, *, required: bool, at: str = "") -> list[str]:
    field = at + name
    value = body.get(name)
    if value is None or value == "":
        return [_required(field)] if required else []
    if not isinstance(value, str):
        return [f"Trường {field} phải là chuỗi ký tự."]
    if len(value) > max_len:
        return [f"Trường {field} không được lớn hơn {max_len} ký tự."]
    return []


def _number(body: Mapping[str, Any], name: str, *, required: bool, positive: bool = False, at: str = "") -> list[str]:
    field = at + name
    value = body.get(name)
    if value is None or value == "":
        return [_required(field)] if required else []
    if not _is_number(value):
        return [f"Trường {field} phải là số."]
    if positive and value <= 0:
        return [f"Trường {field} phải lớn hơn 0."]
    return []


def _digits(body: Mapping[str, Any], name: str, *, exactly: int | None = None, at_most: int | None = None,
            required: bool = False) -> list[str]:
    value = body.get(name)
    if value is None or value == "":
        return [_required(name)] if required else []
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return [f"Trường {name} chỉ được gồm chữ số."]
    if exactly is not None and len(value) != exactly:
        return [f"Trường {name} phải gồm {exactly} chữ số."]
    if at_most is not None and len(value) > at_most:
        return [f"Trường {name} không được dài quá {at_most} chữ số."]
    return []


def _parse_dmy(value: object) -> date | None:
    if not isinstance(value, str) or not _DMY.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%d/%m/%Y").date()
    except ValueError:
        return None


def _date(body: Mapping[str, Any], name: str, *, required: bool, at: str = "") -> list[str]:
    value = body.get(name)
    if value is None or value == "":
        return [_required(at + name)] if required else []
    return [] if _parse_dmy(value) else [f"Trường {at}{name} không khớp với định dạng d/m/Y."]


def _items(body: Mapping[str, Any], name: str) -> tuple[list[dict[str, Any]] | None, list[str]]:
    value = body.get(name)
    if value is None or value == []:
        return None, [_required(name)]
    if not isinstance(value, list):
        return None, [f"Trường {name} phải là một danh sách."]
    if not all(isinstance(item, dict) for item in value):
        return None, [f"Các phần tử của trường {name} phải là đối tượng."]
    return value, []


def _months_between(born: date, on: date) -> int:
    months = (on.year - born.year) * 12 + on.month - born.month
    return months - (1 if on.day < born.day else 0)


def validate_prescription(body: Mapping[str, Any], facility_code: str, today: date) -> list[str]:
    """QĐ 808 VII.3 checks of an API-5 body sent by a doctor of ``facility_code``; the messages, in order."""
    problems: list[str] = []
    kind = body.get("loai_don_thuoc")
    if kind in (None, ""):
        problems.append(_required("loai_don_thuoc"))
    elif kind not in ("c", "h", "n", "y"):
        problems.append("Trường loai_don_thuoc phải là một trong các giá trị: c, h, n, y.")
    code = body.get("ma_don_thuoc")
    if code in (None, ""):
        problems.append(_required("ma_don_thuoc"))
    elif not isinstance(code, str) or len(code) != 14:
        problems.append("Trường ma_don_thuoc phải có đúng 14 ký tự.")
    elif not _CODE.fullmatch(code):
        problems.append("Trường ma_don_thuoc không đúng định dạng xxxxxyyyyyyy-z.")
    elif code[:5].upper() != facility_code.upper():
        problems.append(f"Mã đơn thuốc phải bắt đầu bằng mã cơ sở khám chữa bệnh {facility_code}.")
    elif kind in ("c", "h", "n", "y") and code[-1].lower() != kind:
        problems.append("Loại đơn thuốc không khớp với mã đơn thuốc.")
    problems += _text(body, "ho_ten_benh_nhan", 500, required=True)
    problems += _date(body, "ngay_sinh_benh_nhan", required=True)
    problems += _text(body, "ma_dinh_danh_y_te", 10, required=False)
    problems += _digits(body, "ma_dinh_danh_cong_dan", exactly=12)
    problems += _number(body, "can_nang", required=False, positive=True)
    gender = body.get("gioi_tinh")
    if gender is None or gender == "":
        problems.append(_required("gioi_tinh"))
    elif not _is_number(gender) or gender not in (1, 2, 3):
        problems.append("Trường gioi_tinh phải là một trong các giá trị: 1, 2, 3.")
    problems += _text(body, "ma_so_the_bao_hiem_y_te", 10, required=False)
    problems += _text(body, "thong_tin_nguoi_giam_ho", 500, required=False)
    problems += _text(body, "dia_chi", 500, required=True)
    problems += _text(body, "luu_y", 2000, required=False)
    problems += _text(body, "loi_dan", 2000, required=False)
    problems += _digits(body, "so_dien_thoai_nguoi_kham_benh", at_most=12)
    problems += _number(body, "ngay_tai_kham", required=False, positive=True)
    issued = body.get("ngay_gio_ke_don")
    issued_on: date | None = None
    if issued not in (None, ""):
        try:
            if not isinstance(issued, str) or not _YMD_HIS.fullmatch(issued):
                raise ValueError
            issued_on = datetime.strptime(issued, "%Y-%m-%d %H:%M:%S").date()
        except ValueError:
            problems.append("Trường ngay_gio_ke_don không khớp với định dạng Y-m-d H:i:s.")
    if body.get("signature") is not None and not isinstance(body.get("signature"), str):
        problems.append("Trường signature phải là chuỗi ký tự.")

    born = _parse_dmy(body.get("ngay_sinh_benh_nhan"))
    if born is not None and _months_between(born, issued_on or today) < CHILD_MONTHS:
        for name in ("can_nang", "thong_tin_nguoi_giam_ho"):
            if body.get(name) in (None, ""):
                problems.append(f"Trường {name} không được bỏ trống khi bệnh nhân dưới 72 tháng tuổi.")

    if kind == "c":
        if body.get("hinh_thuc_dieu_tri") in (None, ""):
            problems.append("Trường hinh_thuc_dieu_tri không được bỏ trống khi loai_don_thuoc là c.")
        else:
            problems += _number(body, "hinh_thuc_dieu_tri", required=True, positive=True)
    batches = body.get("dot_dung_thuoc")
    if kind in ("h", "n", "y") and batches in (None, "", []):
        problems.append("Trường dot_dung_thuoc không được bỏ trống khi loai_don_thuoc là h, n hoặc y.")
    elif batches not in (None, "", []):
        items, found = _items(body, "dot_dung_thuoc")
        problems += found
        for i, batch in enumerate(items or []):
            at = f"dot_dung_thuoc.{i}."
            problems += _number(batch, "dot", required=True, positive=True, at=at)
            problems += _date(batch, "tu_ngay", required=True, at=at)
            problems += _date(batch, "den_ngay", required=True, at=at)
            problems += _number(batch, "so_thang_thuoc", required=False, positive=True, at=at)

    diagnoses, found = _items(body, "chan_doan")
    problems += found
    for i, diagnosis in enumerate(diagnoses or []):
        for name in ("ma_chan_doan", "ten_chan_doan", "ket_luan"):
            problems += _text(diagnosis, name, 2000, required=True, at=f"chan_doan.{i}.")

    lines, found = _items(body, "thong_tin_don_thuoc")
    problems += found
    for i, line in enumerate(lines or []):
        at = f"thong_tin_don_thuoc.{i}."
        problems += _text(line, "ma_thuoc", 20, required=True, at=at)
        for name in ("biet_duoc", "ten_thuoc", "don_vi_tinh", "cach_dung"):
            problems += _text(line, name, 500, required=True, at=at)
        problems += _number(line, "so_luong", required=True, positive=True, at=at)
    return problems


def validate_sold_report(body: Mapping[str, Any]) -> list[str]:
    """QĐ 808 IX.3 checks of an API-7 body."""
    problems: list[str] = []
    code = body.get("ma_don_thuoc")
    if code in (None, ""):
        problems.append(_required("ma_don_thuoc"))
    elif not isinstance(code, str) or len(code) != 14:
        problems.append("Trường ma_don_thuoc phải có đúng 14 ký tự.")
    lines, found = _items(body, "thong_tin_thuoc")
    problems += found
    for i, line in enumerate(lines or []):
        at = f"thong_tin_thuoc.{i}."
        problems += _text(line, "ma_thuoc_da_ke_don", 20, required=True, at=at)
        problems += _text(line, "ma_thuoc", 20, required=True, at=at)
        for name in ("biet_duoc", "ten_thuoc", "don_vi_tinh", "cach_dung"):
            problems += _text(line, name, 200, required=True, at=at)
        problems += _number(line, "so_luong", required=True, positive=True, at=at)
        problems += _number(line, "so_luong_ban", required=True, at=at)
        if _is_number(line.get("so_luong_ban")) and line["so_luong_ban"] < 0:
            problems.append(f"Trường {at}so_luong_ban không được nhỏ hơn 0.")
    problems += _text(body, "ma_dinh_danh_co_so_cung_ung_thuoc", 200, required=True)
    problems += _text(body, "ten_co_so_cung_ung_thuoc", 2000, required=True)
    problems += _digits(body, "so_dien_thoai_co_so_cung_ung_thuoc", at_most=12, required=True)
    problems += _text(body, "dia_chi_co_so_cung_ung_thuoc", 2000, required=True)
    problems += _text(body, "ma_hoa_don", 20, required=True)
    return problems


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# ------------------------------------------------------------------------------------------- HTTP

class _Handler(BaseHTTPRequestHandler):
    server: SandboxServer[NationalRxSandbox]
    server_version = "NationalRxSandbox"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: access lines would carry prescription codes; the client logs what it needs."""

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        api = _POST_ROUTES.get(path)
        if api is None:
            self._reply(_Answer(404, {"message": "Not Found"}))
            return
        self._serve(api, path)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if not path.startswith(LOOKUP_PATH) or len(path) == len(LOOKUP_PATH):
            self._reply(_Answer(404, {"message": "Not Found"}))
            return
        self._serve("API-6", path)

    def _serve(self, api: Api, path: str) -> None:
        sandbox = self.server.sandbox
        fault = sandbox._next_fault(api)
        body: object = {}
        if api != "API-6":
            raw = read_body(self, _MAX_BODY_BYTES)
            if raw is None:
                self._reply(_errors(422, [f"Dữ liệu gửi lên phải từ 0 đến {_MAX_BODY_BYTES} byte."]))
                return
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:  # includes undecodable bytes
                body = None
        if fault is not None:
            mode, delay_s = fault
            if mode == "http500":
                self._reply(_Answer(500, {"message": "Server Error"}))
                return
            if mode == "http429":
                self._reply(_Answer(429, {"message": "Too Many Attempts."}))
                return
            if mode == "drop":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            time.sleep(delay_s)
        if not isinstance(body, dict):
            self._reply(_errors(422, ["Dữ liệu gửi lên phải là một đối tượng JSON."]))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._reply(sandbox._handle(api, headers, body, path))

    def _reply(self, answer: _Answer) -> None:
        payload = json.dumps(answer.body, ensure_ascii=False).encode()
        # A client that gave up (e.g. during a "timeout" fault) has closed its end; nobody is listening.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
