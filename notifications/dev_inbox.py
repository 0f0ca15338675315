"""The developer inbox: one page showing what the local SMS and FCM sandboxes received, so a demo user sees the
reminders, confirmations and OTPs the platform sent.

Mounted only in demo mode while the sandboxes are in use (``api.app``). It shows every OTP to whoever can reach
the API, exactly like the sandboxes' own ``/inbox`` endpoints do: a demo instance listens on loopback and must never
be exposed.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

import httpx
from litestar import MediaType, Response, get
from litestar.params import QueryParameter

from api.deps import AppSettings

_TIMEOUT_S = 2.0


async def _fetch(url: str) -> tuple[list[dict[str, Any]], str | None]:
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
            response = await client.get(url, params={"limit": 100})
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages, None
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return [], f"{url} did not answer ({type(exc).__name__})"


def _table(title: str, columns: list[tuple[str, str]], rows: list[dict[str, Any]], error: str | None) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(key, '')))}</td>" for key, _ in columns) + "</tr>"
        for row in rows) or f'<tr><td colspan="{len(columns)}">Nothing received yet.</td></tr>'
    note = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return f"<h2>{html.escape(title)}</h2>{note}<table><tr>{head}</tr>{body}</table>"


@get("/dev/inbox", opt={"public": True}, include_in_schema=False)
async def dev_inbox(settings: AppSettings, format: Annotated[str | None, QueryParameter()] = None) -> Response[Any]:
    """Demo only: the sandboxes' received messages, newest first (``?format=json`` for a machine-readable copy)."""
    # only the sandboxes are asked: a real gateway has no inbox, and its messages went to real phones
    sms, sms_error = (await _fetch(f"http://127.0.0.1:{settings.sms_sandbox_port}/inbox")
                      if settings.uses_sms_sandbox else ([], None))
    push, push_error = (await _fetch(f"http://127.0.0.1:{settings.fcm_sandbox_port}/inbox")
                        if settings.uses_fcm_sandbox else ([], None))
    if format == "json":
        return Response({"sms": sms, "push": push, "errors": [e for e in (sms_error, push_error) if e]})
    page = (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>Lienthong – hộp thư thử nghiệm</title>'
        "<style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #ccc;padding:.3rem;text-align:left;vertical-align:top}.error{color:#b00}</style>"
        "</head><body><h1>Hộp thư thử nghiệm (demo inbox)</h1>"
        "<p>Messages the local sandboxes received. Nothing here reached a real phone.</p>"
        + _table("SMS", [("received_at", "Received (UTC)"), ("phone", "Phone"), ("content", "Text")], sms, sms_error)
        + _table("Push (FCM)", [("received_at", "Received (UTC)"), ("target", "Device"), ("title", "Title"),
                                ("body", "Body")], push, push_error)
        + "</body></html>")
    return Response(page, media_type=MediaType.HTML)
