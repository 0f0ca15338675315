"""Accounts, sign-in (SMS OTP for patients, password + TOTP for staff), sessions and role guards."""
