"""pharmacy_link package."""
