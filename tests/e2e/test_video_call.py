"""The doctor's video call in the console (issue 9): Chromium with its fake camera is the doctor, an aiortc peer in
this process is the patient's app. The patient signs in by SMS, books the free demo doctor, checks in and joins;
the doctor signs in with password and TOTP and opens the call page. Everything goes through the real API and the
real signaling WebSocket of a uvicorn process."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aioice.ice
import asyncpg
import av
import httpx
import pyotp
import pytest
from playwright.async_api import Browser, Page, expect

from notifications.sms_sandbox import SmsSandbox
from tests.e2e.conftest import new_page, screenshot
from tests.e2e.patient_app import REMOTE_VIDEO, PatientApp, remote_video_plays, sign_in_patient
from tests.helpers import demo_password, demo_totp_secret

pytestmark = pytest.mark.usefixtures("demo", "loopback")
PATIENT_PHONE = "+84912345678"
# Booking needs 30 minutes' notice and the demo doctor's next slot may be hours away (the test may run at night in
# Vietnam): the call opens a day ahead here instead of 15 minutes.
JOIN_OPENS_BEFORE_MIN = "1440"
# Records the page's sockets (so a test can cut one, as a network drop would) and peer connections.
TRACK_CONNECTIONS = """
  window.__sockets = [];
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
  window.__pcs = [];
  const NativePC = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends NativePC {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  };
"""
@pytest.fixture
def live_server_env() -> dict[str, str]:
    """The call's join window opened early (see above)."""
    return {"LIENTHONG_JOIN_OPEN_BEFORE_MIN": JOIN_OPENS_BEFORE_MIN}


async def _book_checked_in(http: httpx.AsyncClient, patient_token: str) -> str:
    """The patient books the first free slot of the free demo doctor bs.minh and checks in."""
    auth = {"Authorization": f"Bearer {patient_token}"}
    doctors = (await http.get("/doctors", params={"q": "Minh"})).json()["items"]
    doctor = next(d for d in doctors if d["full_name"] == "Trần Quang Minh")
    slots = (await http.get(f"/doctors/{doctor['id']}/slots", params={"days": 2})).json()
    booked = await http.post("/consultations", headers=auth, json={
        "doctor_id": doctor["id"], "starts_at": slots[0]["starts_at"], "reason": "Ho và sốt nhẹ hai ngày"})
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "booked"  # bs.minh consults for free: nothing to pay
    consultation_id: str = booked.json()["id"]
    checked_in = await http.post(f"/consultations/{consultation_id}/check-in", headers=auth)
    assert checked_in.json()["status"] == "waiting", checked_in.text
    return consultation_id


async def _sign_in_doctor(http: httpx.AsyncClient, username: str) -> dict[str, Any]:
    """The console's session for ``username``, in the shape it keeps in sessionStorage."""
    response = await http.post("/auth/login", json={
        "username": username, "password": demo_password(username),
        "totp_code": pyotp.TOTP(demo_totp_secret(username)).now()})
    assert response.status_code == 200, response.text
    signed_in = response.json()
    me = await http.get("/me", headers={"Authorization": f"Bearer {signed_in['access_token']}"})
    assert me.status_code == 200, me.text
    expires_at = datetime.now(UTC) + timedelta(seconds=signed_in["expires_in"])
    return {"accessToken": signed_in["access_token"], "refreshToken": signed_in["refresh_token"],
            "expiresAt": expires_at.isoformat(),
            "account": {"id": me.json()["account_id"], "full_name": me.json()["full_name"], "role": "doctor"}}


async def _open_call(page: Page, session: dict[str, Any], consultation_id: str) -> None:
    # as the console's sign-in would have left it
    await page.context.add_init_script(
        f"sessionStorage.setItem('lienthong.session.doctor', {json.dumps(json.dumps(session))});" + TRACK_CONNECTIONS)
    await page.goto(f"/console/doctor/call.html?consultation={consultation_id}")


@pytest.fixture
async def http(console_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=console_url, timeout=15) as client:
        yield client


async def test_doctor_and_patient_see_each_other_and_the_controls_work(
        page: Page, http: httpx.AsyncClient, sms: SmsSandbox, pool: asyncpg.Pool, frames: list[av.VideoFrame]) -> None:
    patient_token = await sign_in_patient(http, sms, PATIENT_PHONE)
    consultation_id = await _book_checked_in(http, patient_token)
    doctor = await _sign_in_doctor(http, "bs.minh")
    patient = PatientApp(http, patient_token, consultation_id, frames)
    try:
        assert (await patient.join())["peers"] == []  # in the waiting room first
        await _open_call(page, doctor, consultation_id)
        await expect(page.get_by_role("heading", name="Khám từ xa với Nguyễn Thị Mai")).to_be_visible()

        # the page started the consultation, joined later and offered; both sides get video
        await remote_video_plays(page)
        await patient.receive_video(30)
        assert patient.video_sizes and all(w > 0 and h > 0 for w, h in patient.video_sizes)  # the fake camera
        await expect(page.locator("#call-status")).to_have_text("Đã kết nối với bệnh nhân.")
        assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "in_call"
        on_join = await patient.expect("media-state")  # the page tells the patient its devices at every join
        assert (on_join["from"], on_join["audio"], on_join["video"]) == ("doctor", True, True)

        # mute the microphone and the camera: the tracks stop, the buttons say so, the patient is told
        mic, camera = page.get_by_role("button", name="Tắt micro"), page.get_by_role("button", name="Tắt camera")
        await mic.focus()
        await page.keyboard.press("Enter")
        await expect(mic).to_have_attribute("aria-pressed", "true")
        assert await page.evaluate("document.getElementById('local-video').srcObject.getAudioTracks()[0].enabled") \
            is False
        state = await patient.expect("media-state")
        assert (state["from"], state["audio"], state["video"]) == ("doctor", False, True)
        await camera.click()
        await expect(camera).to_have_attribute("aria-pressed", "true")
        assert await page.evaluate("document.getElementById('local-video').srcObject.getVideoTracks()[0].enabled") \
            is False
        assert (await patient.expect("media-state"))["video"] is False
        await expect(page.locator("#self-media")).to_have_text("Micro của bạn đang tắt · Camera của bạn đang tắt")
        await mic.click()
        await camera.click()
        await expect(mic).to_have_attribute("aria-pressed", "false")
        assert await page.evaluate("document.getElementById('local-video').srcObject.getTracks()"
                                   ".every((track) => track.enabled)") is True

        # chat both ways over the signaling socket, kept by the server
        await page.get_by_label("Tin nhắn gửi bệnh nhân").fill("Chị mở camera gần chỗ đau giúp tôi.")
        await page.get_by_label("Tin nhắn gửi bệnh nhân").press("Enter")
        chat = await patient.expect("chat")
        assert (chat["from"], chat["text"]) == ("doctor", "Chị mở camera gần chỗ đau giúp tôi.")
        await patient.send({"type": "chat", "text": "Dạ, em đưa gần hơn rồi ạ."})
        await expect(page.locator("#chat-log li.from-patient")).to_contain_text("Dạ, em đưa gần hơn rồi ạ.")
        await expect(page.locator("#chat-log li.from-patient")).to_contain_text("Bệnh nhân")
        await expect(page.locator("#chat-log li")).to_have_count(2)

        # the quality indicator reads getStats and the samples reach the API
        async with page.expect_response(lambda r: r.url.endswith("/quality") and r.request.method == "POST") as sent:
            await expect(page.locator("#quality-level")).to_have_text(re.compile("^(Tốt|Trung bình|Kém)$"))
        assert (await sent.value).status == 204
        await expect(page.locator("#quality-detail")).to_contain_text(" ms")
        stored = await pool.fetchrow("SELECT role, rtt_ms, in_kbps FROM call_quality_samples "
                                     "WHERE consultation_id = $1", consultation_id)
        assert stored is not None and stored["role"] == "doctor" and stored["in_kbps"] > 0
        await screenshot(page, "doctor-call")


        # ending the consultation tells the patient and leads to the notes
        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Kết thúc khám").click()
        await page.wait_for_url(re.compile(rf"/console/doctor/#/consultations/{consultation_id}$"),
                                wait_until="commit")
        assert (await patient.expect("ended"))["by"] == "doctor"
        assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "completed"
    finally:
        await patient.close()


async def test_the_page_rejoins_after_its_socket_drops_and_after_a_reload(
        page: Page, http: httpx.AsyncClient, sms: SmsSandbox, pool: asyncpg.Pool, frames: list[av.VideoFrame]) -> None:
    patient_token = await sign_in_patient(http, sms, PATIENT_PHONE)
    consultation_id = await _book_checked_in(http, patient_token)
    doctor = await _sign_in_doctor(http, "bs.minh")
    patient = PatientApp(http, patient_token, consultation_id, frames)
    try:
        # the doctor waits first; the patient joins later and offers (the browser answers)
        await _open_call(page, doctor, consultation_id)
        await expect(page.locator("#call-status")).to_have_text("Đang chờ bệnh nhân vào phòng…")
        assert (await patient.join())["peers"] == ["doctor"]
        await remote_video_plays(page)
        await patient.receive_video(10)

        # the signaling socket drops: the page joins again with a new token and the call goes on
        await page.evaluate("window.__sockets.at(-1).close()")
        assert (await patient.expect("peer-left"))["reason"] == "disconnected"
        assert (await patient.expect("peer-joined"))["reconnected"] is True
        await page.wait_for_function("() => window.__sockets.length === 2 && window.__sockets[1].readyState === 1")
        await expect(page.locator("#call-status")).to_have_text("Đã kết nối với bệnh nhân.")
        await remote_video_plays(page)
        await patient.receive_video(10)
        await page.get_by_label("Tin nhắn gửi bệnh nhân").fill("Tôi vẫn nghe rõ.")
        await page.get_by_role("button", name="Gửi").click()
        assert (await patient.expect("chat"))["text"] == "Tôi vẫn nghe rõ."
        joins = await pool.fetchval(
            """SELECT count(*) FROM consultation_events WHERE consultation_id = $1 AND kind = 'call.joined'
                 AND details->>'role' = 'doctor'""", consultation_id)
        assert joins == 2
        # media never stopped: the same peer connections carry on
        assert patient.connections == 1 and await page.evaluate("window.__pcs.length") == 1

        # the media path dies while signaling stays up: the page restarts ICE, which aiortc answers with a new
        # connection of its own, and video comes back
        assert patient.pc is not None
        await patient.pc.close()
        # (Chromium notices after its consent checks go unanswered for several seconds)
        await expect(page.locator("#call-status")).to_have_text("Đường truyền video bị gián đoạn, đang khôi phục…",
                                                                timeout=20_000)
        await patient.receive_video(10, within_s=30)
        await remote_video_plays(page)
        assert patient.connections == 2

        # a reload loses the browser's peer connection: the page offers from a new one and video comes back
        await page.reload()
        await remote_video_plays(page)
        await patient.receive_video(10)
        assert patient.connections == 3
        await expect(page.locator("#chat-log li")).to_have_count(1)  # the history came with the join
    finally:
        await patient.close()


async def test_a_consultation_of_another_doctor_shows_the_api_error(
        page: Page, http: httpx.AsyncClient, sms: SmsSandbox) -> None:
    patient_token = await sign_in_patient(http, sms, PATIENT_PHONE)
    consultation_id = await _book_checked_in(http, patient_token)  # bs.minh's
    other_doctor = await _sign_in_doctor(http, "bs.lan")
    await _open_call(page, other_doctor, consultation_id)
    await expect(page.get_by_role("alert")).to_contain_text("Consultation not found")
    await expect(page.get_by_role("alert")).to_contain_text("not part of it")
    assert await page.evaluate("window.__sockets.length") == 0
    assert await page.locator("#call-layout").is_hidden()


async def test_without_a_session_the_page_sends_the_doctor_to_sign_in(page: Page) -> None:
    await page.goto("/console/doctor/call.html?consultation=00000000-0000-4000-8000-000000000000")
    await page.wait_for_url(re.compile(r"/console/doctor/$"), wait_until="commit")


async def test_a_refused_camera_is_explained_and_can_be_retried_in_english(
        browser: Browser, console_url: str, http: httpx.AsyncClient, sms: SmsSandbox, pool: asyncpg.Pool) -> None:
    patient_token = await sign_in_patient(http, sms, PATIENT_PHONE)
    consultation_id = await _book_checked_in(http, patient_token)
    doctor = await _sign_in_doctor(http, "bs.minh")
    page = await new_page(browser, console_url, language="en")
    try:
        # the first request is refused as a browser does when the user says no; the retry is allowed
        await page.context.add_init_script("""
          const realGetUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
          let refusals = 1;
          navigator.mediaDevices.getUserMedia = (constraints) => refusals-- > 0
            ? Promise.reject(new DOMException("Permission denied", "NotAllowedError"))
            : realGetUserMedia(constraints);
        """)
        await _open_call(page, doctor, consultation_id)
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("The browser may not use the camera and microphone")
        retry = page.get_by_role("button", name="Try again")
        await expect(retry).to_be_focused()
        assert await page.evaluate("window.__sockets.length") == 0  # nobody joins without a camera decision
        await page.keyboard.press("Enter")
        await expect(page.locator("#call-status")).to_have_text("Waiting for the patient to join…")
        await expect(page.get_by_role("button", name="Mute microphone")).to_have_attribute("aria-pressed", "false")

        # leaving keeps the consultation open (the doctor may come back) and leads to the notes
        await page.get_by_role("button", name="Leave call, write notes").click()
        await page.wait_for_url(re.compile(rf"/console/doctor/#/consultations/{consultation_id}$"),
                                wait_until="commit")
        # the page moves on once its "leave" is sent; the server records it a moment later
        kinds: list[str] = []
        for _ in range(50):
            events = await pool.fetch("SELECT kind FROM consultation_events WHERE consultation_id = $1 ORDER BY id",
                                      consultation_id)
            kinds = [e["kind"] for e in events]
            if "call.left" in kinds:
                break
            await asyncio.sleep(0.1)
        assert kinds[-3:] == ["call_started", "call.joined", "call.left"]
        assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "in_call"
    finally:
        await page.context.close()


async def test_a_call_without_a_media_path_says_so_and_recovers_when_one_appears(
        page: Page, http: httpx.AsyncClient, sms: SmsSandbox, frames: list[av.VideoFrame],
        monkeypatch: pytest.MonkeyPatch) -> None:
    patient_token = await sign_in_patient(http, sms, PATIENT_PHONE)
    consultation_id = await _book_checked_in(http, patient_token)
    doctor = await _sign_in_doctor(http, "bs.minh")
    patient = PatientApp(http, patient_token, consultation_id, frames)
    # the patient's app has no address the browser can reach, as behind a firewall with no TURN server
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: [])
    try:
        await patient.join()
        await _open_call(page, doctor, consultation_id)
        unreachable = page.get_by_role("alert").filter(has_text="Không kết nối được video với bệnh nhân")
        await expect(unreachable).to_be_visible(timeout=30_000)
        assert await page.evaluate(f"{REMOTE_VIDEO}.videoWidth") == 0

        # a path appears (the app moved to another network and started over): the message goes, video comes
        monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"])
        await patient.offer_anew()
        await remote_video_plays(page)
        await expect(unreachable).to_have_count(0)
        await expect(page.locator("#call-status")).to_have_text("Đã kết nối với bệnh nhân.")
    finally:
        await patient.close()
