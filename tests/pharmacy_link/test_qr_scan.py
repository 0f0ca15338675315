"""Reading a prescription QR from the grey pixels the pharmacy page sends (camera frame or uploaded photo)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import segno

from api.settings import Settings
from tests.eprescription.prescribing import patient_headers, staff_headers
from tests.helpers import Client

pytestmark = pytest.mark.usefixtures("demo")

PAYLOAD = "LT1.79026a1b2c3d-c.AAECAwQFBgcICQoLDA0ODw.c2lnbmF0dXJl"


def grey_frame(width: int, height: int, codes: dict[tuple[int, int], str], *, scale: int = 4) -> bytearray:
    """A white ``width``×``height`` picture with a QR of each text drawn at its (x, y), one byte a pixel."""
    pixels = bytearray(b"\xff" * (width * height))
    for (left, top), text in codes.items():
        for y, row in enumerate(segno.make(text, error="m").matrix):
            for x, dark in enumerate(row):
                if dark:
                    for dy in range(scale):
                        start = (top + y * scale + dy) * width + left + x * scale
                        pixels[start:start + scale] = b"\x00" * scale
    return pixels


def body(width: int, height: int, pixels: bytes | bytearray) -> dict[str, Any]:
    return {"width": width, "height": height, "luminance": base64.b64encode(pixels).decode()}


async def test_pharmacist_gets_the_text_of_the_qr_in_the_picture(client: Client, pool: Any,
                                                                 settings: Settings) -> None:
    hoa = await staff_headers(pool, settings, "ds.hoa")
    frame = grey_frame(400, 300, {(120, 60): PAYLOAD})
    read = await client.post("/dispensing/qr-scan", headers=hoa, json=body(400, 300, frame))
    assert read.status_code == 200, read.text
    assert read.json() == {"text": PAYLOAD}


async def test_a_prescription_qr_wins_over_another_qr_in_the_same_picture(client: Client, pool: Any,
                                                                          settings: Settings) -> None:
    hoa = await staff_headers(pool, settings, "ds.hoa")
    frame = grey_frame(900, 400, {(20, 40): "https://example.vn/khuyen-mai", (460, 40): PAYLOAD})
    read = await client.post("/dispensing/qr-scan", headers=hoa, json=body(900, 400, frame))
    assert read.status_code == 200, read.text
    assert read.json()["text"] == PAYLOAD


async def test_the_largest_frame_is_accepted_above_the_usual_body_limit(client: Client, pool: Any,
                                                                        settings: Settings) -> None:
    hoa = await staff_headers(pool, settings, "ds.hoa")
    frame = grey_frame(1920, 1920, {(1400, 1500): PAYLOAD})
    request = body(1920, 1920, frame)
    assert len(request["luminance"]) > settings.max_body_bytes
    read = await client.post("/dispensing/qr-scan", headers=hoa, json=request)
    assert read.status_code == 200, read.text
    assert read.json()["text"] == PAYLOAD


async def test_a_picture_without_a_qr_is_422_qr_not_found(client: Client, pool: Any, settings: Settings) -> None:
    hoa = await staff_headers(pool, settings, "ds.hoa")
    blank = await client.post("/dispensing/qr-scan", headers=hoa, json=body(320, 240, b"\x80" * (320 * 240)))
    assert blank.status_code == 422
    assert blank.json()["type"] == "/problems/qr-not-found"
    assert blank.json()["title"] == "No QR code found"


@pytest.mark.parametrize(("request_body", "path"), [
    (body(1921, 100, b"\xff" * 192_100), "body.width"),
    (body(100, 0, b""), "body.height"),
    (body(20, 100, b"\xff" * 2000), "body.width"),
    ({"width": 100, "height": 100, "luminance": "not base64!"}, "body.luminance"),
    (body(100, 100, b"\xff" * 9_999), "body.luminance"),
    (body(100, 100, b"\xff" * 10_001), "body.luminance"),
    ({"width": 100, "height": 100}, "body.luminance"),
    ({**body(100, 100, b"\xff" * 10_000), "format": "png"}, "body.format"),
])
async def test_bad_frames_are_422_naming_the_field(client: Client, pool: Any, settings: Settings,
                                                   request_body: dict[str, Any], path: str) -> None:
    hoa = await staff_headers(pool, settings, "ds.hoa")
    refused = await client.post("/dispensing/qr-scan", headers=hoa, json=request_body)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"] == "/problems/validation-error"
    assert [e["path"] for e in problem["errors"]] == [path]


async def test_only_pharmacists_may_scan(client: Client, pool: Any, settings: Settings) -> None:
    frame = body(400, 300, grey_frame(400, 300, {(120, 60): PAYLOAD}))
    assert (await client.post("/dispensing/qr-scan", json=frame)).status_code == 401
    for headers in (await patient_headers(pool, settings, "+84912345678"),
                    await staff_headers(pool, settings, "bs.lan"), await staff_headers(pool, settings, "admin")):
        refused = await client.post("/dispensing/qr-scan", headers=headers, json=frame)
        assert refused.status_code == 403, refused.text
