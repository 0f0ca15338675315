"""Locust load tests of the platform: one locustfile per scenario (consultation, prescription, mixed); run them
with ``python -m load_tests.run_load``."""
