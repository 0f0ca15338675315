"""Settings come from environment variables once; a bad one stops start-up with a message naming it."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from api.settings import SettingsError, load_settings

JWT_SECRET = "a-production-jwt-secret-of-more-than-32-chars"
DATA_KEY = base64.b64encode(b"d" * 32).decode()
OTP_PEPPER = base64.b64encode(b"p" * 32).decode()


def demo_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    return {"LIENTHONG_DATA_DIR": str(data_dir), **overrides}


def production_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    service_account = data_dir / "firebase-service-account.json"
    service_account.parent.mkdir(parents=True, exist_ok=True)
    service_account.write_text('{"type": "service_account", "project_id": "lienthong-prod"}')
    env = {
        "LIENTHONG_MODE": "production",
        "LIENTHONG_DATA_DIR": str(data_dir),
        "DATABASE_URL": "postgresql://lienthong:secret@db.internal:5432/lienthong",
        "LIENTHONG_JWT_SECRET": JWT_SECRET,
        "LIENTHONG_DATA_KEY": DATA_KEY,
        "LIENTHONG_OTP_PEPPER": OTP_PEPPER,
        "SMS_GATEWAY_URL": "https://rest.esms.vn",
        "NATIONAL_RX_URL": "https://api.donthuocquocgia.vn",
        "NATIONAL_RX_FACILITY_CODE": "79026",
        "NATIONAL_RX_FACILITY_PASSWORD": "facility-password-from-the-operator",
        "NATIONAL_RX_APP_KEY": "vendor-app-key-from-the-operator",
        "FCM_CREDENTIALS_FILE": str(service_account),
        "LIENTHONG_PUBLIC_URL": "https://api.lienthong.vn",
        "VNPAY_PAY_URL": "https://pay.vnpay.vn/vpcpay.html",
        "VNPAY_API_URL": "https://merchant.vnpay.vn/merchant_webapi/api/transaction",
        "VNPAY_TMN_CODE": "PKLT0001",
        "VNPAY_HASH_SECRET": "live-hash-secret-from-vnpay",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != "<unset>"}


# (case id, "demo" or "production" base, overrides, variable the message must name)
BAD = [
    ("port-not-a-number", "demo", {"LIENTHONG_PORT": "http"}, "LIENTHONG_PORT"),
    ("port-too-large", "demo", {"LIENTHONG_PORT": "70000"}, "LIENTHONG_PORT"),
    ("port-zero", "demo", {"LIENTHONG_PORT": "0"}, "LIENTHONG_PORT"),
    ("ttl-not-an-int", "demo", {"LIENTHONG_ACCESS_TOKEN_TTL": "15m"}, "LIENTHONG_ACCESS_TOKEN_TTL"),
    ("otp-ttl-fraction", "demo", {"LIENTHONG_OTP_TTL": "300.5"}, "LIENTHONG_OTP_TTL"),
    ("bad-bool", "demo", {"LIENTHONG_RUN_WORKER": "maybe"}, "LIENTHONG_RUN_WORKER"),
    ("database-url-scheme", "demo", {"DATABASE_URL": "mysql://root@localhost/lienthong"}, "DATABASE_URL"),
    ("short-jwt-secret", "demo", {"LIENTHONG_JWT_SECRET": "too-short"}, "LIENTHONG_JWT_SECRET"),
    ("data-key-not-base64", "demo", {"LIENTHONG_DATA_KEY": "not base64 at all!"}, "LIENTHONG_DATA_KEY"),
    ("data-key-too-short", "demo", {"LIENTHONG_DATA_KEY": base64.b64encode(b"x" * 16).decode()},
     "LIENTHONG_DATA_KEY"),
    ("otp-pepper-not-base64", "demo", {"LIENTHONG_OTP_PEPPER": "%%%"}, "LIENTHONG_OTP_PEPPER"),
    ("pool-min-above-max", "demo", {"LIENTHONG_DB_POOL_MIN": "20", "LIENTHONG_DB_POOL_MAX": "5"},
     "LIENTHONG_DB_POOL_MIN"),
    ("log-level", "demo", {"LIENTHONG_LOG_LEVEL": "chatty"}, "LIENTHONG_LOG_LEVEL"),
    ("sms-gateway-url-scheme", "demo", {"SMS_GATEWAY_URL": "ftp://sms.example"}, "SMS_GATEWAY_URL"),
    ("sms-sandbox-port-too-large", "demo", {"SMS_SANDBOX_PORT": "99999"}, "SMS_SANDBOX_PORT"),
    ("unknown-mode", "demo", {"LIENTHONG_MODE": "staging"}, "LIENTHONG_MODE"),
    ("production-without-jwt-secret", "production", {"LIENTHONG_JWT_SECRET": "<unset>"}, "LIENTHONG_JWT_SECRET"),
    ("production-without-data-key", "production", {"LIENTHONG_DATA_KEY": "<unset>"}, "LIENTHONG_DATA_KEY"),
    ("production-without-otp-pepper", "production", {"LIENTHONG_OTP_PEPPER": "<unset>"}, "LIENTHONG_OTP_PEPPER"),
    ("production-without-any-secret", "production",
     {"LIENTHONG_JWT_SECRET": "<unset>", "LIENTHONG_DATA_KEY": "<unset>", "LIENTHONG_OTP_PEPPER": "<unset>"},
     "LIENTHONG_JWT_SECRET"),
    ("production-without-database-url", "production", {"DATABASE_URL": "<unset>"}, "DATABASE_URL"),
    ("production-without-sms-gateway", "production", {"SMS_GATEWAY_URL": "<unset>"}, "SMS_GATEWAY_URL"),
    ("national-rx-url-scheme", "demo", {"NATIONAL_RX_URL": "api.donthuocquocgia.vn"}, "NATIONAL_RX_URL"),
    ("production-without-national-rx", "production", {"NATIONAL_RX_URL": "<unset>"}, "NATIONAL_RX_URL"),
    ("production-without-national-rx-password", "production", {"NATIONAL_RX_FACILITY_PASSWORD": "<unset>"},
     "NATIONAL_RX_FACILITY_PASSWORD"),
    ("production-without-national-rx-app-key", "production", {"NATIONAL_RX_APP_KEY": "<unset>"},
     "NATIONAL_RX_APP_KEY"),
    ("production-without-fcm-credentials", "production", {"FCM_CREDENTIALS_FILE": "<unset>"},
     "FCM_CREDENTIALS_FILE"),
    ("fcm-credentials-file-missing", "demo", {"FCM_CREDENTIALS_FILE": "/nonexistent/firebase.json"},
     "FCM_CREDENTIALS_FILE"),
    ("quiet-hour-out-of-range", "demo", {"LIENTHONG_QUIET_START_HOUR": "24"}, "LIENTHONG_QUIET_START_HOUR"),
    ("notification-attempts-zero", "demo", {"LIENTHONG_NOTIFICATION_MAX_ATTEMPTS": "0"},
     "LIENTHONG_NOTIFICATION_MAX_ATTEMPTS"),
    ("production-without-vnpay-secret", "production", {"VNPAY_HASH_SECRET": "<unset>"}, "VNPAY_HASH_SECRET"),
    ("production-without-vnpay-urls", "production", {"VNPAY_PAY_URL": "<unset>", "VNPAY_API_URL": "<unset>"},
     "VNPAY_PAY_URL"),
    ("vnpay-urls-go-together", "demo", {"VNPAY_PAY_URL": "https://pay.vnpay.vn/vpcpay.html"}, "VNPAY_API_URL"),
    ("production-public-url-not-https", "production", {"LIENTHONG_PUBLIC_URL": "http://api.lienthong.vn"},
     "LIENTHONG_PUBLIC_URL"),
    ("vnpay-tmn-code-shape", "demo", {"VNPAY_TMN_CODE": "ABC-1234"}, "VNPAY_TMN_CODE"),
]


@pytest.mark.parametrize(("base", "overrides", "variable"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_variable_is_refused_with_its_name(tmp_path: Path, base: str, overrides: dict[str, str],
                                               variable: str) -> None:
    env = production_env(tmp_path, **overrides) if base == "production" else demo_env(tmp_path, **overrides)

    with pytest.raises(SettingsError) as refused:
        load_settings(env)

    assert variable in str(refused.value)


def test_production_never_falls_back_to_generated_secrets(tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        load_settings(production_env(tmp_path, LIENTHONG_OTP_PEPPER="<unset>"))

    assert not (tmp_path / "demo-secrets.json").exists()


def test_demo_generates_secrets_once_and_reuses_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    first = load_settings(demo_env(data_dir))
    second = load_settings(demo_env(data_dir))

    assert first.mode == "demo"
    assert len(first.jwt_secret) >= 32
    assert len(first.data_key) == 32
    assert len(first.otp_pepper) >= 16
    assert (second.jwt_secret, second.data_key, second.otp_pepper) == (
        first.jwt_secret, first.data_key, first.otp_pepper)
    secrets_file = data_dir / "demo-secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert json.loads(secrets_file.read_text())["LIENTHONG_JWT_SECRET"] == first.jwt_secret


def test_demo_installations_get_their_own_secrets(tmp_path: Path) -> None:
    one = load_settings(demo_env(tmp_path / "one"))
    other = load_settings(demo_env(tmp_path / "other"))

    assert one.jwt_secret != other.jwt_secret
    assert one.data_key != other.data_key
    assert one.otp_pepper != other.otp_pepper


def test_demo_secret_given_in_the_environment_wins_over_the_generated_one(tmp_path: Path) -> None:
    generated = load_settings(demo_env(tmp_path))

    given = load_settings(demo_env(tmp_path, LIENTHONG_JWT_SECRET=JWT_SECRET))

    assert given.jwt_secret == JWT_SECRET
    assert given.data_key == generated.data_key


def test_full_production_environment_loads(tmp_path: Path) -> None:
    env = production_env(
        tmp_path, LIENTHONG_HOST="0.0.0.0", LIENTHONG_PORT="8080", LIENTHONG_DB_POOL_MIN="4",  # noqa: S104
        LIENTHONG_DB_POOL_MAX="20", LIENTHONG_DB_APP_ROLE="lienthong_app", LIENTHONG_ACCESS_TOKEN_TTL="600",
        LIENTHONG_PATIENT_REFRESH_TTL="86400", LIENTHONG_STAFF_REFRESH_TTL="3600", LIENTHONG_OTP_TTL="120",
        LIENTHONG_OTP_MAX_ATTEMPTS="3", LIENTHONG_STAFF_MAX_FAILED_LOGINS="4", LIENTHONG_STAFF_LOCKOUT="600",
        SMS_API_KEY="live-key", SMS_SECRET_KEY="live-secret", SMS_BRANDNAME="PKLIENTHONG",
        LIENTHONG_MAX_BODY_BYTES="2097152", LIENTHONG_LOG_LEVEL="warning", LIENTHONG_RUN_WORKER="no",
    )

    settings = load_settings(env)

    assert settings.mode == "production"
    assert settings.database_url == env["DATABASE_URL"]
    assert not settings.uses_embedded_db
    assert not settings.uses_sms_sandbox
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)  # noqa: S104
    assert (settings.db_pool_min, settings.db_pool_max, settings.db_app_role) == (4, 20, "lienthong_app")
    assert settings.jwt_secret == JWT_SECRET
    assert settings.data_key == b"d" * 32
    assert settings.otp_pepper == b"p" * 32
    assert (settings.access_token_ttl_s, settings.patient_refresh_ttl_s, settings.staff_refresh_ttl_s) == (
        600, 86400, 3600)
    assert (settings.otp_ttl_s, settings.otp_max_attempts) == (120, 3)
    assert (settings.staff_max_failed_logins, settings.staff_lockout_s) == (4, 600)
    assert (settings.sms_api_key, settings.sms_secret_key, settings.sms_brandname) == (
        "live-key", "live-secret", "PKLIENTHONG")
    assert settings.max_body_bytes == 2_097_152
    assert settings.log_level == "WARNING"
    assert settings.run_worker is False
    assert not settings.uses_fcm_sandbox
    assert not settings.uses_vnpay_sandbox
    assert (settings.vnpay_tmn_code, settings.public_url) == ("PKLT0001", "https://api.lienthong.vn")
    assert settings.fcm_credentials_file == tmp_path / "firebase-service-account.json"
    assert not (tmp_path / "demo-secrets.json").exists()
