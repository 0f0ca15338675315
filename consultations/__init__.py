"""consultations package."""
