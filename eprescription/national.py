"""Client of the national e-prescription system (donthuocquocgia.vn), QĐ 808/QĐ-BYT: API-1..API-7 of spec §4.

* Facility side (API-1..5) authenticates with bearer tokens valid 7 days; pharmacy side (API-6, API-7) with the
  software vendor's ``app-name``/``app-key`` headers (API-R6).
* API-R4: tokens are cached per facility and per doctor, renewed before the 7-day expiry, obtained once when several
  threads ask at the same moment (single flight), and renewed once when the system answers 401 anyway.
* Errors: 422 ``{"danh_sach_cac_loi": [...]}`` → ``NationalRejected``; 404 → ``NationalNotFound``; network
  failures, timeouts, 5xx and 429 → ``NationalUnavailable`` (try again later).

Synchronous (requests) and thread-safe: async callers use ``asyncio.to_thread``. Passwords and tokens are never
logged; neither is patient data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import msgspec
import requests

FACILITY_LOGIN_PATH = "/api/auth/dang-nhap-co-so-kham-chua-benh"  # API-1
ADD_DOCTOR_PATH = "/api/v1/them-bac-si"  # API-2
REMOVE_DOCTOR_PATH = "/api/v1/xoa-bac-si"  # API-3
DOCTOR_LOGIN_PATH = "/api/auth/dang-nhap-bac-si"  # API-4
SEND_PATH = "/api/v1/gui-don-thuoc"  # API-5
LOOKUP_PATH = "/api/v1/thong-tin-don-thuoc/"  # API-6, followed by the code
REPORT_SOLD_PATH = "/api/v1/cap-nhat-don-thuoc"  # API-7

TOKEN_LIFETIME_S = 7 * 24 * 3600  # QĐ 808 III.1, VI.1
# Renewing a day early leaves room for clock drift and for a send that starts just before the expiry.
TOKEN_REFRESH_AFTER_S = 6 * 24 * 3600

Api = Literal["API-1", "API-2", "API-3", "API-4", "API-5", "API-6", "API-7"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NationalConfig:
    base_url: str  # e.g. https://api.donthuocquocgia.vn
    facility_code: str  # mã liên thông cơ sở khám chữa bệnh
    facility_password: str
    app_name: str
    app_key: str
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    token_refresh_after_s: float = TOKEN_REFRESH_AFTER_S


class NationalError(Exception):
    """The national system did not do what was asked. ``api`` names the call (API-1..API-7)."""

    def __init__(self, api: Api, message: str) -> None:
        super().__init__(message)
        self.api = api


class NationalRejected(NationalError):
    """422 (or another client error): sending the same request again gives the same answer. ``messages`` is the
    system's ``danh_sach_cac_loi``, in Vietnamese, to show to the person who can fix the data."""

    def __init__(self, api: Api, messages: list[str]) -> None:
        super().__init__(api, f"{api} rejected: " + "; ".join(messages))
        self.messages = messages


class NationalNotFound(NationalError):
    """404: no prescription with this code (API-6, API-7)."""

    def __init__(self, api: Api, messages: list[str]) -> None:
        super().__init__(api, f"{api} not found: " + "; ".join(messages))
        self.messages = messages


class NationalUnavailable(NationalError):
    """Unreachable, too slow, overloaded (5xx, 429) or answering nonsense: try again later."""


# ------------------------------------------------------------------------------------------- wire shapes (API-6/7)

class NationalDrugLine(msgspec.Struct):
    ma_thuoc: str = ""
    biet_duoc: str = ""
    ten_thuoc: str = ""
    don_vi_tinh: str = ""
    so_luong: float = 0
    cach_dung: str = ""


class NationalDiagnosis(msgspec.Struct):
    ma_chan_doan: str = ""
    ten_chan_doan: str = ""
    ket_luan: str = ""


class NationalBatch(msgspec.Struct):
    dot: int | str = 1
    tu_ngay: str = ""
    den_ngay: str = ""
    so_thang_thuoc: float | None = None


class NationalPrescription(msgspec.Struct):
    """API-6 answer. Everything but the code defaults, so a sparse answer from the real system still reads."""

    ma_don_thuoc: str
    ho_ten_benh_nhan: str = ""
    ngay_sinh_benh_nhan: str = ""
    ma_dinh_danh_y_te: str | None = None
    loai_don_thuoc: str = ""
    hinh_thuc_dieu_tri: int | None = None
    dia_chi: str = ""
    gioi_tinh: int | None = None
    can_nang: float | None = None
    ma_so_the_bao_hiem_y_te: str | None = None
    thong_tin_don_thuoc: list[NationalDrugLine] = []
    dot_dung_thuoc: list[NationalBatch] = []
    chan_doan: list[NationalDiagnosis] = []
    luu_y: str | None = None
    loi_dan: str | None = None
    ten_bac_si: str | None = None
    ten_co_so_kham_chua_benh: str | None = None
    so_dien_thoai_co_so_kham_chua_benh: str | None = None
    ngay_gio_ke_don: str | None = None


class SoldLine(msgspec.Struct):
    """One line of an API-7 report (QĐ 808 IX.3). ``ma_thuoc``/``ten_thuoc`` are the substitute's when one was
    sold; ``ma_thuoc_da_ke_don`` is always the prescribed drug's code as API-6 returned it."""

    ma_thuoc_da_ke_don: str
    ma_thuoc: str
    biet_duoc: str
    ten_thuoc: str
    don_vi_tinh: str
    so_luong: int  # prescribed
    so_luong_ban: int  # sold; the field table requires it although QĐ 808's sample omits it
    cach_dung: str


class SoldReport(msgspec.Struct):
    """API-7 body: what a pharmacy sold against a prescription."""

    ma_don_thuoc: str
    thong_tin_thuoc: list[SoldLine]
    ma_dinh_danh_co_so_cung_ung_thuoc: str
    ten_co_so_cung_ung_thuoc: str
    so_dien_thoai_co_so_cung_ung_thuoc: str
    dia_chi_co_so_cung_ung_thuoc: str
    ma_hoa_don: str


# ------------------------------------------------------------------------------------------- client

@dataclass(slots=True)
class _Token:
    value: str
    obtained_at: float


class NationalClient:
    """One facility's connection to the national system: its HTTP connections and its tokens."""

    def __init__(self, config: NationalConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._base = config.base_url.rstrip("/")
        self._clock = clock
        self._session = requests.Session()
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._locks: dict[tuple[str, ...], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @property
    def config(self) -> NationalConfig:
        return self._config

    def close(self) -> None:
        self._session.close()

    # --- API-1..API-4: accounts and tokens

    def facility_token(self) -> str:
        """API-1, cached."""
        return self._token(("facility", self._config.facility_code), self._facility_login)

    def add_doctor(self, doctor_code: str) -> str:
        """API-2: let the doctor log in on behalf of this facility; returns the system's success message."""
        return self._success(self._as_facility("API-2", ADD_DOCTOR_PATH, {"ma_lien_thong_bac_si": doctor_code}))

    def remove_doctor(self, doctor_code: str) -> str:
        """API-3."""
        return self._success(self._as_facility("API-3", REMOVE_DOCTOR_PATH, {"ma_lien_thong_bac_si": doctor_code}))

    def doctor_token(self, doctor_code: str, password: str) -> str:
        """API-4, cached. A doctor the facility has not added yet (API-R1) is added with API-2 and logged in again."""
        return self._token(("doctor", doctor_code), lambda: self._doctor_login(doctor_code, password))

    # --- API-5..API-7

    def send_prescription(self, doctor_code: str, password: str, payload: Mapping[str, Any]) -> str:
        """API-5 as the doctor; returns the system's success message."""
        data = self._authorized("API-5", SEND_PATH, ("doctor", doctor_code),
                                lambda: self._doctor_login(doctor_code, password), payload)
        log.info("national prescription accepted code=%s doctor=%s", payload.get("ma_don_thuoc"), doctor_code)
        return self._success(data)

    def lookup(self, code: str) -> NationalPrescription:
        """API-6: the prescription as the national system holds it; NationalNotFound when it holds none."""
        data = self._call("API-6", "GET", LOOKUP_PATH + quote(code, safe=""), headers=self._app_headers())
        data = {name: value for name, value in data.items() if value is not None}  # null reads as absent
        if isinstance(data.get("dot_dung_thuoc"), dict):
            # some public clients say the system uses one object here rather than QĐ 808's list
            data["dot_dung_thuoc"] = [data["dot_dung_thuoc"]]
        try:
            return msgspec.convert(data, NationalPrescription, strict=False)
        except msgspec.ValidationError as exc:
            raise NationalUnavailable("API-6", f"API-6 answer unreadable: {exc}") from None

    def report_sold(self, report: SoldReport) -> str:
        """API-7: report the quantities a pharmacy sold; returns the system's success message."""
        return self._success(self._call("API-7", "POST", REPORT_SOLD_PATH, json=msgspec.to_builtins(report),
                                        headers=self._app_headers()))

    # --- internals

    def _facility_login(self) -> str:
        return self._login("API-1", FACILITY_LOGIN_PATH, {
            "ma_lien_thong_co_so_kham_chua_benh": self._config.facility_code,
            "password": self._config.facility_password})

    def _doctor_login(self, doctor_code: str, password: str) -> str:
        body = {"ma_lien_thong_bac_si": doctor_code,
                "ma_lien_thong_co_so_kham_chua_benh": self._config.facility_code, "password": password}
        try:
            return self._login("API-4", DOCTOR_LOGIN_PATH, body)
        except NationalRejected:
            # QĐ 808 answers 422 both for "not added to this facility" and for bad credentials, with wording we
            # have not seen; adding the doctor is harmless when already done, and the second login says which.
            log.info("national doctor login refused, adding the doctor to the facility doctor=%s", doctor_code)
            try:
                self.add_doctor(doctor_code)
            except NationalRejected as exc:
                log.info("national add-doctor refused doctor=%s messages=%s", doctor_code, exc.messages)
            return self._login("API-4", DOCTOR_LOGIN_PATH, body)

    def _login(self, api: Api, path: str, body: Mapping[str, str]) -> str:
        data = self._call(api, "POST", path, json=dict(body))
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise NationalUnavailable(api, f"{api} answered without a token")
        return token

    def _token(self, key: tuple[str, ...], login: Callable[[], str], *, stale: str | None = None) -> str:
        """The cached token for ``key``, logging in when there is none, it is due for renewal, or it is ``stale``
        (refused with 401). Callers for one key queue on its lock, so they share one login."""
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._tokens.get(key)
            now = self._clock()
            if (cached is not None and cached.value != stale
                    and now - cached.obtained_at < self._config.token_refresh_after_s):
                return cached.value
            self._tokens.pop(key, None)
            value = login()
            self._tokens[key] = _Token(value, self._clock())
            return value

    def _as_facility(self, api: Api, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._authorized(api, path, ("facility", self._config.facility_code), self._facility_login, body)

    def _authorized(self, api: Api, path: str, key: tuple[str, ...], login: Callable[[], str],
                    body: Mapping[str, Any]) -> dict[str, Any]:
        token = self._token(key, login)
        try:
            return self._call(api, "POST", path, json=dict(body), token=token)
        except _Unauthorized:
            # expired early, revoked, or the system restarted: one fresh login, then give up for now
            token = self._token(key, login, stale=token)
            try:
                return self._call(api, "POST", path, json=dict(body), token=token)
            except _Unauthorized:
                raise NationalUnavailable(api, f"{api} refused a fresh token (401)") from None

    def _app_headers(self) -> dict[str, str]:
        return {"app-name": self._config.app_name, "app-key": self._config.app_key}

    def _call(self, api: Api, method: str, path: str, *, json: Any = None, token: str | None = None,
              headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        config = self._config
        sent_headers = dict(headers or {})
        if token is not None:
            sent_headers["Authorization"] = f"bearer {token}"
        try:
            response = self._session.request(method, self._base + path, json=json, headers=sent_headers,
                                             timeout=(config.connect_timeout_s, config.read_timeout_s))
        except requests.RequestException as exc:
            log.warning("national system unreachable api=%s error=%s", api, type(exc).__name__)
            raise NationalUnavailable(api, f"{api}: national system unreachable ({type(exc).__name__})") from exc
        status = response.status_code
        if status >= 500 or status == 429:
            log.warning("national system busy api=%s http=%d", api, status)
            raise NationalUnavailable(api, f"{api}: national system answered HTTP {status}")
        try:
            data: object = response.json()
        except ValueError:
            data = None
        if status == 401 and token is not None:
            raise _Unauthorized(api, "401")
        if status == 404:
            raise NationalNotFound(api, _messages(data) or ["Không tìm thấy đơn thuốc"])
        if status != 200:
            messages = _messages(data) or [f"HTTP {status} {response.reason or ''}".strip()]
            log.info("national system refused api=%s http=%d", api, status)
            raise NationalRejected(api, messages)
        if not isinstance(data, dict):
            raise NationalUnavailable(api, f"{api}: national system answered 200 without a JSON object")
        return data

    @staticmethod
    def _success(data: Mapping[str, Any]) -> str:
        message = data.get("success")
        return message if isinstance(message, str) else ""


class _Unauthorized(NationalError):
    """401 on a bearer call: the token is no good any more."""


def _messages(data: object) -> list[str]:
    if isinstance(data, dict):
        found = data.get("danh_sach_cac_loi")
        if isinstance(found, list):
            return [str(m) for m in found]
        if isinstance(found, str):
            return [found]
        if isinstance(data.get("message"), str):
            return [data["message"]]
    return []
