"""eprescription package."""
