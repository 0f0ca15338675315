"""Mixed traffic with a realistic shape: pharmacy counters verifying codes and patients reading their prescriptions
and searching pharmacies far outnumber bookings, calls and new prescriptions (a doctor signs at most once per
30 s TOTP step anyway). User-class weights below; each class's own task weights shape it further (a pharmacist
verifies four times for each prescription it dispenses). With these weights 5 users or more include every class.

    python -m load_tests.run_load --scenario mixed --users 20 --spawn-rate 5 --duration 120s
"""

from __future__ import annotations

from load_tests.locustfiles.consultation import BookingPatient
from load_tests.locustfiles.prescription import Pharmacist, PrescribingDoctor, PrescriptionReader
from load_tests.locustfiles.signaling import SignalingUser


class PharmacyCounter(Pharmacist):
    weight = 3


class ReadingPatient(PrescriptionReader):
    weight = 3


class Booking(BookingPatient):
    weight = 2


class Prescriber(PrescribingDoctor):
    weight = 1


class Call(SignalingUser):
    weight = 1
