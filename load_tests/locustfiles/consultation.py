"""Consultation path: patients sign in by SMS OTP, search doctors, book a slot and check in; a signaling user then
has the doctor open the queue, both obtain join tokens and set the call up over the WebSocket (signaling.py).

Popular doctors are booked by many patients at once: a slot someone took a moment earlier is a 409, reported as
"POST /consultations [409 slot taken]" and not as a failure; so is a patient's own overlapping booking.

    python -m load_tests.run_load --scenario consultation --users 8 --spawn-rate 4 --duration 60s
"""

from __future__ import annotations

import random
from datetime import datetime

from locust import FastHttpUser, between, task

from load_tests.locustfiles.common import Session, check, manifest, next_index, popularity, sign_in_patient
from load_tests.locustfiles.signaling import SignalingUser, offer_ready

SEARCHES = ("nội", "noi tong quat", "nhi khoa", "bác sĩ", "minh", "tim mạch", "da liễu", "tai mũi họng", "lan")
BOOKING_CONFLICTS = {"slot-taken": "slot taken", "patient-double-booked": "patient double-booked"}


class BookingPatient(FastHttpUser):
    """Sign in once; each journey: search → a doctor's slots → book → check in → hand the call to signaling."""

    abstract = True
    wait_time = between(1, 3)
    slot_choice = 4  # pick among the first N free slots: popular doctors' early slots are contended

    def on_start(self) -> None:
        self.rng = random.Random()
        patients = manifest().patients
        self.patient = patients[next_index("patient") % len(patients)]
        self.session: Session | None = sign_in_patient(self.client, self.patient["phone"])

    @task
    def book_and_check_in(self) -> None:
        if self.session is None:
            self.session = sign_in_patient(self.client, self.patient["phone"])
            if self.session is None:
                return
        doctors = manifest().bookable_doctors
        with self.client.get("/doctors", params={"q": self.rng.choice(SEARCHES), "limit": 20},
                             name="GET /doctors?q=", catch_response=True) as r:
            check(r, (200,))
        doctor = doctors[popularity(len(doctors), self.rng)]
        doctor_id = str(doctor["account_id"])
        with self.client.get(f"/doctors/{doctor_id}/slots", params={"days": 3}, name="GET /doctors/{id}/slots",
                             catch_response=True) as r:
            if check(r, (200,)) != "ok":
                return
            slots = r.json()
        if not slots:
            return
        slot = self.rng.choice(slots[: self.slot_choice])
        with self.client.post("/consultations", headers=self.session.headers, name="POST /consultations",
                              json={"doctor_id": doctor_id, "starts_at": slot["starts_at"], "reason": "Khám từ xa"},
                              catch_response=True) as r:
            if check(r, (201,), BOOKING_CONFLICTS) != "ok":
                return
            booked = r.json()
            if booked["status"] != "booked":  # a doctor with a fee would wait for VNPay: not what this load test is
                r.failure(f"booking is {booked['status']}, expected booked (manifest doctors must be free)")
                return
        consultation_id = booked["id"]
        with self.client.post(f"/consultations/{consultation_id}/check-in", headers=self.session.headers,
                              name="POST /consultations/{id}/check-in", catch_response=True) as r:
            if check(r, (200,)) != "ok":
                return
        if self.rng.random() < 0.3:
            with self.client.get("/consultations", params={"limit": 20}, headers=self.session.headers,
                                 name="GET /consultations", catch_response=True) as r:
                check(r, (200,))
        day = datetime.fromisoformat(booked["starts_at"]).date().isoformat()
        if not offer_ready(consultation_id, doctor["username"], self.session, day):
            # no signaling user keeps up: give the slot back rather than leave a queue nobody serves
            with self.client.post(f"/consultations/{consultation_id}/cancel", headers=self.session.headers,
                                  json={"reason": "Không còn cần khám"}, name="POST /consultations/{id}/cancel",
                                  catch_response=True) as r:
                check(r, (200,))


class ConsultationPatient(BookingPatient):
    weight = 3


class CallSignaling(SignalingUser):
    weight = 1
