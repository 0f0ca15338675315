"""Doctors' profiles and schedules, booking without double-booking, the consultation lifecycle and record."""
