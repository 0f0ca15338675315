"""The QĐ 808 client against the national sandbox over HTTP: every API, its errors, and how tokens are kept."""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import msgspec
import pytest
import requests

from eprescription.national import (
    DOCTOR_LOGIN_PATH,
    NationalClient,
    NationalNotFound,
    NationalRejected,
    NationalUnavailable,
    SoldLine,
    SoldReport,
)
from eprescription.national_sandbox import (
    BAD_LOGIN,
    DOCTOR_NOT_ADDED,
    DUPLICATE_CODE,
    NOT_FOUND,
    FaultMode,
    NationalRxSandbox,
)
from eprescription.national_sync import api5_payload
from tests.eprescription.conftest import MakeContent

LAN = ("79026BS00123", "demo-national-Lan")
MINH = ("79026BS00456", "demo-national-Minh")
SIGNATURE = bytes(range(64))
WEEK_S = 7 * 24 * 3600


def client_like(client: NationalClient, **changes: object) -> NationalClient:
    return NationalClient(dataclasses.replace(client.config, **changes))  # type: ignore[arg-type]


def sold_report(code: str, prescribed_code: str = "VD-12345-10", **changes: object) -> SoldReport:
    report = SoldReport(
        ma_don_thuoc=code,
        thong_tin_thuoc=[SoldLine(ma_thuoc_da_ke_don=prescribed_code, ma_thuoc=prescribed_code,
                                  biet_duoc="Paracetamol", ten_thuoc="Panadol 500 mg", don_vi_tinh="viên", so_luong=15,
                                  so_luong_ban=10, cach_dung="Uống: mỗi lần 01 viên, ngày 03 lần")],
        ma_dinh_danh_co_so_cung_ung_thuoc="GPP-79-0001", ten_co_so_cung_ung_thuoc="Nhà thuốc Liên Thông (demo)",
        so_dien_thoai_co_so_cung_ung_thuoc="02838000000", dia_chi_co_so_cung_ung_thuoc="220 Hồng Bàng, Quận 5",
        ma_hoa_don="HD000123")
    return msgspec.structs.replace(report, **changes)


# ------------------------------------------------------------------------------------------- API-1..API-4

def test_facility_token_is_obtained_once_and_reused(national_client: NationalClient,
                                                    national_sandbox: NationalRxSandbox) -> None:
    assert national_client.add_doctor(LAN[0]) == "Bạn đã thêm bác sĩ thành công"
    assert national_client.add_doctor(MINH[0]) == "Bạn đã thêm bác sĩ thành công"

    assert national_sandbox.calls("API-1") == 1
    assert national_sandbox.facility_doctors("79026") == {LAN[0], MINH[0]}


def test_wrong_facility_password_is_rejected_with_the_system_messages(national_client: NationalClient) -> None:
    client = client_like(national_client, facility_password="wrong")
    with pytest.raises(NationalRejected) as caught:
        client.facility_token()
    assert (caught.value.api, caught.value.messages) == ("API-1", [BAD_LOGIN])


def test_removed_doctor_is_gone_and_removing_again_is_422(national_client: NationalClient,
                                                          national_sandbox: NationalRxSandbox) -> None:
    national_client.add_doctor(LAN[0])
    assert national_client.remove_doctor(LAN[0]) == "Bạn đã xóa bác sĩ thành công"
    assert national_sandbox.facility_doctors("79026") == set()

    with pytest.raises(NationalRejected) as caught:
        national_client.remove_doctor(LAN[0])
    assert caught.value.messages == [DOCTOR_NOT_ADDED]


def test_adding_an_unknown_doctor_is_422(national_client: NationalClient) -> None:
    with pytest.raises(NationalRejected) as caught:
        national_client.add_doctor("NOBODY")
    assert caught.value.messages == ["Mã liên thông bác sĩ không tồn tại."]


def test_doctor_login_is_refused_until_the_facility_adds_the_doctor(national_sandbox: NationalRxSandbox) -> None:
    response = requests.post(national_sandbox.base_url + DOCTOR_LOGIN_PATH, timeout=5, json={
        "ma_lien_thong_bac_si": LAN[0], "ma_lien_thong_co_so_kham_chua_benh": "79026", "password": LAN[1]})

    assert response.status_code == 422
    assert response.json() == {"danh_sach_cac_loi": [DOCTOR_NOT_ADDED]}


def test_client_adds_a_doctor_not_yet_in_the_facility_then_logs_in(national_client: NationalClient,
                                                                   national_sandbox: NationalRxSandbox) -> None:
    token = national_client.doctor_token(*LAN)

    assert token
    assert national_sandbox.facility_doctors("79026") == {LAN[0]}
    assert (national_sandbox.calls("API-4"), national_sandbox.calls("API-2")) == (2, 1)
    assert national_client.doctor_token(*LAN) == token
    assert national_sandbox.calls("API-4") == 2


def test_wrong_doctor_password_is_rejected(national_client: NationalClient) -> None:
    national_client.add_doctor(LAN[0])
    with pytest.raises(NationalRejected) as caught:
        national_client.doctor_token(LAN[0], "wrong")
    assert (caught.value.api, caught.value.messages) == ("API-4", [BAD_LOGIN])


# ------------------------------------------------------------------------------------------- API-5..API-7

def test_sent_prescription_is_held_as_sent(national_client: NationalClient, national_sandbox: NationalRxSandbox,
                                           national_make_content: MakeContent) -> None:
    payload = api5_payload(national_make_content(), SIGNATURE)

    assert national_client.send_prescription(*LAN, payload) == "Gửi đơn thuốc thành công"

    [held] = national_sandbox.prescriptions()
    assert (held.code, held.body, held.doctor_code, held.facility_code) == (
        payload["ma_don_thuoc"], payload, LAN[0], "79026")


def test_second_send_of_an_accepted_code_is_422(national_client: NationalClient, national_sandbox: NationalRxSandbox,
                                                national_make_content: MakeContent) -> None:
    payload = api5_payload(national_make_content(), SIGNATURE)
    national_client.send_prescription(*LAN, payload)

    with pytest.raises(NationalRejected) as caught:
        national_client.send_prescription(*LAN, payload)

    assert (caught.value.api, caught.value.messages) == ("API-5", [DUPLICATE_CODE])
    assert len(national_sandbox.prescriptions()) == 1


def test_lookup_returns_what_was_sent(national_client: NationalClient, national_make_content: MakeContent) -> None:
    payload = api5_payload(national_make_content(child=True), SIGNATURE)
    national_client.send_prescription(*LAN, payload)

    held = national_client.lookup(payload["ma_don_thuoc"].upper())

    assert (held.ma_don_thuoc, held.ho_ten_benh_nhan, held.gioi_tinh, held.can_nang) == (
        payload["ma_don_thuoc"], "Trần Gia Bảo", 2, 11.5)
    assert [line.ma_thuoc for line in held.thong_tin_don_thuoc] == [
        line["ma_thuoc"] for line in payload["thong_tin_don_thuoc"]]
    assert held.chan_doan[0].ma_chan_doan == "J00"
    assert held.ten_bac_si and held.ten_co_so_kham_chua_benh


def test_lookup_of_an_unknown_code_is_not_found(national_client: NationalClient) -> None:
    with pytest.raises(NationalNotFound) as caught:
        national_client.lookup("79026zzzzzzz-c")
    assert caught.value.messages == [NOT_FOUND]


def test_lookup_with_a_wrong_app_key_is_refused(national_client: NationalClient) -> None:
    with pytest.raises(NationalRejected) as caught:
        client_like(national_client, app_key="wrong").lookup("79026zzzzzzz-c")
    assert caught.value.api == "API-6"


def test_sold_report_is_accepted_for_a_prescription_the_system_holds(
        national_client: NationalClient, national_sandbox: NationalRxSandbox,
        national_make_content: MakeContent) -> None:
    payload = api5_payload(national_make_content(), SIGNATURE)
    national_client.send_prescription(*LAN, payload)

    message = national_client.report_sold(sold_report(payload["ma_don_thuoc"]))

    assert message == "Cập nhật đơn thuốc đã bán thành công"
    [report] = national_sandbox.sold_reports()
    assert (report.code, report.app_name, report.body["thong_tin_thuoc"][0]["so_luong_ban"]) == (
        payload["ma_don_thuoc"], "lienthong", 10)


def test_sold_report_for_an_unknown_code_is_not_found(national_client: NationalClient) -> None:
    with pytest.raises(NationalNotFound):
        national_client.report_sold(sold_report("79026zzzzzzz-c"))


@pytest.mark.parametrize(("changes", "message"), [
    ({"ma_hoa_don": ""}, "Trường ma_hoa_don không được bỏ trống."),
    ({"so_dien_thoai_co_so_cung_ung_thuoc": "0283800000012"},
     "Trường so_dien_thoai_co_so_cung_ung_thuoc không được dài quá 12 chữ số."),
    ({"thong_tin_thuoc": []}, "Trường thong_tin_thuoc không được bỏ trống."),
])
def test_invalid_sold_report_is_422_naming_the_field(national_client: NationalClient, changes: dict[str, object],
                                                     message: str) -> None:
    with pytest.raises(NationalRejected) as caught:
        national_client.report_sold(sold_report("79026zzzzzzz-c", **changes))
    assert message in caught.value.messages


def test_sold_line_for_a_drug_not_on_the_prescription_is_422(national_client: NationalClient,
                                                             national_make_content: MakeContent) -> None:
    payload = api5_payload(national_make_content(), SIGNATURE)
    national_client.send_prescription(*LAN, payload)

    with pytest.raises(NationalRejected) as caught:
        national_client.report_sold(sold_report(payload["ma_don_thuoc"], prescribed_code="VD-99999-99"))
    assert caught.value.messages == ["Thuốc thong_tin_thuoc.0.ma_thuoc_da_ke_don không có trong đơn thuốc."]


# ------------------------------------------------------------------------------------------- tokens

def test_token_is_renewed_before_its_seven_days_are_up(national_sandbox: NationalRxSandbox,
                                                       national_client: NationalClient) -> None:
    now = [1000.0]
    client = NationalClient(national_client.config, clock=lambda: now[0])
    first = client.facility_token()

    now[0] += 6 * 24 * 3600 - 1
    assert client.facility_token() == first
    now[0] += 2
    renewed = client.facility_token()

    assert renewed != first
    assert national_sandbox.calls("API-1") == 2


def test_token_refused_by_the_system_is_renewed_once_and_the_call_goes_through(
        national_sandbox: NationalRxSandbox, national_client: NationalClient) -> None:
    national_client.add_doctor(LAN[0])
    national_sandbox.advance_clock(WEEK_S + 1)  # the system thinks a week has passed; our clock does not

    national_client.add_doctor(MINH[0])

    assert national_sandbox.calls("API-1") == 2
    assert national_sandbox.calls("API-2") == 3  # LAN, MINH refused with 401, MINH again


def test_concurrent_callers_share_one_login(national_sandbox: NationalRxSandbox,
                                            national_client: NationalClient) -> None:
    national_sandbox.fail_next(1, "timeout", api="API-1", delay_s=0.3)  # a slow login, so callers pile up
    start = threading.Barrier(8)

    def token() -> str:
        start.wait()
        return national_client.facility_token()

    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(lambda _: token(), range(8)))

    assert len(set(tokens)) == 1
    assert national_sandbox.calls("API-1") == 1


def test_concurrent_sends_of_one_doctor_log_the_doctor_in_once(
        national_sandbox: NationalRxSandbox, national_client: NationalClient,
        national_make_content: MakeContent) -> None:
    payloads = [api5_payload(national_make_content(), SIGNATURE) for _ in range(8)]
    national_sandbox.fail_next(1, "timeout", api="API-4", delay_s=0.3)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: national_client.send_prescription(*LAN, p), payloads))

    assert national_sandbox.calls("API-5") == 8
    assert national_sandbox.calls("API-4") == 2  # refused (not added), then after API-2
    assert national_sandbox.calls("API-2") == 1
    assert len(national_sandbox.prescriptions()) == 8


# ------------------------------------------------------------------------------------------- transient failures

@pytest.mark.parametrize("mode", ["http500", "http429", "drop", "timeout"])
def test_transient_failures_are_unavailable(national_sandbox: NationalRxSandbox, national_client: NationalClient,
                                            national_make_content: MakeContent, mode: FaultMode) -> None:
    payload = api5_payload(national_make_content(), SIGNATURE)
    national_client.doctor_token(*LAN)
    national_sandbox.fail_next(1, mode, api="API-5", delay_s=1.5)

    with pytest.raises(NationalUnavailable) as caught:
        national_client.send_prescription(*LAN, payload)

    assert caught.value.api == "API-5"
    national_sandbox.stop()  # waits for a stalled request to finish
    # a stalled request is handled after the client gave up; the others never were
    assert len(national_sandbox.prescriptions()) == (1 if mode == "timeout" else 0)


def test_unreachable_system_is_unavailable(national_client: NationalClient,
                                           national_sandbox: NationalRxSandbox) -> None:
    national_sandbox.stop()
    with pytest.raises(NationalUnavailable):
        national_client.facility_token()


def test_logs_never_carry_passwords_or_tokens(national_client: NationalClient, national_make_content: MakeContent,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    payload = api5_payload(national_make_content(), SIGNATURE)
    national_client.send_prescription(*LAN, payload)
    token = national_client.doctor_token(*LAN)

    assert payload["ma_don_thuoc"] in caplog.text
    for secret in (LAN[1], "sandbox-facility", token, national_client.facility_token(), "Lê Văn Hùng"):
        assert secret not in caplog.text
