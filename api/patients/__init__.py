"""Patients' own records: profile, dependents (children), consents, and who accessed their data."""
