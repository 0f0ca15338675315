"""The national sandbox on the wire, without our client: what any QĐ 808 client would see (API-R7)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from eprescription.national import (
    ADD_DOCTOR_PATH,
    DOCTOR_LOGIN_PATH,
    FACILITY_LOGIN_PATH,
    LOOKUP_PATH,
    REPORT_SOLD_PATH,
    SEND_PATH,
)
from eprescription.national_sandbox import NationalRxSandbox
from eprescription.national_sync import api5_payload
from tests.eprescription.conftest import MakeContent

LAN = ("79026BS00123", "demo-national-Lan")


def post(sandbox: NationalRxSandbox, path: str, body: Any, token: str | None = None,
         headers: dict[str, str] | None = None) -> requests.Response:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return requests.post(sandbox.base_url + path, json=body, headers=sent, timeout=5)


def facility_token(sandbox: NationalRxSandbox) -> str:
    response = post(sandbox, FACILITY_LOGIN_PATH,
                    {"ma_lien_thong_co_so_kham_chua_benh": "79026", "password": "sandbox-facility"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    token: str = body["token"]
    return token


def doctor_token(sandbox: NationalRxSandbox) -> str:
    post(sandbox, ADD_DOCTOR_PATH, {"ma_lien_thong_bac_si": LAN[0]}, facility_token(sandbox))
    response = post(sandbox, DOCTOR_LOGIN_PATH, {"ma_lien_thong_bac_si": LAN[0],
                                                 "ma_lien_thong_co_so_kham_chua_benh": "79026", "password": LAN[1]})
    assert response.status_code == 200
    token: str = response.json()["token"]
    return token


def test_login_without_fields_names_each_missing_field(national_sandbox: NationalRxSandbox) -> None:
    response = post(national_sandbox, DOCTOR_LOGIN_PATH, {})

    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {"danh_sach_cac_loi": [
        "Trường ma_lien_thong_bac_si không được bỏ trống.",
        "Trường ma_lien_thong_co_so_kham_chua_benh không được bỏ trống.",
        "Trường password không được bỏ trống."]}


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_bearer_calls_without_a_valid_token_are_401(national_sandbox: NationalRxSandbox, token: str | None) -> None:
    response = post(national_sandbox, ADD_DOCTOR_PATH, {"ma_lien_thong_bac_si": LAN[0]}, token)

    assert response.status_code == 401


def test_a_facility_token_cannot_send_prescriptions_nor_a_doctor_token_add_doctors(
        national_sandbox: NationalRxSandbox, national_make_content: MakeContent) -> None:
    payload = api5_payload(national_make_content(), bytes(64))

    assert post(national_sandbox, SEND_PATH, payload, facility_token(national_sandbox)).status_code == 401
    assert post(national_sandbox, ADD_DOCTOR_PATH, {"ma_lien_thong_bac_si": LAN[0]},
                doctor_token(national_sandbox)).status_code == 401


def test_doctor_token_sends_a_prescription(national_sandbox: NationalRxSandbox,
                                           national_make_content: MakeContent) -> None:
    payload = api5_payload(national_make_content(), bytes(64))

    response = post(national_sandbox, SEND_PATH, payload, doctor_token(national_sandbox))

    assert (response.status_code, response.json()) == (200, {"success": "Gửi đơn thuốc thành công"})


def test_tokens_die_after_seven_days(national_sandbox: NationalRxSandbox) -> None:
    token = facility_token(national_sandbox)
    national_sandbox.advance_clock(7 * 24 * 3600 - 60)
    assert post(national_sandbox, ADD_DOCTOR_PATH, {"ma_lien_thong_bac_si": LAN[0]}, token).status_code == 200

    national_sandbox.advance_clock(120)
    assert post(national_sandbox, ADD_DOCTOR_PATH, {"ma_lien_thong_bac_si": LAN[0]}, token).status_code == 401


def test_lookup_needs_app_headers_and_answers_404_in_vietnamese(national_sandbox: NationalRxSandbox) -> None:
    url = national_sandbox.base_url + LOOKUP_PATH + "79026abcdefg-c"

    assert requests.get(url, timeout=5).status_code == 401
    response = requests.get(url, headers={"app-name": "lienthong", "app-key": "sandbox-app-key"}, timeout=5)
    assert (response.status_code, response.json()) == (404, {"danh_sach_cac_loi": ["Không tìm thấy đơn thuốc"]})


def test_body_that_is_not_a_json_object_is_422(national_sandbox: NationalRxSandbox) -> None:
    response = requests.post(national_sandbox.base_url + REPORT_SOLD_PATH, data=b"[1, 2",
                             headers={"app-name": "lienthong", "app-key": "sandbox-app-key"}, timeout=5)

    assert response.status_code == 422
    assert response.json() == {"danh_sach_cac_loi": ["Dữ liệu gửi lên phải là một đối tượng JSON."]}


def test_unknown_path_is_404(national_sandbox: NationalRxSandbox) -> None:
    assert post(national_sandbox, "/api/v1/huy-don-thuoc", {}).status_code == 404  # API-R5: no cancel endpoint
