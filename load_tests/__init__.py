"""Load tests (Locust) and benchmark scripts for the consultation and prescription hot paths."""
