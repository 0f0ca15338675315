"""Push notifications through FCM HTTP v1 with firebase-admin 7.7; the only module that imports the SDK.

``PushSender.send`` turns our ``PushMessage``s into SDK messages, sends them in chunks of at most 500 with
``messaging.send_each_async`` and answers one ``PushOutcome`` per message, in order, classified per spec
notifications.md §3.3 so the dispatcher decides without knowing the SDK. Targets are logged masked.

firebase-admin is pinned (<8) because this module uses three private names: ``messaging._get_messaging_service``,
and the service's ``_async_client`` and ``_fcm_url``:

* ``_async_client`` is replaced by an identical client without inner retries. The SDK's default retries a
  500/503 four times with backoff (~7.5 s per message, spec §3.2) and would stack under the outbox's own retries,
  holding the dispatcher's lease and hiding the 503's Retry-After from it.
* ``_fcm_url`` is set on this sender's service instance (read once from the class constant ``FCM_URL`` in its
  ``__init__``) to point at the local sandbox; nothing global is patched, so senders for Google and for the
  sandbox can live side by side.

SDK behaviours callers should know: the async HTTP client is bound to the event loop that first uses it, so
``send`` and ``close`` must run on one loop; on a 401 (THIRD_PARTY_AUTH_ERROR, or our own token refused) the SDK
refreshes the OAuth token synchronously on the event loop, up to twice per message. The normal hourly token
refresh is done here, off the loop, before each chunk.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import firebase_admin
import google.auth.exceptions
import google.auth.transport.requests
import httpx
import msgspec
from firebase_admin import credentials, exceptions, messaging
from firebase_admin._http_client import HttpxAsyncClient
from firebase_admin._retry import HttpxRetry

from api.settings import Settings
from notifications.fcm_sandbox import demo_service_account

MAX_BATCH = 500  # send_each_async refuses more (spec §3.2)
MAX_TTL_S = 2_419_200  # 28 days, FCM's maximum

log = logging.getLogger(__name__)


class PushMessage(msgspec.Struct, frozen=True):
    target_kind: Literal["token", "fid"]
    target: str
    platform: Literal["android", "ios", "web"]
    title: str
    body: str
    data: dict[str, str]  # deep link etc.; the dispatcher puts notification_id in it
    collapse_key: str  # also Android notification tag and apns-collapse-id: a resend replaces, never stacks
    ttl_s: int  # 0..2_419_200
    priority: Literal["high", "normal"]


PushDisposition = Literal["sent", "target_gone", "retry", "payload_error", "config_error"]


class PushOutcome(msgspec.Struct, frozen=True):
    disposition: PushDisposition
    message_name: str | None = None  # "projects/p/messages/id" when sent
    error_code: str | None = None  # FCM errorCode e.g. "UNREGISTERED", "QUOTA_EXCEEDED"
    retry_after_s: float | None = None


# FCM errorCode (from the error body's FcmError detail) or, without one, the google.rpc status the SDK reports as
# ``FirebaseError.code``. Codes not listed (UNKNOWN, UNSPECIFIED_ERROR, NOT_FOUND without UNREGISTERED...) retry.
_DISPOSITIONS: dict[str, PushDisposition] = {
    "UNREGISTERED": "target_gone",
    "SENDER_ID_MISMATCH": "target_gone",
    "INVALID_ARGUMENT": "payload_error",  # unless it is about the target: see _names_invalid_target
    "QUOTA_EXCEEDED": "retry",
    "RESOURCE_EXHAUSTED": "retry",
    "UNAVAILABLE": "retry",
    "INTERNAL": "retry",
    "DEADLINE_EXCEEDED": "retry",
    "THIRD_PARTY_AUTH_ERROR": "config_error",
    "APNS_AUTH_ERROR": "config_error",
    # Without an FCM errorCode these are about our own project or service account, not the message: retrying
    # cannot help until someone fixes the configuration.
    "PERMISSION_DENIED": "config_error",
    "UNAUTHENTICATED": "config_error",
}
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_TARGET_FIELDS = frozenset({"message.token", "message.fid"})


def mask_target(target: str) -> str:
    """Enough of a token/FID to tell two apart in logs, not enough to send to it."""
    return f"{target[:4]}…{target[-4:]}({len(target)})" if len(target) > 12 else f"…({len(target)})"


def _apns_collapse_id(collapse_key: str) -> str:
    # APNs limits apns-collapse-id to 64 bytes; a longer key is replaced by its (64-character) digest.
    return collapse_key if len(collapse_key.encode()) <= 64 else hashlib.sha256(collapse_key.encode()).hexdigest()


def _build(push: PushMessage, now: float) -> messaging.Message:
    """The SDK message for one push. Raises ValueError for a payload the SDK would refuse."""
    if not 0 <= push.ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be 0 to {MAX_TTL_S}")
    alert = bool(push.title or push.body)  # a push with neither is data-only: handled by the app, shows nothing
    notification = messaging.Notification(title=push.title, body=push.body) if alert else None
    android = apns = webpush = None
    if push.platform == "android":
        android = messaging.AndroidConfig(
            priority=push.priority, ttl=push.ttl_s, collapse_key=push.collapse_key,
            notification=messaging.AndroidNotification(tag=push.collapse_key) if alert else None)
    elif push.platform == "ios":
        apns = messaging.APNSConfig(
            headers={
                # Apple refuses priority 10 for a push that shows nothing (spec §3.1)
                "apns-priority": "10" if alert and push.priority == "high" else "5",
                # 0 = deliver now or never; otherwise the UNIX time after which APNs discards it
                "apns-expiration": str(int(now) + push.ttl_s) if push.ttl_s else "0",
                "apns-collapse-id": _apns_collapse_id(push.collapse_key),
                "apns-push-type": "alert" if alert else "background",
            },
            payload=None if alert else messaging.APNSPayload(aps=messaging.Aps(content_available=True)))
    else:
        webpush = messaging.WebpushConfig(
            headers={"TTL": str(push.ttl_s), "Urgency": "high" if push.priority == "high" else "normal"},
            notification=messaging.WebpushNotification(tag=push.collapse_key) if alert else None)
    common = {"data": dict(push.data), "notification": notification, "android": android, "apns": apns,
              "webpush": webpush}
    if push.target_kind == "fid":
        return messaging.Message(fid=push.target, **common)
    # Registration tokens are deprecated in favour of FIDs (spec §3.1) but stay valid for app versions that still
    # register them; the warning would fire on every send and says nothing the device table does not.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Message.token is deprecated", category=DeprecationWarning)
        return messaging.Message(token=push.target, **common)


def _fcm_error_code(exc: exceptions.FirebaseError) -> tuple[str, bool]:
    """The FCM errorCode (else the platform code) and whether the error names the target as invalid."""
    code = exc.code.upper() if isinstance(exc.code, str) else "UNKNOWN"
    target_named = False
    response = exc.http_response
    if response is not None:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        for detail in details if isinstance(details, list) else []:
            if not isinstance(detail, dict):
                continue
            if detail.get("@type") == _FCM_ERROR_TYPE and isinstance(detail.get("errorCode"), str):
                code = detail["errorCode"]
            if detail.get("@type") == _BAD_REQUEST_TYPE:
                violations = detail.get("fieldViolations")
                target_named |= any(isinstance(v, dict) and v.get("field") in _TARGET_FIELDS
                                    for v in (violations if isinstance(violations, list) else []))
    return code, target_named


def _names_invalid_target(exc: exceptions.FirebaseError, target_named: bool) -> bool:
    message = str(exc).lower()
    return target_named or ("registration token" in message and ("not a valid" in message or "invalid" in message))


def _retry_after_s(exc: exceptions.FirebaseError) -> float | None:
    response = exc.http_response
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    parsed = email.utils.parsedate_to_datetime(value) if value else None
    return max(0.0, parsed.timestamp() - time.time()) if parsed is not None else None


def classify(exc: exceptions.FirebaseError) -> PushOutcome:
    """The outcome of one failed send (spec §3.3)."""
    code, target_named = _fcm_error_code(exc)
    disposition = _DISPOSITIONS.get(code, "retry")
    if code == "INVALID_ARGUMENT" and _names_invalid_target(exc, target_named):
        disposition = "target_gone"
    retry_after = _retry_after_s(exc) if disposition == "retry" else None
    return PushOutcome(disposition, error_code=code, retry_after_s=retry_after)


def _chunk_failure(exc: Exception) -> PushOutcome:
    """The outcome of every message of a chunk that failed as a whole, before FCM answered for any of them: the
    OAuth token could not be obtained, or the SDK failed unexpectedly."""
    cause = exc.cause if isinstance(exc, exceptions.FirebaseError) else exc
    if isinstance(cause, google.auth.exceptions.RefreshError) and not getattr(cause, "retryable", False):
        return PushOutcome("config_error", error_code="UNAUTHENTICATED")  # key revoked, account deleted...
    if isinstance(cause, (google.auth.exceptions.TransportError, google.auth.exceptions.RefreshError)):
        return PushOutcome("retry", error_code="UNAVAILABLE")  # the token endpoint is unreachable or busy
    if isinstance(exc, exceptions.FirebaseError):
        return classify(exc)
    return PushOutcome("retry", error_code="UNKNOWN")


class PushSender:
    """One firebase-admin App for the life of the process, sending from one event loop."""

    def __init__(self, credential: credentials.Base, project_id: str, timeout_s: float,
                 endpoint: str | None = None) -> None:
        """``endpoint``: base URL replacing https://fcm.googleapis.com (the local sandbox); None for Google."""
        self._app = firebase_admin.initialize_app(
            credential, {"projectId": project_id, "httpTimeout": timeout_s},
            name=f"lienthong-push-{uuid.uuid4().hex[:12]}")
        self._google_credential = credential.get_credential()
        service = messaging._get_messaging_service(self._app)
        if endpoint is not None:
            service._fcm_url = f"{endpoint.rstrip('/')}/v1/projects/{project_id}/messages:send"
        # Same client as the SDK's own, minus the inner retries (see the module docstring).
        self._replaced_client = service._async_client
        service._async_client = HttpxAsyncClient(credential=self._google_credential, timeout=timeout_s,
                                                 retry_config=HttpxRetry(max_retries=0))
        self._service = service
        self._closed = False

    async def send(self, messages: Sequence[PushMessage]) -> list[PushOutcome]:
        """One outcome per message, in order. Never raises for a delivery problem: every failure is an outcome."""
        if self._closed:
            raise RuntimeError("this PushSender is closed")
        outcomes: list[PushOutcome | None] = [None] * len(messages)
        ready: list[tuple[int, messaging.Message]] = []
        now = time.time()
        for i, push in enumerate(messages):
            try:
                message = _build(push, now)
                str(message)  # the SDK's own encoder: one bad message would otherwise fail its whole chunk
            except ValueError as exc:
                log.warning("push not sendable target=%s error=%s", mask_target(push.target), exc)
                outcomes[i] = PushOutcome("payload_error", error_code="INVALID_ARGUMENT")
            else:
                ready.append((i, message))
        for start in range(0, len(ready), MAX_BATCH):
            chunk = ready[start:start + MAX_BATCH]
            results = await self._send_chunk([message for _, message in chunk])
            for (i, _), outcome in zip(chunk, results, strict=True):
                outcomes[i] = outcome
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(messages)
        for push, outcome in zip(messages, done, strict=True):
            if outcome.disposition != "sent":
                log.warning("push not sent target=%s kind=%s platform=%s disposition=%s code=%s retry_after=%s",
                            mask_target(push.target), push.target_kind, push.platform, outcome.disposition,
                            outcome.error_code, outcome.retry_after_s)
        if done:
            counts = Counter(outcome.disposition for outcome in done)
            log.info("push batch sent=%d %s", counts.pop("sent", 0),
                     " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        return done

    async def _send_chunk(self, chunk: list[messaging.Message]) -> list[PushOutcome]:
        try:
            # The SDK would fetch the hourly OAuth token synchronously on the event loop, and after a failure
            # once more for every message of the chunk; fetch it here, in a thread, once.
            await asyncio.to_thread(self._ensure_token)
            batch = await messaging.send_each_async(chunk, app=self._app)
        except (exceptions.FirebaseError, google.auth.exceptions.GoogleAuthError, httpx.HTTPError) as exc:
            failure = _chunk_failure(exc)
            # SDK and OAuth error texts carry no target, and ops need them for a config_error
            log.warning("push chunk failed size=%d disposition=%s code=%s error=%s: %.300s", len(chunk),
                        failure.disposition, failure.error_code, type(exc).__name__, exc)
            return [failure] * len(chunk)
        outcomes = []
        for response in batch.responses:
            if response.success:
                outcomes.append(PushOutcome("sent", message_name=response.message_id))
            elif isinstance(response.exception, exceptions.FirebaseError):
                outcomes.append(classify(response.exception))
            else:
                outcomes.append(PushOutcome("retry", error_code="UNKNOWN"))
        return outcomes

    def _ensure_token(self) -> None:
        credential = self._google_credential
        if not credential.valid:
            credential.refresh(google.auth.transport.requests.Request())

    async def close(self) -> None:
        """Close the HTTP clients on this loop, then delete the App off it (``delete_app`` runs ``asyncio.run``)."""
        if self._closed:
            return
        self._closed = True
        await self._service._async_client.aclose()
        await self._replaced_client.aclose()
        await asyncio.to_thread(firebase_admin.delete_app, self._app)


def push_sender_for(settings: Settings) -> PushSender:
    """The sender for these settings: Google with the service-account file, else the local FCM sandbox."""
    timeout_s = float(settings.fcm_timeout_s)
    if settings.fcm_credentials_file is None:
        credential = credentials.Certificate(demo_service_account(settings))
        return PushSender(credential, settings.fcm_project_id, timeout_s,
                          endpoint=f"http://127.0.0.1:{settings.fcm_sandbox_port}")
    credential = credentials.Certificate(str(settings.fcm_credentials_file))
    # FCM_PROJECT_ID left at its default means "the project of the service account" (README).
    project_id = settings.fcm_project_id
    if project_id == Settings.fcm_project_id and credential.project_id:
        project_id = credential.project_id
    return PushSender(credential, project_id, timeout_s)
