"""The three services, each run as ``python -m services.<name>``: ingest, scoring, alerts."""
