"""Secrets come only from settings, and production refuses to start with a credential this repository publishes.

The rule (api/settings.py ``_refuse_published_credentials``): in LIENTHONG_MODE=production every credential must be
one issued to the operator. A credential we send out may keep its sandbox value only while its service points at a
loopback address (a local sandbox: nothing real is reachable with it); a key that verifies what others send us
(VNPay's IPN checksum) never may. Demo mode keeps the sandbox values so the demo runs with nothing configured.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.settings import Settings, SettingsError, load_settings
from tests.api.test_settings import demo_env, production_env

ROOT = Path(__file__).resolve().parents[2]
ISSUED = {"SMS_API_KEY": "live-key", "SMS_SECRET_KEY": "live-secret"}  # production_env leaves the SMS keys unset

# (case id, variables changed from a complete production environment, the variable the refusal names)
PUBLISHED = [
    ("sms-keys-unset", {"SMS_API_KEY": "<unset>", "SMS_SECRET_KEY": "<unset>"}, "SMS_API_KEY"),
    ("sms-secret-unset", {"SMS_SECRET_KEY": "<unset>"}, "SMS_SECRET_KEY"),
    ("sms-sandbox-key", {"SMS_API_KEY": Settings.sms_api_key}, "SMS_API_KEY"),
    ("sms-sandbox-secret", {"SMS_SECRET_KEY": Settings.sms_secret_key}, "SMS_SECRET_KEY"),
    ("national-sandbox-password", {"NATIONAL_RX_FACILITY_PASSWORD": Settings.national_rx_facility_password},
     "NATIONAL_RX_FACILITY_PASSWORD"),
    ("national-sandbox-app-key", {"NATIONAL_RX_APP_KEY": Settings.national_rx_app_key}, "NATIONAL_RX_APP_KEY"),
    ("vnpay-demo-terminal", {"VNPAY_TMN_CODE": Settings.vnpay_tmn_code}, "VNPAY_TMN_CODE"),
    ("vnpay-demo-hash-secret", {"VNPAY_HASH_SECRET": Settings.vnpay_hash_secret}, "VNPAY_HASH_SECRET"),
    # the IPN checksum key protects what VNPay sends us: no sandbox URL excuses the published one
    ("vnpay-demo-hash-secret-on-loopback", {
        "VNPAY_HASH_SECRET": Settings.vnpay_hash_secret, "VNPAY_PAY_URL": "http://127.0.0.1:8028/paymentv2/vpcpay.html",
        "VNPAY_API_URL": "http://127.0.0.1:8028/merchant_webapi/api/transaction"}, "VNPAY_HASH_SECRET"),
    # a gateway that merely looks local is not a sandbox
    ("sms-sandbox-keys-on-a-lookalike-host", {"SMS_API_KEY": Settings.sms_api_key,
                                              "SMS_GATEWAY_URL": "https://127.0.0.1.nip.io"}, "SMS_API_KEY"),
]


@pytest.mark.parametrize(("overrides", "variable"), [c[1:] for c in PUBLISHED], ids=[c[0] for c in PUBLISHED])
def test_production_refuses_published_credentials(tmp_path: Path, overrides: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(production_env(tmp_path, **{**ISSUED, **overrides}))

    assert variable in str(refused.value)
    assert "production" in str(refused.value)


def test_production_starts_with_issued_credentials(tmp_path: Path) -> None:
    settings = load_settings(production_env(tmp_path, **ISSUED))

    assert settings.sms_secret_key == "live-secret"
    assert settings.hsts_max_age_s == 31_536_000
    assert settings.cors_origins == ()


def test_sandbox_credentials_are_allowed_against_a_loopback_sandbox(tmp_path: Path) -> None:
    """A production-mode rehearsal against the local SMS and national sandboxes (what the sandboxes accept)."""
    env = production_env(tmp_path, SMS_GATEWAY_URL="http://127.0.0.1:8025", NATIONAL_RX_URL="http://localhost:8026",
                         NATIONAL_RX_FACILITY_PASSWORD="<unset>", NATIONAL_RX_APP_KEY="<unset>")
    env.update(NATIONAL_RX_FACILITY_PASSWORD=Settings.national_rx_facility_password,
               NATIONAL_RX_APP_KEY=Settings.national_rx_app_key)

    settings = load_settings(env)

    assert (settings.sms_api_key, settings.sms_secret_key) == (Settings.sms_api_key, Settings.sms_secret_key)
    assert settings.national_rx_facility_password == Settings.national_rx_facility_password


def test_production_refuses_the_demo_secrets_generated_in_its_data_folder(tmp_path: Path) -> None:
    demo = load_settings(demo_env(tmp_path))

    with pytest.raises(SettingsError) as refused:
        load_settings(production_env(tmp_path, **ISSUED, LIENTHONG_JWT_SECRET=demo.jwt_secret))

    assert "LIENTHONG_JWT_SECRET" in str(refused.value)
    assert "demo" in str(refused.value)


def test_demo_runs_with_nothing_configured(tmp_path: Path) -> None:
    settings = load_settings(demo_env(tmp_path))

    assert settings.vnpay_hash_secret == Settings.vnpay_hash_secret
    assert settings.hsts_max_age_s == 0


@pytest.mark.parametrize("origins", ["app.lienthong.vn", "https://app.lienthong.vn/console", "*"])
def test_cors_origins_must_be_origins(tmp_path: Path, origins: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(demo_env(tmp_path, LIENTHONG_CORS_ORIGINS=origins))

    assert "LIENTHONG_CORS_ORIGINS" in str(refused.value)


def test_cors_origins_are_read_as_a_list(tmp_path: Path) -> None:
    settings = load_settings(demo_env(tmp_path, LIENTHONG_CORS_ORIGINS="https://a.example.vn, http://localhost:5173/"))

    assert settings.cors_origins == ("https://a.example.vn", "http://localhost:5173")


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = []
    for package in ("api", "consultations", "rtc", "eprescription", "pharmacy_link", "notifications", "payments",
                    "console"):
        for module in (ROOT / package).rglob("*.py"):
            if module != ROOT / "api" / "settings.py" and re.search(
                    r"os\.getenv\(|os\.environ\.get\(|os\.environ\[|environ\.setdefault\(", module.read_text()):
                readers.append(str(module.relative_to(ROOT)))
    assert readers == []
