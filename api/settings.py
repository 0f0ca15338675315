"""Typed settings read once from environment variables; the only module that reads the environment.

Every variable is listed in ``SETTINGS_DOC`` (rendered into the README's configuration table). A bad value stops
start-up with a message naming the variable, never a traceback from deep inside the app.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

Mode = Literal["demo", "production"]


class SettingsError(ValueError):
    """A variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    mode: Mode = "demo"
    database_url: str | None = None
    data_dir: Path = Path(".lienthong")
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_app_role: str | None = None
    jwt_secret: str = ""
    data_key: bytes = b""
    otp_pepper: bytes = b""
    access_token_ttl_s: int = 900
    patient_refresh_ttl_s: int = 30 * 24 * 3600
    staff_refresh_ttl_s: int = 12 * 3600
    otp_ttl_s: int = 300
    otp_max_attempts: int = 5
    otp_per_phone_per_minute: int = 1
    otp_per_phone_per_hour: int = 5
    otp_per_ip_per_minute: int = 5
    otp_per_ip_per_hour: int = 30
    staff_max_failed_logins: int = 5
    staff_lockout_s: int = 900
    sms_gateway_url: str | None = None
    sms_api_key: str = "sandbox-key"
    sms_secret_key: str = "sandbox-secret"  # noqa: S105 - the sandbox's published demo credential
    sms_brandname: str = "LIENTHONG"
    sms_sandbox_port: int = 8025
    max_body_bytes: int = 1_048_576
    log_level: str = "INFO"
    run_worker: bool = True
    no_show_after_min: int = 10
    free_cancellation_hours: int = 2
    join_open_before_min: int = 15
    join_grace_after_min: int = 30
    booking_horizon_days: int = 30
    booking_lead_min: int = 30
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl_s: int = 7200
    media_worker_url: str | None = None
    media_loopback_only: bool = False
    media_cpu_budget_pct: int = 120
    precall_per_hour: int = 4
    precall_max_s: int = 30
    prescribe_window_hours: int = 24
    dispense_hold_minutes: int = 30
    dispense_void_minutes: int = 60
    telemedicine_controlled_drugs: bool = False
    national_rx_url: str | None = None
    national_rx_facility_code: str = "79026"
    national_rx_facility_password: str = "sandbox-facility"  # noqa: S105 - the sandbox's published demo credential
    national_rx_app_name: str = "lienthong"
    national_rx_app_key: str = "sandbox-app-key"
    national_rx_sandbox_port: int = 8026
    fcm_credentials_file: Path | None = None
    fcm_project_id: str = "lienthong-demo"
    fcm_sandbox_port: int = 8027
    fcm_timeout_s: int = 10
    run_dispatcher: bool = True
    notification_batch: int = 200
    notification_max_attempts: int = 6
    notification_lease_s: int = 120
    notification_daily_cap: int = 6
    notification_quiet_start_hour: int = 20
    notification_quiet_end_hour: int = 8
    push_fallback_minutes: int = 240
    public_url: str = "http://127.0.0.1:8000"
    vnpay_pay_url: str | None = None
    vnpay_api_url: str | None = None
    vnpay_tmn_code: str = "LTDEMO01"
    vnpay_hash_secret: str = "LIENTHONGSANDBOXDEMOHASHSECRET01"  # noqa: S105 - the sandbox's published demo credential
    vnpay_sandbox_port: int = 8028
    vnpay_expire_minutes: int = 15
    vnpay_grace_minutes: int = 10
    booking_payment_minutes: int = 30
    login_failures_per_ip: int = 20
    otp_verify_failures_per_ip: int = 20
    rx_verify_failures_per_account: int = 30
    failure_window_s: int = 900
    cors_origins: tuple[str, ...] = ()
    hsts_max_age_s: int = 0

    @property
    def uses_embedded_db(self) -> bool:
        return self.database_url is None

    @property
    def uses_sms_sandbox(self) -> bool:
        return self.sms_gateway_url is None

    @property
    def uses_national_rx_sandbox(self) -> bool:
        return self.national_rx_url is None

    @property
    def uses_fcm_sandbox(self) -> bool:
        return self.fcm_credentials_file is None

    @property
    def uses_vnpay_sandbox(self) -> bool:
        return self.vnpay_pay_url is None


# (variable, default shown in README, meaning); the order is the README's.
SETTINGS_DOC: tuple[tuple[str, str, str], ...] = (
    ("LIENTHONG_MODE", "demo", "`demo` loads demo data, starts local sandboxes and generates secrets; "
     "`production` requires every secret below."),
    ("DATABASE_URL", "(unset)", "PostgreSQL URL. Unset: an embedded PostgreSQL in `LIENTHONG_DATA_DIR/pgdata`."),
    ("LIENTHONG_DATA_DIR", ".lienthong", "Project-local folder for the embedded database and demo secrets."),
    ("LIENTHONG_HOST", "127.0.0.1", "Address `lienthong serve` listens on."),
    ("LIENTHONG_PORT", "8000", "Port `lienthong serve` listens on."),
    ("LIENTHONG_DB_POOL_MIN", "2", "asyncpg pool minimum size."),
    ("LIENTHONG_DB_POOL_MAX", "10", "asyncpg pool maximum size."),
    ("LIENTHONG_DB_APP_ROLE", "(unset)", "Role the API switches to after connecting (`SET ROLE`), e.g. "
     "`lienthong_app`, which may not UPDATE/DELETE the audit log. The embedded database always uses it."),
    ("LIENTHONG_JWT_SECRET", "(generated in demo)", "HMAC key for access tokens, at least 32 characters."),
    ("LIENTHONG_DATA_KEY", "(generated in demo)", "Base64 of 32 bytes: AES-GCM key for TOTP secrets at rest."),
    ("LIENTHONG_OTP_PEPPER", "(generated in demo)", "Base64 of ≥16 bytes: HMAC key for hashing OTPs, "
     "refresh tokens and recovery codes."),
    ("LIENTHONG_ACCESS_TOKEN_TTL", "900", "Access token lifetime, seconds."),
    ("LIENTHONG_PATIENT_REFRESH_TTL", "2592000", "Patient refresh token lifetime, seconds (30 days)."),
    ("LIENTHONG_STAFF_REFRESH_TTL", "43200", "Doctor/pharmacist/admin refresh token lifetime, seconds (12 h)."),
    ("LIENTHONG_OTP_TTL", "300", "SMS OTP validity, seconds."),
    ("LIENTHONG_OTP_MAX_ATTEMPTS", "5", "Wrong codes before an OTP dies."),
    ("LIENTHONG_OTP_PER_PHONE_PER_MINUTE", "1", "OTP sends allowed per phone number per minute."),
    ("LIENTHONG_OTP_PER_PHONE_PER_HOUR", "5", "OTP sends allowed per phone number per hour."),
    ("LIENTHONG_OTP_PER_IP_PER_MINUTE", "5", "OTP sends allowed per client IP per minute (mobile carriers "
     "put many users behind one IP, so this is looser than per phone)."),
    ("LIENTHONG_OTP_PER_IP_PER_HOUR", "30", "OTP sends allowed per client IP per hour."),
    ("LIENTHONG_STAFF_MAX_FAILED_LOGINS", "5", "Failed staff sign-ins before the account is locked."),
    ("LIENTHONG_STAFF_LOCKOUT", "900", "Staff lockout duration, seconds."),
    ("SMS_GATEWAY_URL", "(unset)", "eSMS-compatible gateway base URL. Unset: the local SMS sandbox."),
    ("SMS_API_KEY", "sandbox-key", "Gateway ApiKey."),
    ("SMS_SECRET_KEY", "sandbox-secret", "Gateway SecretKey."),
    ("SMS_BRANDNAME", "LIENTHONG", "Registered brandname (tên định danh)."),
    ("SMS_SANDBOX_PORT", "8025", "Port of the local SMS sandbox (inbox at `/inbox`)."),
    ("LIENTHONG_MAX_BODY_BYTES", "1048576", "Largest request body accepted (413 above)."),
    ("LIENTHONG_LOG_LEVEL", "INFO", "Log level of the JSON logs."),
    ("LIENTHONG_RUN_WORKER", "true", "Run background workers inside `lienthong serve`."),
    ("LIENTHONG_NO_SHOW_AFTER_MIN", "10", "Minutes after a consultation's start before an absent patient is a "
     "no-show (and a waiting patient whose doctor never started is refunded)."),
    ("LIENTHONG_FREE_CANCELLATION_HOURS", "2", "Patients cancel free of charge until this many hours before the "
     "start; later cancellations are marked late."),
    ("LIENTHONG_JOIN_OPEN_BEFORE_MIN", "15", "Minutes before the start from which check-in and joining the call "
     "are allowed."),
    ("LIENTHONG_JOIN_GRACE_AFTER_MIN", "30", "Minutes after the scheduled end during which the call may still be "
     "joined."),
    ("LIENTHONG_BOOKING_HORIZON_DAYS", "30", "How far ahead patients may book."),
    ("LIENTHONG_BOOKING_LEAD_MIN", "30", "Minimum notice for a booking, minutes."),
    ("LIENTHONG_STUN_URLS", "(none)", "Comma-separated STUN URLs given to call participants."),
    ("LIENTHONG_TURN_URLS", "(none)", "Comma-separated TURN URLs (coturn `use-auth-secret`), e.g. "
     "`turn:turn.example.vn:3478?transport=udp,turns:turn.example.vn:443?transport=tcp`."),
    ("LIENTHONG_TURN_SECRET", "(none)", "coturn `static-auth-secret` used to mint TURN REST credentials."),
    ("LIENTHONG_TURN_TTL", "7200", "Lifetime of minted TURN credentials, seconds."),
    ("LIENTHONG_MEDIA_WORKER_URL", "(serve starts one)", "Base URL of the aiortc media worker (pre-call test, "
     "recording)."),
    ("LIENTHONG_MEDIA_LOOPBACK_ONLY", "false", "The media worker offers only 127.0.0.1 ICE candidates (tests, "
     "single-host demos); aioice otherwise skips loopback."),
    ("LIENTHONG_MEDIA_CPU_BUDGET", "120", "CPU the media worker may commit, in percent of one core; a pre-call "
     "test costs 40 and a recorded stream 55 (measured), and jobs beyond the budget are refused with 503."),
    ("LIENTHONG_PRECALL_PER_HOUR", "4", "Pre-call connection tests a patient account may start per hour."),
    ("LIENTHONG_PRECALL_MAX_S", "30", "Longest a pre-call connection test runs, seconds."),
    ("LIENTHONG_PRESCRIBE_WINDOW_HOURS", "24", "How long after a consultation ends its doctor may still write and "
     "sign a prescription for it, hours."),
    ("LIENTHONG_TELEMEDICINE_CONTROLLED_DRUGS", "false", "Allow narcotic (N) and psychotropic/precursor (H) drugs "
     "in telemedicine prescriptions (TM-4). Leave false unless legal counsel has signed off."),
    ("LIENTHONG_DISPENSE_HOLD_MINUTES", "30", "How long a pharmacy's hold on a prescription (\"with dispenser\", "
     "NHS-4) lasts unless released or renewed, minutes."),
    ("LIENTHONG_DISPENSE_VOID_MINUTES", "60", "How long after a sale its pharmacy may void it as a mistake, minutes."),
    ("NATIONAL_RX_URL", "(unset)", "Base URL of the national e-prescription system (QĐ 808), e.g. "
     "`https://api.donthuocquocgia.vn`. Unset: the local sandbox."),
    ("NATIONAL_RX_FACILITY_CODE", "79026", "The facility's mã liên thông (API-1 login)."),
    ("NATIONAL_RX_FACILITY_PASSWORD", "sandbox-facility", "The facility's password on the national system."),
    ("NATIONAL_RX_APP_NAME", "lienthong", "`app-name` header for the pharmacy-side calls (API-6/7), issued per "
     "software vendor."),
    ("NATIONAL_RX_APP_KEY", "sandbox-app-key", "`app-key` header for the pharmacy-side calls (API-6/7)."),
    ("NATIONAL_RX_SANDBOX_PORT", "8026", "Port of the local national e-prescription sandbox."),
    ("FCM_CREDENTIALS_FILE", "(unset)", "Firebase service-account JSON file for push (FCM HTTP v1). Unset: the "
     "local FCM sandbox, with a demo service account generated in `LIENTHONG_DATA_DIR`."),
    ("FCM_PROJECT_ID", "lienthong-demo", "Firebase project id; with a credentials file, the file's `project_id` "
     "wins when this is unset."),
    ("FCM_SANDBOX_PORT", "8027", "Port of the local FCM sandbox (received pushes at `/inbox`)."),
    ("FCM_TIMEOUT", "10", "firebase-admin `httpTimeout`, seconds."),
    ("LIENTHONG_RUN_DISPATCHER", "true", "Run a notification dispatcher inside `lienthong serve`; more can run "
     "with `lienthong dispatcher`."),
    ("LIENTHONG_NOTIFICATION_BATCH", "200", "Outbox rows one dispatcher claims at a time."),
    ("LIENTHONG_NOTIFICATION_MAX_ATTEMPTS", "6", "Send attempts before a notification is dead-lettered."),
    ("LIENTHONG_NOTIFICATION_LEASE", "120", "Seconds a claimed notification stays locked to its dispatcher; a "
     "crashed dispatcher's rows are taken over after it."),
    ("LIENTHONG_NOTIFICATION_DAILY_CAP", "6", "Reminders one account receives per Vietnam calendar day; more wait "
     "for the next day (confirmations, calls and security messages are not capped)."),
    ("LIENTHONG_QUIET_START_HOUR", "20", "Reminders are not sent from this hour (Asia/Ho_Chi_Minh) ..."),
    ("LIENTHONG_QUIET_END_HOUR", "8", "... until this hour. Only reminders wait: confirmations of what just happened, "
     "calls, OTPs and security messages go at once."),
    ("LIENTHONG_PUSH_FALLBACK_MINUTES", "240", "A vaccination push not opened within this time is also sent by "
     "SMS."),
    ("LIENTHONG_PUBLIC_URL", "http://127.0.0.1:8000", "The API's address as browsers and VNPay reach it: VNPay sends "
     "customers back to `<this>/payments/vnpay/return`, and its IPN must be registered as "
     "`<this>/payments/vnpay/ipn` (HTTPS in production)."),
    ("VNPAY_PAY_URL", "(unset)", "VNPay payment page, e.g. `https://sandbox.vnpayment.vn/paymentv2/vpcpay.html`. "
     "Unset: the local VNPay sandbox."),
    ("VNPAY_API_URL", "(unset)", "VNPay merchant API (querydr, refund), e.g. "
     "`https://sandbox.vnpayment.vn/merchant_webapi/api/transaction`. Unset: the local sandbox."),
    ("VNPAY_TMN_CODE", "LTDEMO01", "Terminal code (vnp_TmnCode) issued by VNPay."),
    ("VNPAY_HASH_SECRET", "(sandbox demo secret)", "HMAC-SHA512 key (vnp_HashSecret) issued by VNPay."),
    ("VNPAY_SANDBOX_PORT", "8028", "Port of the local VNPay sandbox (payment page, IPN sender, querydr/refund)."),
    ("VNPAY_EXPIRE_MINUTES", "15", "How long VNPay accepts a payment (vnp_ExpireDate), minutes."),
    ("VNPAY_GRACE_MINUTES", "10", "After a payment's expiry, how long to wait for a late IPN before asking VNPay "
     "(querydr), minutes."),
    ("LIENTHONG_BOOKING_PAYMENT_MINUTES", "30", "How long a paid booking holds its slot while the patient pays; "
     "then, once VNPay confirms nothing was paid, the slot is released."),
    ("LIENTHONG_LOGIN_FAILURES_PER_IP", "20", "Failed staff sign-ins from one client address before that address gets "
     "429 until its window ends (on top of the per-account lockout)."),
    ("LIENTHONG_OTP_VERIFY_FAILURES_PER_IP", "20", "Wrong or expired SMS codes from one client address before that "
     "address gets 429 until its window ends (on top of the per-code attempts)."),
    ("LIENTHONG_RX_VERIFY_FAILURES_PER_ACCOUNT", "30", "Look-ups of unknown prescription codes (or QR codes that do "
     "not verify) by one pharmacist account or pharmacy software before its verifies get 429 until the window ends."),
    ("LIENTHONG_FAILURE_WINDOW", "900", "The window of the three limits above, seconds; it opens with the first "
     "failure."),
    ("LIENTHONG_CORS_ORIGINS", "(none)", "Comma-separated origins (`https://app.example.vn`) whose browser pages may "
     "call the API; none by default: the console is served from the API's own origin."),
    ("LIENTHONG_HSTS_MAX_AGE", "31536000 in production, 0 in demo", "`Strict-Transport-Security` max-age, "
     "seconds; 0 sends no such header."),
)

_DEMO_SECRETS_FILE = "demo-secrets.json"

# Credentials published in this repository for the local sandboxes: never a real system's. With each, the URL
# variable that says where it is sent, or None for a key that checks what others send us.
_PUBLISHED_CREDENTIALS: tuple[tuple[str, str, str | None], ...] = (
    ("SMS_API_KEY", Settings.sms_api_key, "SMS_GATEWAY_URL"),
    ("SMS_SECRET_KEY", Settings.sms_secret_key, "SMS_GATEWAY_URL"),
    ("NATIONAL_RX_FACILITY_PASSWORD", Settings.national_rx_facility_password, "NATIONAL_RX_URL"),
    ("NATIONAL_RX_APP_KEY", Settings.national_rx_app_key, "NATIONAL_RX_URL"),
    ("VNPAY_TMN_CODE", Settings.vnpay_tmn_code, "VNPAY_PAY_URL"),
    ("VNPAY_HASH_SECRET", Settings.vnpay_hash_secret, None),
)


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    port = _int(env, name, default, minimum=1)
    if port > 65535:
        raise SettingsError(f"{name} must be at most 65535, got {port}")
    return port


def _urls(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in (env.get(name) or "").split(",") if u.strip())
    bad = [u for u in urls if not u.startswith(schemes)]
    if bad:
        raise SettingsError(f"{name} entries must start with {' or '.join(schemes)}, got {bad[0]!r}")
    return urls


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _b64key(name: str, raw: str, min_len: int) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError:
        raise SettingsError(f"{name} must be base64") from None
    if len(key) < min_len:
        raise SettingsError(f"{name} must decode to at least {min_len} bytes, got {len(key)}")
    return key


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse_published_credentials(env: Mapping[str, str], data_dir: Path) -> None:
    """Production: no credential may be one this repository publishes (an unset one falls back to it).

    A credential we send out (gateway keys, the national system's password) is allowed only when its service is
    pointed at a loopback address, which is where a local sandbox expecting exactly these values runs and nothing
    real can be reached. A key that verifies what others send us (VNPay's IPN checksum) never is: anyone could forge
    with it whatever the URLs say. The secrets generated for this data folder's demo are refused the same way.
    """
    for name, published, sent_to in _PUBLISHED_CREDENTIALS:
        if (env.get(name) or published) != published:
            continue
        if sent_to is not None and _is_loopback(env.get(sent_to) or ""):
            continue
        raise SettingsError(f"{name} is unset or the published sandbox value; LIENTHONG_MODE=production needs the "
                            "credential issued to you" + (f" (or {sent_to} on a loopback sandbox)" if sent_to else ""))
    generated = data_dir / _DEMO_SECRETS_FILE
    if generated.exists():
        for name, value in json.loads(generated.read_text()).items():
            if env.get(name) == value:
                raise SettingsError(f"{name} is the demo secret generated in {generated}; production needs its own")


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in (env.get(name) or "").split(",") if o.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise SettingsError(f"{name} entries must be origins like https://app.example.vn, got {origin!r}")
    return origins


def _demo_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets generated once per demo installation and kept beside its database, so restarts keep sessions."""
    path = data_dir / _DEMO_SECRETS_FILE
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded
    data_dir.mkdir(parents=True, exist_ok=True)
    generated = {
        "LIENTHONG_JWT_SECRET": secrets.token_urlsafe(48),
        "LIENTHONG_DATA_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "LIENTHONG_OTP_PEPPER": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    path.write_text(json.dumps(generated))
    path.chmod(0o600)
    return generated


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``env`` (default: ``os.environ``); raise SettingsError naming the bad variable."""
    env = dict(os.environ if env is None else env)
    mode = env.get("LIENTHONG_MODE", "demo")
    if mode not in ("demo", "production"):
        raise SettingsError(f"LIENTHONG_MODE must be 'demo' or 'production', got {mode!r}")
    data_dir = Path(env.get("LIENTHONG_DATA_DIR") or ".lienthong").expanduser().resolve()

    database_url = env.get("DATABASE_URL") or None
    if database_url is not None and not database_url.startswith(("postgresql://", "postgres://")):
        raise SettingsError("DATABASE_URL must start with postgresql:// or postgres://")
    if mode == "production" and database_url is None:
        raise SettingsError("DATABASE_URL is required when LIENTHONG_MODE=production")

    secret_names = ("LIENTHONG_JWT_SECRET", "LIENTHONG_DATA_KEY", "LIENTHONG_OTP_PEPPER")
    missing = [n for n in secret_names if not env.get(n)]
    if missing:
        if mode == "production":
            raise SettingsError(f"{missing[0]} is required when LIENTHONG_MODE=production")
        generated = _demo_secrets(data_dir)
        for name in missing:
            env[name] = generated[name]

    jwt_secret = env["LIENTHONG_JWT_SECRET"]
    if len(jwt_secret) < 32:
        raise SettingsError("LIENTHONG_JWT_SECRET must be at least 32 characters")

    host = env.get("LIENTHONG_HOST") or "127.0.0.1"
    port = _port(env, "LIENTHONG_PORT", 8000)
    pool_min = _int(env, "LIENTHONG_DB_POOL_MIN", 2, minimum=0)
    pool_max = _int(env, "LIENTHONG_DB_POOL_MAX", 10, minimum=1)
    if pool_min > pool_max:
        raise SettingsError("LIENTHONG_DB_POOL_MIN must not exceed LIENTHONG_DB_POOL_MAX")
    log_level = (env.get("LIENTHONG_LOG_LEVEL") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(f"LIENTHONG_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    if env.get("LIENTHONG_TURN_URLS") and not env.get("LIENTHONG_TURN_SECRET"):
        raise SettingsError("LIENTHONG_TURN_SECRET is required when LIENTHONG_TURN_URLS is set")
    sms_url = env.get("SMS_GATEWAY_URL") or None
    if mode == "production" and sms_url is None:
        raise SettingsError("SMS_GATEWAY_URL is required when LIENTHONG_MODE=production (the sandbox is demo-only)")
    if sms_url is not None and not sms_url.startswith(("http://", "https://")):
        raise SettingsError("SMS_GATEWAY_URL must be an http(s) URL")

    media_worker_url = env.get("LIENTHONG_MEDIA_WORKER_URL") or None
    if media_worker_url is not None and not media_worker_url.startswith(("http://", "https://")):
        raise SettingsError("LIENTHONG_MEDIA_WORKER_URL must be an http(s) URL")
    # the worker holds a CPU slot for the whole test; longer tests say nothing more about the link
    precall_max_s = _int(env, "LIENTHONG_PRECALL_MAX_S", 30, minimum=5)
    if precall_max_s > 120:
        raise SettingsError(f"LIENTHONG_PRECALL_MAX_S must be at most 120, got {precall_max_s}")
    national_url = (env.get("NATIONAL_RX_URL") or "").rstrip("/") or None
    if mode == "production" and national_url is None:
        raise SettingsError("NATIONAL_RX_URL is required when LIENTHONG_MODE=production (the sandbox is demo-only)")
    if national_url is not None and not national_url.startswith(("http://", "https://")):
        raise SettingsError("NATIONAL_RX_URL must be an http(s) URL")
    if mode == "production":  # the sandbox's published demo credentials must never reach the national system
        for name in ("NATIONAL_RX_FACILITY_CODE", "NATIONAL_RX_FACILITY_PASSWORD", "NATIONAL_RX_APP_KEY"):
            if not env.get(name):
                raise SettingsError(f"{name} is required when LIENTHONG_MODE=production")

    fcm_file_raw = env.get("FCM_CREDENTIALS_FILE") or None
    fcm_credentials_file = Path(fcm_file_raw).expanduser().resolve() if fcm_file_raw else None
    if mode == "production" and fcm_credentials_file is None:
        raise SettingsError("FCM_CREDENTIALS_FILE is required when LIENTHONG_MODE=production "
                            "(the sandbox is demo-only)")
    if fcm_credentials_file is not None and not fcm_credentials_file.is_file():
        raise SettingsError(f"FCM_CREDENTIALS_FILE names no readable file: {fcm_credentials_file}")
    quiet_start = _int(env, "LIENTHONG_QUIET_START_HOUR", 20)
    quiet_end = _int(env, "LIENTHONG_QUIET_END_HOUR", 8)
    for name, hour in (("LIENTHONG_QUIET_START_HOUR", quiet_start), ("LIENTHONG_QUIET_END_HOUR", quiet_end)):
        if hour > 23:
            raise SettingsError(f"{name} must be an hour from 0 to 23, got {hour}")

    public_url = (env.get("LIENTHONG_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise SettingsError("LIENTHONG_PUBLIC_URL must be an http(s) URL")
    vnpay_pay_url = env.get("VNPAY_PAY_URL") or None
    vnpay_api_url = env.get("VNPAY_API_URL") or None
    for name, url in (("VNPAY_PAY_URL", vnpay_pay_url), ("VNPAY_API_URL", vnpay_api_url)):
        if url is not None and not url.startswith(("http://", "https://")):
            raise SettingsError(f"{name} must be an http(s) URL")
    if (vnpay_pay_url is None) != (vnpay_api_url is None):
        raise SettingsError("VNPAY_PAY_URL and VNPAY_API_URL go together (both unset: the local sandbox)")
    if mode == "production":  # the sandbox's demo terminal must never take real money
        for name in ("VNPAY_PAY_URL", "VNPAY_API_URL", "VNPAY_TMN_CODE", "VNPAY_HASH_SECRET"):
            if not env.get(name):
                raise SettingsError(f"{name} is required when LIENTHONG_MODE=production")
        if not public_url.startswith("https://"):
            raise SettingsError("LIENTHONG_PUBLIC_URL must be https when LIENTHONG_MODE=production (VNPay's IPN "
                                "needs TLS)")
    tmn_code = env.get("VNPAY_TMN_CODE") or "LTDEMO01"
    if not tmn_code.isalnum() or len(tmn_code) != 8:
        raise SettingsError(f"VNPAY_TMN_CODE must be 8 letters or digits, got {tmn_code!r}")
    cors_origins = _origins(env, "LIENTHONG_CORS_ORIGINS")
    if mode == "production":
        _refuse_published_credentials(env, data_dir)

    return Settings(
        mode=mode,  # type: ignore[arg-type]  # checked against the Literal above
        database_url=database_url,
        data_dir=data_dir,
        host=host,
        port=port,
        db_pool_min=pool_min,
        db_pool_max=pool_max,
        db_app_role=env.get("LIENTHONG_DB_APP_ROLE") or None,
        jwt_secret=jwt_secret,
        data_key=_b64key("LIENTHONG_DATA_KEY", env["LIENTHONG_DATA_KEY"], 32)[:32],
        otp_pepper=_b64key("LIENTHONG_OTP_PEPPER", env["LIENTHONG_OTP_PEPPER"], 16),
        access_token_ttl_s=_int(env, "LIENTHONG_ACCESS_TOKEN_TTL", 900, minimum=30),
        patient_refresh_ttl_s=_int(env, "LIENTHONG_PATIENT_REFRESH_TTL", 30 * 24 * 3600, minimum=60),
        staff_refresh_ttl_s=_int(env, "LIENTHONG_STAFF_REFRESH_TTL", 12 * 3600, minimum=60),
        otp_ttl_s=_int(env, "LIENTHONG_OTP_TTL", 300, minimum=30),
        otp_max_attempts=_int(env, "LIENTHONG_OTP_MAX_ATTEMPTS", 5, minimum=1),
        otp_per_phone_per_minute=_int(env, "LIENTHONG_OTP_PER_PHONE_PER_MINUTE", 1, minimum=1),
        otp_per_phone_per_hour=_int(env, "LIENTHONG_OTP_PER_PHONE_PER_HOUR", 5, minimum=1),
        otp_per_ip_per_minute=_int(env, "LIENTHONG_OTP_PER_IP_PER_MINUTE", 5, minimum=1),
        otp_per_ip_per_hour=_int(env, "LIENTHONG_OTP_PER_IP_PER_HOUR", 30, minimum=1),
        staff_max_failed_logins=_int(env, "LIENTHONG_STAFF_MAX_FAILED_LOGINS", 5, minimum=1),
        staff_lockout_s=_int(env, "LIENTHONG_STAFF_LOCKOUT", 900, minimum=1),
        sms_gateway_url=sms_url,
        sms_api_key=env.get("SMS_API_KEY") or "sandbox-key",
        sms_secret_key=env.get("SMS_SECRET_KEY") or "sandbox-secret",
        sms_brandname=env.get("SMS_BRANDNAME") or "LIENTHONG",
        sms_sandbox_port=_port(env, "SMS_SANDBOX_PORT", 8025),
        max_body_bytes=_int(env, "LIENTHONG_MAX_BODY_BYTES", 1_048_576, minimum=1024),
        log_level=log_level,
        run_worker=_bool(env, "LIENTHONG_RUN_WORKER", True),
        no_show_after_min=_int(env, "LIENTHONG_NO_SHOW_AFTER_MIN", 10, minimum=1),
        free_cancellation_hours=_int(env, "LIENTHONG_FREE_CANCELLATION_HOURS", 2, minimum=0),
        join_open_before_min=_int(env, "LIENTHONG_JOIN_OPEN_BEFORE_MIN", 15, minimum=0),
        join_grace_after_min=_int(env, "LIENTHONG_JOIN_GRACE_AFTER_MIN", 30, minimum=0),
        booking_horizon_days=_int(env, "LIENTHONG_BOOKING_HORIZON_DAYS", 30, minimum=1),
        booking_lead_min=_int(env, "LIENTHONG_BOOKING_LEAD_MIN", 30, minimum=0),
        stun_urls=_urls(env, "LIENTHONG_STUN_URLS", ("stun:",)),
        turn_urls=_urls(env, "LIENTHONG_TURN_URLS", ("turn:", "turns:")),
        turn_secret=env.get("LIENTHONG_TURN_SECRET") or None,
        turn_ttl_s=_int(env, "LIENTHONG_TURN_TTL", 7200, minimum=60),
        media_worker_url=media_worker_url,
        media_loopback_only=_bool(env, "LIENTHONG_MEDIA_LOOPBACK_ONLY", False),
        media_cpu_budget_pct=_int(env, "LIENTHONG_MEDIA_CPU_BUDGET", 120, minimum=0),
        precall_per_hour=_int(env, "LIENTHONG_PRECALL_PER_HOUR", 4, minimum=1),
        precall_max_s=precall_max_s,
        prescribe_window_hours=_int(env, "LIENTHONG_PRESCRIBE_WINDOW_HOURS", 24, minimum=0),
        dispense_hold_minutes=_int(env, "LIENTHONG_DISPENSE_HOLD_MINUTES", 30, minimum=1),
        dispense_void_minutes=_int(env, "LIENTHONG_DISPENSE_VOID_MINUTES", 60, minimum=0),
        telemedicine_controlled_drugs=_bool(env, "LIENTHONG_TELEMEDICINE_CONTROLLED_DRUGS", False),
        national_rx_url=national_url,
        national_rx_facility_code=env.get("NATIONAL_RX_FACILITY_CODE") or "79026",
        national_rx_facility_password=env.get("NATIONAL_RX_FACILITY_PASSWORD") or "sandbox-facility",
        national_rx_app_name=env.get("NATIONAL_RX_APP_NAME") or "lienthong",
        national_rx_app_key=env.get("NATIONAL_RX_APP_KEY") or "sandbox-app-key",
        national_rx_sandbox_port=_port(env, "NATIONAL_RX_SANDBOX_PORT", 8026),
        fcm_credentials_file=fcm_credentials_file,
        fcm_project_id=env.get("FCM_PROJECT_ID") or "lienthong-demo",
        fcm_sandbox_port=_port(env, "FCM_SANDBOX_PORT", 8027),
        fcm_timeout_s=_int(env, "FCM_TIMEOUT", 10, minimum=1),
        run_dispatcher=_bool(env, "LIENTHONG_RUN_DISPATCHER", True),
        notification_batch=_int(env, "LIENTHONG_NOTIFICATION_BATCH", 200, minimum=1),
        notification_max_attempts=_int(env, "LIENTHONG_NOTIFICATION_MAX_ATTEMPTS", 6, minimum=1),
        notification_lease_s=_int(env, "LIENTHONG_NOTIFICATION_LEASE", 120, minimum=1),
        notification_daily_cap=_int(env, "LIENTHONG_NOTIFICATION_DAILY_CAP", 6, minimum=1),
        notification_quiet_start_hour=quiet_start,
        notification_quiet_end_hour=quiet_end,
        push_fallback_minutes=_int(env, "LIENTHONG_PUSH_FALLBACK_MINUTES", 240, minimum=1),
        public_url=public_url,
        vnpay_pay_url=vnpay_pay_url,
        vnpay_api_url=vnpay_api_url,
        vnpay_tmn_code=tmn_code,
        vnpay_hash_secret=env.get("VNPAY_HASH_SECRET") or "LIENTHONGSANDBOXDEMOHASHSECRET01",
        vnpay_sandbox_port=_port(env, "VNPAY_SANDBOX_PORT", 8028),
        vnpay_expire_minutes=_int(env, "VNPAY_EXPIRE_MINUTES", 15, minimum=5),
        vnpay_grace_minutes=_int(env, "VNPAY_GRACE_MINUTES", 10, minimum=1),
        booking_payment_minutes=_int(env, "LIENTHONG_BOOKING_PAYMENT_MINUTES", 30, minimum=10),
        login_failures_per_ip=_int(env, "LIENTHONG_LOGIN_FAILURES_PER_IP", 20, minimum=1),
        otp_verify_failures_per_ip=_int(env, "LIENTHONG_OTP_VERIFY_FAILURES_PER_IP", 20, minimum=1),
        rx_verify_failures_per_account=_int(env, "LIENTHONG_RX_VERIFY_FAILURES_PER_ACCOUNT", 30, minimum=1),
        failure_window_s=_int(env, "LIENTHONG_FAILURE_WINDOW", 900, minimum=1),
        cors_origins=cors_origins,
        hsts_max_age_s=_int(env, "LIENTHONG_HSTS_MAX_AGE", 31_536_000 if mode == "production" else 0),
    )


def with_overrides(settings: Settings, **changes: object) -> Settings:
    """A copy with some fields changed (tests and the CLI's flags use it)."""
    known = {f.name for f in fields(Settings)}
    unknown = set(changes) - known
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return replace(settings, **changes)  # type: ignore[arg-type]
