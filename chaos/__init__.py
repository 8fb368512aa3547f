"""The chaos harness (``make chaos``): faults injected into real processes under load, checked
against a ground-truth ledger of what ingest acknowledged. See docs/reliability.md."""
