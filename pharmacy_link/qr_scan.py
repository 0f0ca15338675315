"""Reading a prescription QR out of a picture taken at the counter (a camera frame or a photo the pharmacist
uploads). The page sends 8-bit grey pixels, not an image file, so the server never parses untrusted image formats;
zxing-cpp finds and decodes the QR. Nothing here touches patient data: the text goes on to /dispensing/verify."""

from __future__ import annotations

from typing import Annotated

import msgspec
import zxingcpp

from api.auth.schemas import Strict
from api.errors import DomainError, InvalidInput

MAX_SIDE = 1920
# the largest frame as base64 in JSON, with room for the other fields
MAX_BODY_BYTES = (MAX_SIDE * MAX_SIDE * 4) // 3 + 4096

QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)

Side = Annotated[int, msgspec.Meta(ge=21, le=MAX_SIDE, description="pixels; a QR needs at least 21")]


class QrScanIn(Strict):
    width: Side
    height: Side
    # one byte a pixel (0 black … 255 white), row after row, base64 in JSON
    luminance: Annotated[bytes, msgspec.Meta(min_length=21 * 21, max_length=MAX_SIDE * MAX_SIDE)]


class QrScan(msgspec.Struct):
    text: str  # what the QR says; a prescription's is LT1.<code>.<key id>.<signature>


class QrNotFound(DomainError):
    status, slug, title = 422, "qr-not-found", "No QR code found"


def decode(frame: QrScanIn) -> QrScan:
    """The QR in ``frame``; when it holds several, a Lienthong prescription QR wins. CPU-bound (a few ms to ~50 ms
    for the largest frame): call it off the event loop."""
    expected = frame.width * frame.height
    if len(frame.luminance) != expected:
        raise InvalidInput("body.luminance", f"Expected {expected} bytes ({frame.width}×{frame.height} pixels, one "
                                             f"byte each), got {len(frame.luminance)}.")
    pixels = memoryview(frame.luminance).cast("B", (frame.height, frame.width))
    texts = [found.text for found in zxingcpp.read_barcodes(pixels, formats=QR_ONLY)
             if found.valid and found.text]
    if not texts:
        raise QrNotFound("No readable QR code in the picture: hold the code flat, fill more of the frame with it, "
                         "or type the code instead.")
    return QrScan(text=next((t for t in texts if t.startswith("LT1.")), texts[0]))
