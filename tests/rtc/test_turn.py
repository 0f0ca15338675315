"""TURN credentials: the coturn REST scheme of rtc/turn.py, proven against a real coturn on loopback when it is
installed (CI installs it): relay-only peers connect with our credentials and cannot with expired ones."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection

from api.settings import Settings, with_overrides
from load_tests.peers import Peer, pattern_frames
from rtc.turn import ice_servers, participant_id, turn_credentials
from tests.consultations.factories import make_consultation
from tests.rtc.conftest import Server, doctor_token, join_token, patient_token, serve_here

TURN_SECRET = "coturn-test-secret-" + "s" * 16


def test_credentials_follow_the_coturn_rest_scheme() -> None:
    username, password = turn_credentials("north", "p1", 3600, now=1_700_000_000)
    assert username == "1700003600:p1"  # the expiry, then the participant
    # openssl dgst -sha1 -hmac north -binary <<< "1700003600:p1" | base64
    assert password == "4EEMVinF9VQKZF50YH25G6+f6lw="


def test_ice_servers_give_stun_and_fresh_turn_credentials(settings: Settings) -> None:
    configured = with_overrides(settings, stun_urls=("stun:turn.example.vn:3478",),
                                turn_urls=("turn:turn.example.vn:3478?transport=udp",
                                           "turns:turn.example.vn:443?transport=tcp"),
                                turn_secret=TURN_SECRET, turn_ttl_s=7200)
    stun, turn = ice_servers(configured, "abc", now=1_000)
    assert stun.urls == ["stun:turn.example.vn:3478"] and stun.username is None
    assert turn.urls == ["turn:turn.example.vn:3478?transport=udp", "turns:turn.example.vn:443?transport=tcp"]
    assert turn.username == "8200:abc"
    assert (turn.username, turn.credential) == turn_credentials(TURN_SECRET, "abc", 7200, now=1_000)
    assert ice_servers(settings, "abc") == []  # nothing configured: host candidates only


def test_turn_usernames_name_nobody() -> None:
    consultation_id = UUID("6c1f7e2a-0000-4000-8000-0000000000aa")
    settings = Settings(jwt_secret="j" * 40)
    patient, doctor = participant_id(settings, consultation_id, "patient"), participant_id(settings, consultation_id,
                                                                                            "doctor")
    assert patient != doctor
    assert participant_id(settings, consultation_id, "patient") == patient  # stable across reconnects
    assert participant_id(settings, uuid4(), "patient") != patient
    for opaque in (patient, doctor):
        assert str(consultation_id) not in opaque and "patient" not in opaque and len(opaque) == 24


# ---- against a real coturn -----------------------------------------------------------------------------------


def _free_udp_tcp_port() -> int:
    while True:
        with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    """coturn on 127.0.0.1 with the REST-API secret, its pid file and database in the test's temp dir."""
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        pytest.skip("coturn is not installed (apt-get install coturn; .ci/run does it)")
    port = _free_udp_tcp_port()
    relay_base = random.randrange(40_000, 59_000, 100)  # spreads parallel runs over the range
    process = subprocess.Popen(
        [turnserver, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
         "--use-auth-secret", f"--static-auth-secret={TURN_SECRET}", "--realm=lienthong.test",
         "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli", "--fingerprint", "--no-rfc5780",
         f"--min-port={relay_base}", f"--max-port={relay_base + 99}", f"--pidfile={tmp_path / 'turn.pid'}",
         f"--db={tmp_path / 'turndb'}", f"--log-file={tmp_path / 'turn.log'}", "--simple-log", "--no-stdout-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:  # ready once its TCP listener answers
            if process.poll() is not None:
                raise RuntimeError(f"turnserver exited with {process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
async def turn_server(settings: Settings, coturn: int) -> AsyncIterator[Server]:
    configured = with_overrides(settings, turn_urls=(f"turn:127.0.0.1:{coturn}?transport=udp",),
                                turn_secret=TURN_SECRET, turn_ttl_s=600)
    async with serve_here(configured) as running:
        yield running


@pytest.mark.usefixtures("demo", "loopback")
async def test_relay_only_peers_connect_through_coturn_with_minted_credentials(
        turn_server: Server, coturn: int, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    frames = pattern_frames()
    # ice_servers=None: each peer uses exactly what joined handed it
    doctor = Peer(turn_server.ws_url(consultation_id),
                  await join_token(turn_server, await doctor_token(pool, settings), consultation_id), frames,
                  relay_only=True)
    patient = Peer(turn_server.ws_url(consultation_id),
                   await join_token(turn_server, await patient_token(pool, settings), consultation_id), frames,
                   relay_only=True)
    try:
        await doctor.join()
        await patient.join()
        (served,) = patient.joined["ice_servers"]
        assert served["urls"] == [f"turn:127.0.0.1:{coturn}?transport=udp"]
        assert int(served["username"].split(":")[0]) > time.time()
        async with asyncio.timeout(30):
            await asyncio.gather(doctor.media_flowing.wait(), patient.media_flowing.wait())
        for peer in (doctor, patient):
            assert peer.pc is not None
            sdp = peer.pc.localDescription.sdp
            assert "typ relay" in sdp and "typ host" not in sdp  # every packet went through coturn
    finally:
        await patient.close()
        await doctor.close()


async def _relay_candidates(port: int, username: str, password: str) -> int:
    pc = RTCPeerConnection(RTCConfiguration(
        iceServers=[RTCIceServer(urls=f"turn:127.0.0.1:{port}?transport=udp", username=username,
                                 credential=password)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY))
    try:
        pc.createDataChannel("probe")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp.count("typ relay")
    finally:
        await pc.close()


@pytest.mark.usefixtures("loopback")
async def test_coturn_refuses_expired_or_foreign_credentials(coturn: int) -> None:
    assert await _relay_candidates(coturn, *turn_credentials(TURN_SECRET, "p", 300)) == 1
    assert await _relay_candidates(coturn, *turn_credentials(TURN_SECRET, "p", -60)) == 0  # expired a minute ago
    assert await _relay_candidates(coturn, *turn_credentials("another-secret", "p", 300)) == 0
