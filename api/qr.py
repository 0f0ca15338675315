"""QR codes the API returns as SVG text (TOTP enrolment, VNPay at the counter): a standalone document, with its
namespace so it also works as an ``<img>`` data URL, and without an XML declaration so it can be inlined in HTML."""

from __future__ import annotations

import io

import segno


def svg(text: str, *, scale: int = 4) -> str:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=scale, xmldecl=False, svgns=True, nl=False)
    return out.getvalue().decode()
