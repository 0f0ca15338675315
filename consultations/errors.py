"""Problems a booking or a consultation can run into."""

from __future__ import annotations

from api.errors import Conflict, DomainError, FieldError, Forbidden, NotFound


class ConsultationNotFound(NotFound):
    slug, title = "consultation-not-found", "Consultation not found"


class DoctorNotFound(NotFound):
    slug, title = "doctor-not-found", "Doctor not found"


class SlotUnavailable(DomainError):
    status, slug, title = 422, "slot-unavailable", "Not a bookable time"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors=[FieldError("body.starts_at", detail)])


class SlotTaken(Conflict):
    slug, title = "slot-taken", "Slot already booked"


class PatientDoubleBooked(Conflict):
    slug, title = "patient-double-booked", "Overlapping booking"


class ConsentRequired(Forbidden):
    slug, title = "consent-required", "Telemedicine consent required"


class IllegalTransition(Conflict):
    slug, title = "illegal-transition", "Not possible in the consultation's current state"


class OutsideWindow(Conflict):
    slug, title = "outside-time-window", "Not possible at this time"


class NotTreatingDoctor(Forbidden):
    slug, title = "not-treating-doctor", "Only the treating doctor may do this"
