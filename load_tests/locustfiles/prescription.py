"""Prescription path: doctors in calls write and sign prescriptions (3–5 lines, clinical checks on, TOTP signing
ceremony: one signature per doctor per 30 s step); pharmacies verify by code, hold, dispense partially and then
fully; patients list their prescriptions and search pharmacies that have them.

    python -m load_tests.run_load --scenario prescription --users 8 --spawn-rate 4 --duration 60s
"""

from __future__ import annotations

import random
import secrets
from datetime import date, timedelta
from typing import Any

from locust import FastHttpUser, between, task

from load_tests.locustfiles.common import (
    CODES,
    TOTP,
    Session,
    body_of,
    check,
    manifest,
    next_index,
    sign_in_patient,
    staff_session,
)

DRUG_SEARCHES = ("para", "amox", "omeprazol", "lorat", "metformin", "amlodipin", "cefu", "vitamin")
OPEN = ("issued", "with_dispenser", "partially_dispensed")
USAGES = ("Uống sau ăn", "Uống trước ăn 30 phút", "Uống sau ăn sáng và tối")


class PrescribingDoctor(FastHttpUser):
    """A doctor in a call: type-ahead, a dry run while typing, then the signing ceremony: in one request for a new
    prescription (as the console sends content it has dry-run and never saved), or on a draft (an unsigned one left
    over, or an amendment)."""

    abstract = True
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.rng = random.Random()
        m = manifest()
        prescribers = [d for d in m.doctors if d["username"] in m.in_call_by_doctor]
        if not prescribers:
            raise RuntimeError("the manifest has no doctor in a call (in_call)")
        self.doctor = prescribers[next_index("prescriber") % len(prescribers)]
        self.consultations = m.in_call_by_doctor[self.doctor["username"]]
        self.session: Session | None = staff_session(self.client, self.doctor)

    def draft(self, consultation_id: str) -> dict[str, Any]:
        drugs = self.rng.sample(manifest().drug_ids, min(len(manifest().drug_ids), self.rng.randint(3, 5)))
        lines = []
        for drug_id in drugs:
            times, days = self.rng.choice((1, 2, 3)), self.rng.choice((5, 7, 10))
            lines.append({"drug_id": drug_id, "dose_per_time": 1, "dose_unit": "viên", "times_per_day": times,
                          "days": days, "quantity": times * days, "quantity_unit": "viên",
                          "usage": self.rng.choice(USAGES)})
        return {"consultation_id": consultation_id, "lines": lines,
                "diagnoses": [{"code": "I10", "conclusion": "Tăng huyết áp"}]}

    def _edit(self, rx_id: str, lines: list[dict[str, Any]]) -> dict[str, Any] | None:
        assert self.session is not None
        with self.client.request("PATCH", f"/prescriptions/{rx_id}", json={"lines": lines},
                                 headers=self.session.headers, name="PATCH /prescriptions/{id}",
                                 catch_response=True) as r:
            # two users playing one doctor: the other may have signed this draft meanwhile
            outcome = check(r, (200,), {"prescription-state-conflict": "signed meanwhile"})
            return r.json() if outcome == "ok" else None

    @task
    def write_and_sign(self) -> None:
        """One prescription for the consultation: a new one, or, while its last one is still open and no pharmacy
        has it, an amendment of that one (VN-1.10: one open ordinary prescription per consultation)."""
        self.session = staff_session(self.client, self.doctor)
        if self.session is None:
            return
        auth = self.session.headers
        consultation_id = self.rng.choice(self.consultations)
        with self.client.get("/prescriptions", params={"consultation_id": consultation_id}, headers=auth,
                             name="GET /prescriptions?consultation_id=", catch_response=True) as r:
            if check(r, (200,)) != "ok":
                return
            listed = r.json()
            open_rx = [p for p in listed if p["status"] in OPEN]
            drafts = [p for p in listed if p["status"] == "draft"]
        for q in self.rng.sample(DRUG_SEARCHES, 2):
            with self.client.get("/drugs", params={"q": q, "limit": 10}, headers=auth, name="GET /drugs?q=",
                                 catch_response=True) as r:
                check(r, (200,))
        body = self.draft(consultation_id)
        with self.client.post("/prescriptions/dry-run", json=body, headers=auth, name="POST /prescriptions/dry-run",
                              catch_response=True) as r:
            report = r.json() if check(r, (200,)) == "ok" else {"findings": []}
        if not drafts and not open_rx:
            self._write_and_sign(body, _overrides(report["findings"]))
            return
        if drafts:  # one left unsigned (the run before stopped mid-ceremony): finish it
            draft = self._edit(drafts[0]["id"], body["lines"])
            if draft is None:
                return
        else:
            current = open_rx[0]
            if current["status"] != "issued" or not CODES.withdraw(current["code"]):
                return  # a pharmacy is dispensing it: the next one is written once it is dispensed
            with self.client.post(f"/prescriptions/{current['id']}/amend", headers=auth,
                                  name="POST /prescriptions/{id}/amend", catch_response=True) as r:
                if check(r, (201,)) != "ok":
                    return
                replacement = r.json()["id"]
            draft = self._edit(replacement, body["lines"])
            if draft is None:
                return
        overrides = _overrides(draft.get("findings", []))
        username = self.doctor["username"]
        with TOTP.lock(username):  # the ceremony waits for a step this doctor has not used yet
            code = TOTP.code(username, self.doctor["totp_secret"])
            with self.client.post(f"/prescriptions/{draft['id']}/sign", headers=auth,
                                  name="POST /prescriptions/{id}/sign",
                                  json={"totp_code": code, "overrides": overrides}, catch_response=True) as r:
                # with more prescribing users than doctors, two users play one doctor: the other may have signed
                # this draft, or superseded the prescription it amends, while this one waited for a TOTP step
                if check(r, (200,), {"prescription-state-conflict": "signed or replaced meanwhile"}) != "ok":
                    return
                signed = r.json()
        CODES.add(signed["code"], [{"position": li["position"], "quantity": li["quantity"]} for li in signed["lines"]])


    def _write_and_sign(self, body: dict[str, Any], overrides: list[dict[str, str]]) -> None:
        assert self.session is not None
        username = self.doctor["username"]
        with TOTP.lock(username):
            code = TOTP.code(username, self.doctor["totp_secret"])
            with self.client.post("/prescriptions/signed", headers=self.session.headers,
                                  json={**body, "totp_code": code, "overrides": overrides},
                                  name="POST /prescriptions/signed", catch_response=True) as r:
                # two users playing one doctor: the other may have signed for this consultation meanwhile, and
                # VN-1.10 allows one open ordinary prescription per consultation
                other = r.status_code == 422 and (body_of(r) or {}).get("rules") == ["VN-1.10"]
                if check(r, (201,), {"prescription-rule-violated": "signed meanwhile"} if other else None) != "ok":
                    return
                signed = r.json()
        CODES.add(signed["code"], [{"position": li["position"], "quantity": li["quantity"]} for li in signed["lines"]])


def _overrides(findings: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"key": f["key"], "reason": "Đã cân nhắc lợi ích và nguy cơ, theo dõi sát (load test)."}
            for f in findings if f.get("blocks_signing")]


class Pharmacist(FastHttpUser):
    """A pharmacy counter: mostly verifying codes customers bring; some prescriptions held and dispensed in two
    sales (part now, the rest later)."""

    abstract = True
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.rng = random.Random()
        pharmacists = manifest().pharmacists
        self.account = pharmacists[next_index("pharmacist") % len(pharmacists)]
        self.session: Session | None = staff_session(self.client, self.account)

    def _verify(self, code: str) -> dict[str, Any] | None:
        assert self.session is not None
        with self.client.post("/dispensing/verify", json={"code": code}, headers=self.session.headers,
                              name="POST /dispensing/verify", catch_response=True) as r:
            return r.json() if check(r, (200,)) == "ok" else None

    @task(8)
    def verify(self) -> None:
        self.session = staff_session(self.client, self.account)
        code = CODES.any(self.rng)
        if self.session is not None and code is not None:
            self._verify(code)

    @task(2)
    def hold_and_dispense(self) -> None:
        self.session = staff_session(self.client, self.account)
        code = CODES.claim()
        if self.session is None or code is None:
            return
        auth = self.session.headers
        found = self._verify(code)
        if found is None or not found["dispensable"]:
            return
        with self.client.post(f"/dispensing/prescriptions/{code}/hold", headers=auth,
                              name="POST /dispensing/prescriptions/{code}/hold", catch_response=True) as r:
            if check(r, (200,), {"prescription-held": "held by another pharmacy"}) != "ok":
                return
        remaining = {li["position"]: li["remaining_quantity"] for li in found["lines"] if li["remaining_quantity"]}
        part = {p: q // 2 for p, q in remaining.items() if q >= 2}
        for first in (True, False):
            sale = part if first else remaining  # half of each line that allows it, then the rest
            if not sale:
                continue
            with self.client.post(f"/dispensing/prescriptions/{code}/dispenses", json=self._sale(sale),
                                  headers={**auth, "Idempotency-Key": secrets.token_hex(12)},
                                  name="POST /dispensing/prescriptions/{code}/dispenses", catch_response=True) as r:
                if check(r, (201,)) != "ok":
                    return
                remaining = {int(p): q for p, q in r.json()["remaining"].items() if q}
        if remaining:
            self.environment.events.request.fire(
                request_type="CHECK", name="prescription fully dispensed", response_time=0, response_length=0,
                exception=AssertionError(f"{code} still has {remaining} after the full sale"), context={})

    def _sale(self, quantities: dict[int, int]) -> dict[str, Any]:
        expiry = str(date.today() + timedelta(days=365))
        return {"invoice_number": f"LT{self.rng.randrange(10**9)}", "recipient": {"full_name": "Khách hàng"},
                "lines": [{"position": p, "quantity": q, "lot_number": f"L{p}", "expiry_date": expiry,
                           "unit_price_vnd": 1500} for p, q in sorted(quantities.items())]}


class PrescriptionReader(FastHttpUser):
    """A patient in the app: their prescriptions, one of them in full, and pharmacies nearby that have it."""

    abstract = True
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.rng = random.Random()
        patients = manifest().patients
        self.patient = patients[next_index("patient") % len(patients)]
        self.session: Session | None = sign_in_patient(self.client, self.patient["phone"])
        self.prescriptions: list[dict[str, Any]] = []

    def _signed_in(self) -> bool:
        if self.session is None:
            self.session = sign_in_patient(self.client, self.patient["phone"])
        return self.session is not None

    @task(4)
    def list_prescriptions(self) -> None:
        if not self._signed_in():
            return
        assert self.session is not None
        with self.client.get("/prescriptions", params={"limit": 20}, headers=self.session.headers,
                             name="GET /prescriptions", catch_response=True) as r:
            if check(r, (200,)) == "ok":
                self.prescriptions = [p for p in body_of(r) or [] if p.get("code")]

    @task(2)
    def view_prescription(self) -> None:
        if not self.prescriptions or not self._signed_in():
            return
        assert self.session is not None
        rx = self.rng.choice(self.prescriptions)
        with self.client.get(f"/prescriptions/{rx['id']}", headers=self.session.headers,
                             name="GET /prescriptions/{id}", catch_response=True) as r:
            check(r, (200,))

    @task(3)
    def search_pharmacies(self) -> None:
        if not self._signed_in():
            return
        assert self.session is not None
        m = manifest()
        lat, lng = self.rng.choice(m.pharmacy_points) if m.pharmacy_points else (10.7769, 106.7009)
        params: dict[str, Any] = {"lat": round(lat + self.rng.uniform(-0.01, 0.01), 6),
                                  "lng": round(lng + self.rng.uniform(-0.01, 0.01), 6), "radius_km": 5, "limit": 20}
        open_rx = [p for p in self.prescriptions if p.get("remaining_lines")]
        if open_rx and self.rng.random() < 0.5:
            params["prescription_id"] = self.rng.choice(open_rx)["id"]
            name = "GET /pharmacies/nearby?prescription_id="
        else:
            params["drug_ids"] = ",".join(self.rng.sample(m.drug_ids, min(len(m.drug_ids), self.rng.randint(1, 3))))
            name = "GET /pharmacies/nearby?drug_ids="
        with self.client.get("/pharmacies/nearby", params=params, headers=self.session.headers, name=name,
                             catch_response=True) as r:
            # dispensed since the list was read: a correct answer while pharmacies work
            check(r, (200,), {"prescription-not-dispensable": "no longer open"})


class Doctor(PrescribingDoctor):
    weight = 2


class PharmacyCounter(Pharmacist):
    weight = 3


class Patient(PrescriptionReader):
    weight = 2
